# Sourced by scripts/test (and usable by other scripts): makes sure the system packages the tests need
# are installed. Today those are PostgreSQL's server binaries (initdb, pg_ctl), for the tests that run
# Dagster on a real PostgreSQL, and Chromium with its WebDriver (chromium, chromedriver), for the test
# that looks at the Dagster UI in a real browser. Fast when they are there; installs Debian's packages
# when they aren't and we are root; otherwise says once that those tests will skip (they fail in CI).
_wiz_have_postgres() {
    command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 && return 0
    local bin
    for bin in /usr/lib/postgresql/*/bin; do
        [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ] && return 0
    done
    return 1
}

# The names wiz_pipeline_tests/ui/conftest.py looks for.
_wiz_have_chromium() {
    { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; } &&
        command -v chromedriver >/dev/null 2>&1
}

_wiz_apt_updated=""

# _wiz_apt_install NAME HAVE_FUNCTION WHAT_IT_PROVIDES PACKAGE...
_wiz_apt_install() {
    local name="$1" have="$2" provides="$3"
    shift 3
    if "$have"; then
        return 0
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "==> $name is not installed: tests that need it will skip (run as root, or: sudo apt-get install $*)" >&2
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "==> $name is not installed and there is no apt-get: install $provides yourself; tests that need it will skip" >&2
        return 0
    fi
    local log
    log="$(mktemp "${TMPDIR:-/tmp}/wiz-apt-XXXXXX.log")"
    echo "==> installing $name (apt-get install $*; log in $log)" >&2
    if ! { { [ -n "$_wiz_apt_updated" ] || apt-get update; } &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"; } >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        echo "apt-get could not install $*; the full log is in $log" >&2
        return 1
    fi
    _wiz_apt_updated=1
    if ! "$have"; then
        echo "apt-get installed $*, but $provides are still not found (see $log)" >&2
        return 1
    fi
}

_wiz_install_postgres() {
    _wiz_apt_install PostgreSQL _wiz_have_postgres "PostgreSQL's server (initdb, pg_ctl)" postgresql
}

_wiz_install_chromium() {
    _wiz_apt_install Chromium _wiz_have_chromium "chromium and chromedriver" chromium chromium-driver
}

_wiz_install_system_deps() {
    _wiz_install_postgres && _wiz_install_chromium
}

_wiz_install_system_deps
