"""vulnerability_findings_current and configuration_findings_current: the last full read plus the
windows written since, built through Dagster against the simulator."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import dagster as dg
import msgspec
import pyarrow.dataset as ds
import pytest

from wiz_pipeline.core.times import format_time, parse_time
from wiz_pipeline.data_types import DATA_TYPES
from wiz_pipeline.orchestration.assets.current import asset_key, current_job_name, current_schedule_name
from wiz_pipeline.simulator import generate_tenant
from wiz_pipeline_tests.conftest import HISTORY, T0

KINDS = ("vulnerability_findings", "configuration_findings")
NOW = T0 + HISTORY + timedelta(days=1)  # the `sim` fixture's clock


@pytest.fixture(params=KINDS)
def kind(request, pipeline, sim) -> str:
    """A data type with a current table, turned on, over a tenant of a few hundred findings."""
    name = request.param
    sim.tenant = generate_tenant(
        T0, T0 + HISTORY, audit_entries=10, issues=5, **{name: 400}, seed=23, finding_delete_share=0.0
    )
    dt = DATA_TYPES[name]
    pipeline.env[dt.enabled_by] = "true"
    pipeline.env[dt.checkpoint_variable] = pipeline.env["AUDIT_SINCE_TIME"]
    return name


def dataset(kind: str) -> str:
    return f"{kind}_current"


def build(pipeline, kind: str, full_read: bool | None = None) -> dg.ExecuteInProcessResult:
    job = pipeline.defs.resolve_job_def(current_job_name(DATA_TYPES[kind]))
    config = None
    if full_read is not None:
        config = {"ops": {f"wiz__{dataset(kind)}": {"config": {"full_read": full_read}}}}
    return job.execute_in_process(instance=pipeline.instance, run_config=config, raise_on_error=False)


def metadata(pipeline, kind: str) -> dict[str, Any]:
    key = asset_key(DATA_TYPES[kind])
    record = pipeline.instance.fetch_materializations(key, limit=1).records[0]
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def manifest_path(pipeline, kind: str):
    return pipeline.root / dataset(kind) / f"_{dataset(kind)}.json"


def rows(pipeline, kind: str) -> dict[str, dict[str, Any]]:
    """The file's rows by id, each its `raw` node decoded; fails if an id is there twice."""
    table = ds.dataset(pipeline.root / dataset(kind) / f"{dataset(kind)}.parquet").to_table()
    ids = table["id"].to_pylist()
    assert len(ids) == len(set(ids)), "an id is in the file more than once"
    return {i: msgspec.json.decode(r) for i, r in zip(ids, table["raw"].to_pylist(), strict=True)}


def expected(sim, kind: str, at: datetime | None = None) -> dict[str, dict[str, Any]]:
    """What the settings collect of the simulator's current state: every status; for configuration
    findings only the results of WIZ_CONFIGURATION_FINDING_RESULTS (default FAIL)."""
    nodes = sim.tenant.findings_as_of(kind, at or sim.now())
    if kind == "configuration_findings":
        nodes = [n for n in nodes if n["result"] == "FAIL"]
    return {n["id"]: n for n in nodes}


def assert_same(found: dict[str, dict[str, Any]], want: dict[str, dict[str, Any]]) -> None:
    assert set(found) == set(want)
    for i, node in want.items():
        assert (found[i]["updatedAt"], found[i]["status"]) == (node["updatedAt"], node["status"]), i


def graphql_requests(sim) -> int:
    """Requests for the collected findings: not those a build between full reads sends for the
    configuration findings whose result left the collected ones (tested on their own below)."""
    return sum(1 for r in sim.graphql_records() if not _for_leavers(r))


def _for_leavers(record) -> bool:
    filters = (record.variables or {}).get("filterBy") or {}
    return "FAIL" not in filters.get("result", ["FAIL"])


def collect_window(pipeline, kind: str, at: datetime) -> None:
    """Collect the window of ``kind`` holding ``at``, as its schedule would once it closes."""
    partitions = pipeline.collection(kind).partitions_def
    assert pipeline.run(partitions.get_partition_key_for_timestamp(at.timestamp()), data_type=kind).success


def pick(want: dict[str, dict[str, Any]], count: int, status: str = "OPEN") -> list[str]:
    ids = sorted(i for i, n in want.items() if n["status"] == status)
    assert len(ids) >= count
    return ids[:count]


def test_the_first_build_reads_everything_and_holds_the_simulators_current_state(pipeline, sim, kind):
    result = build(pipeline, kind)
    assert result.success
    want = expected(sim, kind)
    assert_same(rows(pipeline, kind), want)
    meta = metadata(pipeline, kind)
    assert meta["full_read"] is True and meta["new"] == meta["dagster/row_count"] == len(want)
    assert meta["last_full_read"] == meta["read_started"] and meta["requests"] >= 1
    for status in {n["status"] for n in want.values()}:
        assert meta[f"status_{status}"] == sum(n["status"] == status for n in want.values())
    for severity in {
        n["CVSSSeverity" if kind == "vulnerability_findings" else "severity"] for n in want.values()
    }:
        assert meta[f"severity_{severity}"] > 0
    # The full read sent the data type's filters: every status, or the chosen results (by ranges of
    # updatedAt for configuration findings, whose queries have a result cap).
    filters = dict(pipeline.collection(kind).definition.filters)
    for record in sim.graphql_records():
        sent = dict(record.variables["filterBy"])
        assert ("updatedAt" in sent) is (kind == "configuration_findings")
        assert {k: v for k, v in sent.items() if k != "updatedAt"} == filters
    manifest = json.loads(manifest_path(pipeline, kind).read_text())
    assert manifest["full_read"] is True and manifest["run_id"] == result.run_id
    assert manifest["last_full_read"] == manifest["read_started"]


def test_between_full_reads_updates_come_from_the_windows_and_deletions_wait_for_a_full_read(
    pipeline, sim, kind
):
    assert build(pipeline, kind).success
    full = json.loads(manifest_path(pipeline, kind).read_text())
    before = expected(sim, kind)
    later = NOW + timedelta(minutes=10)
    resolve, edit, delete = pick(before, 3)
    tenant = sim.tenant
    tenant.update_finding(kind, resolve, later, status="RESOLVED")
    tenant.update_finding(kind, edit, later + timedelta(seconds=1), status="IN_PROGRESS")
    tenant.delete_finding(kind, delete, later)
    sim.set_now(later + timedelta(hours=1))
    collect_window(pipeline, kind, later)

    requests = graphql_requests(sim)
    assert build(pipeline, kind).success
    assert graphql_requests(sim) == requests  # no API request: the previous file and the windows
    meta = metadata(pipeline, kind)
    # Configuration findings: one request, for the findings whose result left FAIL (none here).
    leavers = 1 if kind == "configuration_findings" else 0
    assert meta["full_read"] is False and meta["requests"] == leavers and meta["windows_merged"] >= 1
    counts = {k: meta[k] for k in ("new", "resolved", "reopened", "edited", "gone")}
    assert counts == {"new": 0, "resolved": 1, "reopened": 0, "edited": 1, "gone": 0}
    found, want = rows(pipeline, kind), expected(sim, kind)
    # The deleted finding is still there: no window holds a deletion.
    assert delete in found and delete not in want
    assert_same({i: n for i, n in found.items() if i != delete}, want)
    manifest = json.loads(manifest_path(pipeline, kind).read_text())
    assert manifest["windows"] and manifest["full_read"] is False
    assert meta["last_full_read"] == manifest["last_full_read"] == full["read_started"]

    # The next build extends this one: a change in a window written since is in it.
    reopen = resolve
    tenant.update_finding(kind, reopen, later + timedelta(hours=2), status="OPEN")
    sim.set_now(later + timedelta(hours=3))
    collect_window(pipeline, kind, later + timedelta(hours=2))
    assert build(pipeline, kind).success
    assert graphql_requests(sim) == requests + 1  # the window's one request, none of the build's
    meta = metadata(pipeline, kind)
    assert (
        meta["full_read"] is False
        and meta["reopened"] == 1
        and meta["last_full_read"] == full["read_started"]
    )
    assert rows(pipeline, kind)[reopen]["status"] == "OPEN"
    requests = graphql_requests(sim)

    # Forced from the run's config, a full read drops it.
    assert build(pipeline, kind, full_read=True).success
    assert graphql_requests(sim) > requests
    meta = metadata(pipeline, kind)
    assert meta["full_read"] is True and "run" in meta["full_read_reason"] and meta["gone"] == 1
    assert_same(rows(pipeline, kind), expected(sim, kind))


def test_full_read_days_zero_reads_everything_at_every_build(pipeline, sim, kind):
    setting = DATA_TYPES[kind].current.full_read_days_setting
    pipeline.env[setting] = "0"
    assert build(pipeline, kind).success
    requests = graphql_requests(sim)
    assert build(pipeline, kind).success
    assert graphql_requests(sim) > requests
    meta = metadata(pipeline, kind)
    assert meta["full_read"] is True and f"{setting}=0" in meta["full_read_reason"]


@pytest.mark.parametrize(("days_ago", "full"), [(8, True), (6, False)])
def test_a_full_read_is_due_once_the_last_is_full_read_days_old(pipeline, sim, kind, days_ago, full):
    assert build(pipeline, kind).success  # WIZ_<TYPE>_FULL_READ_DAYS: the default, 7
    path = manifest_path(pipeline, kind)
    manifest = json.loads(path.read_text())
    last = parse_time(manifest["last_full_read"]) - timedelta(days=days_ago)
    manifest["last_full_read"] = format_time(last)
    path.write_text(json.dumps(manifest))
    requests = graphql_requests(sim)
    assert build(pipeline, kind).success
    meta = metadata(pipeline, kind)
    assert meta["full_read"] is full and (graphql_requests(sim) > requests) is full
    # An incremental build carries the last full read forward; a full read starts a new one.
    assert (meta["last_full_read"] == format_time(last)) is not full


def test_the_assets_exist_only_when_their_data_type_is_collected(pipeline):
    defs = pipeline.defs
    names = {j.name for j in defs.jobs}
    for kind in KINDS:
        dt = DATA_TYPES[kind]
        assert current_job_name(dt) not in names
        pipeline.env[dt.enabled_by] = "true"
    defs = pipeline.defs
    for kind in KINDS:
        dt = DATA_TYPES[kind]
        schedule = defs.resolve_schedule_def(current_schedule_name(dt))
        assert schedule.cron_schedule == dt.current.cron_default and schedule.job_name == current_job_name(dt)
        spec = defs.resolve_assets_def(asset_key(dt)).specs_by_key[asset_key(dt)]
        assert "last full read" in spec.description and "full_read" in spec.description
        assert not defs.resolve_assets_def(asset_key(dt)).partitions_def


@pytest.mark.parametrize("kind", ["configuration_findings"], indirect=True)
def test_a_configuration_finding_that_passes_leaves_at_the_next_build_without_a_full_read(
    pipeline, sim, kind
):
    # Its window query asks for FAIL only, so its new PASS version is in no window: the build between
    # full reads asks for the findings updated since whose result is no longer collected.
    assert build(pipeline, kind).success
    fixed, refailed = pick(expected(sim, kind), 2)
    later = NOW + timedelta(minutes=10)
    sim.tenant.update_finding(kind, fixed, later, result="PASS", status="RESOLVED")
    sim.tenant.update_finding(kind, refailed, later, result="PASS", status="RESOLVED")
    sim.tenant.update_finding(kind, refailed, later + timedelta(minutes=5), result="FAIL", status="OPEN")
    sim.set_now(later + timedelta(hours=1))
    collect_window(pipeline, kind, later)
    requests = len(sim.graphql_records())
    assert build(pipeline, kind).success
    asked = sim.graphql_records()[requests:]
    others = ["PASS", "ERROR", "NOT_ASSESSED"]
    assert asked and all(r.variables["filterBy"]["result"] == others for r in asked)
    found = rows(pipeline, kind)
    assert fixed not in found and found[refailed]["result"] == "FAIL"
    assert_same(found, expected(sim, kind))
    meta = metadata(pipeline, kind)
    assert meta["full_read"] is False and meta["gone"] == 1
    assert json.loads(manifest_path(pipeline, kind).read_text())["left_results"] == 1
    # With every result collected there is nothing to leave: no request between full reads.
    pipeline.env["WIZ_CONFIGURATION_FINDING_RESULTS"] = "PASS,FAIL,ERROR,NOT_ASSESSED"
    assert build(pipeline, kind).success  # the filters changed: a full read
    requests = len(sim.graphql_records())
    assert build(pipeline, kind).success
    assert len(sim.graphql_records()) == requests


@pytest.mark.parametrize("kind", ["configuration_findings"], indirect=True)
def test_a_full_read_past_the_result_cap_is_made_of_sub_queries_by_time(pipeline, sim, kind, monkeypatch):
    # The cap lowered on both sides, so that a few hundred findings exceed it.
    dt = DATA_TYPES[kind]
    monkeypatch.setitem(DATA_TYPES, kind, replace(dt, result_cap=60))
    sim.configuration_result_cap = 60
    pipeline.overrides["page_size"] = 20
    assert len(expected(sim, kind)) > 60
    assert build(pipeline, kind).success
    assert_same(rows(pipeline, kind), expected(sim, kind))
    assert metadata(pipeline, kind)["requests"] > len(expected(sim, kind)) // 20
    # Every query below the cap asked for a range of updatedAt.
    asked = [r.variables["filterBy"] for r in sim.graphql_records() if r.variables]
    assert all("updatedAt" in f and f["result"] == ["FAIL"] for f in asked)


@pytest.mark.parametrize("kind", ["vulnerability_findings"], indirect=True)
def test_an_older_version_in_a_window_written_since_loses_to_the_previous_build(pipeline, sim, kind):
    # The windows see the tenant before its later updates (as a re-collected window would), so they
    # hold older versions of every finding updated since: the previous build's later ones stay.
    changed = {i for i, n in expected(sim, kind).items() if n["updatedAt"] > format_time(T0 + HISTORY / 2)}
    assert build(pipeline, kind).success
    sim.set_now(T0 + HISTORY / 2)
    keys = pipeline.keys(kind)
    assert pipeline.run(keys[0], keys[-1], data_type=kind).success
    sim.set_now(NOW)
    assert build(pipeline, kind).success
    meta = metadata(pipeline, kind)
    # The windows' versions of the others are the same as the previous build's; on a tie, a window's wins.
    assert meta["full_read"] is False and meta["windows_merged"] >= 1 and meta["versions_from_windows"] > 0
    assert meta["unchanged"] == meta["dagster/row_count"] and changed
    assert_same(rows(pipeline, kind), expected(sim, kind))
