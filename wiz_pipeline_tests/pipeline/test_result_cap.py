"""A window past the API's result cap is split by time inside it: every entry once, or the window fails."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow.parquet as pq
import pytest

from wiz_pipeline.collect.split import plan
from wiz_pipeline.core.times import to_micros
from wiz_pipeline.data_types import DATA_TYPES
from wiz_pipeline.data_types.audit_logs import AUDIT_LOGS
from wiz_pipeline.landing.files import manifest_key
from wiz_pipeline.orchestration.checkpoints import checkpoint
from wiz_pipeline.simulator import Tenant, WizSimulator
from wiz_pipeline_tests.conftest import CLIENT_SECRET, T0, audit_entry, small_tenant
from wiz_pipeline_tests.pipeline.conftest import SEED

DENSE = "2025-09-12-22:00"
DENSE_START = datetime(2025, 9, 12, 22, tzinfo=UTC)
WINDOW = timedelta(minutes=30)
CAP_ENDINGS = pytest.mark.parametrize("says_more", [False, True], ids=["no-next-page", "empty-pages-follow"])


def serve(pipeline, tenant: Tenant, *, cap: int = 10_000, says_more: bool = False) -> WizSimulator:
    """A simulator of ``tenant`` for ``pipeline`` (a context manager). A cap below the API's 10,000
    keeps a test small; the collector is told of it as it would be of the real one."""
    expected = {w: _ids_between(tenant, w, w + WINDOW) for w in _window_starts()}
    tenant.encode_audit_nodes()  # served as stored bytes: quick pages
    sim = WizSimulator(tenant, client_id="test-client", client_secret=CLIENT_SECRET, audit_result_cap=cap)
    sim.set_now(T0 + timedelta(days=2))
    sim.audit_cap_says_more = says_more
    sim.expected = expected  # type: ignore[attr-defined]
    pipeline.sim = sim
    return sim


def _window_starts() -> list[datetime]:
    return [T0 + i * WINDOW for i in range(12)]


def _ids_between(tenant: Tenant, start: datetime, end: datetime) -> set[str]:
    seed = datetime.fromisoformat(SEED)
    return {
        node["id"]
        for when, node in zip(tenant.audit_times, tenant.audit_nodes, strict=True)
        if max(start, seed) <= when < end
    }


def lower_cap(monkeypatch, cap: int) -> None:
    monkeypatch.setitem(DATA_TYPES, "audit_logs", replace(AUDIT_LOGS, result_cap=cap))


def window_file(pipeline, start: datetime):
    return next(p for p in pipeline.files() if p.name == f"audit_logs_{start:%Y%m%dT%H%M%SZ}.parquet")


def assert_exactly_once(pipeline, sim, result, start: datetime) -> dict:
    """The window's file holds every entry of the window once; returns its manifest."""
    path = window_file(pipeline, start)
    ids = pq.read_table(path)["id"].to_pylist()
    assert len(ids) == len(set(ids))
    assert set(ids) == sim.expected[start]
    data_key = path.relative_to(pipeline.root).as_posix()
    manifest = json.loads((pipeline.root / manifest_key(data_key)).read_text())
    assert manifest["rows"] == len(ids)
    key = f"{start:%Y-%m-%d-%H:%M}"
    [event] = [e for e in result.get_asset_materialization_events() if e.partition == key]
    metadata = event.materialization.metadata
    assert metadata["dagster/row_count"].value == len(ids)
    assert metadata["queries"].value == manifest["queries"]
    assert metadata["capped_queries"].value == manifest["capped_queries"]
    return manifest


@CAP_ENDINGS
def test_25000_entries_in_one_window_are_collected_exactly_once(pipeline, says_more):
    tenant = small_tenant()
    tenant.add_audit_burst(DENSE_START, DENSE_START + WINDOW, 25_000)
    with serve(pipeline, tenant, says_more=says_more) as sim:
        result = pipeline.run(DENSE)
    assert result.success
    manifest = assert_exactly_once(pipeline, sim, result, DENSE_START)
    assert len(sim.expected[DENSE_START]) > 25_000
    # One query over the window reached the cap; the rest was sized from what it showed.
    assert manifest["queries"] > 2 and manifest["capped_queries"] == 1
    lines = [
        e.user_message for e in pipeline.instance.all_logs(result.run_id) if "sub-queries" in e.user_message
    ]
    assert lines == [
        f"audit_logs: window {DENSE} held more than one query returns; fetched in {manifest['queries']} "
        f"sub-queries (capped queries thrown away: 1), {manifest['rows']} rows."
    ]


@CAP_ENDINGS
def test_60000_entries_inside_five_minutes_of_one_window_are_collected_exactly_once(pipeline, says_more):
    tenant = small_tenant()
    burst = DENSE_START + timedelta(minutes=10)
    tenant.add_audit_burst(burst, burst + timedelta(minutes=5), 60_000)
    with serve(pipeline, tenant, says_more=says_more) as sim:
        result = pipeline.run(DENSE)
    assert result.success
    manifest = assert_exactly_once(pipeline, sim, result, DENSE_START)
    assert len(sim.expected[DENSE_START]) > 60_000
    assert manifest["queries"] > 6 and manifest["capped_queries"] >= 1
    assert manifest["query"]["requests"] == len(sim.graphql_records())


def test_a_second_holding_more_than_the_cap_fails_its_window_alone_with_nothing_written(
    pipeline, monkeypatch
):
    lower_cap(monkeypatch, 300)
    tenant = small_tenant()
    for i in range(400):
        tenant.add_audit_entry(audit_entry(f"2025-09-12T22:10:05.{i:06d}Z", f"burst-{i}"))
    with serve(pipeline, tenant, cap=300):
        keys = pipeline.keys()
        result = pipeline.run(keys[0], keys[5])
    assert not result.success
    written = pipeline.instance.get_materialized_partitions(pipeline.collection().asset_key)
    assert written == set(keys[:6]) - {DENSE}
    assert not any(p.name.startswith("audit_logs_20250912T220000Z") for p in pipeline.files())
    assert not list(pipeline.root.rglob("*20250912T220000Z*"))  # no manifest, no temporary file
    failure = result.get_step_failure_events()[0].step_failure_data.error.to_string()
    assert "window 2025-09-12T22:00:00Z .. 2025-09-12T22:30:00Z can't be collected" in failure
    assert "the second 2025-09-12T22:10:0" in failure and "not written" in failure
    assert checkpoint(pipeline.instance, pipeline.collection()) == DENSE_START


def test_a_span_with_one_dense_window_splits_that_window_only(pipeline, monkeypatch):
    lower_cap(monkeypatch, 1_000)
    tenant = small_tenant()  # about 50 entries a window
    tenant.add_audit_burst(DENSE_START, DENSE_START + WINDOW, 3_000)
    with serve(pipeline, tenant, cap=1_000) as sim:
        keys = pipeline.keys()
        result = pipeline.run(keys[0], keys[5])
    assert result.success
    manifests = [assert_exactly_once(pipeline, sim, result, start) for start in _window_starts()[:6]]
    # The dense window is split; the run takes the window after it to be alike and splits it up
    # front too (a few more requests, where a dense one would have cost a capped query); from then
    # on each quiet window is one query again.
    assert [m["queries"] > 1 for m in manifests] == [False, False, True, True, False, False]
    ids = pipeline.table()["id"].to_pylist()
    assert len(ids) == len(set(ids)) == sum(len(sim.expected[w]) for w in _window_starts()[:6])


def test_a_run_sizes_its_later_dense_windows_from_the_first_and_the_next_run_from_its_neighbours(
    pipeline, monkeypatch
):
    lower_cap(monkeypatch, 1_000)
    tenant = small_tenant()
    tenant.add_audit_burst(T0 + 2 * WINDOW, T0 + 7 * WINDOW, 15_000)  # five windows of about 3,000
    with serve(pipeline, tenant, cap=1_000) as sim:
        keys = pipeline.keys()
        first = pipeline.run(keys[2], keys[5])
        before = len(sim.graphql_records())
        second = pipeline.run(keys[6])
        requests = len(sim.graphql_records()) - before
    assert first.success and second.success
    manifests = [assert_exactly_once(pipeline, sim, first, T0 + i * WINDOW) for i in range(2, 6)]
    assert all(m["queries"] > 1 for m in manifests)
    # The run's one query over its four windows reached the cap, then (at least) the first window's
    # own; the later windows were split up front from what the first one held: no capped query more.
    capped = [m["capped_queries"] for m in manifests]
    assert capped[0] >= 2 and capped[1:] == [1, 1, 1]
    # The next run starts from its neighbours' rows: no capped query, every request a page kept.
    manifest = assert_exactly_once(pipeline, sim, second, T0 + 6 * WINDOW)
    assert manifest["capped_queries"] == 0 and manifest["queries"] > 1
    assert requests == manifest["query"]["pages"]


# -- planning the sub-queries of a capped range (no server needed) ----------------------------------


def _check_plan(ranges, start: datetime, end: datetime) -> None:
    assert ranges[0][0] == start and ranges[-1][1] == end
    assert all(a < b for a, b in ranges) and all(b == c for (_, b), (c, _) in itertools.pairwise(ranges))
    assert (start, end) not in ranges  # every capped range shrinks
    assert all((a - start).total_seconds() % 1 == 0 for a, _ in ranges)


@pytest.mark.parametrize("seed", range(5))
def test_a_capped_range_is_planned_as_disjoint_whole_second_ranges_covering_it(seed):
    rng = np.random.default_rng(seed)
    start = DENSE_START + timedelta(microseconds=int(rng.integers(0, 10**6)))
    end = start + timedelta(seconds=float(rng.uniform(1.5, 86_400)))
    span = to_micros(end) - to_micros(start)
    micros = to_micros(start) + rng.integers(0, span, size=int(rng.integers(0, 10_000)))
    _check_plan(plan(start, end, micros, 10_000), start, end)


def test_a_burst_gets_short_ranges_and_the_quiet_rest_of_a_day_a_few_long_ones():
    start, end = DENSE_START, DENSE_START + timedelta(days=1)
    burst = to_micros(DENSE_START + timedelta(hours=12))
    # A newest-first answer: the last 10,000 entries of a burst of 1,000 a second.
    micros = burst + np.arange(10_000) * 1_000
    ranges = plan(start, end, micros, 10_000)
    _check_plan(ranges, start, end)
    assert len(ranges) < 40
    # Where the answer showed 1,000 a second, no range (with its padding) is expected to pass 7,000.
    assert all((b - a).total_seconds() <= 5 for a, b in ranges if a.hour == 12 and a.minute == 0)
