"""Re-reads of audit windows, through the schedule: ticks evaluated with Dagster's schedule APIs, the
runs they request executed as Dagster would launch them, against a simulator that publishes some
entries late."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pyarrow.parquet as pq
import pytest
from dagster._core.storage.dagster_run import DagsterRunStatus

from wiz_pipeline.landing.outputs import open_output
from wiz_pipeline.orchestration import checkpoints
from wiz_pipeline.orchestration.checkpoints import collections_for
from wiz_pipeline.orchestration.ledger import ledger
from wiz_pipeline.orchestration.rereads import REREADS_TAG, WINDOWS_TAG, decode, encode, windows_to_write
from wiz_pipeline.orchestration.schedules import runs_of_missing_windows
from wiz_pipeline.settings import SettingsError, load_settings
from wiz_pipeline.simulator import Fault
from wiz_pipeline_tests.conftest import audit_entry
from wiz_pipeline_tests.pipeline.test_schedule import requested, tick

AT = datetime(2025, 9, 12, 21, 0, tzinfo=UTC)


def at(hh: int, mm: int) -> datetime:
    return AT.replace(hour=hh, minute=mm) if hh >= 21 else AT.replace(hour=hh, minute=mm) + timedelta(days=1)


def stamp(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def add_late(sim, ident: str, when: datetime, published: datetime) -> None:
    sim.tenant.add_audit_entry(audit_entry(stamp(when), ident), published_at=published)


def execute(pipeline, request: dg.RunRequest, data_type: str = "audit_logs"):
    """Run what a tick asked for, with its tags, as the daemon would launch it."""
    job = pipeline.defs.resolve_job_def(f"collect_{data_type}")
    return job.execute_in_process(
        instance=pipeline.instance,
        partition_key=request.partition_key,
        tags=request.tags,
        raise_on_error=False,
    )


def tick_and_run(pipeline, sim, when: datetime, data_type: str = "audit_logs"):
    """The tick at ``when`` (the simulator's clock there too), and the results of the runs it asked for."""
    sim.set_now(when)
    data = tick(pipeline, when, data_type)
    return data, [execute(pipeline, r, data_type) for r in data.run_requests or []]


def latest(pipeline, key: str) -> dict:
    records = pipeline.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(["wiz", "audit_logs"]), asset_partitions=[key]), limit=1
    ).records
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def manifest(pipeline, key: str) -> dict:
    start = datetime.strptime(key, "%Y-%m-%d-%H:%M")
    path = (
        pipeline.root / "audit_logs" / f"date={start:%Y-%m-%d}" / f"_audit_logs_{start:%Y%m%dT%H%M%SZ}.json"
    )
    return json.loads(path.read_text())


def file_of(pipeline, key: str):
    start = datetime.strptime(key, "%Y-%m-%d-%H:%M")
    return (
        pipeline.root / "audit_logs" / f"date={start:%Y-%m-%d}" / f"audit_logs_{start:%Y%m%dT%H%M%SZ}.parquet"
    )


def run_log(pipeline, result) -> str:
    return "\n".join(e.user_message for e in pipeline.instance.all_logs(result.run_id) if e.user_message)


def test_late_entries_missed_by_the_first_read_are_caught_by_a_later_ticks_reread(pipeline, sim):
    # Three entries in window 21:30 show up in the API 50 minutes late: after the window was first
    # collected (22:05), before it has been closed an hour (23:00). A fourth shows up after that.
    for i, minute in enumerate((40, 50, 59)):
        add_late(sim, f"late-{i}", at(21, minute), at(22, 50))
    add_late(sim, "too-late", at(21, 45), at(23, 30))
    ticks = [at(21, 35), at(22, 5), at(22, 35), at(23, 5), at(23, 35), at(0, 5)]
    runs = {}
    for when in ticks:
        data, results = tick_and_run(pipeline, sim, when)
        # The extra cost of re-reads is pages, not runs: each tick asks for exactly one run.
        assert len(data.run_requests) == 1, when
        assert all(r.success for r in results)
        runs[when] = (data.run_requests[0], results[0])
    # 22:35: window 21:00 has been closed an hour; its re-read joins the window that just closed
    # (22:00) in one ranged run that skips 21:30, written and not yet due.
    request, _ = runs[at(22, 35)]
    assert requested_range(request) == ("2025-09-12-21:00", "2025-09-12-22:00")
    assert request.tags[WINDOWS_TAG] == "2025-09-12-21:00,2025-09-12-22:00"
    assert request.tags[REREADS_TAG] == "2025-09-12-21:00"
    request, result = runs[at(23, 5)]
    assert request.tags[REREADS_TAG] == "2025-09-12-21:30"
    assert "1 re-read(s) found 3 late record(s), 0 gone" in run_log(pipeline, result)

    meta = latest(pipeline, "2025-09-12-21:30")
    assert (meta["reads"], meta["reread"], meta["late_records"], meta["gone_records"]) == (2, True, 3, 0)
    assert meta["read_at"] == "2025-09-12T23:05:00Z"
    on_disk = manifest(pipeline, "2025-09-12-21:30")
    assert (on_disk["reads"], on_disk["reread"], on_disk["late_records"], on_disk["gone_records"]) == (
        2,
        True,
        3,
        0,
    )
    # The first read's figures: one read, nothing replaced.
    first = latest(pipeline, "2025-09-12-23:30")
    assert (first["reads"], first["reread"], first["late_records"], first["gone_records"]) == (
        1,
        False,
        None,
        None,
    )
    # Every entry published by the time its window was re-read is in, exactly once; the one
    # published after it (23:30, past the re-read at 23:05) is not: that is the guarantee's limit.
    ids = pipeline.table().column("id").to_pylist()
    assert len(ids) == len(set(ids))
    assert {"late-0", "late-1", "late-2"} <= set(ids) and "too-late" not in ids
    expected = {
        n["id"] for t, n in zip(sim.tenant.audit_times, sim.tenant.audit_nodes, strict=True) if t < at(23, 0)
    }
    assert expected - {"too-late"} <= set(ids)
    # Once re-read, a window is done: later ticks don't ask for it again.
    for when in (at(0, 35), at(1, 5)):
        data, _ = tick_and_run(pipeline, sim, when)
        assert "2025-09-12-21:30" not in decode(
            data.run_requests[0].tags.get(REREADS_TAG, ""), keys_of(data.run_requests[0], pipeline)
        )
    assert latest(pipeline, "2025-09-12-21:30")["reads"] == 2


def ledger_gaps(pipeline, now: datetime) -> set[str]:
    """The windows 21:00 and 21:30 that ``wiz-pipeline ledger`` would call gaps at ``now``."""
    lines = ledger(
        pipeline.instance,
        open_output(pipeline.root),
        pipeline.collection(),
        now=now,
        lag=timedelta(minutes=5),
        start=at(21, 0),
        end=at(22, 0),
    )
    return {line.key for line in lines if not line.written}


def requested_range(request: dg.RunRequest) -> tuple[str, str]:
    return requested(dg.SensorResult(run_requests=[request]))[0]


def keys_of(request: dg.RunRequest, pipeline) -> list[str]:
    first, last = requested_range(request)
    keys = pipeline.keys(hours=30)
    return keys[keys.index(first) : keys.index(last) + 1]


def test_a_failed_reread_leaves_the_file_and_the_checkpoint_and_is_asked_for_again(pipeline, sim):
    add_late(sim, "late", at(21, 10), at(22, 20))
    for when in (at(21, 35), at(22, 5)):
        _, results = tick_and_run(pipeline, sim, when)
        assert all(r.success for r in results)
    before = file_of(pipeline, "2025-09-12-21:00").read_bytes()
    collection = pipeline.collection()
    assert checkpoints.checkpoint(pipeline.instance, collection, at(22, 35)) == at(22, 0)

    sim.set_now(at(22, 35))
    data = tick(pipeline, at(22, 35))
    assert [requested_range(r) for r in data.run_requests] == [("2025-09-12-21:00", "2025-09-12-22:00")]
    sim.inject(Fault.http_status(500), times=50)
    assert not execute(pipeline, data.run_requests[0]).success
    sim.faults.clear()

    # The re-read failed: its window keeps its file byte for byte and counts as written (Dagster
    # marks it failed while it stays materialized); the checkpoint doesn't move back.
    assert file_of(pipeline, "2025-09-12-21:00").read_bytes() == before
    assert checkpoints.checkpoint(pipeline.instance, collection, at(22, 35)) == at(22, 0)
    state = checkpoints.progress(pipeline.instance, collection, at(22, 35), timedelta(minutes=5))
    assert state.missing == ["2025-09-12-22:00"]
    assert state.checkpoint == at(22, 0)
    assert latest(pipeline, "2025-09-12-21:00")["reads"] == 1
    # Dagster marks every window of the failed run failed, 21:30 too, which it skipped: the ledger
    # would call them gaps.
    state = checkpoints.progress(
        pipeline.instance, collection, at(22, 35), timedelta(minutes=5), every_window=True
    )
    assert {"2025-09-12-21:00", "2025-09-12-21:30"} <= state.failed_any
    assert ledger_gaps(pipeline, at(22, 35)) == {"2025-09-12-21:00", "2025-09-12-21:30"}

    # The next tick asks for the re-read again, and for the window it skipped, each apart from the
    # other windows (like a failed window).
    data, results = tick_and_run(pipeline, sim, at(22, 35))
    assert [requested_range(r) for r in data.run_requests] == [
        ("2025-09-12-21:00", "2025-09-12-21:00"),
        ("2025-09-12-21:30", "2025-09-12-21:30"),
        ("2025-09-12-22:00", "2025-09-12-22:00"),
    ]
    assert data.run_requests[0].tags[REREADS_TAG] == "2025-09-12-21:00"
    assert all(r.success for r in results)
    assert ledger_gaps(pipeline, at(23, 5)) == set()
    meta = latest(pipeline, "2025-09-12-21:00")
    assert (meta["reads"], meta["late_records"]) == (2, 1)
    assert checkpoints.checkpoint(pipeline.instance, collection, at(23, 5)) == at(22, 30)
    ids = pipeline.table().column("id").to_pylist()
    assert len(ids) == len(set(ids)) and "late" in ids


def test_issue_windows_are_never_reread(pipeline, sim):
    _, results = tick_and_run(pipeline, sim, at(21, 35), "issues")
    assert all(r.success for r in results)
    data, results = tick_and_run(pipeline, sim, at(23, 5), "issues")
    # Window 21:00 has been closed 90 minutes: an audit window would be re-read, an issue one isn't.
    assert requested(data) == [("2025-09-12-21:30", "2025-09-12-22:30")]
    assert not any(REREADS_TAG in r.tags for r in data.run_requests)
    assert pipeline.collection("issues").reread_after_seconds == 0


def test_a_window_first_collected_after_the_reread_delay_needs_no_reread(pipeline, sim):
    add_late(sim, "late", at(21, 10), at(21, 50))
    # The daemon was down until 23:05: the catch-up collects 21:00 .. 22:30 at once.
    data, results = tick_and_run(pipeline, sim, at(23, 5))
    assert requested(data) == [("2025-09-12-21:00", "2025-09-12-22:30")]
    assert all(r.success for r in results)
    # At 23:35 only window 22:00 (read 35 minutes after it closed) is re-read; 21:00 and 21:30 were
    # first read after being closed an hour, so they are done.
    data, results = tick_and_run(pipeline, sim, at(23, 35))
    assert requested(data) == [("2025-09-12-22:00", "2025-09-12-23:00")]
    assert data.run_requests[0].tags[REREADS_TAG] == "2025-09-12-22:00"
    assert latest(pipeline, "2025-09-12-21:00")["reads"] == 1
    # A backfill run by hand (no schedule tags) reads each window it names, at the time it runs.
    keys = pipeline.keys()
    assert pipeline.run(keys[0], keys[-1]).success
    data = tick(pipeline, at(3, 5))
    assert not any(REREADS_TAG in r.tags for r in data.run_requests or [])


def test_rereads_are_off_with_zero(pipeline, sim):
    pipeline.env["WIZ_REREAD_AFTER_SECONDS"] = "0"
    add_late(sim, "late", at(21, 10), at(21, 50))
    for when in (at(21, 35), at(22, 5), at(22, 35), at(23, 5)):
        data, results = tick_and_run(pipeline, sim, when)
        assert len(data.run_requests) == 1 and all(r.success for r in results)
        assert REREADS_TAG not in data.run_requests[0].tags
        first, last = requested_range(data.run_requests[0])
        assert first == last  # only the window that just closed
    assert "late" not in pipeline.table().column("id").to_pylist()
    assert latest(pipeline, "2025-09-12-21:00")["reads"] == 1


def test_a_reread_is_not_joined_across_nor_asked_for_in_a_window_another_run_is_writing(pipeline, sim):
    for when in (at(21, 35), at(22, 5)):
        tick_and_run(pipeline, sim, when)
    pipeline.instance.create_run_for_job(
        pipeline.defs.resolve_job_def("collect_audit_logs"),
        tags={"dagster/partition": "2025-09-12-21:30"},
        status=DagsterRunStatus.STARTED,
        asset_selection=frozenset({dg.AssetKey(["wiz", "audit_logs"])}),
    )
    data = tick(pipeline, at(22, 35))
    assert requested(data) == [("2025-09-12-21:00",) * 2, ("2025-09-12-22:00",) * 2]
    # And a window due for a re-read that a run is already writing is left to that run.
    pipeline.instance.create_run_for_job(
        pipeline.defs.resolve_job_def("collect_audit_logs"),
        tags={"dagster/partition": "2025-09-12-21:00"},
        status=DagsterRunStatus.STARTED,
        asset_selection=frozenset({dg.AssetKey(["wiz", "audit_logs"])}),
    )
    data = tick(pipeline, at(22, 35))
    assert requested(data) == [("2025-09-12-22:00",) * 2]
    assert REREADS_TAG not in data.run_requests[0].tags


def test_an_operators_rerun_rewrites_every_window_and_counts_what_changed(pipeline, sim):
    keys = pipeline.keys()
    assert pipeline.run(keys[0], keys[2]).success
    assert manifest(pipeline, keys[1])["reads"] == 1
    # One entry disappears from the API, one appears late.
    index = next(i for i, t in enumerate(sim.tenant.audit_times) if at(21, 30) <= t < at(22, 0))
    del sim.tenant.audit_nodes[index], sim.tenant.audit_times[index]
    sim.tenant.add_audit_entry(audit_entry(stamp(at(21, 31)), "new-one"))
    assert pipeline.run(keys[0], keys[2]).success
    for key in keys[:3]:
        meta = latest(pipeline, key)
        assert meta["reads"] == 2 and meta["reread"] is False
    assert (latest(pipeline, keys[1])["late_records"], latest(pipeline, keys[1])["gone_records"]) == (1, 1)
    assert (latest(pipeline, keys[0])["late_records"], latest(pipeline, keys[0])["gone_records"]) == (0, 0)
    assert pq.read_table(file_of(pipeline, keys[1])).num_rows == manifest(pipeline, keys[1])["rows"]


def test_runs_join_a_reread_with_later_windows_only_across_idle_written_windows():
    keys = [f"k{i}" for i in range(10)]
    # k1 due, k4 just closed: one run k1..k4 writing k1 and k4.
    assert runs_of_missing_windows(keys, ["k1", "k4"], 48, rereads={"k1"}, max_range=336) == [["k1", "k4"]]
    # Not across a window another run is writing, nor past the longest range, nor without a re-read.
    assert runs_of_missing_windows(keys, ["k1", "k4"], 48, rereads={"k1"}, busy={"k2"}, max_range=336) == [
        ["k1"],
        ["k4"],
    ]
    assert runs_of_missing_windows(keys, ["k1", "k4"], 48, rereads={"k1"}, max_range=3) == [["k1"], ["k4"]]
    assert runs_of_missing_windows(keys, ["k1", "k4"], 48, max_range=336) == [["k1"], ["k4"]]
    # The run size counts windows written, not those skipped; failed re-reads stay apart.
    assert runs_of_missing_windows(
        keys, ["k0", "k3", "k6", "k9"], 2, rereads={"k0", "k6"}, max_range=336
    ) == [
        ["k0", "k3"],
        ["k6", "k9"],
    ]
    assert runs_of_missing_windows(
        keys, ["k1", "k4"], 48, failed={"k1": 3}, rereads={"k1"}, max_range=336
    ) == [["k1"], ["k4"]]


def test_the_tags_name_the_windows_to_write_and_a_run_without_them_writes_all():
    run_keys = [f"k{i}" for i in range(6)]
    assert encode(["k0", "k1", "k2", "k5"], run_keys) == "k0..k2,k5"
    assert decode("k0..k2,k5", run_keys) == ["k0", "k1", "k2", "k5"]
    tags = {WINDOWS_TAG: "k0,k5", REREADS_TAG: "k0"}
    assert windows_to_write(tags, run_keys) == (["k0", "k5"], {"k0"})
    assert windows_to_write({}, run_keys) == (run_keys, set())
    with pytest.raises(ValueError, match="not a window of this run"):
        decode("k9", run_keys)


def test_the_reread_delay_is_checked():
    assert load_settings({}).reread_after_seconds == 3600
    assert load_settings({"WIZ_REREAD_AFTER_SECONDS": "0"}).reread_after_seconds == 0
    for bad, message in (
        ("-1", "out of range"),
        ("700000", "out of range"),
        ("soon", "not a whole number"),
        ("300", "more than WIZ_WINDOW_LAG_SECONDS=300"),
    ):
        with pytest.raises(SettingsError, match=message):
            load_settings({"WIZ_REREAD_AFTER_SECONDS": bad})
    # Left to its default under a lag of over an hour, re-reads are off rather than a failed load.
    settings = load_settings({"WIZ_WINDOW_LAG_SECONDS": "3630"})
    assert settings.reread_after_seconds == 3600
    assert collections_for(settings)[0].reread_after_seconds == 0
