"""Collecting windows through Dagster: files, boundaries, reruns, ranged runs, failures."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq

from wiz_pipeline.landing.files import manifest_key
from wiz_pipeline.simulator import Fault, WizSimulator
from wiz_pipeline_tests.conftest import CLIENT_SECRET, T0, audit_entry, small_tenant
from wiz_pipeline_tests.pipeline.conftest import SEED


def materialized(pipeline, data_type="audit_logs") -> set[str]:
    return pipeline.instance.get_materialized_partitions(pipeline.collection(data_type).asset_key)


def test_the_unaligned_seed_loses_nothing_and_writes_nothing_before_it(pipeline):
    tenant = pipeline.sim.tenant
    tenant.add_audit_entry(audit_entry("2025-09-12T21:00:08.999999Z", "before-seed"))
    tenant.add_audit_entry(audit_entry("2025-09-12T21:00:09Z", "at-seed"))
    tenant.add_audit_entry(audit_entry("2025-09-12T21:00:09.5Z", "just-after-seed"))
    keys = pipeline.keys()
    assert keys[0] == "2025-09-12-21:00"  # the partition the seed falls in, not the next boundary

    assert pipeline.run(keys[0]).success
    ids = set(pipeline.table()["id"].to_pylist())
    seed = datetime(2025, 9, 12, 21, 0, 9, tzinfo=UTC)
    expected = {
        n["id"]
        for t, n in zip(tenant.audit_times, tenant.audit_nodes, strict=True)
        if seed <= t < T0 + timedelta(minutes=30)
    }
    assert {"at-seed", "just-after-seed"} <= ids
    assert "before-seed" not in ids
    assert ids == expected
    assert min(pipeline.table()["timestamp"].to_pylist()) >= seed
    data_key = pipeline.files()[0].relative_to(pipeline.root).as_posix()
    manifest = json.loads((pipeline.root / manifest_key(data_key)).read_text())
    assert manifest["window_start"] == SEED and manifest["window_end"] == "2025-09-12T21:30:00Z"


def test_a_record_on_a_boundary_lands_once_in_the_later_window(pipeline):
    pipeline.sim.tenant.add_audit_entry(audit_entry("2025-09-12T21:30:00Z", "on-boundary"))
    keys = pipeline.keys()
    assert pipeline.run(keys[0]).success and pipeline.run(keys[1]).success
    table = pipeline.table()
    rows = [i for i, ident in enumerate(table["id"].to_pylist()) if ident == "on-boundary"]
    assert len(rows) == 1
    assert table["date"][rows[0]].as_py() == "2025-09-12"
    later = pq.read_table(pipeline.files()[1])
    assert "on-boundary" in later["id"].to_pylist()
    # Every id of the generated tenant's boundary entries is there exactly once too.
    assert max(Counter(table["id"].to_pylist()).values()) == 1


def test_every_record_of_the_history_lands_exactly_once(pipeline):
    keys = pipeline.keys()
    assert pipeline.run(keys[0], keys[-1]).success
    assert pipeline.run(keys[0], keys[-1], data_type="issues").success
    seed = datetime(2025, 9, 12, 21, 0, 9, tzinfo=UTC)
    tenant = pipeline.sim.tenant
    ids = pipeline.table()["id"].to_pylist()
    assert Counter(ids) == Counter(
        n["id"] for t, n in zip(tenant.audit_times, tenant.audit_nodes, strict=True) if t >= seed
    )
    now = pipeline.sim.now()
    issues = pipeline.table("issues")
    expected_issues = {
        node["id"]
        for node in tenant.issues_as_of(now)
        if seed <= datetime.fromisoformat(node["statusChangedAt"]) < T0 + timedelta(hours=6)
    }
    assert sorted(issues["id"].to_pylist()) == sorted(expected_issues)


def test_rerunning_a_window_replaces_its_file_and_duplicates_nothing(pipeline):
    keys = pipeline.keys()
    assert pipeline.run(keys[2]).success
    first = pipeline.table()
    pipeline.sim.tenant.add_audit_entry(audit_entry("2025-09-12T22:10:00Z", "arrived-late"))
    assert pipeline.run(keys[2]).success
    assert pipeline.run(keys[0], keys[3]).success  # a range over it as well
    files = pipeline.files()
    assert len(files) == 4
    second = pq.read_table(files[2])
    assert second.num_rows == first.num_rows + 1
    assert max(Counter(pipeline.table()["id"].to_pylist()).values()) == 1
    assert not [p for p in pipeline.root.rglob("*") if p.is_file() and ".tmp-" in p.name]


def test_a_ranged_run_writes_one_file_per_window_with_one_query(pipeline):
    keys = pipeline.keys()
    result = pipeline.run(keys[0], keys[-1])
    assert result.success
    files = pipeline.files()
    assert [f.name for f in files] == sorted(
        f"audit_logs_{datetime.strptime(k, '%Y-%m-%d-%H:%M'):%Y%m%dT%H%M%S}Z.parquet" for k in keys
    )
    # 600 entries at 500 per page: one query of two pages for all twelve windows.
    assert len(pipeline.sim.graphql_records()) == 2
    events = result.get_asset_materialization_events()
    assert sorted(e.partition for e in events) == keys
    assert (
        sum(e.materialization.metadata["dagster/row_count"].value for e in events)
        == pipeline.table().num_rows
    )
    # Each window's file holds only its own window's records.
    for key, path in zip(keys, files, strict=True):
        start = max(datetime.strptime(key, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC), T0 + timedelta(seconds=9))
        times = pq.read_table(path)["timestamp"].to_pylist()
        assert all(start <= t < start.replace(second=0) + timedelta(minutes=30) for t in times)


def test_records_served_out_of_order_land_once_in_their_own_window_file(pipeline, sim, caplog):
    # Newest first, a window's file is closed as soon as a page older than its start comes. The
    # API's order isn't guaranteed: entries served later than that order puts them must still land,
    # once, in their own window's one file (which is then written again), its manifest true to it.
    keys = pipeline.keys()
    pipeline.overrides["page_size"] = 20
    sim.audit_stragglers = (7, 120)  # every 7th entry six pages late: two windows on, at 50 a window
    with caplog.at_level(logging.INFO, logger="wiz_pipeline.collect.windows"):
        result = pipeline.run(keys[0], keys[-1])
    assert result.success
    assert "after the query had passed them" in caplog.text  # the files were written again
    filters = {json.dumps(r.variables["filterBy"], sort_keys=True) for r in sim.graphql_records()}
    assert len(filters) == 1  # one query for the whole range
    assert all(e.passed for e in result.get_asset_check_evaluations())
    tenant, seed = sim.tenant, datetime(2025, 9, 12, 21, 0, 9, tzinfo=UTC)
    files = pipeline.files()
    assert len(files) == len(keys)
    for key, path in zip(keys, files, strict=True):
        start = max(datetime.strptime(key, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC), seed)
        end = start.replace(second=0) + timedelta(minutes=30)
        nodes = zip(tenant.audit_times, tenant.audit_nodes, strict=True)
        expected = Counter(n["id"] for t, n in nodes if start <= t < end)
        assert Counter(pq.read_table(path)["id"].to_pylist()) == expected, key
        manifest = json.loads(
            (pipeline.root / manifest_key(path.relative_to(pipeline.root).as_posix())).read_text()
        )
        assert manifest["rows"] == sum(expected.values())
        assert manifest["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert manifest["row_groups"] == pq.ParquetFile(path).num_row_groups
    assert not [p for p in pipeline.root.rglob("*") if p.is_file() and ".tmp-" in p.name]


def test_a_range_over_the_result_cap_is_split_at_window_boundaries(pipeline):
    # 12,000 entries in 12 windows: more than the 10,000 one query returns, about 1,000 per window.
    tenant = small_tenant(audit_entries=12_000, issues=5)
    with WizSimulator(tenant, client_id="test-client", client_secret=CLIENT_SECRET) as big:
        big.set_now(T0 + timedelta(days=2))
        pipeline.sim = big
        keys = pipeline.keys()
        result = pipeline.run(keys[0], keys[-1])
        assert result.success
        windows_per_query = [
            e.materialization.metadata["query_windows"].value
            for e in result.get_asset_materialization_events()
        ]
    assert windows_per_query == [6] * 6 + [6] * 6  # one capped query of 12, then two of 6
    assert len(pipeline.files()) == 12
    ids = pipeline.table()["id"].to_pylist()
    assert len(ids) == len(set(ids)) == sum(1 for t in tenant.audit_times if t >= T0 + timedelta(seconds=9))


def test_a_run_is_cut_up_front_from_the_busiest_recent_window_so_no_capped_query_is_wasted(pipeline):
    tenant = small_tenant(audit_entries=12_000, issues=5)  # about 1,000 entries per window
    with WizSimulator(tenant, client_id="test-client", client_secret=CLIENT_SECRET) as big:
        big.set_now(T0 + timedelta(days=2))
        pipeline.sim = big
        keys = pipeline.keys()
        assert pipeline.run(keys[0], keys[-1]).success  # learns the density by reaching the cap once
        before = len(big.graphql_records())
        again = pipeline.run(keys[0], keys[-1])
        requests = len(big.graphql_records()) - before
    assert again.success
    metadata = [e.materialization.metadata for e in again.get_asset_materialization_events()]
    busiest = max(m["dagster/row_count"].value for m in metadata)
    assert {m["query_windows"].value for m in metadata} == {int(10_000 * 0.7 / busiest)}
    # Every request brought a page that was written: no query reached the cap and was thrown away.
    assert requests == sum(m["query_pages"].value / m["query_windows"].value for m in metadata)


def test_a_window_that_fails_writes_nothing_and_holds_the_checkpoint_back(pipeline, sim):
    keys = pipeline.keys()
    assert pipeline.run(keys[0], keys[2]).success
    sim.inject(Fault.http_status(500), times=6)  # the first try and all 5 retries
    failed = pipeline.run(keys[3])
    assert not failed.success
    assert pipeline.run(keys[4], keys[5]).success
    assert keys[3] not in materialized(pipeline)
    assert len(pipeline.files()) == 5
    assert not (
        pipeline.root / "audit_logs" / "date=2025-09-12" / "audit_logs_20250912T223000Z.parquet"
    ).exists()
    assert not failed.get_asset_materialization_events()
    from wiz_pipeline.orchestration.checkpoints import checkpoint

    assert checkpoint(pipeline.instance, pipeline.collection()) == datetime(2025, 9, 12, 22, 30, tzinfo=UTC)


def test_a_fetch_failing_mid_range_writes_none_of_the_range_and_keeps_earlier_files(pipeline, sim):
    keys = pipeline.keys()
    pipeline.overrides["page_size"] = 50
    assert pipeline.run(keys[4]).success
    before = pipeline.files()[0].read_bytes()
    sim.inject(Fault.http_status(503), times=6, skip=3)  # page 4 of the range never comes
    result = pipeline.run(keys[0], keys[-1])
    assert not result.success
    assert not result.get_asset_materialization_events()
    assert [f.name for f in pipeline.files()] == ["audit_logs_20250912T230000Z.parquet"]
    assert pipeline.files()[0].read_bytes() == before
    assert not [p for p in pipeline.root.rglob("*") if p.is_file() and ".tmp-" in p.name]


def test_run_metadata_lands_in_dagster_and_in_the_manifest(pipeline):
    keys = pipeline.keys()
    result = pipeline.run(keys[1], keys[2])
    event = next(e for e in result.get_asset_materialization_events() if e.partition == keys[1])
    metadata = {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}
    path = pipeline.files()[0]
    data_key = path.relative_to(pipeline.root).as_posix()
    manifest = json.loads((pipeline.root / manifest_key(data_key)).read_text())
    assert metadata["dagster/row_count"] == manifest["rows"] == pq.read_metadata(path).num_rows > 0
    assert metadata["dagster/uri"] == path.as_uri()
    assert [c.name for c in metadata["dagster/column_schema"].columns][:3] == ["id", "timestamp", "action"]
    assert metadata["window_start"] == manifest["window_start"] == "2025-09-12T21:30:00Z"
    assert metadata["window_end"] == manifest["window_end"] == "2025-09-12T22:00:00Z"
    assert manifest["run_id"] == metadata["run_id"] == result.run_id
    assert manifest["query"]["windows"] == metadata["query_windows"] == 2
    # The query covered both windows: its figures are named as the query's, so nobody sums them.
    assert metadata["query_requests"] == manifest["query"]["requests"] >= 1
    assert metadata["query_bytes_received"] == manifest["query"]["bytes_received"] > 0
    assert not {"pages", "requests", "retries", "bytes_received", "duration_seconds"} & metadata.keys()
    assert metadata["min_record_time"] == manifest["min_time"] >= "2025-09-12T21:30:00Z"
    # This window isn't the first, so writing it moves no checkpoint: the seed's window is missing.
    assert metadata["AUDIT_SINCE_TIME"] == SEED


def test_no_secret_reaches_dagster_events_or_files(pipeline, sim):
    keys = pipeline.keys()
    sim.inject(Fault.expired_token())
    assert pipeline.run(keys[0], keys[1]).success
    tokens = sim.issued_tokens()
    assert tokens
    logs = pipeline.instance.get_records_for_run(pipeline.instance.get_runs()[0].run_id).records
    text = "\n".join(str(r.event_log_entry) for r in logs)
    text += "".join(p.read_text() for p in pipeline.root.rglob("_*.json"))
    assert CLIENT_SECRET not in text
    assert not [t for t in tokens if t in text]


def test_no_temporary_file_outlives_a_run_that_stops_between_windows(pipeline, sim, monkeypatch):
    from wiz_pipeline.collect import windows as collect
    from wiz_pipeline.collect.windows import collect_windows
    from wiz_pipeline.data_types.audit_logs import AUDIT_LOGS
    from wiz_pipeline.orchestration.partitions import windows_for

    collection = pipeline.collection()
    keys = pipeline.keys()[:4]
    windows = windows_for(collection.partitions_def, keys, collection.seed)
    monkeypatch.setattr(collect, "MAX_BUFFERED_BYTES", 10_000)  # every window's file is open by now
    with pipeline.defs.resources["wiz"].client() as client:
        results = collect_windows(client, AUDIT_LOGS, windows, pipeline.root, run_id="r1")
        next(results)
        results.close()  # as when a run is terminated after its first window
    assert len(pipeline.files()) == 1
    assert not [p for p in pipeline.root.rglob("*") if ".tmp-" in p.name]


def test_temporary_files_a_dead_run_left_are_swept_and_a_live_one_is_not(pipeline):
    import os
    import time

    keys = pipeline.keys()
    folder = pipeline.root / "audit_logs" / "date=2025-09-12"
    folder.mkdir(parents=True)
    elsewhere = pipeline.root / "audit_logs" / "date=2025-08-01"  # a window this run doesn't touch
    elsewhere.mkdir(parents=True)
    other = elsewhere / "._audit_logs_20250801T000000Z.json.tmp-feedface0000"
    other.write_bytes(b"{")
    os.utime(other, (time.time() - 7 * 3600,) * 2)
    dead = folder / ".audit_logs_20250912T210000Z.parquet.tmp-deadbeef0000"
    live = folder / ".audit_logs_20250912T210000Z.parquet.tmp-0123456789ab"
    for leftover in (dead, live):
        leftover.write_bytes(b"half a file")
    os.utime(dead, (time.time() - 7 * 3600,) * 2)
    assert pipeline.run(keys[0]).success
    assert not dead.exists() and not other.exists() and live.exists()


def test_files_and_directories_are_never_world_readable_whatever_the_umask(pipeline):
    import os
    import stat

    keys = pipeline.keys()
    previous = os.umask(0)  # the most permissive umask there is
    try:
        assert pipeline.run(keys[0], keys[1]).success
    finally:
        os.umask(previous)
    created = [pipeline.root, *pipeline.root.rglob("*")]
    assert {stat.S_IMODE(p.stat().st_mode) for p in created if p.is_dir()} == {0o750}
    assert {stat.S_IMODE(p.stat().st_mode) for p in created if p.is_file()} == {0o640}
    assert len([p for p in created if p.is_file()]) == 4  # two windows' files and manifests


def test_an_output_directory_that_cannot_be_made_fails_the_run_before_any_wiz_request(pipeline, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    pipeline.env["WIZ_OUTPUT_URI"] = str(blocker / "data")
    result = pipeline.run(pipeline.keys()[0])
    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error.cause
    assert error.cls_name == "OutputError"
    assert f"WIZ_OUTPUT_URI={blocker / 'data'}: can't create the directory" in error.message
    assert not pipeline.sim.graphql_records() and not materialized(pipeline)


def test_a_window_is_written_to_a_temporary_file_and_renamed_so_readers_never_see_it_partial(
    pipeline, sim, monkeypatch
):
    """A rerun that fails mid-window, after some of its rows were written to disk: a reader of the
    window's file sees the previous file, byte for byte, the whole time and afterwards."""
    from wiz_pipeline.collect import windows as collect

    key = pipeline.keys()[4]
    pipeline.overrides["page_size"] = 5  # eight pages in the window
    assert pipeline.run(key).success
    (final,) = pipeline.files()
    before = final.read_bytes()
    monkeypatch.setattr(collect, "MAX_BUFFERED_BYTES", 1)  # each page's rows go to disk at once
    sim.inject(Fault.slow(1.5), skip=3)  # three pages arrive, then the fourth takes its time
    sim.inject(Fault.http_status(503), times=6)  # and never comes: the window fails
    seen: list[bytes | None] = []
    temporary_bytes = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal temporary_bytes
        while not stop.is_set():
            try:
                data = final.read_bytes()
            except FileNotFoundError:
                data = None
            if data != before:
                seen.append(data)
            for path in final.parent.glob(".*.tmp-*"):
                with contextlib.suppress(FileNotFoundError):
                    temporary_bytes = max(temporary_bytes, path.stat().st_size)
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = pipeline.run(key)
    finally:
        stop.set()
        watcher.join()
    assert not result.success
    assert not seen, f"a reader saw {len(seen)} other versions of {final.name} while the window was written"
    assert final.read_bytes() == before
    # The rows that came were written while the run was in the window, but not at the final name.
    assert temporary_bytes > len(b"PAR1"), "no rows reached a temporary file: the test proves nothing"
    assert pipeline.files() == [final]
    assert not [p for p in pipeline.root.rglob("*") if ".tmp-" in p.name]
