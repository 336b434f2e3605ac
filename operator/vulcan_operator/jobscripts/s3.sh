# s3.sh: the object-storage side of backups and restores, run with the `aws` CLI.
#
# postgres:15-alpine has no aws CLI, so an S3 backup pod has two containers sharing an
# emptyDir: the dump (backup.sh, postgres image, an init container) writes the verified file
# there, then s3-upload (this file, amazon/aws-cli image) uploads it, applies retention and
# reports. A restore pod is the mirror image: s3-download first, then restore.sh.
#
# Env (both programs):
#   S3_ENDPOINT_URL     optional: S3-compatible endpoint (MinIO, Ceph, R2, ...)
#   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (, AWS_SESSION_TOKEN), AWS_DEFAULT_REGION
# s3-upload: BACKUP_DIR (the emptyDir with exactly one finished dump), S3_BUCKET, S3_PREFIX
#   (the engine's folder, `<prefix><namespace>/<engine>/[on-demand/]` as the builder computes
#   it: used exactly as given, apart from a leading '/' dropped and a trailing '/' added),
#   RETENTION_DAYS (optional), NOTIFY_WEBHOOK_URL (optional), VULCAN_NAMESPACE, VULCAN_ENGINE.
#   No key is ever overwritten: each of the three is checked with `s3api head-object` first
#   and an existing one fails the upload. Result: the same line as backup.sh, s3:// location.
# s3-download: S3_LOCATION (s3://bucket/key), BACKUP_DIR, S3_PARTS (optional: names of the
#   set's parts beside the dump, e.g. "vulcan_<time>.data.tar.gz"). Downloads those files only
#   (the restore trusts the recorded checksums, never a .sha256 beside the file).
#   Result: {"kind":"vulcan-restore-download","outcome":..,"file":..}.
#   Exit 3 when the object does not exist.

# s3_setup: check the CLI; normalise S3_PREFIX (no leading '/', a trailing '/' unless empty).
s3_setup() {
    command -v aws >/dev/null 2>&1 || fail "$EXIT_CONFIG" "the aws CLI is not installed in this image"
    S3_PREFIX=${S3_PREFIX:-}
    while :; do
        case $S3_PREFIX in
            /*) S3_PREFIX=${S3_PREFIX#/} ;;
            *) break ;;
        esac
    done
    case $S3_PREFIX in
        '' | */) ;;
        *) S3_PREFIX="$S3_PREFIX/" ;;
    esac
    # `aws s3 ls` prints local times; retention reads them as UTC.
    TZ=UTC
    AWS_PAGER=""
    export TZ AWS_PAGER
}

# s3_prefix_uri: s3://bucket/prefix/
s3_prefix_uri() { printf 's3://%s/%s' "$S3_BUCKET" "$S3_PREFIX"; }

# s3 COMMAND ARGS...: `aws s3 COMMAND ARGS`, quiet, with the endpoint; errors scrubbed to the log.
s3() {
    _s3_command=$1
    shift
    _s3_err=$(mktemp_file s3) || return 1
    if [ "$_s3_command" = cp ] || [ "$_s3_command" = rm ]; then
        set -- --only-show-errors "$@"
    fi
    if [ -n "${S3_ENDPOINT_URL:-}" ]; then
        set -- --endpoint-url "$S3_ENDPOINT_URL" s3 "$_s3_command" "$@"
    else
        set -- s3 "$_s3_command" "$@"
    fi
    aws "$@" 2>"$_s3_err"
    _s3_status=$?
    # `ls` of an empty or missing prefix exits 1 (not an error); anything else is logged.
    if [ "$_s3_status" -ne 0 ] && { [ "$_s3_command" != ls ] || [ "$_s3_status" -ne 1 ]; }; then
        log "aws s3 $_s3_command failed (exit $_s3_status):"
        log_file "$_s3_err"
    fi
    rm -f "$_s3_err"
    return "$_s3_status"
}

# s3_key_absent URI: there is no object at URI (exact key). 0 absent, 1 present, 2 unknown
# (an error other than "not found", e.g. access denied: then nothing may be written).
s3_key_absent() {
    _s3_path=${1#s3://}
    _s3_bucket=${_s3_path%%/*}
    _s3_key=${_s3_path#*/}
    _s3_err=$(mktemp_file head) || return 2
    if [ -n "${S3_ENDPOINT_URL:-}" ]; then
        set -- --endpoint-url "$S3_ENDPOINT_URL"
    else
        set --
    fi
    aws "$@" s3api head-object --bucket "$_s3_bucket" --key "$_s3_key" >/dev/null 2>"$_s3_err"
    _s3_status=$?
    if [ "$_s3_status" -eq 0 ]; then
        rm -f "$_s3_err"
        return 1
    fi
    if grep -q -e '(404)' -e 'Not Found' -e 'NoSuchKey' "$_s3_err"; then
        rm -f "$_s3_err"
        return 0
    fi
    log "aws s3api head-object failed (exit $_s3_status):"
    log_file "$_s3_err"
    rm -f "$_s3_err"
    return 2
}

# s3_require_absent URI: fail unless there is certainly no object at URI.
s3_require_absent() {
    s3_key_absent "$1"
    case $? in
        0) ;;
        1) fail "$EXIT_FAILED" "$1 already exists; not overwriting it" ;;
        *) fail "$EXIT_FAILED" "cannot tell whether $1 exists; not uploading" ;;
    esac
}

# s3_object_size URI: the size of the object at URI (exact key), or nothing.
s3_object_size() {
    _s3_key=${1##*/}
    s3 ls "$1" 2>/dev/null | awk -v n="$_s3_key" '$4 == n && NF == 4 { print $3; exit }'
}

_s3_upload_failed() {
    notify Failed "Vulcan backup FAILED${VULCAN_ENGINE:+ for $VULCAN_ENGINE} (step $RESULT_STEP): $1" \
        "\"kind\":\"vulcan-backup\",\"step\":$(json_str "$RESULT_STEP")"
}

s3_upload_main() {
    VULCAN_PROGRAM=s3-upload
    RESULT_KIND=vulcan-backup
    FAIL_HOOK=_s3_upload_failed

    RESULT_STEP=configure
    require BACKUP_DIR S3_BUCKET
    require_identity
    [ -z "${RETENTION_DAYS:-}" ] || retention_check "$RETENTION_DAYS"
    s3_setup
    _count=0
    _dump=""
    for _f in "$BACKUP_DIR"/$BACKUP_GLOB; do
        [ -f "$_f" ] || continue
        _dump=$_f
        _count=$((_count + 1))
    done
    [ "$_count" -eq 1 ] \
        || fail "$EXIT_FAILED" "expected one finished dump in $BACKUP_DIR, found $_count"
    _name=${_dump##*/}
    _dest="$(s3_prefix_uri)$_name"
    RESULT_EXTRA="\"location\":$(json_str "$_dest"),\"file\":$(json_str "$_name")"
    [ -f "$_dump.sha256" ] && [ -f "$_dump.json" ] \
        || fail "$EXIT_FAILED" "the dump has no .sha256 or .json beside it"
    retention_ours "$_dump.json" "$_name" \
        || fail "$EXIT_FAILED" "the manifest of $_name does not name $VULCAN_NAMESPACE/$VULCAN_ENGINE"

    RESULT_STEP=verify
    _sum=$(sha256sum "$_dump" | cut -d ' ' -f 1)
    _expected=$(awk -v n="$_name" '$2 == n { print $1 }' "$_dump.sha256")
    [ "$_sum" = "$_expected" ] \
        || fail "$EXIT_FAILED" "checksum mismatch before upload ($_sum, expected $_expected)"
    _size=$(wc -c <"$_dump" | tr -d ' ')
    # The parts of the set (data, uploads, redis), each checked against the .sha256 file.
    _parts=""
    _part_keys=""
    for _suffix in $PART_SUFFIXES; do
        _part_file="${_name%.dump}.$_suffix"
        [ -f "$BACKUP_DIR/$_part_file" ] || continue
        _part_sum=$(sha256sum "$BACKUP_DIR/$_part_file" | cut -d ' ' -f 1)
        _part_expected=$(awk -v n="$_part_file" '$2 == n { print $1 }' "$_dump.sha256")
        [ "$_part_sum" = "$_part_expected" ] \
            || fail "$EXIT_FAILED" "checksum mismatch of $_part_file before upload"
        _part_size=$(wc -c <"$BACKUP_DIR/$_part_file" | tr -d ' ')
        _parts="$_parts${_parts:+,}\"${_suffix%%.*}\":{\"file\":\"$_part_file\",\
\"sizeBytes\":$_part_size,\"checksum\":\"$_part_sum\"}"
        _part_keys="$_part_keys $_part_file"
    done

    RESULT_STEP=upload
    _prefix=$(s3_prefix_uri)
    for _key in "$_dest.sha256" "$_dest.json" "$_dest"; do
        s3_require_absent "$_key"
    done
    for _part_file in $_part_keys; do
        s3_require_absent "$_prefix$_part_file"
    done
    log "uploading $_name ($_size bytes) to $_dest"
    # Parts and sidecars first, the dump last: the dump's key appearing is the commit point.
    for _part_file in $_part_keys; do
        s3 cp "$BACKUP_DIR/$_part_file" "$_prefix$_part_file" \
            || fail "$EXIT_FAILED" "the upload to $_prefix$_part_file failed"
    done
    # shellcheck disable=SC2015 # any of the three failing is fatal
    s3 cp "$_dump.sha256" "$_dest.sha256" && s3 cp "$_dump.json" "$_dest.json" \
        && s3 cp "$_dump" "$_dest" || fail "$EXIT_FAILED" "the upload to $_dest failed"
    _remote=$(s3_object_size "$_dest")
    [ "$_remote" = "$_size" ] \
        || fail "$EXIT_FAILED" "after upload $_dest has ${_remote:-no} size, expected $_size bytes"

    _retention=""
    if [ -n "${RETENTION_DAYS:-}" ]; then
        RESULT_STEP=retention
        retention_s3 "$(s3_prefix_uri)" "$RETENTION_DAYS"  # a failure is reported, not fatal
        _retention=$(retention_result "$RETENTION_DAYS" $?)
    fi

    RESULT_STEP="done"
    notify Succeeded "Vulcan backup succeeded${VULCAN_ENGINE:+ for $VULCAN_ENGINE}: $_dest ($_size bytes)" \
        "\"kind\":\"vulcan-backup\",\"location\":$(json_str "$_dest"),\"sizeBytes\":$_size"
    FAIL_HOOK=""
    emit_result "{\"kind\":\"vulcan-backup\",\"outcome\":\"Succeeded\",\
\"namespace\":$(json_str "$VULCAN_NAMESPACE"),\"engine\":$(json_str "$VULCAN_ENGINE"),\
\"database\":$(json_str "$(manifest_field "$_dump.json" database)"),\
\"location\":$(json_str "$_dest"),\"file\":$(json_str "$_name"),\"sizeBytes\":$_size,\
\"checksum\":\"$_sum\",\"checksumAlgorithm\":\"sha256\",\
\"databaseRevision\":$(json_str "$(manifest_field "$_dump.json" databaseRevision)"),\
\"format\":\"custom\",\"parts\":{$_parts},\
\"serverVersion\":$(json_str "$(manifest_field "$_dump.json" serverVersion)"),\
\"clientVersion\":$(json_str "$(manifest_field "$_dump.json" clientVersion)"),\
\"startedAt\":$(json_str "$(manifest_field "$_dump.json" startedAt)"),\
\"finishedAt\":\"$(now_utc)\"$_retention}"
}

s3_download_main() {
    VULCAN_PROGRAM=s3-download
    RESULT_KIND=vulcan-restore-download

    RESULT_STEP=configure
    require BACKUP_DIR S3_LOCATION
    s3_setup
    case $S3_LOCATION in
        s3://?*/?*) ;;
        *) fail "$EXIT_CONFIG" "S3_LOCATION must be s3://bucket/key, not '$S3_LOCATION'" ;;
    esac
    _name=${S3_LOCATION##*/}
    case $_name in
        '' | . | ..) fail "$EXIT_CONFIG" "S3_LOCATION has no file name: '$S3_LOCATION'" ;;
    esac
    RESULT_EXTRA="\"location\":$(json_str "$S3_LOCATION")"
    mkdir -p "$BACKUP_DIR" || fail "$EXIT_FAILED" "cannot create $BACKUP_DIR"

    RESULT_STEP=download
    _size=$(s3_object_size "$S3_LOCATION")
    [ -n "$_size" ] || {
        RESULT_STEP=verify
        fail "$EXIT_REFUSED" "backup refused: $S3_LOCATION does not exist (or cannot be listed)"
    }
    log "downloading $S3_LOCATION ($_size bytes)"
    s3 cp "$S3_LOCATION" "$BACKUP_DIR/$_name.partial" \
        || fail "$EXIT_FAILED" "the download of $S3_LOCATION failed"
    mv -f "$BACKUP_DIR/$_name.partial" "$BACKUP_DIR/$_name" || fail "$EXIT_FAILED" "rename failed"
    for _part in ${S3_PARTS:-}; do
        case $_part in
            vulcan_*.data.tar.gz | vulcan_*.uploads.tar.gz) ;;
            *) fail "$EXIT_CONFIG" "S3_PARTS: '$_part' is not a part of a backup set" ;;
        esac
        s3 cp "${S3_LOCATION%/*}/$_part" "$BACKUP_DIR/$_part" \
            || fail "$EXIT_REFUSED" "backup refused: its part $_part cannot be downloaded"
    done
    emit_result "{\"kind\":\"vulcan-restore-download\",\"outcome\":\"Succeeded\",\
\"location\":$(json_str "$S3_LOCATION"),\"file\":$(json_str "$BACKUP_DIR/$_name"),\
\"sizeBytes\":$_size,\"startedAt\":\"$STARTED_AT\",\"finishedAt\":\"$(now_utc)\"}"
}

# _s3_drill_list URI: the names of the backups directly under URI (a folder, ending in '/')
# that have their manifest beside them, one a line. Returns 2 when the folder cannot be listed
# (an empty or missing folder lists nothing and `aws s3 ls` exits 1: no backup, not an error).
_s3_drill_list() {
    _s3_listing=$(mktemp_file listing) || return 2
    s3 ls "$1" >"$_s3_listing"
    _s3_ls=$?
    if [ "$_s3_ls" -ne 0 ] && { [ "$_s3_ls" -ne 1 ] || [ -s "$_s3_listing" ]; }; then
        rm -f "$_s3_listing"
        return 2
    fi
    # "2024-11-29 02:00:03     123456 vulcan_20241129_020000.dump"; a name with anything but
    # [A-Za-z0-9_.-] is not one of ours (it becomes a local path).
    awk 'NF == 4 && $4 !~ /[^A-Za-z0-9_.-]/ { seen[$4] = 1 }
        END { for (k in seen) if (k ~ /^vulcan_.*\.dump$/ && ((k ".json") in seen)) print k }' \
        "$_s3_listing"
    rm -f "$_s3_listing"
    return 0
}

# s3_drill_download_main: the first container of an S3 restore drill (s3-drill-download). Finds
# the newest backup of the engine's folder S3_PREFIX (scheduled ones and on-demand/, by name as
# drill.sh orders them) that has its manifest, and downloads the dump and its manifest into
# BACKUP_DIR (on-demand ones into BACKUP_DIR/on-demand/), where the drill program finds it.
# The checksum is the manifest's and is checked by the drill's restore, never here.
# A failure is the drill's ("kind":"vulcan-drill"): reason NoBackup (nothing to drill) or
# DownloadFailed (listing or download failed). Success: {"kind":"vulcan-drill-download",..}.
s3_drill_download_main() {
    VULCAN_PROGRAM=s3-drill-download
    RESULT_KIND=vulcan-drill

    RESULT_STEP=configure
    require BACKUP_DIR S3_BUCKET
    s3_setup
    _root=$(s3_prefix_uri)

    RESULT_STEP="find"  # quoted: a step name, not the command
    RESULT_EXTRA="\"reason\":\"DownloadFailed\""
    _found=$(mktemp_file found) || fail "$EXIT_FAILED" "no temp file"
    for _folder in "" on-demand/; do
        _s3_drill_list "$_root$_folder" >"$_found.names" \
            || { rm -f "$_found" "$_found.names"; fail "$EXIT_FAILED" "cannot list $_root$_folder"; }
        sed "s|^\(.*\)\$|\1 $_folder\1|" "$_found.names" >>"$_found"
    done
    _pick=$(LC_ALL=C sort "$_found" | tail -n 1 | cut -d ' ' -f 2)
    rm -f "$_found" "$_found.names"
    if [ -z "$_pick" ]; then
        RESULT_EXTRA="\"reason\":\"NoBackup\""
        fail "$EXIT_FAILED" "no backup with a manifest under $_root"
    fi
    RESULT_EXTRA="\"reason\":\"DownloadFailed\",\"backup\":$(json_str "$_root$_pick")"

    RESULT_STEP=download
    case $_pick in
        */*) _dir="$BACKUP_DIR/${_pick%/*}" ;;
        *) _dir=$BACKUP_DIR ;;
    esac
    mkdir -p "$_dir" || fail "$EXIT_FAILED" "cannot create $_dir"
    log "downloading $_root$_pick and its manifest"
    for _key in "$_pick.json" "$_pick"; do
        if ! s3 cp "$_root$_key" "$BACKUP_DIR/$_key.partial"; then
            fail "$EXIT_FAILED" "the download of $_root$_key failed"
        fi
        mv -f "$BACKUP_DIR/$_key.partial" "$BACKUP_DIR/$_key" || fail "$EXIT_FAILED" "rename failed"
    done
    emit_result "{\"kind\":\"vulcan-drill-download\",\"outcome\":\"Succeeded\",\
\"backup\":$(json_str "$_root$_pick"),\"startedAt\":\"$STARTED_AT\",\"finishedAt\":\"$(now_utc)\"}"
}
