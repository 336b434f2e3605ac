# redis.sh: a snapshot of the engine's Redis (`redis-cli --rdb`, which asks the server for an
# RDB over the network: it works against a remote or managed Redis), for backup.sh to add to
# the backup set. Runs in a redis image before the dump (an init container of the backup pod).
#
# Env:
#   REDIS_URL           redis://[user[:password]@]host[:port][/db] or rediss:// (TLS), from
#                       the engine's Secret. The password goes to redis-cli in REDISCLI_AUTH,
#                       never on its command line.
#   REDIS_SNAPSHOT_FILE where to write it (the emptyDir shared with the dump container)
# Last stdout line (and /dev/termination-log):
#   {"kind":"vulcan-redis-snapshot","outcome":"Succeeded","file":"/work/redis.rdb",
#    "sizeBytes":123,"checksum":"<sha256>","startedAt":"..","finishedAt":".."}
# Exit: 0 done, 1 failed, 2 bad settings.

# redis_setup: split REDIS_URL into REDIS_HOST, REDIS_PORT, REDIS_USER, REDISCLI_AUTH, REDIS_TLS.
redis_setup() {
    # shellcheck disable=SC2153 # REDIS_URL comes from the environment (checked by require)
    case $REDIS_URL in
        redis://*) REDIS_TLS="" ;;
        rediss://*) REDIS_TLS=--tls ;;
        *) fail "$EXIT_CONFIG" "REDIS_URL is not a redis:// or rediss:// URL (value not shown)" ;;
    esac
    _r_rest=${REDIS_URL#*://}
    _r_authority=${_r_rest%%[/?]*}
    case $_r_authority in
        *@*)
            _r_userinfo=${_r_authority%@*}
            _r_hostport=${_r_authority##*@}
            ;;
        *)
            _r_userinfo=""
            _r_hostport=$_r_authority
            ;;
    esac
    REDIS_USER=""
    REDISCLI_AUTH=""
    case $_r_userinfo in
        *:*)
            REDIS_USER=$(printf '%s' "${_r_userinfo%%:*}" | url_decode)
            REDISCLI_AUTH=$(printf '%s' "${_r_userinfo#*:}" | url_decode)
            ;;
        ?*) REDISCLI_AUTH=$(printf '%s' "$_r_userinfo" | url_decode) ;;
    esac
    export REDISCLI_AUTH  # scrub hides it, and REDIS_URL
    case $_r_hostport in
        \[*\]:*) REDIS_HOST=${_r_hostport%:*} REDIS_PORT=${_r_hostport##*:} ;;
        \[*\]) REDIS_HOST=$_r_hostport REDIS_PORT=6379 ;;
        *:*) REDIS_HOST=${_r_hostport%:*} REDIS_PORT=${_r_hostport##*:} ;;
        *) REDIS_HOST=$_r_hostport REDIS_PORT=6379 ;;
    esac
    REDIS_HOST=${REDIS_HOST#[}
    REDIS_HOST=${REDIS_HOST%]}
    [ -n "$REDIS_HOST" ] || fail "$EXIT_CONFIG" "REDIS_URL has no host"
    is_uint "$REDIS_PORT" || fail "$EXIT_CONFIG" "REDIS_URL has a port that is not a number"
}

redis_snapshot_main() {
    VULCAN_PROGRAM=redis-snapshot
    RESULT_KIND=vulcan-redis-snapshot

    RESULT_STEP=configure
    require REDIS_URL REDIS_SNAPSHOT_FILE
    command -v redis-cli >/dev/null 2>&1 || fail "$EXIT_CONFIG" "redis-cli is not installed"
    redis_setup
    RESULT_EXTRA="\"file\":$(json_str "$REDIS_SNAPSHOT_FILE")"
    trap 'rm -f "${REDIS_ERR:-}" "$REDIS_SNAPSHOT_FILE.partial"' EXIT
    REDIS_ERR=$(mktemp_file redis) || fail "$EXIT_FAILED" "no temp file"
    _err=$REDIS_ERR

    RESULT_STEP=snapshot
    log "snapshot of Redis at $REDIS_HOST:$REDIS_PORT"
    set -- -h "$REDIS_HOST" -p "$REDIS_PORT" --no-auth-warning
    [ -z "$REDIS_USER" ] || set -- "$@" --user "$REDIS_USER"
    [ -z "$REDIS_TLS" ] || set -- "$@" "$REDIS_TLS"
    if ! redis-cli "$@" --rdb "$REDIS_SNAPSHOT_FILE.partial" >"$_err" 2>&1; then
        fail "$EXIT_FAILED" "redis-cli --rdb failed: $(last_error "$_err")"
    fi
    [ "$(head -c 5 "$REDIS_SNAPSHOT_FILE.partial" 2>/dev/null)" = REDIS ] \
        || fail "$EXIT_FAILED" "the server sent no RDB file: $(last_error "$_err")"
    mv -f "$REDIS_SNAPSHOT_FILE.partial" "$REDIS_SNAPSHOT_FILE" || fail "$EXIT_FAILED" "rename failed"
    _size=$(wc -c <"$REDIS_SNAPSHOT_FILE" | tr -d ' ')
    _sum=$(sha256sum "$REDIS_SNAPSHOT_FILE" | cut -d ' ' -f 1)
    log "snapshot complete: $_size bytes, sha256 $_sum"
    emit_result "{\"kind\":\"vulcan-redis-snapshot\",\"outcome\":\"Succeeded\",\
\"file\":$(json_str "$REDIS_SNAPSHOT_FILE"),\"sizeBytes\":$_size,\"checksum\":\"$_sum\",\
\"startedAt\":\"$STARTED_AT\",\"finishedAt\":\"$(now_utc)\"}"
}
