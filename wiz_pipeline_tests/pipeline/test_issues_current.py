"""issues_current: the current state of every issue, built through Dagster against the simulator."""

from __future__ import annotations

import copy
import json
import stat
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import msgspec
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from wiz_pipeline.collect import current, spool
from wiz_pipeline.collect.windows import collect_windows
from wiz_pipeline.core.times import parse_time
from wiz_pipeline.data_types.issues import ISSUES
from wiz_pipeline.orchestration.assets.current import asset_key, current_job_name, current_schedule_name
from wiz_pipeline.orchestration.partitions import windows_for
from wiz_pipeline.settings import SettingsError, load_settings
from wiz_pipeline.simulator import Fault, generate_tenant
from wiz_pipeline.wiz import WizClient
from wiz_pipeline_tests.conftest import T0, client_options

ASSET_KEY, JOB_NAME, SCHEDULE_NAME = (
    asset_key(ISSUES),
    current_job_name(ISSUES),
    current_schedule_name(ISSUES),
)
NOW = T0 + timedelta(hours=6, days=1)  # the `sim` fixture's clock
DATA = "issues_current/issues_current.parquet"
MANIFEST = "issues_current/_issues_current.json"


def build(pipeline) -> dg.ExecuteInProcessResult:
    job = pipeline.defs.resolve_job_def(JOB_NAME)
    return job.execute_in_process(instance=pipeline.instance, raise_on_error=False)


def metadata(pipeline) -> dict[str, Any]:
    record = pipeline.instance.fetch_materializations(ASSET_KEY, limit=1).records[0]
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def rows(path) -> dict[str, dict[str, Any]]:
    """The file's rows by id, each its `raw` node decoded; fails if an id is there twice."""
    table = ds.dataset(path).to_table()
    ids = table["id"].to_pylist()
    assert len(ids) == len(set(ids)), "an id is in the file more than once"
    return {i: msgspec.json.decode(r) for i, r in zip(ids, table["raw"].to_pylist(), strict=True)}


def expected(sim, at: datetime | None = None) -> dict[str, dict[str, Any]]:
    return {n["id"]: n for n in sim.tenant.issues_as_of(at or sim.now())}


def same_state(found: dict[str, Any], node: dict[str, Any]) -> bool:
    fields = ("status", "severity", "statusChangedAt", "updatedAt", "serviceTickets", "dueAt")
    return all(found[f] == node[f] for f in fields) and len(found["notes"]) == len(node["notes"])


def add_backlog(sim, count: int = 5) -> list[str]:
    """Issues whose last status change is days before the seed: no issue window ever holds them."""
    ids = []
    for n, record in enumerate(sim.tenant.issues[:count]):
        old = copy.deepcopy(record)
        old.node["id"] = f"backlog-{n:04d}"
        old.changes = [(T0 - timedelta(days=3 + n), "OPEN")]
        old.notes, old.edits = [], []
        sim.tenant.add_issue(old)
        ids.append(old.node["id"])
    return ids


def test_the_file_holds_one_row_per_issue_equal_to_the_simulators_current_state(pipeline, sim):
    backlog = add_backlog(sim)
    result = build(pipeline)
    assert result.success
    path = pipeline.root / DATA
    found, want = rows(path), expected(sim)
    assert set(found) == set(want) and set(backlog) <= set(found)
    assert all(same_state(found[i], want[i]) for i in want)
    # Private, whatever the umask.
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    meta = metadata(pipeline)
    assert meta["dagster/row_count"] == len(want) == meta["new"]
    assert meta["dagster/uri"] == path.as_uri()
    for status in {n["status"] for n in want.values()}:
        assert meta[f"status_{status}"] == sum(n["status"] == status for n in want.values())
    for severity in {n["severity"] for n in want.values()}:
        assert meta[f"severity_{severity}"] == sum(n["severity"] == severity for n in want.values())
    assert meta["requests"] >= meta["pages"] >= 1 and meta["read_passes"] == 1
    assert "First build" in meta["changes"]
    manifest = json.loads((pipeline.root / MANIFEST).read_text())
    assert manifest["rows"] == len(want) and manifest["run_id"] == result.run_id


def test_the_columns_are_those_of_the_issue_windows(pipeline):
    keys = pipeline.keys("issues")
    assert pipeline.run(keys[0], keys[-1], data_type="issues").success
    assert build(pipeline).success
    # The windows' columns less window_start (a window file's own, constant per file).
    windows = pipeline.table("issues").drop(["date", "window_start"]).schema
    assert ds.dataset(pipeline.root / DATA).schema == windows


def _pick(want: dict[str, dict[str, Any]], closed: bool, count: int) -> list[str]:
    ids = sorted(i for i, n in want.items() if (n["status"] in ("RESOLVED", "REJECTED")) == closed)
    assert len(ids) >= count
    return ids[:count]


def test_a_second_build_reports_each_kind_of_change(pipeline, sim):
    assert build(pipeline).success
    before = expected(sim)
    later = NOW + timedelta(minutes=10)
    severity, note, resolve = _pick(before, closed=False, count=3)
    reopen, delete = _pick(before, closed=True, count=2)
    tenant = sim.tenant
    tenant.edit_issue(
        severity, later, severity="CRITICAL" if before[severity]["severity"] != "CRITICAL" else "LOW"
    )
    tenant.add_issue_note(note, later, "assigned to the platform team")
    tenant.set_issue_status(resolve, later, "RESOLVED")
    tenant.set_issue_status(reopen, later, "OPEN")
    tenant.delete_issue(delete, later)
    fresh = copy.deepcopy(tenant.issues[0])
    fresh.node["id"], fresh.changes, fresh.edits = "brand-new-issue", [(later, "OPEN")], []
    tenant.add_issue(fresh)
    sim.set_now(later + timedelta(minutes=5))

    assert build(pipeline).success
    meta = metadata(pipeline)
    counts = {k: meta[k] for k in ("new", "resolved", "reopened", "edited", "gone")}
    assert counts == {"new": 1, "resolved": 1, "reopened": 1, "edited": 2, "gone": 1}
    assert meta["unchanged"] == len(before) - 5 and meta["previous_rows"] == len(before)
    assert "| other edits | 2 |" in meta["changes"] and "| gone | 1 |" in meta["changes"]
    found, want = rows(pipeline.root / DATA), expected(sim)
    assert set(found) == set(want) and delete not in found and "brand-new-issue" in found
    assert all(same_state(found[i], want[i]) for i in want)
    # The edits left statusChangedAt alone: only the full read could see them.
    assert found[severity]["statusChangedAt"] == before[severity]["statusChangedAt"]
    assert found[severity]["severity"] != before[severity]["severity"]

    assert build(pipeline).success  # nothing changed since
    again = metadata(pipeline)
    assert again["unchanged"] == len(want) and again["new"] == again["edited"] == again["gone"] == 0


def test_an_issue_skipped_because_another_disappeared_mid_read_is_read_again(pipeline, sim):
    pipeline.overrides["page_size"] = 20
    assert build(pipeline).success
    first_page = sorted(expected(sim).values(), key=lambda n: (parse_time(n["createdAt"]), n["id"]))[:20]
    gone = first_page[3]["id"]
    # The deletion shows from the second page on: every later issue moves up one place, and the
    # offset cursor of page 2 steps over one of them.
    sim.tenant.delete_issue(gone, NOW + timedelta(seconds=1))
    calls = iter(range(10**6))
    sim.set_now(lambda: NOW if next(calls) == 0 else NOW + timedelta(seconds=1))

    assert build(pipeline).success
    meta = metadata(pipeline)
    assert meta["read_passes"] == 2 and meta["recovered_on_second_pass"] == 1
    # Every issue the API had when the read began: the deleted one was read on page 1, before it went.
    assert meta["gone"] == meta["new"] == 0
    assert set(rows(pipeline.root / DATA)) == set(expected(sim, NOW))
    assert build(pipeline).success  # the next build no longer finds it
    assert metadata(pipeline)["gone"] == 1 and gone not in rows(pipeline.root / DATA)


def test_a_newer_version_from_an_issue_window_written_during_the_read_wins(pipeline, sim):
    pipeline.overrides["page_size"] = 20
    want = expected(sim)
    target = _pick(want, closed=False, count=1)[0]
    changed = NOW + timedelta(minutes=10)
    sim.tenant.set_issue_status(target, changed, "RESOLVED")
    collection = pipeline.collection("issues")
    key = collection.partitions_def.get_partition_key_for_timestamp(changed.timestamp())
    window = windows_for(collection.partitions_def, [key], collection.seed)
    # The read sees the tenant at NOW (the issue still open). While its first page is served, the
    # issue window holding the change is collected and written, as another run would do.
    state = {"writing": False, "written": False}

    def clock() -> datetime:
        if state["writing"]:
            return NOW + timedelta(hours=1)
        if not state["written"]:
            state["writing"] = True
            try:
                options = client_options(
                    api_url=sim.graphql_url,
                    token_url=sim.token_url,
                    client_id=sim.client_id,
                    client_secret=sim.client_secret,
                    max_requests_per_second=1000,
                )
                with WizClient(options) as client:
                    list(collect_windows(client, ISSUES, window, str(pipeline.root), run_id="another-run"))
            finally:
                state["writing"], state["written"] = False, True
        return NOW

    sim.set_now(clock)
    assert build(pipeline).success
    assert state["written"]
    found = rows(pipeline.root / DATA)
    assert found[target]["status"] == "RESOLVED"
    assert found[target]["statusChangedAt"] == expected(sim, changed)[target]["statusChangedAt"]
    assert set(found) == set(want)
    meta = metadata(pipeline)
    assert meta["windows_merged"] == 1 and meta["versions_from_windows"] == 1


def test_an_older_version_from_an_issue_window_loses_to_the_read(pipeline, sim):
    keys = pipeline.keys("issues", hours=30)
    sim.set_now(T0 + timedelta(hours=6))  # the windows see an earlier state of every issue
    assert pipeline.run(keys[0], keys[11], data_type="issues").success
    target = _pick(expected(sim), closed=False, count=1)[0]
    sim.tenant.set_issue_status(target, NOW - timedelta(minutes=1), "RESOLVED")
    sim.set_now(NOW)
    assert build(pipeline).success
    found = rows(pipeline.root / DATA)
    assert found[target]["status"] == "RESOLVED"
    assert all(same_state(found[i], n) for i, n in expected(sim).items())
    meta = metadata(pipeline)
    assert meta["windows_merged"] == 12 and meta["versions_from_windows"] == 0


def test_a_build_failing_mid_read_leaves_the_previous_file_byte_identical(pipeline, sim):
    pipeline.overrides["page_size"] = 20
    assert build(pipeline).success
    folder = pipeline.root / "issues_current"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    sim.tenant.set_issue_status(_pick(expected(sim), closed=False, count=1)[0], NOW, "RESOLVED")
    sim.inject(Fault.http_status(400), skip=2)  # the third page: no retry for a 400
    result = build(pipeline)
    assert not result.success
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # nothing new, not even hidden
    assert len(pipeline.instance.fetch_materializations(ASSET_KEY, limit=10).records) == 1


def test_the_schedule_runs_the_build_at_the_settings_cron_and_only_when_issues_are_collected(pipeline):
    schedule = pipeline.defs.resolve_schedule_def(SCHEDULE_NAME)
    assert schedule.cron_schedule == "20 4 * * *" and schedule.execution_timezone == "UTC"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    pipeline.env["WIZ_ISSUES_CURRENT_CRON"] = "0 */6 * * *"
    defs = pipeline.defs
    schedule = defs.resolve_schedule_def(SCHEDULE_NAME)
    assert schedule.cron_schedule == "0 */6 * * *"
    context = dg.build_schedule_context(
        instance=pipeline.instance,
        scheduled_execution_time=datetime(2025, 9, 13, 6, tzinfo=UTC),
        repository_def=defs.get_repository_def(),
    )
    (request,) = schedule.evaluate_tick(context).run_requests
    assert request.asset_selection is None or ASSET_KEY in request.asset_selection
    assert schedule.job_name == JOB_NAME
    assert defs.resolve_job_def(JOB_NAME).asset_layer.asset_graph.get(ASSET_KEY) is not None

    pipeline.env["WIZ_COLLECT_ISSUES"] = "false"
    defs = pipeline.defs
    assert SCHEDULE_NAME not in {s.name for s in defs.schedules}
    assert JOB_NAME not in {j.name for j in defs.jobs}
    assert ASSET_KEY not in {a.key for a in defs.assets}


def test_a_bad_cron_stops_the_definitions_naming_the_variable():
    with pytest.raises(SettingsError, match="WIZ_ISSUES_CURRENT_CRON='every day' is not a cron expression"):
        load_settings({"WIZ_ISSUES_CURRENT_CRON": "every day"})


def test_a_few_thousand_issues_stream_through_row_groups_with_a_small_buffer(pipeline, sim, monkeypatch):
    sim.tenant = generate_tenant(T0, T0 + timedelta(hours=6), audit_entries=10, issues=3000, seed=5)
    monkeypatch.setattr(current, "ROW_GROUP_ROWS", 250)
    monkeypatch.setattr(spool, "ROW_GROUP_ROWS", 250)
    assert build(pipeline).success
    path = pipeline.root / DATA
    meta = pq.ParquetFile(path).metadata
    # Rows go out as they arrive: row groups of a page or two (500 nodes a page), never the whole.
    assert meta.num_row_groups >= 3000 // 500
    assert max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) <= 500
    assert set(rows(path)) == set(expected(sim))
    assert metadata(pipeline)["row_groups"] == pq.ParquetFile(path).metadata.num_row_groups


def test_the_build_writes_one_object_to_s3_and_replaces_it(s3_pipeline, sim):
    keys = s3_pipeline.keys("issues")
    assert s3_pipeline.run(keys[0], keys[3], data_type="issues").success  # window objects to merge
    assert build(s3_pipeline).success
    assert metadata(s3_pipeline)["windows_merged"] == 4
    sim.tenant.set_issue_status(_pick(expected(sim), closed=False, count=1)[0], NOW, "RESOLVED")
    assert build(s3_pipeline).success
    keys = [k for k in s3_pipeline.keys_in_bucket() if k.startswith("wiz/issues_current/")]
    assert keys == ["wiz/issues_current/_issues_current.json", "wiz/issues_current/issues_current.parquet"]
    table = ds.dataset(
        f"{s3_pipeline.prefix}/issues_current", filesystem=s3_pipeline.s3.filesystem()
    ).to_table()
    assert sorted(table["id"].to_pylist()) == sorted(expected(sim))
    meta = metadata(s3_pipeline)
    assert meta["dagster/uri"] == f"s3://{s3_pipeline.prefix}/{DATA}" and meta["resolved"] == 1
    assert not s3_pipeline.uploads()
    # A build failing mid-read leaves both objects as they were, and no upload behind.
    before = {k: s3_pipeline.read(k) for k in keys}
    s3_pipeline.overrides["page_size"] = 20
    sim.inject(Fault.http_status(400), skip=2)
    assert not build(s3_pipeline).success
    assert {k: s3_pipeline.read(k) for k in keys} == before and not s3_pipeline.uploads()
