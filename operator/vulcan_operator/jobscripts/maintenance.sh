# maintenance.sh: VACUUM ANALYZE the engine's database (optionally REINDEX), then report sizes.
#
# Env:
#   DATABASE_URL          postgresql://user:password@host:port/db (from the Secret)
#   MAINTENANCE_REINDEX   "true": also REINDEX DATABASE CONCURRENTLY (no long write locks)
#   MAINTENANCE_TOP       how many tables the summary lists, largest first (default 20)
# Tables the role does not own are skipped by PostgreSQL with a warning (logged).
# Last stdout line (and /dev/termination-log):
#   {"kind":"vulcan-maintenance","outcome":"Succeeded","database":"vulcan","vacuumed":true,
#    "reindexed":false,"databaseBytes":123,"tables":[{"table":"public.jobs","bytes":8192,
#    "size":"8192 bytes"},...],"startedAt":"..","finishedAt":".."}
# Exit: 0 done, 1 failed, 2 bad settings.

# The guide's "table sizes" query, largest first, as JSON.
TABLE_SIZES_SQL="SELECT coalesce(json_agg(json_build_object(
        'table', s.schemaname || '.' || s.tablename, 'bytes', s.bytes,
        'size', pg_size_pretty(s.bytes)) ORDER BY s.bytes DESC, s.schemaname, s.tablename), '[]')
FROM (
    SELECT schemaname, tablename,
           pg_total_relation_size(quote_ident(schemaname) || '.' || quote_ident(tablename)) AS bytes
    FROM pg_tables
    WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
    ORDER BY bytes DESC, schemaname, tablename
    LIMIT :top
) s"

_maintenance_cleanup() {
    [ -z "${MAINTENANCE_TMP:-}" ] || rm -rf "$MAINTENANCE_TMP"
}

maintenance_main() {
    VULCAN_PROGRAM=maintenance
    RESULT_KIND=vulcan-maintenance
    FAIL_HOOK=_maintenance_cleanup
    trap '_maintenance_cleanup' EXIT
    trap 'fail 143 "interrupted (SIGTERM)"' TERM
    trap 'fail 130 "interrupted (SIGINT)"' INT

    RESULT_STEP=configure
    require DATABASE_URL
    db_setup
    _top=${MAINTENANCE_TOP:-20}
    is_uint "$_top" || fail "$EXIT_CONFIG" "MAINTENANCE_TOP must be a whole number, not '$_top'"
    _reindex=${MAINTENANCE_REINDEX:-false}
    case $_reindex in
        true | false) ;;
        *) fail "$EXIT_CONFIG" "MAINTENANCE_REINDEX must be true or false, not '$_reindex'" ;;
    esac
    command -v psql >/dev/null 2>&1 || fail "$EXIT_CONFIG" "psql is not installed"
    MAINTENANCE_TMP=$(mktemp -d "$TMPDIR/vulcan-maintenance.XXXXXX") \
        || fail "$EXIT_FAILED" "no temp dir"
    RESULT_EXTRA="\"database\":$(json_str "$DB_NAME")"
    export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"

    RESULT_STEP=vacuum
    log "VACUUM ANALYZE of database '$DB_NAME'"
    psql -X -q -v ON_ERROR_STOP=1 -d "$VULCAN_DB_URL" -c 'VACUUM (ANALYZE)' \
        >/dev/null 2>"$MAINTENANCE_TMP/vacuum.err" \
        || fail "$EXIT_FAILED" "VACUUM ANALYZE failed: $(last_error "$MAINTENANCE_TMP/vacuum.err")"
    # Shared catalogs (pg_database, pg_authid, ...) are the superuser's: PostgreSQL skips them
    # with one warning each. Count those, show the rest.
    _skipped=$(grep -c 'only superuser can vacuum it' "$MAINTENANCE_TMP/vacuum.err")
    grep -v 'only superuser can vacuum it' "$MAINTENANCE_TMP/vacuum.err" \
        >"$MAINTENANCE_TMP/vacuum.log"
    log_file "$MAINTENANCE_TMP/vacuum.log" 50
    [ "$_skipped" = 0 ] || log "skipped $_skipped shared catalog relations (superuser only)"

    if [ "$_reindex" = true ]; then
        RESULT_STEP=reindex
        log "REINDEX DATABASE CONCURRENTLY '$DB_NAME'"
        if ! psql -X -q -v ON_ERROR_STOP=1 -d "$VULCAN_DB_URL" \
            >/dev/null 2>"$MAINTENANCE_TMP/reindex.err" <<'SQL'
SELECT current_database() AS db \gset
REINDEX DATABASE CONCURRENTLY :"db";
SQL
        then
            fail "$EXIT_FAILED" "REINDEX failed: $(last_error "$MAINTENANCE_TMP/reindex.err")"
        fi
        log_file "$MAINTENANCE_TMP/reindex.err" 50
    fi

    RESULT_STEP=report
    _tables=$(psql -X -q -A -t -v ON_ERROR_STOP=1 -v top="$_top" -d "$VULCAN_DB_URL" \
        2>"$MAINTENANCE_TMP/sizes.err" <<SQL
$TABLE_SIZES_SQL;
SQL
    ) || fail "$EXIT_FAILED" "reading table sizes failed: $(last_error "$MAINTENANCE_TMP/sizes.err")"
    _tables=$(printf '%s' "$_tables" | tr -d '\n')
    _db_bytes=$(psql_value "$VULCAN_DB_URL" "SELECT pg_database_size(current_database())" \
        2>"$MAINTENANCE_TMP/sizes.err") \
        || fail "$EXIT_FAILED" "reading the database size failed: $(last_error "$MAINTENANCE_TMP/sizes.err")"
    log "database size: $_db_bytes bytes; largest tables:"
    printf '%s' "$_tables" | sed -e 's/}, *{/\n/g' | tr -d '[]{}"' \
        | sed -e 's/^ *table *: *\([^,]*\),.*size *: *\(.*\)$/    \1  \2/' >&2

    RESULT_STEP="done"
    FAIL_HOOK=""
    emit_result "{\"kind\":\"vulcan-maintenance\",\"outcome\":\"Succeeded\",\
\"database\":$(json_str "$DB_NAME"),\"vacuumed\":true,\"reindexed\":$_reindex,\
\"databaseBytes\":$_db_bytes,\"tables\":$_tables,\
\"startedAt\":\"$STARTED_AT\",\"finishedAt\":\"$(now_utc)\"}"
}
