# restore.sh: restore a backup file into the engine's database (or TARGET_DATABASE).
#
# The file is checked BEFORE the database is touched: its checksum (EXPECTED_SHA256, else the
# `<file>.sha256` beside it, when there is one), `gunzip -t`, and pg_dump's completion trailer.
# A missing, corrupt, truncated or incomplete file is refused (exit 3) and nothing is changed.
# The restore runs in ONE transaction that is committed only when the whole file was read and
# every statement succeeded; anything else rolls back, leaving the database as it was.
# Scaling the engine down, migrating and scaling it back are the operator's steps, not ours.
#
# Env:
#   DATABASE_URL        postgresql://user:password@host:port/db (the engine's, from the Secret)
#   BACKUP_FILE         the .sql.gz file (on the mounted volume, or downloaded by s3-download)
#   BACKUP_LOCATION     how the result names it (pvc://..., s3://...); default BACKUP_FILE
#   EXPECTED_SHA256     optional: the checksum recorded when the backup was taken
#   TARGET_DATABASE     optional: restore into this database (created when missing) instead
# Last stdout line (and /dev/termination-log):
#   {"kind":"vulcan-restore","outcome":"Succeeded","database":"vulcan","location":"...",
#    "sizeBytes":123,"checksum":"<hex>","databaseRevision":"abc","created":false,
#    "rowCounts":{"jobs":500,"tasks":2500,...},"startedAt":"..","finishedAt":".."}
# Exit: 0 restored, 1 failed (rolled back: database unchanged), 2 bad settings,
#       3 backup file refused (database untouched).

DUMP_TRAILER='PostgreSQL database dump complete'
# Row counts of every user table, as one JSON object; "schema.table" outside public.
ROW_COUNTS_SQL="SELECT coalesce(json_object_agg(t.label, t.n ORDER BY t.label), '{}')
FROM (
    SELECT CASE WHEN c.table_schema = 'public' THEN c.table_name
                ELSE c.table_schema || '.' || c.table_name END AS label,
           (xpath('/row/n/text()', query_to_xml(
                format('SELECT count(*) AS n FROM %I.%I', c.table_schema, c.table_name),
                false, true, '')))[1]::text::bigint AS n
    FROM information_schema.tables c
    WHERE c.table_type = 'BASE TABLE'
      AND c.table_schema NOT IN ('pg_catalog', 'information_schema')
      AND c.table_schema NOT LIKE 'pg_toast%'
) t"
# The termination message holds at most 4096 bytes.
MAX_RESULT_BYTES=3800

_restore_cleanup() {
    [ -z "${RESTORE_TMP:-}" ] || rm -rf "$RESTORE_TMP"
}

_restore_failed() {
    # A database this run created and could not fill is dropped again (it holds nothing).
    if [ "${RESTORE_CREATED:-}" = true ]; then
        log "dropping the database '$TARGET_DATABASE' this restore created"
        if ! psql -X -q -v target="$TARGET_DATABASE" -d "$VULCAN_DB_URL" >/dev/null 2>&1 <<'SQL'
DROP DATABASE IF EXISTS :"target";
SQL
        then
            log "warning: could not drop database '$TARGET_DATABASE'"
        fi
    fi
    _restore_cleanup
}

refuse() {
    RESULT_STEP=verify
    fail "$EXIT_REFUSED" "backup refused, database untouched: $*"
}

# verify_backup FILE: checksum, gzip integrity and completeness, or refuse.
verify_backup() {
    _file=$1
    [ -e "$_file" ] || refuse "$_file does not exist"
    [ -f "$_file" ] || refuse "$_file is not a file"
    [ -s "$_file" ] || refuse "$_file is empty"
    RESTORE_SUM=$(sha256sum "$_file" | cut -d ' ' -f 1)
    _expected=${EXPECTED_SHA256:-}
    _source="EXPECTED_SHA256"
    if [ -z "$_expected" ] && [ -f "$_file.sha256" ]; then
        _expected=$(cut -d ' ' -f 1 <"$_file.sha256" | head -n 1)
        _source="${_file##*/}.sha256"
    fi
    if [ -n "$_expected" ]; then
        _expected=$(printf '%s' "$_expected" | tr 'A-F' 'a-f')
        [ "$_expected" = "$RESTORE_SUM" ] \
            || refuse "checksum mismatch: the file's sha256 is $RESTORE_SUM, $_source says $_expected"
        log "checksum verified ($_source)"
    else
        log "no checksum to compare with (no EXPECTED_SHA256, no ${_file##*/}.sha256)"
    fi
    gunzip -t "$_file" 2>"$RESTORE_TMP/gunzip.err" \
        || refuse "$_file is corrupt or truncated (gzip check failed: $(last_error "$RESTORE_TMP/gunzip.err"))"
    gunzip -c "$_file" 2>/dev/null | tail -n 5 | grep -q "$DUMP_TRAILER" \
        || refuse "$_file is an incomplete dump (no '$DUMP_TRAILER' trailer)"
}

restore_main() {
    VULCAN_PROGRAM=restore
    RESULT_KIND=vulcan-restore
    FAIL_HOOK=_restore_failed
    trap '_restore_cleanup' EXIT
    trap 'fail 143 "interrupted (SIGTERM); the transaction is rolled back"' TERM
    trap 'fail 130 "interrupted (SIGINT); the transaction is rolled back"' INT

    RESULT_STEP=configure
    require DATABASE_URL BACKUP_FILE
    db_setup
    for _tool in psql gunzip sha256sum; do
        command -v "$_tool" >/dev/null 2>&1 || fail "$EXIT_CONFIG" "$_tool is not installed"
    done
    _target=${TARGET_DATABASE:-}
    if [ -n "$_target" ]; then
        case $_target in
            [a-z_]*) ;;
            *) fail "$EXIT_CONFIG" "TARGET_DATABASE must match [a-z_][a-z0-9_]*, not '$_target'" ;;
        esac
        case $_target in
            *[!a-z0-9_]*) fail "$EXIT_CONFIG" "TARGET_DATABASE must match [a-z_][a-z0-9_]*, not '$_target'" ;;
        esac
    fi
    _database=${_target:-$DB_NAME}
    _location=${BACKUP_LOCATION:-$BACKUP_FILE}
    RESULT_EXTRA="\"location\":$(json_str "$_location"),\"database\":$(json_str "$_database")"
    RESTORE_TMP=$(mktemp -d "$TMPDIR/vulcan-restore.XXXXXX") || fail "$EXIT_FAILED" "no temp dir"

    RESULT_STEP=verify
    log "verifying $_location"
    verify_backup "$BACKUP_FILE"
    _size=$(wc -c <"$BACKUP_FILE" | tr -d ' ')

    _url=$VULCAN_DB_URL
    _created=false
    if [ -n "$_target" ]; then
        RESULT_STEP=create-database
        _url=$(db_url_for "$_target")
        _exists=$(psql_value "$VULCAN_DB_URL" \
            "SELECT count(*) FROM pg_database WHERE datname = '$_target'" \
            2>"$RESTORE_TMP/psql.err") \
            || fail "$EXIT_FAILED" "cannot connect: $(last_error "$RESTORE_TMP/psql.err")"
        if [ "$_exists" = 0 ]; then
            log "creating database '$_target'"
            # psql quotes the name itself (:"target"); it is also checked above.
            if ! psql -X -q -v ON_ERROR_STOP=1 -v target="$_target" -d "$VULCAN_DB_URL" \
                >/dev/null 2>"$RESTORE_TMP/psql.err" <<'SQL'
CREATE DATABASE :"target";
SQL
            then
                fail "$EXIT_FAILED" "cannot create database '$_target': $(last_error "$RESTORE_TMP/psql.err")"
            fi
            _created=true
            RESTORE_CREATED=true
        fi
    fi

    RESULT_STEP=restore
    log "restoring into database '$_database'"
    # BEGIN ... COMMIT around the dump; COMMIT is sent only after gunzip read the whole file.
    # If anything fails, psql stops (ON_ERROR_STOP) or meets end of input inside the open
    # transaction: either way the server rolls it back.
    {
        printf 'BEGIN;\n'
        if gunzip -c "$BACKUP_FILE" 2>"$RESTORE_TMP/gunzip.err"; then
            printf '\nCOMMIT;\n'
            echo 0 >"$RESTORE_TMP/gunzip.status"
        else
            echo 1 >"$RESTORE_TMP/gunzip.status"
        fi
    } | PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning" \
        psql -X -q -v ON_ERROR_STOP=1 -d "$_url" >/dev/null 2>"$RESTORE_TMP/restore.err"
    _psql_status=$?
    _gunzip_status=$(cat "$RESTORE_TMP/gunzip.status" 2>/dev/null || echo unknown)
    if [ "$_psql_status" -ne 0 ]; then
        log_file "$RESTORE_TMP/restore.err"
        fail "$EXIT_FAILED" "the restore failed and was rolled back (psql exit $_psql_status): $(last_error "$RESTORE_TMP/restore.err")"
    fi
    if [ "$_gunzip_status" != 0 ]; then
        fail "$EXIT_FAILED" "reading the backup failed mid-way; the restore was rolled back: $(last_error "$RESTORE_TMP/gunzip.err")"
    fi
    log_file "$RESTORE_TMP/restore.err"
    RESTORE_CREATED=""  # committed: whatever happens now, the restored database stays

    RESULT_STEP=verify-restore
    _counts=$(psql_value "$_url" "$ROW_COUNTS_SQL" 2>"$RESTORE_TMP/psql.err") \
        || fail "$EXIT_FAILED" "restored, but counting rows failed: $(last_error "$RESTORE_TMP/psql.err")"
    _counts=$(printf '%s' "$_counts" | tr -d '\n')
    _revision=$(db_revision "$_url" 2>"$RESTORE_TMP/psql.err") \
        || fail "$EXIT_FAILED" "restored, but reading alembic_version failed: $(last_error "$RESTORE_TMP/psql.err")"
    log "restore complete: database '$_database', revision ${_revision:-(none)}, rows $_counts"

    RESULT_STEP=done
    FAIL_HOOK=""
    _result="{\"kind\":\"vulcan-restore\",\"outcome\":\"Succeeded\",\
\"database\":$(json_str "$_database"),\"location\":$(json_str "$_location"),\
\"sizeBytes\":$_size,\"checksum\":\"$RESTORE_SUM\",\"databaseRevision\":$(json_str "$_revision"),\
\"created\":$_created,\"startedAt\":\"$STARTED_AT\",\"finishedAt\":\"$(now_utc)\""
    if [ $((${#_result} + ${#_counts})) -gt "$MAX_RESULT_BYTES" ]; then
        # Too many tables for the termination message: the counts are in the log above.
        emit_result "$_result,\"rowCounts\":{},\"rowCountsTruncated\":true}"
    else
        emit_result "$_result,\"rowCounts\":$_counts}"
    fi
}
