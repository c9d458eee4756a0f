"""UI backfills: cut into runs of WIZ_MAX_WINDOWS_PER_BACKFILL_RUN by Dagster's own backfill daemon code,
one process per run, one log line per run."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import dagster as dg
from dagster._core.execution.backfill import PartitionBackfill
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.backfill import execute_backfill_iteration

from wiz_pipeline.orchestration.definitions import build_definitions
from wiz_pipeline.settings import load_settings
from wiz_pipeline.simulator import WizSimulator
from wiz_pipeline_tests.pipeline.conftest import SEED

AUDIT = dg.AssetKey(["wiz", "audit_logs"])


def _submit_backfill(
    sim: WizSimulator, tmp_path: Path, monkeypatch, windows: int, env: dict[str, str]
) -> list[tuple[str, str]]:
    """Submit a backfill of the first ``windows`` audit windows as the UI does, let the backfill daemon's
    iteration cut it into runs (queued, not launched), and return each run's (first, last) window."""
    connection = {
        "WIZ_API_URL": sim.graphql_url,
        "WIZ_TOKEN_URL": sim.token_url,
        "WIZ_CLIENT_ID": sim.client_id,
        "WIZ_CLIENT_SECRET": sim.client_secret,
    }
    for name, value in {**connection, "AUDIT_SINCE_TIME": SEED, "WIZ_COLLECT_ISSUES": "false", **env}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("WIZ_OUTPUT_URI", str(tmp_path / "data"))
    code = tmp_path / "defs.py"  # a file, so that the definitions are built afresh from this environment
    code.write_text("from wiz_pipeline.definitions import build_definitions\n\ndefs = build_definitions()\n")
    origin = InProcessCodeLocationOrigin(LoadableTargetOrigin(python_file=str(code), attribute="defs"))
    queued = {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"}
    with (
        dg.instance_for_test(overrides={"run_coordinator": queued}) as instance,
        create_test_daemon_workspace_context(InProcessWorkspaceLoadTarget(origin), instance) as context,
    ):
        partitions_def = build_definitions().resolve_assets_def(AUDIT).partitions_def
        keys = partitions_def.get_partition_keys()[:windows]
        backfill = PartitionBackfill.from_asset_partitions(
            backfill_id="bf",
            asset_graph=context.create_request_context().asset_graph,
            partition_names=keys,
            asset_selection=[AUDIT],
            backfill_timestamp=time.time(),
            tags={},
            dynamic_partitions_store=instance,
            all_partitions=False,
            title=None,
            description=None,
            run_config=None,
        )
        instance.add_backfill(backfill)
        list(execute_backfill_iteration(context, logging.getLogger("backfill-test")))
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": "bf"}))
        return sorted(
            (r.tags[ASSET_PARTITION_RANGE_START_TAG], r.tags[ASSET_PARTITION_RANGE_END_TAG]) for r in runs
        )


def test_a_ui_backfill_is_cut_into_runs_of_the_backfill_size_not_the_catch_up_size(
    sim, tmp_path, monkeypatch
):
    env = {"WIZ_MAX_WINDOWS_PER_RUN": "2", "WIZ_MAX_WINDOWS_PER_BACKFILL_RUN": "4"}
    runs = _submit_backfill(sim, tmp_path, monkeypatch, 10, env)
    assert runs == [
        ("2025-09-12-21:00", "2025-09-12-22:30"),
        ("2025-09-12-23:00", "2025-09-13-00:30"),
        ("2025-09-13-01:00", "2025-09-13-01:30"),
    ]


def test_by_default_backfill_runs_are_a_week_and_catch_up_runs_a_day():
    defs = build_definitions({})
    policy = defs.resolve_assets_def(AUDIT).backfill_policy
    assert policy.max_partitions_per_run == 336  # a year of 30-minute windows: 53 runs
    settings = load_settings({})
    assert (settings.max_windows_per_run, settings.max_windows_per_backfill_run) == (48, 336)


def test_each_run_is_one_process_and_logs_one_line_not_one_per_window(pipeline):
    defs = pipeline.defs
    for job in (defs.resolve_job_def("collect_audit_logs"), defs.resolve_implicit_global_asset_job_def()):
        assert job.executor_def is dg.in_process_executor
    keys = pipeline.keys()
    result = pipeline.run(keys[0], keys[3])
    assert result.success
    assert len(result.get_asset_materialization_events()) == 4
    lines = [
        e.user_message
        for e in pipeline.instance.all_logs(result.run_id)
        if not e.is_dagster_event and "wiz_api pool" not in e.user_message  # the test instance's pool
    ]
    assert len(lines) == 2  # the run's windows when it starts, and what it wrote when it ends
    assert "4 of 4 window(s) written" in lines[-1]
    assert "AUDIT_SINCE_TIME is now 2025-09-12T23:00:00Z" in lines[-1]
