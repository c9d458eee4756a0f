"""scripts/_system_deps.sh: PostgreSQL and Chromium found when installed, installed as root when not, a
clear line otherwise. The tests load the script's functions without its last line (the call) and replace the
lookup and the system commands with shell functions, so that they change nothing on the machine."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from wiz_pipeline_tests.postgres_server import find_bin_dir
from wiz_pipeline_tests.ui.browser import browser_binaries, find_browser

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "_system_deps.sh"


def _bash(script: str) -> subprocess.CompletedProcess[str]:
    functions = SCRIPT.read_text().rstrip().rsplit("\n", 1)[0]
    return subprocess.run(
        ["/bin/bash", "-c", f"set -euo pipefail\n{functions}\n{script}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_scripts_test_runs_it_before_pytest():
    assert SCRIPT.read_text().rstrip().endswith("\n_wiz_install_system_deps")
    test = (SCRIPT.parent / "test").read_text()
    assert test.index('source "$root/scripts/_system_deps.sh"') < test.index("exec python -m pytest")


def test_an_installed_postgresql_is_found_quietly_where_the_test_fixture_finds_it():
    done = _bash("_wiz_have_postgres")
    assert (done.returncode == 0) == (find_bin_dir() is not None)
    assert done.stderr == ""


def test_without_root_it_says_the_tests_will_skip_and_how_to_install(tmp_path):
    done = _bash(
        "_wiz_have_postgres() { return 1; }\nid() { echo 1000; }\n"
        "apt-get() { echo called >&2; }\n_wiz_install_postgres\necho carried on"
    )
    assert done.returncode == 0 and done.stdout == "carried on\n"
    assert done.stderr.splitlines() == [
        "==> PostgreSQL is not installed: tests that need it will skip "
        "(run as root, or: sudo apt-get install postgresql)"
    ]


def test_as_root_it_runs_apt_get_update_then_install_and_stops_when_that_fails(tmp_path):
    done = _bash(
        f"export TMPDIR={tmp_path}\n_wiz_have_postgres() {{ return 1; }}\nid() {{ echo 0; }}\n"
        'apt-get() { echo "apt-get $*"; [ "$1" = update ]; }\n_wiz_install_postgres\necho carried on'
    )
    assert done.returncode == 1 and "carried on" not in done.stdout
    log = next(tmp_path.glob("wiz-apt-*.log"))
    assert log.read_text().splitlines() == [
        "apt-get update",
        "apt-get install -y --no-install-recommends postgresql",
    ]
    assert log.stat().st_mode & 0o077 == 0  # the log is private
    assert f"apt-get could not install postgresql; the full log is in {log}" in done.stderr


def test_an_installed_chromium_is_found_quietly_where_the_ui_test_finds_it():
    done = _bash("_wiz_have_chromium")
    assert (done.returncode == 0) == (find_browser() is not None)
    assert done.stderr == ""


def test_as_root_it_installs_chromium_and_its_driver_with_one_apt_get_update_for_both(tmp_path):
    done = _bash(
        f"export TMPDIR={tmp_path}\ninstalled=\n"
        '_wiz_have_postgres() { [[ "$installed" == *postgresql* ]]; }\n'
        '_wiz_have_chromium() { [[ "$installed" == *chromium* ]]; }\nid() { echo 0; }\n'
        'apt-get() { echo "apt-get $*"; [ "$1" != install ] || installed="$installed $4"; }\n'
        "_wiz_install_system_deps\necho carried on"
    )
    assert done.returncode == 0 and done.stdout == "carried on\n", done.stderr
    # One log per package set; two written within the same clock tick share an mtime, so they are
    # compared as a set (the script runs them in order: the update goes with the first).
    logs = sorted(log.read_text().splitlines() for log in tmp_path.glob("wiz-apt-*.log"))
    assert logs == [
        ["apt-get install -y --no-install-recommends chromium chromium-driver"],
        ["apt-get update", "apt-get install -y --no-install-recommends postgresql"],
    ]


def test_without_root_it_says_the_browser_test_will_skip_and_how_to_install():
    done = _bash(
        "_wiz_have_chromium() { return 1; }\nid() { echo 1000; }\n"
        "apt-get() { echo called >&2; }\n_wiz_install_chromium\necho carried on"
    )
    assert done.returncode == 0 and done.stdout == "carried on\n"
    assert done.stderr.splitlines() == [
        "==> Chromium is not installed: tests that need it will skip "
        "(run as root, or: sudo apt-get install chromium chromium-driver)"
    ]


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_a_missing_browser_fails_the_ui_test_in_ci_and_skips_it_elsewhere(monkeypatch, tmp_path, ci, outcome):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="chromium and chromedriver not found: apt-get install chromium"):
        browser_binaries()
