"""Checkpoints derived from the instance: the command, and the figures on each materialization."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from wiz_pipeline.cli.commands import main
from wiz_pipeline.orchestration.checkpoints import checkpoint
from wiz_pipeline.simulator import Fault
from wiz_pipeline_tests.conftest import audit_entry


def checkpoints_output(pipeline, monkeypatch, capsys) -> str:
    for name, value in pipeline.env.items():
        monkeypatch.setenv(name, value)
    assert os.environ["DAGSTER_HOME"]  # instance_for_test points it at the test's instance
    assert main(["checkpoints"]) == 0
    return capsys.readouterr().out


def test_the_checkpoint_command_prints_the_seed_before_anything_is_written(pipeline, monkeypatch, capsys):
    out = checkpoints_output(pipeline, monkeypatch, capsys)
    assert "AUDIT_SINCE_TIME=2025-09-12T21:00:09Z  # 0 of " in out
    assert "ISSUES_SINCE_TIME=2025-09-12T21:00:09Z  # 0 of " in out


def test_the_checkpoint_command_prints_the_end_of_the_written_run_from_the_seed(
    pipeline, sim, monkeypatch, capsys
):
    keys = pipeline.keys()
    assert pipeline.run(keys[0], keys[3]).success
    sim.inject(Fault.http_status(500), times=6)
    assert not pipeline.run(keys[4]).success
    assert pipeline.run(keys[5], keys[-1]).success  # later windows succeed; the gap still holds it
    assert pipeline.run(keys[0], keys[1], data_type="issues").success
    out = checkpoints_output(pipeline, monkeypatch, capsys)
    assert "AUDIT_SINCE_TIME=2025-09-12T23:00:00Z  # 11 of " in out
    assert "missing, the first 2025-09-12-23:00" in out
    assert "ISSUES_SINCE_TIME=2025-09-12T22:00:00Z  # 2 of " in out
    # Filling the gap moves the checkpoint past every window written meanwhile.
    assert pipeline.run(keys[4]).success
    out = checkpoints_output(pipeline, monkeypatch, capsys)
    assert "AUDIT_SINCE_TIME=2025-09-13T03:00:00Z" in out


def test_the_command_leaves_out_issues_when_they_are_not_collected(pipeline, monkeypatch, capsys):
    pipeline.env["WIZ_COLLECT_ISSUES"] = "false"
    out = checkpoints_output(pipeline, monkeypatch, capsys)
    assert "AUDIT_SINCE_TIME=" in out and "ISSUES_SINCE_TIME" not in out


def test_the_command_says_what_to_set_without_dagster_home(monkeypatch, capsys):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert main(["checkpoints"]) == 2
    assert "DAGSTER_HOME is not set" in capsys.readouterr().err


def test_each_materialization_carries_the_checkpoint_it_moved_to(pipeline):
    keys = pipeline.keys()
    assert pipeline.run(keys[2]).success  # written while the first two are missing
    result = pipeline.run(keys[0], keys[1])
    since = {
        e.partition: e.materialization.metadata["AUDIT_SINCE_TIME"].value
        for e in result.get_asset_materialization_events()
    }
    assert since == {keys[0]: "2025-09-12T21:30:00Z", keys[1]: "2025-09-12T22:30:00Z"}


def test_moving_the_seed_earlier_makes_its_first_window_count_as_unwritten(pipeline):
    keys = pipeline.keys()
    assert pipeline.run(keys[0], keys[1]).success  # from 21:00:09
    assert checkpoint(pipeline.instance, pipeline.collection()) == datetime(2025, 9, 12, 22, tzinfo=UTC)
    pipeline.env["AUDIT_SINCE_TIME"] = "2025-09-12T21:00:00Z"
    assert checkpoint(pipeline.instance, pipeline.collection()) == datetime(2025, 9, 12, 21, tzinfo=UTC)
    pipeline.sim.tenant.add_audit_entry(audit_entry("2025-09-12T21:00:03Z", "between-the-seeds"))
    assert pipeline.run(keys[0]).success
    assert "between-the-seeds" in pipeline.table()["id"].to_pylist()
    assert checkpoint(pipeline.instance, pipeline.collection()) == datetime(2025, 9, 12, 22, tzinfo=UTC)


def test_a_run_under_a_changed_interval_refuses_to_write_and_names_the_safe_checkpoint(pipeline):
    keys = pipeline.keys()
    assert pipeline.run(keys[0], keys[3]).success  # 30-minute windows up to 23:00
    files = pipeline.files()
    pipeline.env["WIZ_POLL_INTERVAL_SECONDS"] = "3600"
    result = pipeline.run("2025-09-12-23:00")
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.to_string()
    assert "WIZ_POLL_INTERVAL_SECONDS=1800, but it is now 3600" in message
    assert "AUDIT_SINCE_TIME=2025-09-12T23:00:00Z" in message
    assert pipeline.files() == files


def test_moving_the_seed_into_an_earlier_window_collects_the_old_first_window_again(pipeline):
    keys = pipeline.keys()
    assert pipeline.run(keys[0], keys[1]).success  # from 21:00:09
    pipeline.env["AUDIT_SINCE_TIME"] = "2025-09-12T20:45:00Z"  # into the window before
    pipeline.sim.tenant.add_audit_entry(audit_entry("2025-09-12T21:00:04Z", "between-the-seeds"))
    assert checkpoint(pipeline.instance, pipeline.collection()) == datetime(2025, 9, 12, 20, 45, tzinfo=UTC)
    assert pipeline.run("2025-09-12-20:30", "2025-09-12-21:00").success
    assert "between-the-seeds" in pipeline.table()["id"].to_pylist()
    assert checkpoint(pipeline.instance, pipeline.collection()) == datetime(2025, 9, 12, 22, tzinfo=UTC)


def test_the_old_seeds_window_stays_unwritten_after_earlier_windows_are_written(pipeline):
    keys = pipeline.keys()
    assert pipeline.run(keys[0], keys[1]).success  # 21:00 from 21:00:09, and 21:30
    pipeline.env["AUDIT_SINCE_TIME"] = "2025-09-12T20:15:00Z"  # two windows back
    assert pipeline.run("2025-09-12-20:00").success  # an earlier window is written first
    assert checkpoint(pipeline.instance, pipeline.collection()) == datetime(2025, 9, 12, 20, 30, tzinfo=UTC)
    assert pipeline.run("2025-09-12-20:30").success
    # 21:00 is still only partly written, although it is no longer the earliest written window.
    assert checkpoint(pipeline.instance, pipeline.collection()) == datetime(2025, 9, 12, 21, tzinfo=UTC)
    assert pipeline.run("2025-09-12-21:00").success
    assert checkpoint(pipeline.instance, pipeline.collection()) == datetime(2025, 9, 12, 22, tzinfo=UTC)


def test_the_checkpoint_command_exits_1_while_the_interval_changed_under_written_windows(
    pipeline, monkeypatch, capsys
):
    keys = pipeline.keys()
    assert pipeline.run(keys[0], keys[3]).success  # 30-minute windows up to 23:00
    pipeline.env["WIZ_POLL_INTERVAL_SECONDS"] = "3600"
    for name, value in pipeline.env.items():
        monkeypatch.setenv(name, value)
    assert main(["checkpoints"]) == 1  # a script can tell that the schedule is stopped
    out = capsys.readouterr().out
    assert "# STOPPED: audit_logs windows were written with WIZ_POLL_INTERVAL_SECONDS=1800" in out
    assert "AUDIT_SINCE_TIME=2025-09-12T23:00:00Z (the checkpoint under the old interval)" in out
    monkeypatch.setenv("WIZ_POLL_INTERVAL_SECONDS", "1800")  # set back: it can advance again
    assert main(["checkpoints"]) == 0
