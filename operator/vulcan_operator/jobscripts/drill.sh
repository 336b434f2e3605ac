# drill.sh: a restore drill. Restores the newest backup of the engine's folder into a scratch
# database on the same server and checks that it is what the backup recorded; never touches the
# engine's own database. With S3 storage, the pod's first container (s3-drill-download, s3.sh)
# has put the newest backup and its manifest into BACKUP_DIR (an emptyDir) beforehand.
#
# 1. find: the newest vulcan_<time>.dump under BACKUP_DIR (and its on-demand/ folder) that has
#    its manifest (<file>.json, written by backup.sh); its checksum, alembic revision and row
#    counts come from that manifest;
# 2. restore: restore.sh's side restore into DRILL_DATABASE (default <database>_drill), in one
#    transaction, the checksum checked first. The drill creates that database with a comment
#    marking it as a drill's (DRILL_MARK) and only ever drops a database carrying the mark: one
#    a killed drill left is replaced, anyone else's database of that name stops the drill
#    (ScratchDatabaseTaken) untouched;
# 3. row counts: every table's rows in the scratch database equal the manifest's rowCounts;
# 4. revision: the scratch database's alembic revision equals the manifest's databaseRevision;
# 5. the scratch database is dropped, whatever happened.
# Env: DATABASE_URL, BACKUP_DIR (required); DRILL_DATABASE; DRILL_LOCATION_PREFIX (how the
# result names the file: <prefix>/<path under BACKUP_DIR>).
# Last stdout line (and /dev/termination-log):
#   {"kind":"vulcan-drill","outcome":"Succeeded","backup":"pvc://.../vulcan_x.dump",
#    "database":"vulcan_drill","databaseRevision":"abc","rowCounts":{...},
#    "durationSeconds":12,"startedAt":"..","finishedAt":".."}
#   a failure: "outcome":"Failed","step":..,"reason":"RestoreFailed"|"RowCountMismatch"|
#   "RevisionMismatch"|"NoBackup"|"NoRowCounts"|"ScratchDatabaseTaken","message":..,"backup":..
# Exit: 0 the drill passed, 1 it failed, 2 bad settings.

DRILL_MARK="vulcan-operator restore drill scratch database"

# _drill_mark: the comment of database DRILL_DB ("" when it has none), "absent" when there is
# no such database; fails when the server cannot be asked.
_drill_mark() {
    psql_value "$VULCAN_DB_URL" "SELECT coalesce(max(coalesce(shobj_description(oid,
        'pg_database'), '')), 'absent') FROM pg_database WHERE datname = '$DRILL_DB'"
}

# _drill_drop: drop DRILL_DB, only when it carries the drill's mark.
_drill_drop() {
    [ -n "${DRILL_DB:-}" ] || return 0
    [ "$(_drill_mark 2>/dev/null)" = "$DRILL_MARK" ] || return 0
    psql -X -q -v target="$DRILL_DB" -d "$VULCAN_DB_URL" >/dev/null 2>&1 <<'SQL' \
        || log "warning: could not drop the scratch database '$DRILL_DB'"
DROP DATABASE IF EXISTS :"target";
SQL
}

_drill_failed() {
    _drill_drop
    [ -z "${DRILL_TMP:-}" ] || rm -rf "$DRILL_TMP"
}

# drill_reason REASON: the reason field every failure from now on carries.
drill_reason() {
    RESULT_EXTRA="\"reason\":\"$1\"${DRILL_BACKUP:+,\"backup\":$(json_str "$DRILL_BACKUP")}"
}

# _drill_lines JSON: a flat {"k":n,...} object as sorted "k=n" lines.
_drill_lines() {
    printf '%s' "$1" | tr -d ' \n{}"' | tr ',' '\n' | sed -e 's/:/=/' -e '/^$/d' | LC_ALL=C sort
}

drill_main() {
    VULCAN_PROGRAM=drill
    RESULT_KIND=vulcan-drill
    FAIL_HOOK=_drill_failed
    _started=$(date -u +%s)
    RESULT_STEP=configure
    require DATABASE_URL BACKUP_DIR
    db_setup
    _live=$(printf '%s' "$DB_NAME" | url_decode)
    DRILL_DB=${DRILL_DATABASE:-$(printf '%s' "$_live" | cut -c 1-57)_drill}
    case $DRILL_DB in
        [a-z_]*) ;;
        *) DRILL_DB=""; fail "$EXIT_CONFIG" "DRILL_DATABASE must match [a-z_][a-z0-9_]*" ;;
    esac
    case $DRILL_DB in
        *[!a-z0-9_]*) DRILL_DB=""; fail "$EXIT_CONFIG" "DRILL_DATABASE must match [a-z_][a-z0-9_]*" ;;
    esac
    if [ "$DRILL_DB" = "$_live" ]; then
        DRILL_DB=""
        fail "$EXIT_CONFIG" "DRILL_DATABASE is the engine's own database: a drill never touches it"
    fi
    DRILL_TMP=$(mktemp -d "$TMPDIR/vulcan-drill.XXXXXX") || fail "$EXIT_FAILED" "no temp dir"

    RESULT_STEP="find"  # quoted: a step name, not the command
    drill_reason NoBackup
    _file=$(for _f in "$BACKUP_DIR"/vulcan_*.dump "$BACKUP_DIR"/on-demand/vulcan_*.dump; do
        [ -f "$_f" ] && [ -f "$_f.json" ] && printf '%s %s\n' "${_f##*/}" "$_f"
    done | LC_ALL=C sort | tail -n 1 | cut -d ' ' -f 2-)
    [ -n "$_file" ] || fail "$EXIT_FAILED" "no backup with a manifest under $BACKUP_DIR"
    DRILL_BACKUP=${DRILL_LOCATION_PREFIX:+${DRILL_LOCATION_PREFIX%/}/}${_file#"$BACKUP_DIR"/}
    [ -n "${DRILL_LOCATION_PREFIX:-}" ] || DRILL_BACKUP=$_file
    _sum=$(manifest_field "$_file.json" checksum)
    _recorded_rev=$(manifest_field "$_file.json" databaseRevision)
    _recorded_rows=$(sed -n 's/.*"rowCounts":\({[^}]*}\).*/\1/p' "$_file.json" | head -n 1)
    drill_reason NoRowCounts
    [ -n "$_recorded_rows" ] || fail "$EXIT_FAILED" "the backup ${_file##*/} recorded no row" \
        "counts (taken before drills existed): take a new backup, then drill again"
    log "drilling ${_file##*/} (revision ${_recorded_rev:-none}) into '$DRILL_DB'"

    RESULT_STEP=scratch-database
    _mark=$(_drill_mark 2>"$DRILL_TMP/psql.err") \
        || fail "$EXIT_FAILED" "cannot connect: $(last_error "$DRILL_TMP/psql.err")"
    if [ "$_mark" != absent ] && [ "$_mark" != "$DRILL_MARK" ]; then
        _taken=$DRILL_DB
        DRILL_DB=""  # not ours: never dropped
        drill_reason ScratchDatabaseTaken
        fail "$EXIT_FAILED" "database '$_taken' exists and is not a drill's scratch database:" \
            "the drill leaves it alone and does not run"
    fi
    _drill_drop  # a drill killed half-way left it
    if ! psql -X -q -v ON_ERROR_STOP=1 -v target="$DRILL_DB" -v mark="$DRILL_MARK" \
        -d "$VULCAN_DB_URL" >/dev/null 2>"$DRILL_TMP/psql.err" <<'SQL'
CREATE DATABASE :"target";
COMMENT ON DATABASE :"target" IS :'mark';
SQL
    then
        fail "$EXIT_FAILED" "cannot create the scratch database: $(last_error "$DRILL_TMP/psql.err")"
    fi

    RESULT_STEP=restore
    drill_reason RestoreFailed
    (
        # In this subshell only: restore.sh's settings; its result line is ours to read.
        TARGET_DATABASE=$DRILL_DB
        BACKUP_FILE=$_file
        EXPECTED_SHA256=$_sum
        BACKUP_LOCATION=$DRILL_BACKUP
        TERMINATION_LOG=""
        restore_main
    ) >"$DRILL_TMP/restore.out"
    _code=$?
    if [ "$_code" -ne 0 ]; then
        _why=$(tail -n 1 "$DRILL_TMP/restore.out" \
            | sed -n 's/.*"step":"\([^"]*\)".*"message":"\([^"]*\)".*/step \1: \2/p')
        fail "$EXIT_FAILED" "the restore of $DRILL_BACKUP failed (exit $_code), ${_why:-see the log}"
    fi

    RESULT_STEP=row-counts
    _url=$(db_url_for "$DRILL_DB")
    _rows=$(psql_value "$_url" "$ROW_COUNTS_SQL" 2>"$DRILL_TMP/psql.err") \
        || fail "$EXIT_FAILED" "counting rows failed: $(last_error "$DRILL_TMP/psql.err")"
    _rows=$(printf '%s' "$_rows" | tr -d ' \n')
    _drill_lines "$_recorded_rows" >"$DRILL_TMP/recorded"
    _drill_lines "$_rows" >"$DRILL_TMP/restored"
    if ! cmp -s "$DRILL_TMP/recorded" "$DRILL_TMP/restored"; then
        drill_reason RowCountMismatch
        _diff=$(LC_ALL=C join -a 1 -a 2 -e - -o 0,1.2,2.2 -t = "$DRILL_TMP/recorded" \
            "$DRILL_TMP/restored" | awk -F = '$2 != $3 { printf "%s%s: recorded %s, restored %s",
            (n++ ? "; " : ""), $1, $2, $3 }')
        fail "$EXIT_FAILED" "row counts differ from what the backup recorded: $_diff"
    fi

    RESULT_STEP=revision
    _revision=$(db_revision "$_url" 2>"$DRILL_TMP/psql.err") \
        || fail "$EXIT_FAILED" "reading alembic_version failed: $(last_error "$DRILL_TMP/psql.err")"
    if [ "$_revision" != "$_recorded_rev" ]; then
        drill_reason RevisionMismatch
        fail "$EXIT_FAILED" "the restored database is at alembic revision '${_revision:-none}'," \
            "the backup recorded '${_recorded_rev:-none}'"
    fi

    RESULT_STEP=cleanup
    _tables=$(wc -l <"$DRILL_TMP/restored" | tr -d ' ')
    _drill_drop
    rm -rf "$DRILL_TMP"
    FAIL_HOOK=""
    RESULT_STEP="done"
    log "drill passed: ${_file##*/} restored into '$DRILL_DB', $_tables tables as recorded"
    # The termination message holds 4096 bytes: many tables' counts stay in the log.
    [ ${#_rows} -le $((MAX_RESULT_BYTES - 600)) ] || _rows='{},"rowCountsTruncated":true'
    emit_result "{\"kind\":\"vulcan-drill\",\"outcome\":\"Succeeded\",\
\"backup\":$(json_str "$DRILL_BACKUP"),\"database\":$(json_str "$DRILL_DB"),\
\"databaseRevision\":$(json_str "$_revision"),\"rowCounts\":$_rows,\
\"durationSeconds\":$(($(date -u +%s) - _started)),\
\"startedAt\":\"$STARTED_AT\",\"finishedAt\":\"$(now_utc)\"}"
}
