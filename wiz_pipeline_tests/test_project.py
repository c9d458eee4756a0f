"""The project as a user meets it: the Dagster workspace loads, the commands run."""

from __future__ import annotations

import ast
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import dagster as dg
import pyarrow.parquet as pq
import pytest

from wiz_pipeline import analytics
from wiz_pipeline.cli.commands import main
from wiz_pipeline.data_types import DATA_TYPES
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


def test_demo_collects_through_dagster_and_reports(capsys, tmp_path, monkeypatch):
    # A user pointing the demo at a tenant is told, in one line, that the simulator is used instead.
    monkeypatch.setenv("WIZ_API_URL", "https://api.us1.app.wiz.io/graphql")
    monkeypatch.setenv("WIZ_CLIENT_ID", "someone")
    args = ["demo", "--dir", str(tmp_path / "demo"), "--days", "0.5", "--audit-entries", "1500"]
    findings = ["--vulnerability-findings", "800", "--configuration-findings", "200", "--detections", "150"]
    assert main([*args, "--issues", "150", *findings, "--rate-limit", "20"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    notice = [line for line in captured.err.splitlines() if "WIZ_API_URL" in line]
    assert notice == [
        "wiz-pipeline demo: ignoring WIZ_API_URL, WIZ_CLIENT_ID from the environment: it always uses its own "
        'simulator (to collect from a Wiz tenant, see README, "Running it against a Wiz tenant").'
    ]
    # Half a day back from a seed off the boundary: 24 or 25 windows, written in one run per data type
    # (the three off by default too); then the current tables, which wiz_pipeline.analytics reads.
    runs = [line.split()[0] for line in out.splitlines() if " run " in line and line.endswith(", ok")]
    currents = ["issues_current", "vulnerability_findings_current", "configuration_findings_current"]
    assert runs == [*DATA_TYPES, *currents]
    for current in currents:
        assert (tmp_path / "demo" / "data" / current / f"{current}.parquet").is_file()
    assert all(f"{dt.checkpoint_variable}=" in out for dt in DATA_TYPES.values())
    assert "Top audit actions:" in out and "Open issues by severity" in out
    # The findings' questions, answered from what landed (their tests are in test_analytics).
    data = tmp_path / "demo" / "data"
    exploitable = dict(uri=data, severities=["CRITICAL"], known_exploit=True)
    findings = int(analytics.open_vulnerabilities(**exploitable)["findings"].sum())
    assert f"with a known exploit (or in CISA's KEV): {findings} findings of" in out and findings
    assert f"most widespread: {analytics.top_cves(**exploitable, top=1)['cve'][0]} (" in out
    frameworks = analytics.failing_controls(uri=data).groupby("framework")["findings"].sum()
    top_framework = frameworks.sort_values(ascending=False).index[0]
    assert f"{int(frameworks.max()):>6}  {top_framework}\n" in out[out.index("Failing controls") :]
    detections = analytics.detections_by_day(uri=data).groupby("severity")["detections"].sum()
    report = out[out.index("Detections by severity") :]
    for severity in ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL"):
        assert f"{int(detections.get(severity, 0)):>6}  {severity}\n" in report, severity
    assert detections.sum() > 0
    files = list((tmp_path / "demo" / "data" / "audit_logs").rglob("*.parquet"))
    assert 23 <= len(files) <= 25
    # Every record has its OCSF row (WIZ_OCSF is on in the demo), and the cross-class question is asked.
    ocsf = data / "ocsf"
    line = next(line for line in out.splitlines() if line.startswith("OCSF 1.5.0 rows by class"))
    shown = dict(part.rsplit(" ", 1) for part in line.split(": ", 1)[1].split(", "))
    on_disk = {c.name: pq.read_table(c, partitioning="hive").num_rows for c in ocsf.iterdir() if c.is_dir()}
    assert {k: int(v) for k, v in shown.items()} == on_disk
    native = sum(pq.read_table(data / t, partitioning="hive").num_rows for t in DATA_TYPES)
    assert sum(on_disk.values()) == native
    assert "the resource with the most findings, across classes: " in out
    # Open issues are those whose latest state is OPEN or IN_PROGRESS (being worked on is still open).
    issues = pq.read_table(tmp_path / "demo" / "data" / "issues", partitioning="hive").to_pandas()
    latest = issues.sort_values("status_changed_at").drop_duplicates("id", keep="last")
    assert "IN_PROGRESS" in set(latest["status"])
    counts = latest[latest["status"].isin(["OPEN", "IN_PROGRESS"])]["severity"].value_counts()
    report = out[out.index("Open issues by severity (OPEN or IN_PROGRESS") :]
    for severity in ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL"):
        assert f"{int(counts.get(severity, 0)):>6}  {severity}\n" in report, severity
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

    from wiz_pipeline.cli.commands import _simulator, build_parser

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
    from wiz_pipeline.cli.demo import INSTANCE_YAML

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
        # No "Join the Dagster community" pop-up over the first page (the UI asks the instance).
        assert not instance.nux_enabled


def _process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state) of every process, from /proc."""
    table = {}
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        table[int(stat.parent.name)] = (int(fields[1]), fields[0])
    return table


def _descendants(pid: int) -> set[int]:
    table = _process_table()
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, _) in table.items():
            if ppid == parent and child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pids: set[int]) -> set[int]:
    table = _process_table()
    return {pid for pid in pids if pid in table and table[pid][1] != "Z"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return False
    return True


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_dev_command_serves_the_pipeline_and_a_signal_stops_the_whole_tree(tmp_path, signum):
    port = _free_port()
    command = [sys.executable, "-m", "wiz_pipeline.cli", "dev", "--port", str(port), "--simulator-port", "0"]
    command += ["--home", str(tmp_path / "home"), "--output", str(tmp_path / "data")]
    log = open(tmp_path / "dev.log", "w")  # noqa: SIM115 - closed below
    # Deprecation warnings are shown in every process it starts (Python hides them by default).
    env = {**os.environ, "PYTHONWARNINGS": "default"}
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    query = (
        "{ workspaceOrError { ... on Workspace { locationEntries { locationOrLoadError { __typename "
        "... on RepositoryLocation { repositories { schedules { name scheduleState { status } } "
        "assetNodes { assetKey { path } } } } } } } } }"
    )
    body = json.dumps({"query": query}).encode()
    answer, tree = None, set()
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
                # The webserver, the daemon and a code server for each of them.
                tree = _descendants(process.pid)
                if entries and entries[0]["locationOrLoadError"] and len(tree) >= 4:
                    break
            except OSError:
                pass
            time.sleep(1)
        # The signal a service manager or `kill` sends: to the command alone, not its group.
        os.kill(process.pid, signum)
        process.wait(timeout=60)
        deadline = time.monotonic() + 10
        while _alive(tree) and time.monotonic() < deadline:
            time.sleep(0.2)
        left, port_answers = _alive(tree), _answers(port)
    finally:
        stop_process_group(process)
        log.close()
    output = (tmp_path / "dev.log").read_text()
    assert answer is not None, output[-3000:]
    assert len(tree) >= 4, output[-3000:]
    assert not left, f"still running after {signum.name}: {left}"
    assert not port_answers, f"port {port} still answers after {signum.name}"
    assert process.returncode == 0, output[-3000:]
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
    # No Dagster deprecation or supersession warning (`dagster dev`, ScheduleDefinition.environment_vars).
    assert "Warning:" not in output and "deprecated" not in output.lower(), output[-3000:]


def test_a_bad_setting_ends_a_command_with_its_message_not_a_traceback(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("WIZ_POLL_INTERVAL_SECONDS", "1700")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    assert main(["checkpoints"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wiz-pipeline checkpoints: Bad settings:")
    assert "Nearest allowed values: 1200 or 1800" in err and "Traceback" not in err


def test_the_dev_sandbox_keeps_its_tenant_seeds_and_output_with_its_home(tmp_path, capsys):
    from wiz_pipeline.cli.demo import prepare_home
    from wiz_pipeline.cli.dev import STATE_FILE, Sandbox

    home, output = tmp_path / "home", tmp_path / "data"
    prepare_home(home)
    first = Sandbox.new(0.5, 400, 40, 3, output, late_share=0.05)
    first.save(home)
    assert (home / STATE_FILE).stat().st_mode & 0o777 == 0o640
    again = Sandbox.load(home)
    assert again == first  # the next start: the same seeds and output, whatever the clock says
    tenant, regenerated = first.simulator(0, None).tenant, again.simulator(0, None).tenant
    assert tenant.audit_nodes == regenerated.audit_nodes  # the same records
    assert tenant.issues == regenerated.issues
    assert len(tenant.audit_nodes) > 400  # the history and the days ahead at the same density
    # A start with another output would show the home's windows as collected with no files: refused.
    args = ["dev", "--home", str(home), "--output", str(tmp_path / "elsewhere"), "--simulator-port", "0"]
    assert main(args) == 2
    assert f"pass --output {output}" in capsys.readouterr().err
    # A home an older version left (an instance, no sandbox file) belongs to a tenant nobody knows.
    (home / STATE_FILE).unlink()
    assert main(["dev", "--home", str(home), "--output", str(output), "--simulator-port", "0"]) == 2
    assert f"holds a Dagster instance but no {STATE_FILE}" in capsys.readouterr().err


def test_loading_the_definitions_emits_no_deprecation_warning():
    code = (
        "from dagster._core.remote_representation.external_data import RepositorySnap\n"
        "from wiz_pipeline.definitions import defs\n"
        "RepositorySnap.from_def(defs.get_repository_def())\n"  # what a code server serves the UI
    )
    result = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Warning" not in result.stderr


def test_the_readme_describes_workspace_yaml_as_it_is():
    import yaml

    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    assert workspace == {"load_from": [{"python_module": "wiz_pipeline.definitions"}]}
    readme = (ROOT / "README.md").read_text()
    assert "`python_module: wiz_pipeline.definitions`" in readme
    assert "wiz_pipeline.definitions:defs" not in readme


def test_version_prints_the_package_version_and_settings_help_describes_the_command():
    from importlib.metadata import version

    result = subprocess.run(
        [sys.executable, "-m", "wiz_pipeline.cli", "--version"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stdout.strip() == f"wiz-pipeline {version('wiz-pipeline')}"
    command = [sys.executable, "-m", "wiz_pipeline.cli", "settings", "--help"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "Print every environment variable wiz-pipeline reads" in " ".join(result.stdout.split())
