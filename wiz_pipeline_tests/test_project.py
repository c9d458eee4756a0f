"""The project as a user meets it: the Dagster workspace loads, the commands run."""

from __future__ import annotations

import ast
import os
import pathlib
import subprocess
import sys

import dagster as dg

from wiz_pipeline.cli import main

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


def test_demo_collects_from_the_simulator_and_reports(capsys):
    assert (
        main(["demo", "--hours", "1", "--audit-entries", "400", "--issues", "40", "--rate-limit", "20"]) == 0
    )
    out = capsys.readouterr().out
    assert "audit_logs" in out and "issues" in out
    assert "Rows: " in out and "Top audit actions:" in out
    assert ", 0 rate-limited." in out


def test_help_lists_the_commands():
    result = subprocess.run(
        [sys.executable, "-m", "wiz_pipeline.cli", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "simulator" in result.stdout and "demo" in result.stdout


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
