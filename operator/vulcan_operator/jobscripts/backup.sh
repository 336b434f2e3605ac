# backup.sh: a custom-format pg_dump into BACKUP_DIR, verified, checksummed, committed
# under its final name without ever replacing a file.
#
# Env:
#   DATABASE_URL        postgresql://user:password@host:port/db[?params] (from the Secret)
#   BACKUP_DIR          the engine's backup folder (the builder passes <claim>/<namespace>/
#                       <engine>[/on-demand]), or the emptyDir handed to s3-upload
#   BACKUP_LOCATION     how the result names that folder (pvc://claim/path, s3://bucket/prefix);
#                       default: BACKUP_DIR
#   VULCAN_NAMESPACE, VULCAN_ENGINE  the engine (required): written into the manifest, which is
#                       what retention reads before it deletes anything
#   RETENTION_DAYS      when set, apply retention to BACKUP_DIR after a successful backup
#   NOTIFY_WEBHOOK_URL  optional: POST the outcome here (Slack-compatible {"text": ...})
#   NOTIFY_ON_SUCCESS   "false": notify failures only (the S3 upload container reports success)
#   PART_DATA_DIR, PART_UPLOADS_DIR  optional: the engine's /app/data and /app/uploads volumes
#                       (mounted read-only): each becomes a tar.gz of the backup set
#   PART_REDIS_FILE     optional: the Redis snapshot the redis-snapshot container wrote
# Files: vulcan_YYYYmmdd_HHMMSS.dump (pg_dump --format=custom; + .sha256 in `sha256sum`
# format, + .json manifest), and the parts asked for: vulcan_<time>.data.tar.gz,
# .uploads.tar.gz, .redis.rdb (one backup set: their sha256 in the .sha256 file and in the
# manifest's "parts", committed before the dump, deleted with it by retention). The dump is written as `<name>.partial`, checked with
# `pg_restore --list` and a full read, then hard-linked (`ln`, which fails when the name exists)
# to its final names: sidecars first, the dump last, so a file under the final name is always a
# whole backup, and an existing file is never replaced (a clash is a failure).
# Last stdout line (and /dev/termination-log): the result, e.g.
#   {"kind":"vulcan-backup","outcome":"Succeeded","namespace":"ns","engine":"prod",
#    "location":"pvc://c/ns/prod/vulcan_..dump","file":"vulcan_..dump","sizeBytes":123,
#    "checksum":"<sha256 hex>","databaseRevision":"abc123","format":"custom",
#    "serverVersion":"17.6","clientVersion":"17.6",
#    "startedAt":"..Z","finishedAt":"..Z","retention":{..}}
#   {"kind":"vulcan-backup","outcome":"Failed","exitCode":1,"step":"dump","message":"..",..}
#   A pg_dump of an older major than the server fails at step "version" (exit 2), its result
#   carrying "serverVersion" and "clientVersion".
# Exit: 0 done, 1 failed (nothing left under a final name), 2 bad settings (or a client older
# than the server).

# Dump flags. Custom format: restored with pg_restore, whose SQL text carries psql's
# `\restrict` guard, so nothing in a file can run a psql meta-command (see restore.sh).
# --no-owner/--no-privileges (given again to pg_restore, which applies them for this format):
# objects belong to whoever restores (the engine's role), so a restore needs no superuser and
# works on a new server whose roles differ.
PG_DUMP_FLAGS="--format=custom --compress=6 --no-owner --no-privileges"
STALE_PARTIAL_MINUTES=1440

_backup_cleanup() {
    [ -z "${BACKUP_PARTIAL:-}" ] || rm -f "$BACKUP_PARTIAL" "$BACKUP_PARTIAL.sha256" \
        "$BACKUP_PARTIAL.json"
    # The parts' partial files, and the final names this run linked before a later link
    # failed (never another run's files): one path a line.
    printf '%s\n' "${BACKUP_PART_PARTIALS:-}" "${BACKUP_LINKED:-}" | while IFS= read -r _f; do
        [ -z "$_f" ] || rm -f "$_f"
    done
    BACKUP_PART_PARTIALS=""
    BACKUP_LINKED=""
    [ -z "${BACKUP_TMP:-}" ] || rm -rf "$BACKUP_TMP"
}

_backup_failed() {
    _backup_cleanup
    notify Failed "Vulcan backup FAILED${VULCAN_ENGINE:+ for $VULCAN_ENGINE} (step $RESULT_STEP): $1" \
        "\"kind\":\"vulcan-backup\",\"step\":$(json_str "$RESULT_STEP")"
}

# dump_is_complete FILE: FILE is a custom-format archive pg_restore can list and read through.
dump_is_complete() {
    pg_restore --list "$1" >/dev/null 2>&1 && pg_restore -f /dev/null "$1" >/dev/null 2>&1
}

# commit_name PARTIAL FINAL: give PARTIAL the name FINAL (a hard link: fails when FINAL
# exists), then drop the partial name.
commit_name() {
    if ln "$1" "$2" 2>/dev/null; then
        BACKUP_LINKED="${BACKUP_LINKED:-}${BACKUP_LINKED:+
}$2"
        rm -f "$1"
        return 0
    fi
    if [ -e "$2" ] || [ -L "$2" ]; then
        fail "$EXIT_FAILED" "${2##*/} already exists; not replacing it"
    fi
    fail "$EXIT_FAILED" "cannot link ${1##*/} to ${2##*/} (does the volume support hard links?)"
}

# remove our own stale partial files (a pod killed mid-dump cannot clean up after itself).
_backup_remove_stale() {
    find "$1" -maxdepth 1 -type f -name 'vulcan_*.partial*' \
        -mmin +"$STALE_PARTIAL_MINUTES" 2>/dev/null | while IFS= read -r _stale; do
        rm -f "$_stale" && log "removed a stale partial file: ${_stale##*/}"
    done
}

# backup_part PART BASE: when the pod gives this part (PART_DATA_DIR, PART_UPLOADS_DIR: a
# mounted volume, read-only; PART_REDIS_FILE: the snapshot redis-snapshot wrote), write it as
# BASE.data.tar.gz / BASE.uploads.tar.gz / BASE.redis.rdb (`.partial` until the set is
# committed), verified: the archive read through (tar's gzip CRC), the snapshot's REDIS
# header. Sets PART_FILE, PART_SIZE, PART_SUM; returns 1 when the part is not asked for.
backup_part() {
    case $1 in
        data) _p_src=${PART_DATA_DIR:-} PART_FILE="$2.data.tar.gz" ;;
        uploads) _p_src=${PART_UPLOADS_DIR:-} PART_FILE="$2.uploads.tar.gz" ;;
        redis) _p_src=${PART_REDIS_FILE:-} PART_FILE="$2.redis.rdb" ;;
    esac
    [ -n "$_p_src" ] || return 1
    _p_out="$BACKUP_DIR/$PART_FILE.partial"
    ( set -C && : >"$_p_out" ) 2>/dev/null || fail "$EXIT_FAILED" "$PART_FILE is being written by another backup"
    BACKUP_PART_PARTIALS="${BACKUP_PART_PARTIALS:-}${BACKUP_PART_PARTIALS:+
}$_p_out"
    if [ "$1" = redis ]; then
        [ -s "$_p_src" ] || fail "$EXIT_FAILED" "the Redis snapshot $_p_src is missing or empty"
        [ "$(head -c 5 "$_p_src")" = REDIS ] || fail "$EXIT_FAILED" "$_p_src is not a Redis RDB file"
        cat "$_p_src" >"$_p_out" || fail "$EXIT_FAILED" "cannot copy the Redis snapshot"
    else
        [ -d "$_p_src" ] || fail "$EXIT_CONFIG" "$_p_src ($1) is not a directory"
        log "archiving $1 ($_p_src)"
        tar -czf "$_p_out" -C "$_p_src" . 2>"$BACKUP_TMP/tar.err" \
            || fail "$EXIT_FAILED" "cannot archive $1: $(last_error "$BACKUP_TMP/tar.err")"
        tar -tzf "$_p_out" >/dev/null 2>"$BACKUP_TMP/tar.err" \
            || fail "$EXIT_FAILED" "the $1 archive does not read back: $(last_error "$BACKUP_TMP/tar.err")"
    fi
    PART_SIZE=$(wc -c <"$_p_out" | tr -d ' ')
    PART_SUM=$(sha256sum "$_p_out" | cut -d ' ' -f 1)
    [ ${#PART_SUM} -eq 64 ] || fail "$EXIT_FAILED" "sha256sum failed"
    log "$1: $PART_FILE, $PART_SIZE bytes, sha256 $PART_SUM"
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
    require_identity
    [ -z "${RETENTION_DAYS:-}" ] || retention_check "$RETENTION_DAYS"
    db_setup
    for _tool in pg_dump pg_restore psql sha256sum ln; do
        command -v "$_tool" >/dev/null 2>&1 || fail "$EXIT_CONFIG" "$_tool is not installed"
    done
    mkdir -p "$BACKUP_DIR" || fail "$EXIT_FAILED" "cannot create $BACKUP_DIR"
    [ -w "$BACKUP_DIR" ] || fail "$EXIT_FAILED" "$BACKUP_DIR is not writable (uid $(id -u))"
    BACKUP_TMP=$(mktemp -d "$TMPDIR/vulcan-backup.XXXXXX") || fail "$EXIT_FAILED" "no temp dir"
    _backup_remove_stale "$BACKUP_DIR"

    # Names are to the second: a backup started in the same second as another waits a tick.
    for _try in 1 2 3; do
        _name="vulcan_$(date -u +%Y%m%d_%H%M%S).dump"
        _final="$BACKUP_DIR/$_name"
        [ -e "$_final" ] || [ -e "$_final.json" ] || [ -e "$_final.sha256" ] \
            || [ -e "$_final.partial" ] || break
        sleep 1
    done
    _location="${BACKUP_LOCATION:-$BACKUP_DIR}"
    _location="${_location%/}/$_name"
    RESULT_EXTRA="\"location\":$(json_str "$_location"),\"file\":$(json_str "$_name")"
    [ ! -e "$_final" ] || fail "$EXIT_FAILED" "$_name already exists; not replacing it"
    BACKUP_PARTIAL="$_final.partial"
    # O_EXCL (noclobber): a run that picked the same name in the same second loses here.
    ( set -C && : >"$BACKUP_PARTIAL" ) 2>/dev/null || {
        BACKUP_PARTIAL=""
        fail "$EXIT_FAILED" "another backup is writing $_name; not touching it"
    }
    log "backing up database '$DB_NAME' to $_location"

    RESULT_STEP=revision
    _revision=$(db_revision "$VULCAN_DB_URL" 2>"$BACKUP_TMP/psql.err") \
        || fail "$EXIT_FAILED" "cannot read the database: $(last_error "$BACKUP_TMP/psql.err")"
    log "alembic revision: ${_revision:-(none)}"

    RESULT_STEP=version
    # pg_dump refuses a server of a newer major: say so with both versions, not its error.
    _server_num=$(psql_value "$VULCAN_DB_URL" "SHOW server_version_num" 2>"$BACKUP_TMP/psql.err") \
        || fail "$EXIT_FAILED" "cannot read the database: $(last_error "$BACKUP_TMP/psql.err")"
    is_uint "$_server_num" || fail "$EXIT_FAILED" "the server sent no server_version_num"
    _server="$((_server_num / 10000)).$((_server_num % 10000))"
    _client=$(pg_dump --version 2>/dev/null | awk '{ print $3 }' | tr -cd '0-9.')
    RESULT_EXTRA="$RESULT_EXTRA,\"serverVersion\":\"$_server\",\"clientVersion\":\"$_client\""
    if [ "$((_server_num / 10000))" -gt "${_client%%.*}" ] 2>/dev/null; then
        fail "$EXIT_CONFIG" "pg_dump $_client cannot dump a PostgreSQL $_server server (pg_dump" \
            "refuses a newer major): use a PostgreSQL $((_server_num / 10000)) client" \
            "(spec.backup.clientImage, by default postgres:<server major>-alpine)"
    fi
    log "server PostgreSQL $_server, pg_dump $_client"

    RESULT_STEP=dump
    # shellcheck disable=SC2086 # PG_DUMP_FLAGS is a list of flags
    if ! pg_dump $PG_DUMP_FLAGS --file="$BACKUP_PARTIAL" --dbname="$VULCAN_DB_URL" \
        2>"$BACKUP_TMP/pg_dump.err"; then
        log_file "$BACKUP_TMP/pg_dump.err"
        fail "$EXIT_FAILED" "pg_dump failed: $(last_error "$BACKUP_TMP/pg_dump.err")"
    fi

    RESULT_STEP=verify
    [ -s "$BACKUP_PARTIAL" ] || fail "$EXIT_FAILED" "the dump is empty"
    dump_is_complete "$BACKUP_PARTIAL" \
        || fail "$EXIT_FAILED" "the dump is not a complete archive (pg_restore cannot read it)"
    # What a restore drill checks the restored database against (drill.sh).
    _rows=$(archive_row_counts "$BACKUP_PARTIAL") \
        || fail "$EXIT_FAILED" "cannot count the rows of the dump"
    _size=$(wc -c <"$BACKUP_PARTIAL" | tr -d ' ')
    _sum=$(sha256sum "$BACKUP_PARTIAL" | cut -d ' ' -f 1)
    [ ${#_sum} -eq 64 ] || fail "$EXIT_FAILED" "sha256sum failed"

    RESULT_STEP=files
    _parts=""
    _part_files=""
    _part_sums=""
    for _part in data uploads redis; do
        backup_part "$_part" "${_name%.dump}" || continue
        _parts="$_parts${_parts:+,}\"$_part\":{\"file\":\"$PART_FILE\",\
\"sizeBytes\":$PART_SIZE,\"checksum\":\"$PART_SUM\"}"
        _part_files="$_part_files $PART_FILE"
        _part_sums="$_part_sums$PART_SUM  $PART_FILE
"
    done

    RESULT_STEP=store
    _finished=$(now_utc)
    _manifest="{\"kind\":\"vulcan-backup\",\"outcome\":\"Succeeded\",\
\"namespace\":$(json_str "$VULCAN_NAMESPACE"),\"engine\":$(json_str "$VULCAN_ENGINE"),\
\"database\":$(json_str "$DB_NAME"),\
\"location\":$(json_str "$_location"),\"file\":$(json_str "$_name"),\"sizeBytes\":$_size,\
\"checksum\":\"$_sum\",\"checksumAlgorithm\":\"sha256\",\
\"databaseRevision\":$(json_str "$_revision"),\"format\":\"custom\",\
\"serverVersion\":\"$_server\",\"clientVersion\":\"$_client\",\"parts\":{$_parts},\
\"startedAt\":\"$STARTED_AT\",\"finishedAt\":\"$_finished\"}"
    # shellcheck disable=SC2015 # either write failing is fatal
    printf '%s  %s\n%s' "$_sum" "$_name" "$_part_sums" >"$BACKUP_PARTIAL.sha256" \
        && printf '%s\n' "${_manifest%\}},\"rowCounts\":$_rows}" >"$BACKUP_PARTIAL.json" \
        || fail "$EXIT_FAILED" "cannot write the checksum and manifest files"
    sync 2>/dev/null || true
    # Sidecars first, the dump last: the dump's final name is the commit point. Each is a
    # hard link, which fails when the name exists: nothing is ever replaced.
    for _part_file in $_part_files; do
        commit_name "$BACKUP_DIR/$_part_file.partial" "$BACKUP_DIR/$_part_file"
    done
    commit_name "$BACKUP_PARTIAL.sha256" "$_final.sha256"
    commit_name "$BACKUP_PARTIAL.json" "$_final.json"
    commit_name "$BACKUP_PARTIAL" "$_final"
    BACKUP_PARTIAL=""
    BACKUP_PART_PARTIALS=""
    BACKUP_LINKED=""
    sync 2>/dev/null || true
    log "backup complete: $_name, $_size bytes, sha256 $_sum"

    _retention=""
    if [ -n "${RETENTION_DAYS:-}" ]; then
        RESULT_STEP=retention
        retention_dir "$BACKUP_DIR" "$RETENTION_DAYS"  # a failure is reported, not fatal
        _retention=$(retention_result "$RETENTION_DAYS" $?)
    fi

    RESULT_STEP="done"
    if [ "${NOTIFY_ON_SUCCESS:-true}" != false ]; then
        notify Succeeded "Vulcan backup succeeded${VULCAN_ENGINE:+ for $VULCAN_ENGINE}: $_location ($_size bytes)" \
            "\"kind\":\"vulcan-backup\",\"location\":$(json_str "$_location"),\"sizeBytes\":$_size"
    fi
    FAIL_HOOK=""
    emit_result "${_manifest%\}}$_retention}"
}
