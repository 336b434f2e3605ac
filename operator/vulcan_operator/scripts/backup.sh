# backup.sh: pg_dump | gzip into BACKUP_DIR, verified, checksummed, renamed atomically.
#
# Env:
#   DATABASE_URL        postgresql://user:password@host:port/db[?params] (from the Secret)
#   BACKUP_DIR          where the dump goes (a volume mount, or the emptyDir handed to s3-upload)
#   BACKUP_LOCATION     how the result names that folder (pvc://claim/path, s3://bucket/prefix);
#                       default: BACKUP_DIR
#   RETENTION_DAYS      when set, apply retention to BACKUP_DIR after a successful backup
#   NOTIFY_WEBHOOK_URL  optional: POST the outcome here (Slack-compatible {"text": ...})
#   NOTIFY_ON_SUCCESS   "false": notify failures only (the S3 upload container reports success)
#   VULCAN_ENGINE       the engine's name, for messages
# Files: vulcan_YYYYmmdd_HHMMSS.sql.gz (+ .sha256 in `sha256sum` format, + .json manifest).
# The dump is written as `<name>.partial` and renamed only once it is complete and verified,
# so a file under the final name is always a whole backup.
# Last stdout line (and /dev/termination-log): the result, e.g.
#   {"kind":"vulcan-backup","outcome":"Succeeded","location":"pvc://c/e/vulcan_..sql.gz",
#    "file":"vulcan_..sql.gz","sizeBytes":123,"checksum":"<sha256 hex>",
#    "databaseRevision":"abc123","startedAt":"..Z","finishedAt":"..Z","retention":{..}}
#   {"kind":"vulcan-backup","outcome":"Failed","exitCode":1,"step":"dump","message":"..",..}
# Exit: 0 done, 1 failed (nothing left under a final name), 2 bad settings.

# Dump flags. --clean --if-exists: the dump drops each object before creating it, so the same
# file restores into an empty database and over an existing one. --no-owner/--no-privileges:
# objects belong to whoever restores (the engine's role), so a restore needs no superuser and
# works on a new server whose roles differ.
PG_DUMP_FLAGS="--format=plain --clean --if-exists --no-owner --no-privileges --quote-all-identifiers"
DUMP_TRAILER='PostgreSQL database dump complete'
STALE_PARTIAL_MINUTES=1440

_backup_cleanup() {
    [ -z "${BACKUP_PARTIAL:-}" ] || rm -f "$BACKUP_PARTIAL" "$BACKUP_PARTIAL.sha256" \
        "$BACKUP_PARTIAL.json"
    [ -z "${BACKUP_TMP:-}" ] || rm -rf "$BACKUP_TMP"
}

_backup_failed() {
    _backup_cleanup
    notify Failed "Vulcan backup FAILED${VULCAN_ENGINE:+ for $VULCAN_ENGINE} (step $RESULT_STEP): $1" \
        "\"kind\":\"vulcan-backup\",\"step\":$(json_str "$RESULT_STEP")"
}

# dump_is_complete FILE: FILE is a gzip whose content ends with pg_dump's completion trailer.
dump_is_complete() {
    gunzip -c "$1" 2>/dev/null | tail -n 5 | grep -q "$DUMP_TRAILER"
}

# remove our own stale partial files (a pod killed mid-dump cannot clean up after itself).
_backup_remove_stale() {
    find "$1" -maxdepth 1 -type f -name 'vulcan_*.sql.gz.partial*' \
        -mmin +"$STALE_PARTIAL_MINUTES" 2>/dev/null | while IFS= read -r _stale; do
        rm -f "$_stale" && log "removed a stale partial file: ${_stale##*/}"
    done
}

backup_main() {
    VULCAN_PROGRAM=backup
    RESULT_KIND=vulcan-backup
    FAIL_HOOK=_backup_failed
    trap '_backup_cleanup' EXIT
    trap 'fail 143 "interrupted (SIGTERM)"' TERM
    trap 'fail 130 "interrupted (SIGINT)"' INT

    RESULT_STEP=configure
    require DATABASE_URL BACKUP_DIR
    [ -z "${RETENTION_DAYS:-}" ] || retention_check "$RETENTION_DAYS"
    db_setup
    for _tool in pg_dump psql gzip gunzip sha256sum; do
        command -v "$_tool" >/dev/null 2>&1 || fail "$EXIT_CONFIG" "$_tool is not installed"
    done
    mkdir -p "$BACKUP_DIR" || fail "$EXIT_FAILED" "cannot create $BACKUP_DIR"
    [ -w "$BACKUP_DIR" ] || fail "$EXIT_FAILED" "$BACKUP_DIR is not writable (uid $(id -u))"
    BACKUP_TMP=$(mktemp -d "$TMPDIR/vulcan-backup.XXXXXX") || fail "$EXIT_FAILED" "no temp dir"
    _backup_remove_stale "$BACKUP_DIR"

    # Names are to the second: a backup started in the same second as another waits a tick.
    for _try in 1 2 3; do
        _name="vulcan_$(date -u +%Y%m%d_%H%M%S).sql.gz"
        _final="$BACKUP_DIR/$_name"
        [ -e "$_final" ] || [ -e "$_final.partial" ] || break
        sleep 1
    done
    _location="${BACKUP_LOCATION:-$BACKUP_DIR}"
    _location="${_location%/}/$_name"
    RESULT_EXTRA="\"location\":$(json_str "$_location"),\"file\":$(json_str "$_name")"
    [ ! -e "$_final" ] || fail "$EXIT_FAILED" "$_name already exists; not overwriting it"
    BACKUP_PARTIAL="$_final.partial"
    log "backing up database '$DB_NAME' to $_location"

    RESULT_STEP=revision
    _revision=$(db_revision "$VULCAN_DB_URL" 2>"$BACKUP_TMP/psql.err") \
        || fail "$EXIT_FAILED" "cannot read the database: $(last_error "$BACKUP_TMP/psql.err")"
    log "alembic revision: ${_revision:-(none)}"

    RESULT_STEP=dump
    # POSIX sh has no pipefail: pg_dump's own status travels through a file.
    # shellcheck disable=SC2086 # PG_DUMP_FLAGS is a list of flags
    {
        pg_dump $PG_DUMP_FLAGS --dbname="$VULCAN_DB_URL" 2>"$BACKUP_TMP/pg_dump.err"
        echo $? >"$BACKUP_TMP/pg_dump.status"
    } | gzip -c -6 >"$BACKUP_PARTIAL"
    _gzip_status=$?
    _dump_status=$(cat "$BACKUP_TMP/pg_dump.status" 2>/dev/null || echo unknown)
    if [ "$_dump_status" != 0 ]; then
        log_file "$BACKUP_TMP/pg_dump.err"
        fail "$EXIT_FAILED" "pg_dump failed (exit $_dump_status): $(last_error "$BACKUP_TMP/pg_dump.err")"
    fi
    [ "$_gzip_status" -eq 0 ] || fail "$EXIT_FAILED" "gzip failed (exit $_gzip_status; disk full?)"

    RESULT_STEP=verify
    [ -s "$BACKUP_PARTIAL" ] || fail "$EXIT_FAILED" "the dump is empty"
    gunzip -t "$BACKUP_PARTIAL" 2>"$BACKUP_TMP/gunzip.err" \
        || fail "$EXIT_FAILED" "the dump is not a valid gzip: $(last_error "$BACKUP_TMP/gunzip.err")"
    dump_is_complete "$BACKUP_PARTIAL" \
        || fail "$EXIT_FAILED" "the dump has no '$DUMP_TRAILER' trailer"
    _size=$(wc -c <"$BACKUP_PARTIAL" | tr -d ' ')
    _sum=$(sha256sum "$BACKUP_PARTIAL" | cut -d ' ' -f 1)
    [ ${#_sum} -eq 64 ] || fail "$EXIT_FAILED" "sha256sum failed"

    RESULT_STEP=store
    _finished=$(now_utc)
    _manifest="{\"kind\":\"vulcan-backup\",\"outcome\":\"Succeeded\",\
\"engine\":$(json_str "${VULCAN_ENGINE:-}"),\"database\":$(json_str "$DB_NAME"),\
\"location\":$(json_str "$_location"),\"file\":$(json_str "$_name"),\"sizeBytes\":$_size,\
\"checksum\":\"$_sum\",\"checksumAlgorithm\":\"sha256\",\
\"databaseRevision\":$(json_str "$_revision"),\"format\":\"plain+gzip\",\
\"startedAt\":\"$STARTED_AT\",\"finishedAt\":\"$_finished\"}"
    printf '%s  %s\n' "$_sum" "$_name" >"$BACKUP_PARTIAL.sha256" \
        && printf '%s\n' "$_manifest" >"$BACKUP_PARTIAL.json" \
        || fail "$EXIT_FAILED" "cannot write the checksum and manifest files"
    sync 2>/dev/null || true
    # Sidecars first, the dump last: the dump's final name is the commit point.
    mv -f "$BACKUP_PARTIAL.sha256" "$_final.sha256" \
        && mv -f "$BACKUP_PARTIAL.json" "$_final.json" \
        && mv -f "$BACKUP_PARTIAL" "$_final" \
        || fail "$EXIT_FAILED" "cannot rename the finished dump"
    BACKUP_PARTIAL=""
    sync 2>/dev/null || true
    log "backup complete: $_name, $_size bytes, sha256 $_sum"

    _retention=""
    if [ -n "${RETENTION_DAYS:-}" ]; then
        RESULT_STEP=retention
        if retention_dir "$BACKUP_DIR" "$RETENTION_DAYS"; then
            _retention=",\"retention\":{\"days\":$RETENTION_DAYS,\"deleted\":[$RETENTION_DELETED],\"kept\":$RETENTION_KEPT}"
        else
            # The backup itself is good: report, do not fail it.
            _retention=",\"retention\":{\"days\":$RETENTION_DAYS,\"error\":\"retention failed; see the log\"}"
        fi
    fi

    RESULT_STEP=done
    if [ "${NOTIFY_ON_SUCCESS:-true}" != false ]; then
        notify Succeeded "Vulcan backup succeeded${VULCAN_ENGINE:+ for $VULCAN_ENGINE}: $_location ($_size bytes)" \
            "\"kind\":\"vulcan-backup\",\"location\":$(json_str "$_location"),\"sizeBytes\":$_size"
    fi
    FAIL_HOOK=""
    emit_result "${_manifest%\}}$_retention}"
}
