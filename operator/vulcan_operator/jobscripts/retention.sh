# retention.sh: delete expired scheduled backups of THIS engine; never the newest one, never
# anything else.
#
# A scheduled backup is exactly `vulcan_YYYYmmdd_HHMMSS.dump` directly in the engine's folder
# (or S3 prefix), with a `.json` manifest beside it that names this VULCAN_NAMESPACE and
# VULCAN_ENGINE and this file; it is deleted with its parts (`vulcan_<time>.data.tar.gz`,
# `.uploads.tar.gz`, `.redis.rdb`) and its `.sha256` and `.json` sidecars: one backup set. A file
# without such a manifest is never touched, whoever wrote it (another engine sharing the folder
# or prefix, a person, an older operator). It expires when it is older than RETENTION_DAYS x
# 24 h (file mtime on a volume, LastModified in S3). The newest of this engine's backups is
# kept whatever its age, so a backup series that stopped (or a clock gone wrong) never deletes
# the last good copy. Untouched: any other name (`vulcan_manual.dump`, `*.partial`, old
# `*.sql.gz`, sub-folders such as `on-demand/`, other tools' files).

BACKUP_GLOB='vulcan_[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]_[0-9][0-9][0-9][0-9][0-9][0-9].dump'
RETENTION_DELETED=""   # JSON array items ("name",...) deleted by the last retention run
RETENTION_KEPT=0       # this engine's scheduled backups left

# retention_select NOW DAYS: stdin has "EPOCH NAME" lines; prints the NAMEs (matching the
# scheduled-backup pattern) older than DAYS x 86400 s at NOW, except the newest of them.
retention_select() {
    awk -v now="$1" -v days="$2" '
    BEGIN {
        d = "[0-9]"
        pattern = "^vulcan_" d d d d d d d d "_" d d d d d d "[.]dump$"
    }
    NF == 2 && $1 ~ /^[0-9]+$/ && $2 ~ pattern {
        n++
        t[n] = $1 + 0
        name[n] = $2
        if (n == 1 || t[n] > t[best] || (t[n] == t[best] && name[n] > name[best])) best = n
    }
    END {
        cutoff = now - days * 86400
        for (i = 1; i <= n; i++) {
            if (i != best && t[i] < cutoff) print name[i]
        }
    }'
}

# retention_ours MANIFEST NAME: the manifest file says this engine wrote NAME.
retention_ours() {
    [ -f "$1" ] || return 1
    [ "$(manifest_field "$1" namespace)" = "$VULCAN_NAMESPACE" ] \
        && [ "$(manifest_field "$1" engine)" = "$VULCAN_ENGINE" ] \
        && [ "$(manifest_field "$1" file)" = "$2" ]
}

# retention_check DAYS: DAYS is a whole number of at least 1, else exit EXIT_CONFIG.
retention_check() {
    if ! is_uint "$1" || [ "$1" -lt 1 ]; then
        fail "$EXIT_CONFIG" "RETENTION_DAYS must be a whole number of days >= 1, not '$1'"
    fi
}

# _retention_apply LIST DELETE_FN: run DELETE_FN NAME for each expired name in LIST.
_retention_apply() {
    _r_expired=$(mktemp_file expired) || return 1
    retention_select "$(date +%s)" "$RETENTION_DAYS_NOW" <"$1" >"$_r_expired" || {
        rm -f "$_r_expired"
        return 1
    }
    _r_total=$(grep -c . "$1")
    _r_status=0
    _r_deleted=0
    RETENTION_DELETED=""
    while IFS= read -r _r_name; do
        if $2 "$_r_name"; then
            log "retention: deleted $_r_name (older than $RETENTION_DAYS_NOW days)"
            RETENTION_DELETED="$RETENTION_DELETED${RETENTION_DELETED:+,}\"$_r_name\""
            _r_deleted=$((_r_deleted + 1))
        else
            log "retention: could not delete $_r_name"
            _r_status=1
        fi
    done <"$_r_expired"
    rm -f "$_r_expired"
    RETENTION_KEPT=$((_r_total - _r_deleted))
    log "retention: $_r_deleted deleted, $RETENTION_KEPT kept (newest always kept)"
    return "$_r_status"
}

# The parts of a backup set (data, uploads, redis) beside vulcan_<time>.dump.
PART_SUFFIXES="data.tar.gz uploads.tar.gz redis.rdb"

# The dump first: a dump is never left without its manifest (it would then be kept forever).
_retention_rm_file() {
    rm -f "$_r_rdir/$1" || return 1
    for _r_suffix in $PART_SUFFIXES; do
        rm -f "$_r_rdir/${1%.dump}.$_r_suffix" || return 1
    done
    rm -f "$_r_rdir/$1.sha256" "$_r_rdir/$1.json"
}

# retention_dir DIR DAYS: apply retention to the scheduled backups in DIR (not recursive).
retention_dir() {
    _r_rdir=$1
    RETENTION_DAYS_NOW=$2
    _r_list=$(mktemp_file retention) || return 1
    _r_failed=""
    for _r_f in "$_r_rdir"/$BACKUP_GLOB; do
        # No match leaves the pattern itself; symlinks and non-files are not ours to delete.
        if [ -L "$_r_f" ] || [ ! -f "$_r_f" ]; then
            continue
        fi
        if [ -L "$_r_f.json" ] || ! retention_ours "$_r_f.json" "${_r_f##*/}"; then
            continue
        fi
        _r_mtime=$(stat -c %Y "$_r_f") || {
            _r_failed=1
            break
        }
        printf '%s %s\n' "$_r_mtime" "${_r_f##*/}"
    done >"$_r_list"
    if [ -n "$_r_failed" ]; then
        rm -f "$_r_list"
        return 1
    fi
    _retention_apply "$_r_list" _retention_rm_file
    _r_rs=$?
    rm -f "$_r_list"
    return "$_r_rs"
}

_retention_rm_s3() {
    s3 rm "$_r_rprefix$1" || return 1
    for _r_suffix in $PART_SUFFIXES; do
        if grep -q -x -F "${1%.dump}.$_r_suffix" "$_r_names"; then
            s3 rm "$_r_rprefix${1%.dump}.$_r_suffix" || return 1
        fi
    done
    s3 rm "$_r_rprefix$1.sha256" && s3 rm "$_r_rprefix$1.json"
}

# retention_s3 PREFIX DAYS: apply retention to the scheduled backups directly under PREFIX
# (s3://bucket/some/prefix/, ending in '/'). Needs the `aws` CLI (see s3.sh).
retention_s3() {
    _r_rprefix=$1
    RETENTION_DAYS_NOW=$2
    _r_listing=$(mktemp_file listing) || return 1
    _r_list=$(mktemp_file retention) || return 1
    if ! s3 ls "$_r_rprefix" >"$_r_listing"; then
        # An empty or missing prefix lists nothing and exits 1: nothing to do then.
        if [ -s "$_r_listing" ]; then
            rm -f "$_r_listing" "$_r_list"
            return 1
        fi
    fi
    # "2024-11-29 02:00:03     123456 vulcan_20241129_020000.dump" (times in TZ=UTC).
    _r_manifest=$(mktemp_file manifest) || return 1
    _r_names=$(mktemp_file names) || return 1
    awk 'NF == 4 { print $4 }' "$_r_listing" >"$_r_names"
    while read -r _r_day _r_time _r_size _r_name _r_extra; do
        [ -z "$_r_extra" ] || continue
        # shellcheck disable=SC2254 # BACKUP_GLOB is a pattern
        case $_r_name in
            $BACKUP_GLOB) ;;
            *) continue ;;
        esac
        # Only a file whose manifest says this engine wrote it.
        grep -q -x -F "$_r_name.json" "$_r_names" || continue
        rm -f "$_r_manifest"
        s3 cp "$_r_rprefix$_r_name.json" "$_r_manifest" </dev/null || continue
        retention_ours "$_r_manifest" "$_r_name" || continue
        _r_epoch=$(date -u -d "$_r_day $_r_time" +%s 2>/dev/null) || continue
        printf '%s %s\n' "$_r_epoch" "$_r_name"
    done <"$_r_listing" >"$_r_list"
    rm -f "$_r_manifest"
    _retention_apply "$_r_list" _retention_rm_s3
    _r_rs=$?
    rm -f "$_r_listing" "$_r_list" "$_r_names"
    return "$_r_rs"
}

# retention_main: run retention alone. Env: RETENTION_DAYS, and BACKUP_DIR or S3_BUCKET
# (+ S3_PREFIX, S3_ENDPOINT_URL). Prints {"kind":"vulcan-retention","outcome":...,"deleted":[..]}.
retention_main() {
    VULCAN_PROGRAM=retention
    RESULT_KIND=vulcan-retention
    RESULT_STEP=retention
    require RETENTION_DAYS
    require_identity
    retention_check "$RETENTION_DAYS"
    if [ -n "${S3_BUCKET:-}" ]; then
        s3_setup
        retention_s3 "$(s3_prefix_uri)" "$RETENTION_DAYS" || fail "$EXIT_FAILED" "retention failed"
    else
        require BACKUP_DIR
        [ -d "$BACKUP_DIR" ] || fail "$EXIT_CONFIG" "BACKUP_DIR $BACKUP_DIR is not a directory"
        retention_dir "$BACKUP_DIR" "$RETENTION_DAYS" || fail "$EXIT_FAILED" "retention failed"
    fi
    emit_result "{\"kind\":\"$RESULT_KIND\",\"outcome\":\"Succeeded\",\
\"retentionDays\":$RETENTION_DAYS,\"deleted\":[$RETENTION_DELETED],\"kept\":$RETENTION_KEPT,\
\"startedAt\":\"$STARTED_AT\",\"finishedAt\":\"$(now_utc)\"}"
}

# retention_result DAYS STATUS: the `,"retention":{...}` part of a backup's result line, after
# retention_dir or retention_s3 returned STATUS (0: applied; else it failed, the backup is good).
retention_result() {
    if [ "$2" -eq 0 ]; then
        printf ',"retention":{"days":%s,"deleted":[%s],"kept":%s}' \
            "$1" "$RETENTION_DELETED" "$RETENTION_KEPT"
    else
        printf ',"retention":{"days":%s,"error":"retention failed; see the log"}' "$1"
    fi
}
