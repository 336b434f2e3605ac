# lib.sh: helpers shared by the Vulcan database programs (see scripts/__init__.py).
#
# POSIX sh, for busybox (postgres:15-alpine) as well as GNU userlands (amazon/aws-cli, Debian).
# NEVER `set -x` or print the environment: it holds DATABASE_URL, the webhook URL and S3 keys.
# Every log line and every error text of a tool goes through `scrub`.
set -u
umask 027

VULCAN_PROGRAM=${VULCAN_PROGRAM:-vulcan}
TMPDIR=${TMPDIR:-/tmp}
TERMINATION_LOG=${TERMINATION_LOG:-/dev/termination-log}
export TMPDIR

# Exit codes of every program.
# shellcheck disable=SC2034 # the table of every program's exit codes; not all use each
EXIT_OK=0
EXIT_FAILED=1   # the work failed (database, storage, tools); nothing half-done is left behind
EXIT_CONFIG=2   # bad or missing settings; retrying will not help
# shellcheck disable=SC2034 # used by restore and the Job's podFailurePolicy
EXIT_REFUSED=3  # a backup file was refused (missing, checksum, corrupt, truncated); DB untouched

now_utc() { date -u +%Y-%m-%dT%H:%M:%SZ; }

# scrub: copy stdin to stdout with every secret we know of replaced by '***'.
# Literal matching (awk index), so no secret is ever used as a regular expression.
scrub() {
    LC_ALL=C awk '
    BEGIN {
        cnt = split("DATABASE_URL VULCAN_DB_URL NOTIFY_WEBHOOK_URL PGPASSWORD VULCAN_DB_PASSWORD_RAW AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN REDIS_URL REDISCLI_AUTH", names, " ")
        n = 0
        for (k = 1; k <= cnt; k++) {
            v = ENVIRON[names[k]]
            if (length(v) > 0) secret[++n] = v
        }
    }
    {
        line = $0
        for (i = 1; i <= n; i++) {
            out = ""
            while ((p = index(line, secret[i])) > 0) {
                out = out substr(line, 1, p - 1) "***"
                line = substr(line, p + length(secret[i]))
            }
            line = out line
        }
        print line
    }'
}

log() { printf '%s %s: %s\n' "$(now_utc)" "$VULCAN_PROGRAM" "$*" | scrub >&2; }

# log_file FILE [LINES]: the last lines of a tool's stderr, scrubbed, into the log.
log_file() {
    [ -s "$1" ] || return 0
    tail -n "${2:-20}" "$1" | scrub | sed "s/^/    /" >&2
}

# last_error FILE: the last non-empty line of a tool's stderr, scrubbed, on one line.
last_error() {
    [ -s "$1" ] || return 0
    grep -v '^[[:space:]]*$' "$1" | tail -n 3 | scrub | tr '\n\t\r' '   ' | cut -c 1-600
}

# json_str TEXT: TEXT as a JSON string literal (control characters become spaces).
json_str() {
    _l_escaped=$(printf '%s' "$1" | tr '\n\r\t' '   ' | tr -d '\000-\037' \
        | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')
    printf '"%s"' "$_l_escaped"
}

# emit_result JSON: the program's machine-readable outcome, as the last line of stdout and in
# the pod's termination message (read by the operator; FallbackToLogsOnError covers the rest).
emit_result() {
    printf '%s\n' "$1"
    # The kubelet bind-mounts this file into the container: write it only when it is there.
    if [ -n "$TERMINATION_LOG" ] && [ -f "$TERMINATION_LOG" ] && [ -w "$TERMINATION_LOG" ]; then
        printf '%s\n' "$1" >"$TERMINATION_LOG" 2>/dev/null || true
    fi
}

# --- outcome ------------------------------------------------------------------------------
RESULT_KIND=vulcan      # "kind" of the result line: vulcan-backup, vulcan-restore, ...
RESULT_STEP=start       # the step running now; a failure names it
RESULT_EXTRA=""         # more JSON fields for a failure result (e.g. "location":"...")
FAIL_HOOK=""            # a function run on failure with the message (cleanup, notification)
STARTED_AT=$(now_utc)

# fail CODE MESSAGE...: log, run FAIL_HOOK, emit the failure result, exit CODE.
fail() {
    _l_code=$1
    shift
    _l_msg=$(printf '%s' "$*" | scrub)
    log "error: $_l_msg"
    if [ -n "$FAIL_HOOK" ]; then
        _l_hook=$FAIL_HOOK
        FAIL_HOOK=""
        $_l_hook "$_l_msg" || true
    fi
    emit_result "{\"kind\":\"$RESULT_KIND\",\"outcome\":\"Failed\",\"exitCode\":$_l_code,\
\"step\":$(json_str "$RESULT_STEP"),\"message\":$(json_str "$_l_msg"),\
\"startedAt\":\"$STARTED_AT\",\"finishedAt\":\"$(now_utc)\"${RESULT_EXTRA:+,$RESULT_EXTRA}}"
    exit "$_l_code"
}

# require NAME...: every named variable is set and not empty, else exit EXIT_CONFIG.
require() {
    for _l_var in "$@"; do
        eval "_l_val=\${$_l_var:-}"
        if [ -z "$_l_val" ]; then
            fail "$EXIT_CONFIG" "$_l_var is not set"
        fi
    done
}

# is_uint TEXT: TEXT is a whole number.
is_uint() {
    case $1 in
        '' | *[!0-9]*) return 1 ;;
        *) return 0 ;;
    esac
}

# mktemp_file NAME: a new private temp file.
mktemp_file() { mktemp "$TMPDIR/vulcan-$1.XXXXXX"; }

# --- the database URL ---------------------------------------------------------------------
# db_setup: check DATABASE_URL and prepare the connection without the password on any command
# line: VULCAN_DB_URL is the URL without its password (scheme normalised to postgresql://,
# so SQLAlchemy forms such as postgresql+asyncpg:// work too), PGPASSWORD holds the password.
db_setup() {
    _l_url=${DATABASE_URL:-}
    case $_l_url in
        postgresql://* | postgres://* | postgresql+*://* | postgres+*://*) ;;
        *) fail "$EXIT_CONFIG" "DATABASE_URL is not a postgresql:// URL (value not shown)" ;;
    esac
    _l_rest=${_l_url#*://}
    # libpq: the authority ends at the first '/' or '?'; user info ends at the first '@'.
    _l_authority=${_l_rest%%[/?]*}
    _l_tail=${_l_rest#"$_l_authority"}
    case $_l_authority in
        *@*)
            _l_userinfo=${_l_authority%%@*}
            DB_HOSTPORT=${_l_authority#*@}
            ;;
        *)
            _l_userinfo=""
            DB_HOSTPORT=$_l_authority
            ;;
    esac
    DB_USER=${_l_userinfo%%:*}
    case $_l_userinfo in
        *:*) VULCAN_DB_PASSWORD_RAW=${_l_userinfo#*:} ;;
        *) VULCAN_DB_PASSWORD_RAW="" ;;
    esac
    _l_path=${_l_tail%%\?*}
    DB_QUERY=${_l_tail#"$_l_path"}
    DB_NAME=${_l_path#/}
    export VULCAN_DB_PASSWORD_RAW
    if [ -n "$VULCAN_DB_PASSWORD_RAW" ]; then
        PGPASSWORD=$(printf '%s' "$VULCAN_DB_PASSWORD_RAW" | url_decode)
        export PGPASSWORD
    fi
    VULCAN_DB_URL=$(db_url_for "$DB_NAME")
    export VULCAN_DB_URL
    # Connections give up instead of hanging; a CronJob retry is cheaper than a stuck pod.
    PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-30}
    PGAPPNAME=${PGAPPNAME:-vulcan-$VULCAN_PROGRAM}
    export PGCONNECT_TIMEOUT PGAPPNAME
}

# db_url_for DBNAME: the (password-less) URL of another database on the same server.
db_url_for() {
    printf 'postgresql://%s%s/%s%s' "${DB_USER:+$DB_USER@}" "$DB_HOSTPORT" "$1" "$DB_QUERY"
}

# url_decode: percent-decode stdin (a URL's user info) to stdout, byte for byte.
url_decode() {
    LC_ALL=C awk '
    BEGIN { for (i = 0; i < 256; i++) hex[sprintf("%02x", i)] = i }
    {
        s = $0; out = ""
        while ((p = index(s, "%")) > 0) {
            code = tolower(substr(s, p + 1, 2))
            if (code in hex) {
                out = out substr(s, 1, p - 1) sprintf("%c", hex[code])
                s = substr(s, p + 3)
            } else {
                out = out substr(s, 1, p)
                s = substr(s, p + 1)
            }
        }
        printf "%s", out s
    }'
}

# psql_value URL SQL: one value (first column of the first row), or fail.
psql_value() {
    psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$1" -c "$2"
}

# db_revision URL: the Alembic revision(s) of the database, comma-separated; empty when the
# database has no alembic_version table. The text comes from the server (anyone who can write
# alembic_version chooses it): anything but 1-128 of [A-Za-z0-9_,] is dropped (empty), so it
# can go into a result line, a status or an Event as it is.
db_revision() {
    _l_has=$(psql_value "$1" "SELECT to_regclass('alembic_version') IS NOT NULL") || return 1
    [ "$_l_has" = "t" ] || return 0
    _l_rev=$(psql_value "$1" "SELECT coalesce(string_agg(version_num, ',' ORDER BY version_num), '')
                     FROM alembic_version") || return 1
    case $_l_rev in
        *[!A-Za-z0-9_,]*) _l_rev="" ;;
    esac
    [ ${#_l_rev} -le 128 ] || _l_rev=""
    printf '%s\n' "$_l_rev"
}

# manifest_field FILE NAME: a top-level string field of a one-line manifest written by
# backup.sh (the "parts" object, whose entries have fields of the same names, is left out).
manifest_field() {
    sed -e 's/"parts":{\("[a-z]*":{[^}]*},\{0,1\}\)*}//' \
        -n -e "s/.*\"$2\"[[:space:]]*:[[:space:]]*\"\([^\"]*\)\".*/\1/p" "$1" | head -n 1
}

# require_identity: VULCAN_NAMESPACE and VULCAN_ENGINE are set and are DNS names (they go into
# manifests and decide what retention may delete).
require_identity() {
    require VULCAN_NAMESPACE VULCAN_ENGINE
    for _l_name in "$VULCAN_NAMESPACE" "$VULCAN_ENGINE"; do
        case $_l_name in
            *[!a-z0-9-]* | -* | *-) fail "$EXIT_CONFIG" "not a DNS name: '$_l_name'" ;;
        esac
    done
}

# --- notifications ------------------------------------------------------------------------
# notify OUTCOME TEXT [JSON-FIELDS]: POST {"text": ..., "outcome": ..., <fields>} to
# NOTIFY_WEBHOOK_URL (Slack-compatible), when set. Never fails the program.
notify() {
    [ -n "${NOTIFY_WEBHOOK_URL:-}" ] || return 0
    _l_payload="{\"text\":$(json_str "$2"),\"outcome\":$(json_str "$1")${3:+,$3}}"
    _l_err=$(mktemp_file notify) || return 0
    _l_limit=""
    command -v timeout >/dev/null 2>&1 && _l_limit="timeout 30"
    if command -v curl >/dev/null 2>&1; then
        $_l_limit curl -fsS -m 25 -o /dev/null -X POST -H 'Content-Type: application/json' \
            --data "$_l_payload" "$NOTIFY_WEBHOOK_URL" 2>"$_l_err"
    else
        $_l_limit wget -q -O /dev/null --header 'Content-Type: application/json' \
            --post-data "$_l_payload" "$NOTIFY_WEBHOOK_URL" 2>"$_l_err"
    fi
    _l_status=$?
    if [ "$_l_status" -ne 0 ]; then
        log "warning: the webhook notification failed (exit $_l_status): $(last_error "$_l_err")"
    fi
    rm -f "$_l_err"
    return 0
}
