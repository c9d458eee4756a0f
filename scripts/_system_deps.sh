# Sourced by scripts/test (and usable by other scripts): makes sure the system packages the tests need
# are installed. Today that is PostgreSQL's server binaries (initdb, pg_ctl), for the tests that run
# Dagster on a real PostgreSQL. Fast when they are there; installs Debian's `postgresql` package when
# they aren't and we are root; otherwise says once that those tests will skip (they fail in CI).
_wiz_have_postgres() {
    command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 && return 0
    local bin
    for bin in /usr/lib/postgresql/*/bin; do
        [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ] && return 0
    done
    return 1
}

_wiz_install_postgres() {
    if _wiz_have_postgres; then
        return 0
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "==> PostgreSQL is not installed: tests that need it will skip (run as root, or: sudo apt-get install postgresql)" >&2
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "==> PostgreSQL is not installed and there is no apt-get: install PostgreSQL's server (initdb, pg_ctl) yourself; tests that need it will skip" >&2
        return 0
    fi
    local log
    log="$(mktemp "${TMPDIR:-/tmp}/wiz-apt-XXXXXX.log")"
    echo "==> installing PostgreSQL (apt-get install postgresql; log in $log)" >&2
    if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql; } >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        echo "apt-get could not install postgresql; the full log is in $log" >&2
        return 1
    fi
    if ! _wiz_have_postgres; then
        echo "apt-get installed postgresql, but initdb/pg_ctl are still not found (see $log)" >&2
        return 1
    fi
}

_wiz_install_postgres
