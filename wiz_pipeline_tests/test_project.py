"""The project as a user meets it: the Dagster workspace loads, the commands run."""

from __future__ import annotations

import ast
import os
import pathlib
import subprocess
import sys

import dagster as dg

from wiz_pipeline.cli import main
from wiz_pipeline_tests.conftest import stop_process_group

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_definitions_load():
    from wiz_pipeline.definitions import defs

    assert isinstance(defs, dg.Definitions)
    dg.Definitions.validate_loadable(defs)


def test_dagster_finds_the_workspace_in_the_repo_root():
    env = {**os.environ, "DAGSTER_HOME": ""}
    env.pop("DAGSTER_HOME")
    result = subprocess.run(
        [pathlib.Path(sys.executable).with_name("dagster"), "definitions", "validate"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "Validation successful for code location wiz_pipeline.definitions" in result.stderr + result.stdout


def test_the_wiz_package_imports_nothing_from_dagster():
    for path in (ROOT / "wiz_pipeline" / "wiz").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n.split(".")[0] == "dagster" for n in names), f"{path.name} imports dagster"


def test_demo_collects_through_dagster_and_reports(capsys, tmp_path):
    args = ["demo", "--dir", str(tmp_path / "demo"), "--days", "0.5", "--audit-entries", "1500"]
    assert main([*args, "--issues", "150", "--rate-limit", "20"]) == 0
    out = capsys.readouterr().out
    # Half a day back from a seed off the boundary: 24 or 25 windows, written in one run per data type.
    runs = [line for line in out.splitlines() if " run " in line]
    assert len(runs) == 2 and all(line.endswith(", ok") for line in runs)
    assert "AUDIT_SINCE_TIME=" in out and "ISSUES_SINCE_TIME=" in out
    assert "Top audit actions:" in out and "Open issues by severity" in out
    files = list((tmp_path / "demo" / "data" / "audit_logs").rglob("*.parquet"))
    assert 23 <= len(files) <= 25
    home = tmp_path / "demo" / "dagster_home"
    assert (home / "dagster.yaml").read_text().count("granularity: op") == 1
    # Dagster's storage follows the umask; the demo's directory and the home keep others out.
    for private in (tmp_path / "demo", home):
        assert private.stat().st_mode & 0o007 == 0, private
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.event_log_storage.get_concurrency_info("wiz_api").slot_count == 1


def test_the_demo_refuses_a_directory_it_did_not_make(capsys, tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    assert main(["demo", "--dir", str(tmp_path), "--days", "0.1"]) == 2
    assert (tmp_path / "precious.txt").exists()


def test_help_lists_the_commands():
    result = subprocess.run(
        [sys.executable, "-m", "wiz_pipeline.cli", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    for command in ("simulator", "demo", "dev", "checkpoints", "ledger", "settings"):
        assert command in result.stdout


def test_the_command_line_simulator_keeps_producing_records_as_time_passes():
    from datetime import UTC, datetime, timedelta

    from wiz_pipeline.cli import _simulator, build_parser

    args = build_parser().parse_args(
        ["simulator", "--days", "1", "--days-ahead", "2", "--audit-entries", "1000", "--issues", "100"]
    )
    tenant = _simulator(args).tenant
    now = datetime.now(UTC)
    past = [t for t in tenant.audit_times if t <= now]
    ahead = [t for t in tenant.audit_times if t > now]
    assert 850 <= len(past) <= 1150  # the history asked for
    assert 1700 <= len(ahead) <= 2300  # and the same density for the two days ahead
    assert max(ahead) > now + timedelta(days=1, hours=23)
    assert any(change > now for record in tenant.issues for change, _ in record.changes[1:])


def test_the_deployment_instance_yaml_is_valid_and_the_one_the_demo_writes(tmp_path):
    from wiz_pipeline.demo import INSTANCE_YAML

    assert (ROOT / "deploy" / "dagster.yaml").read_text() == INSTANCE_YAML
    (tmp_path / "dagster.yaml").write_text(INSTANCE_YAML)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        pools = instance.get_concurrency_config().pool_config
        assert (pools.pool_granularity.value, pools.default_pool_limit) == ("op", 1)
        assert pools.op_granularity_run_buffer == 0
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] == 60
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_max_runtime_seconds == 4 * 3600
        assert instance.run_coordinator.dequeue_interval_seconds == 1


def test_the_dev_command_serves_the_pipeline_in_the_dagster_ui(tmp_path):
    import json
    import socket
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "wiz_pipeline.cli", "dev", "--port", str(port), "--simulator-port", "0"]
    command += ["--home", str(tmp_path / "home"), "--output", str(tmp_path / "data")]
    log = open(tmp_path / "dev.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    query = (
        "{ workspaceOrError { ... on Workspace { locationEntries { locationOrLoadError { __typename "
        "... on RepositoryLocation { repositories { schedules { name scheduleState { status } } "
        "assetNodes { assetKey { path } } } } } } } } }"
    )
    body = json.dumps({"query": query}).encode()
    answer = None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/graphql", body, {"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
                    answer = json.load(response)
                entries = answer["data"]["workspaceOrError"]["locationEntries"]
                if entries and entries[0]["locationOrLoadError"]:
                    break
            except OSError:
                pass
            time.sleep(1)
    finally:
        stop_process_group(process)
        log.close()
    output = (tmp_path / "dev.log").read_text()
    assert answer is not None, output[-3000:]
    location = answer["data"]["workspaceOrError"]["locationEntries"][0]["locationOrLoadError"]
    assert location["__typename"] == "RepositoryLocation", output[-3000:]
    repository = location["repositories"][0]
    assert {tuple(a["assetKey"]["path"]) for a in repository["assetNodes"]} == {
        ("wiz", "audit_logs"),
        ("wiz", "issues"),
        ("wiz", "issues_current"),
    }
    assert {s["name"]: s["scheduleState"]["status"] for s in repository["schedules"]} == {
        "collect_audit_logs_schedule": "RUNNING",
        "collect_issues_schedule": "RUNNING",
        "collect_issues_current_schedule": "RUNNING",
    }
    assert "wiz-pipeline checkpoints" in output
    assert (tmp_path / "home" / "dagster.yaml").exists()


def test_a_bad_setting_ends_a_command_with_its_message_not_a_traceback(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("WIZ_POLL_INTERVAL_SECONDS", "1700")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    assert main(["checkpoints"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wiz-pipeline checkpoints: Bad settings:")
    assert "Nearest allowed values: 1200 or 1800" in err and "Traceback" not in err
