"""The schedule's catch-up: what a tick requests, evaluated through Dagster's own schedule APIs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
from dagster._core.storage.dagster_run import DagsterRunStatus
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from wiz_pipeline.orchestration.schedules import runs_of_missing_windows
from wiz_pipeline.simulator import Fault


def tick(pipeline, at: datetime, data_type: str = "audit_logs"):
    defs = pipeline.defs
    schedule = defs.resolve_schedule_def(f"collect_{data_type}_schedule")
    context = dg.build_schedule_context(
        instance=pipeline.instance, scheduled_execution_time=at, repository_def=defs.get_repository_def()
    )
    return schedule.evaluate_tick(context)


def requested(data) -> list[tuple[str, str]]:
    """(first, last) window of each requested run."""
    runs = []
    for request in data.run_requests or []:
        tags = request.tags
        if request.partition_key:
            runs.append((request.partition_key, request.partition_key))
        else:
            runs.append((tags[ASSET_PARTITION_RANGE_START_TAG], tags[ASSET_PARTITION_RANGE_END_TAG]))
    return runs


def test_the_schedule_ticks_after_the_lag_and_runs_by_default(pipeline):
    schedule = pipeline.defs.resolve_schedule_def("collect_audit_logs_schedule")
    assert schedule.cron_schedule == "5,35 * * * *"
    assert schedule.execution_timezone == "UTC"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    pipeline.env["WIZ_POLL_INTERVAL_SECONDS"] = "21600"
    pipeline.env["WIZ_WINDOW_LAG_SECONDS"] = "3630"  # 1 h 0 min 30 s: rounded up to 61 minutes
    assert (
        pipeline.defs.resolve_schedule_def("collect_audit_logs_schedule").cron_schedule == "1 1,7,13,19 * * *"
    )


def test_a_window_is_requested_only_once_the_lag_has_passed(pipeline):
    early = tick(pipeline, datetime(2025, 9, 12, 22, 4, 59, tzinfo=UTC))
    assert requested(early) == [("2025-09-12-21:00", "2025-09-12-21:00")]
    on_time = tick(pipeline, datetime(2025, 9, 12, 22, 5, tzinfo=UTC))
    assert requested(on_time) == [("2025-09-12-21:00", "2025-09-12-21:30")]


def test_a_tick_after_a_six_hour_outage_requests_exactly_the_missing_windows(pipeline):
    keys = pipeline.keys()
    assert pipeline.run(keys[0], keys[2]).success  # written up to 22:30, then the daemon was down
    pipeline.env["WIZ_MAX_WINDOWS_PER_RUN"] = "5"
    data = tick(pipeline, datetime(2025, 9, 13, 4, 35, tzinfo=UTC))  # 6 h later, 5 min after 04:30
    assert requested(data) == [
        ("2025-09-12-22:30", "2025-09-13-00:30"),
        ("2025-09-13-01:00", "2025-09-13-03:00"),
        ("2025-09-13-03:30", "2025-09-13-04:00"),
    ]
    assert all(r.tags["wiz/since_time"] == "2025-09-12T22:30:00Z" for r in data.run_requests)
    # Launching what the tick asked for fills the gap, and the next tick has nothing to do.
    for first, last in requested(data):
        assert pipeline.run(first, last).success
    again = tick(pipeline, datetime(2025, 9, 13, 4, 35, tzinfo=UTC))
    assert not again.run_requests
    assert "AUDIT_SINCE_TIME=2025-09-13T04:30:00Z" in again.skip_message
    assert "15 of 15 closed windows written" in again.skip_message


def test_a_failed_window_is_requested_again_and_written_windows_are_not(pipeline):
    keys = pipeline.keys()
    assert pipeline.run(keys[0], keys[2]).success
    assert pipeline.run(keys[4], keys[5]).success  # keys[3] failed or was never run
    data = tick(pipeline, datetime(2025, 9, 13, 0, 35, tzinfo=UTC))
    assert requested(data) == [(keys[3], keys[3]), ("2025-09-13-00:00", "2025-09-13-00:00")]


def test_windows_already_in_a_queued_or_running_run_are_not_requested_twice(pipeline):
    job = pipeline.defs.resolve_job_def("collect_audit_logs")
    pipeline.instance.create_run_for_job(
        job,
        tags={
            ASSET_PARTITION_RANGE_START_TAG: "2025-09-12-21:00",
            ASSET_PARTITION_RANGE_END_TAG: "2025-09-12-22:00",
        },
        status=DagsterRunStatus.STARTED,
        asset_selection=frozenset({dg.AssetKey(["wiz", "audit_logs"])}),
    )
    data = tick(pipeline, datetime(2025, 9, 12, 23, 35, tzinfo=UTC))
    assert requested(data) == [("2025-09-12-22:30", "2025-09-12-23:00")]


def test_runs_of_missing_windows_never_join_windows_across_a_gap():
    keys = [f"k{i}" for i in range(10)]
    assert runs_of_missing_windows(keys, ["k0", "k1", "k3", "k4", "k5", "k9"], 2) == [
        ["k0", "k1"],
        ["k3", "k4"],
        ["k5"],
        ["k9"],
    ]
    # Failed windows are grouped apart, in runs half the size of the run that failed them.
    failed = {"k1": 5, "k2": 5, "k3": 5, "k4": 5, "k5": 5, "k7": 1}
    assert runs_of_missing_windows(keys, [f"k{i}" for i in range(9)], 48, failed=failed) == [
        ["k0"],
        ["k1", "k2"],
        ["k3", "k4"],
        ["k5"],
        ["k6"],
        ["k7"],
        ["k8"],
    ]
    # Both halves failing again (a bad window in each) shrinks the runs further, never the same split.
    assert runs_of_missing_windows(
        keys, ["k0", "k1", "k2", "k3"], 48, failed=dict.fromkeys(["k0", "k1", "k2", "k3"], 2)
    ) == [
        ["k0"],
        ["k1"],
        ["k2"],
        ["k3"],
    ]


def test_catch_up_stops_with_advice_when_the_interval_changed_under_written_windows(pipeline):
    keys = pipeline.keys()
    assert pipeline.run(keys[0], keys[3]).success  # 30-minute windows up to 23:00
    pipeline.env["WIZ_POLL_INTERVAL_SECONDS"] = "3600"
    data = tick(pipeline, datetime(2025, 9, 13, 4, 5, tzinfo=UTC))
    assert not data.run_requests
    assert "WIZ_POLL_INTERVAL_SECONDS=1800, but it is now 3600" in data.skip_message
    assert "AUDIT_SINCE_TIME" in data.skip_message
    pipeline.env["WIZ_POLL_INTERVAL_SECONDS"] = "1800"
    assert tick(pipeline, datetime(2025, 9, 13, 4, 5, tzinfo=UTC)).run_requests


def test_a_failed_range_is_asked_for_in_halves_until_the_bad_window_is_alone(pipeline, sim):
    keys = pipeline.keys()
    assert pipeline.run(keys[0], keys[1]).success
    sim.inject(Fault.http_status(500), times=6)
    assert not pipeline.run(keys[2], keys[5]).success  # the range failed as a whole
    at = datetime(2025, 9, 13, 0, 35, tzinfo=UTC)
    data = tick(pipeline, at)
    assert requested(data) == [
        (keys[2], keys[3]),
        (keys[4], keys[5]),
        ("2025-09-13-00:00", "2025-09-13-00:00"),
    ]
    sim.inject(Fault.http_status(500), times=6)
    assert not pipeline.run(keys[2], keys[3]).success  # the half with the bad window fails again
    assert pipeline.run(keys[4], keys[5]).success
    assert requested(tick(pipeline, at)) == [
        (keys[2], keys[2]),
        (keys[3], keys[3]),
        ("2025-09-13-00:00",) * 2,
    ]
    assert pipeline.run(keys[2]).success  # once written, a window is no longer "failed"
    assert requested(tick(pipeline, at)) == [(keys[3], keys[3]), ("2025-09-13-00:00",) * 2]


def test_a_tick_requests_at_most_200_runs_and_the_next_tick_the_rest(pipeline):
    pipeline.env["WIZ_MAX_WINDOWS_PER_RUN"] = "1"
    data = tick(pipeline, datetime(2025, 9, 17, 0, 5, tzinfo=UTC))  # 4 days of 30-minute windows: 198
    assert len(data.run_requests) == 198
    data = tick(pipeline, datetime(2025, 9, 18, 0, 5, tzinfo=UTC))
    assert len(data.run_requests) == 200
    assert requested(data)[0] == ("2025-09-12-21:00", "2025-09-12-21:00")


def test_catch_up_keys_are_the_partitions_dagster_itself_lists():
    from wiz_pipeline.orchestration.checkpoints import _end_of, collections_for, window_keys
    from wiz_pipeline.settings import ALLOWED_INTERVALS, load_settings

    boundary = datetime(2025, 9, 14, 0, 0, tzinfo=UTC)  # a boundary of every allowed interval
    untils = [boundary, boundary - timedelta(microseconds=1), boundary + timedelta(seconds=1)]
    untils.append(datetime(2025, 9, 14, 3, 17, 41, tzinfo=UTC))
    for seconds in ALLOWED_INTERVALS:
        for seed in ("2025-09-12T21:00:09Z", "2025-09-12T21:00:00Z", "2025-09-12T00:00:00.5Z"):
            env = {"WIZ_POLL_INTERVAL_SECONDS": str(seconds), "AUDIT_SINCE_TIME": seed}
            collection = collections_for(load_settings(env))[0]
            for until in untils:
                expected = collection.partitions_def.get_partition_keys(current_time=until)
                assert window_keys(collection, until) == expected, (seconds, seed, until)
                if expected:
                    end = collection.partitions_def.time_window_for_partition_key(expected[-1]).end
                    assert _end_of(collection, len(expected)) == end


def test_failed_and_running_windows_read_from_the_event_log_are_those_of_the_status_cache(
    pipeline, sim, monkeypatch
):
    # After a big backfill the tick reads them from the event log rather than wait for Dagster to
    # bring its status cache up to date window by window; both must say the same.
    from wiz_pipeline.orchestration import checkpoints

    keys = pipeline.keys()
    assert pipeline.run(keys[0], keys[1]).success
    sim.inject(Fault.http_status(500), times=6)
    assert not pipeline.run(keys[2], keys[5]).success
    pipeline.instance.create_run_for_job(
        pipeline.defs.resolve_job_def("collect_audit_logs"),
        tags={ASSET_PARTITION_RANGE_START_TAG: keys[7], ASSET_PARTITION_RANGE_END_TAG: keys[8]},
        status=DagsterRunStatus.STARTED,
        asset_selection=frozenset({dg.AssetKey(["wiz", "audit_logs"])}),
    )
    at = datetime(2025, 9, 13, 3, 35, tzinfo=UTC)
    seen = []
    for limit in (checkpoints.STATUS_CACHE_CATCH_UP_LIMIT, -1):  # the cache, then the event log
        monkeypatch.setattr(checkpoints, "STATUS_CACHE_CATCH_UP_LIMIT", limit)
        state = checkpoints.progress(pipeline.instance, pipeline.collection(), at, timedelta(minutes=5))
        seen.append((state.failed, state.in_progress, requested(tick(pipeline, at))))
    assert seen[0] == seen[1]
    assert seen[0][:2] == (set(keys[2:6]), set(keys[7:9]))
    assert seen[0][2] == [
        (keys[2], keys[3]),
        (keys[4], keys[5]),
        (keys[6], keys[6]),
        (keys[9], "2025-09-13-03:00"),
    ]
