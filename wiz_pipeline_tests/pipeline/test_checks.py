"""Asset checks per window, recorded with its materialization, and the metadata a person reads."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import dagster as dg
import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from wiz_pipeline.core.records import Nodes
from wiz_pipeline.data_types import DATA_TYPES
from wiz_pipeline.landing import quality
from wiz_pipeline.landing.tables import file_schema, table_for
from wiz_pipeline.simulator import Fault

WINDOW_CHECKS = list(quality.CHECKS)


def check_records(pipeline, data_type: str = "audit_logs") -> dict[tuple[str, str], object]:
    """The latest evaluation of each (check, window) the instance holds."""
    key = pipeline.collection(data_type).asset_key
    found = {}
    for name in WINDOW_CHECKS:
        history = pipeline.instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(key, name), limit=1000
        )
        for record in reversed(history):  # oldest first: the latest wins
            found[name, record.partition] = record
    return found


def evaluation(record) -> dg.AssetCheckEvaluation:
    return record.event.dagster_event.event_specific_data


def test_every_window_records_each_check_with_its_materialization(pipeline):
    keys = pipeline.keys()[:3]
    result = pipeline.run(keys[0], keys[-1])
    assert result.success
    records = check_records(pipeline)
    assert set(records) == {(name, k) for name in WINDOW_CHECKS for k in keys}
    for (name, key), record in records.items():
        assert record.status == AssetCheckExecutionRecordStatus.SUCCEEDED, (name, key)
        assert record.run_id == result.run_id
        assert evaluation(record).passed
    # Each result targets its window's materialization, so the UI shows it as the current status of
    # that partition's check (a result targeting none is shown as out of date).
    infos = pipeline.instance.event_log_storage.get_asset_check_partition_info(
        [dg.AssetCheckKey(pipeline.collection().asset_key, name) for name in WINDOW_CHECKS]
    )
    assert {(i.check_key.name, i.partition_key) for i in infos} == set(records)
    assert all(i.is_current and i.latest_target_materialization_storage_id for i in infos)
    # Each window's checks tell its own rows, as its materialization does.
    for event in result.get_asset_materialization_events():
        row_count = event.materialization.metadata["dagster/row_count"].value
        assert evaluation(records["ids_unique", event.partition]).metadata["rows"].value == row_count


def test_a_field_no_column_reads_gives_a_warning_and_stays_in_raw(pipeline, sim):
    keys = pipeline.keys()
    pipeline.overrides["page_size"] = 20
    sim.inject(Fault.extra_field("riskScore"), times=1)  # one page of the first window
    assert pipeline.run(keys[0]).success  # a warning, never a failure
    assert pipeline.run(keys[1]).success
    records = check_records(pipeline)
    first = evaluation(records["no_unknown_fields", keys[0]])
    assert not first.passed
    assert first.severity == dg.AssetCheckSeverity.WARN
    assert first.metadata["unknown_fields"].value == "riskScore"
    assert "riskScore" in first.description
    assert evaluation(records["no_unknown_fields", keys[1]]).passed
    assert all(
        evaluation(records[name, keys[0]]).passed for name in WINDOW_CHECKS if name != "no_unknown_fields"
    )
    raw = [msgspec.json.decode(r) for r in pipeline.table()["raw"].to_pylist()]
    assert any(node.get("riskScore") == 42 for node in raw)


def test_repeated_ids_fail_the_check_with_error_and_the_run_but_the_window_is_written(pipeline, sim):
    keys = pipeline.keys()
    sim.inject(Fault.numeric_ids(), times=1)  # every node of the page gets the id 1
    result = pipeline.run(keys[0])
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error.cause
    assert failure.cls_name == "CheckFailedError"
    assert "ids_unique" in failure.message and keys[0] in failure.message
    # Materialized (the file is whole, as received), with the failed check next to it.
    assert pipeline.instance.get_materialized_partitions(pipeline.collection().asset_key) == {keys[0]}
    record = check_records(pipeline)["ids_unique", keys[0]]
    assert record.status == AssetCheckExecutionRecordStatus.FAILED
    check = evaluation(record)
    assert check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["repeated_ids"].value > 0
    ids = pipeline.table()["id"].to_pylist()
    assert ids.count("1") > 1


def test_records_outside_the_window_or_before_the_seed_fail_their_checks():
    # The client cuts windows exactly, so no simulator answer can route a record into the wrong
    # window: the check's own arithmetic is tested on batches made by hand.
    data_type = DATA_TYPES["audit_logs"]
    start, end = datetime(2025, 9, 12, 21, tzinfo=UTC), datetime(2025, 9, 12, 21, 30, tzinfo=UTC)
    seed = datetime(2025, 9, 12, 21, 0, 9, tzinfo=UTC)
    q = quality.WindowQuality(table_for(data_type), start, end, seed, data_type.summary_columns)
    times = ["2025-09-12T21:00:00Z", "2025-09-12T21:10:00Z", "2025-09-12T21:30:00Z", "2025-09-12T21:29:59Z"]
    nodes = [
        {"id": f"e{i}", "timestamp": t, "action": "Login", "status": "SUCCESS"} for i, t in enumerate(times)
    ]
    raw = [msgspec.Raw(msgspec.json.encode(n)) for n in nodes]
    micros = np.array([int(datetime.fromisoformat(t).timestamp() * 1e6) for t in times], np.int64)
    batch_nodes = Nodes(raw, micros, np.ones(len(raw), bool))
    q.note(batch_nodes, table_for(data_type).to_batch(batch_nodes))
    outcomes = {o.name: o for o in q.outcomes(file_schema(table_for(data_type)))}
    assert outcomes["records_in_window"].metadata["records_outside"] == 1
    assert not outcomes["records_in_window"].passed and outcomes["records_in_window"].error
    assert outcomes["none_before_seed"].metadata["records_before_seed"] == 1
    assert not outcomes["none_before_seed"].passed
    assert outcomes["ids_unique"].passed and outcomes["columns_as_declared"].passed
    other = table_for(data_type).schema  # without window_start
    assert not {o.name: o for o in q.outcomes(other)}["columns_as_declared"].passed
    other = pa.schema([*table_for(data_type).schema][:-1])
    assert not {o.name: o for o in q.outcomes(other)}["columns_as_declared"].passed


def test_the_window_metadata_has_a_markdown_table_of_its_top_values(pipeline):
    keys = pipeline.keys()
    assert pipeline.run(keys[0], keys[1]).success
    assert pipeline.run(keys[0], keys[1], data_type="issues").success
    # The simulator's issues carry only fields the columns read: every issue check passes.
    issue_checks = check_records(pipeline, "issues")
    assert len(issue_checks) == 2 * len(WINDOW_CHECKS)
    assert all(evaluation(r).passed for r in issue_checks.values())
    for data_type, columns in (("audit_logs", ("action", "status")), ("issues", ("severity", "status"))):
        records = pipeline.instance.fetch_materializations(
            pipeline.collection(data_type).asset_key, limit=10
        ).records
        record = next(r for r in records if r.partition_key == keys[1])
        table = record.asset_materialization.metadata["summary"]
        assert isinstance(table, dg.MarkdownMetadataValue)
        path = record.asset_materialization.metadata["path"].value
        rows = pq.read_table(path)
        lines = [line.strip("| ").split(" | ") for line in table.value.splitlines()[2:]]
        for column in columns:
            counts = Counter(v or "(none)" for v in rows[column].to_pylist())
            shown = {value: int(n) for name, value, n in lines if name == column and value != "(others)"}
            assert len(shown) == min(quality.TOP_VALUES, len(counts)) > 0
            assert all(counts[value] == n for value, n in shown.items()), (column, table.value)
            assert min(shown.values()) >= max((n for v, n in counts.items() if v not in shown), default=0)


def test_issues_current_records_its_checks_with_its_build(pipeline):
    from wiz_pipeline.data_types.issues import ISSUES
    from wiz_pipeline.orchestration.assets.current import asset_key, current_job_name

    ASSET_KEY, JOB_NAME = asset_key(ISSUES), current_job_name(ISSUES)

    result = pipeline.defs.resolve_job_def(JOB_NAME).execute_in_process(instance=pipeline.instance)
    assert result.success
    keys = [dg.AssetCheckKey(ASSET_KEY, name) for name in ("one_row_per_id", "not_older_than_read")]
    latest = pipeline.instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    assert set(latest) == set(keys)
    for record in latest.values():
        assert record.status == AssetCheckExecutionRecordStatus.SUCCEEDED
        assert record.run_id == result.run_id
    rows = pipeline.instance.get_latest_materialization_event(ASSET_KEY).asset_materialization.metadata
    check = evaluation(latest[keys[0]])
    assert check.metadata["rows"].value == rows["dagster/row_count"].value > 0
    assert check.metadata["repeated_ids"].value == 0
    assert evaluation(latest[keys[1]]).metadata["older_than_read"].value == 0


def test_issues_current_counts_a_row_older_than_the_read_and_a_repeated_id():
    # The merge is right by construction, so its mistakes are made by hand: keeping the older of an
    # issue's two read versions, then keeping both.
    from wiz_pipeline.collect import current
    from wiz_pipeline.collect.changes import Keys
    from wiz_pipeline.collect.spool import Spool
    from wiz_pipeline.data_types.issues import ISSUES

    def node(changed: str, updated: str) -> bytes:
        return msgspec.json.encode({"id": "i1", "statusChangedAt": changed, "updatedAt": updated})

    older = node("2025-09-12T21:00:00Z", "2025-09-12T21:00:00Z")
    edited = node("2025-09-12T21:00:00Z", "2025-09-12T21:05:00Z")
    with Spool(table_for(ISSUES), ISSUES.current.version_columns) as spool:
        spool.add(table_for(ISSUES).rows_to_batch([older, edited]))
        right = spool.latest(2, base_wins_ties=True)
        assert right.tolist() == [False, True]
        assert spool.older_than_base(right, 2) == 0
        assert spool.older_than_base(np.array([True, False]), 2) == 1
        fp = spool.fingerprints()
    both = current._Written(None, 2, 0, 1, {}, {}, Keys(fp, np.zeros(2, bool), np.zeros(2, np.int64)))
    outcomes = {o.name: o for o in current._checks(ISSUES, both, 0, 1, True)}
    assert not outcomes["one_row_per_id"].passed and outcomes["one_row_per_id"].metadata["repeated_ids"] == 1
    assert not outcomes["not_older_than_read"].passed and outcomes["not_older_than_read"].error


def test_every_asset_check_job_schedule_and_sensor_is_described(pipeline):
    defs = pipeline.defs
    described: dict[str, str | None] = {}
    for assets_def in defs.resolve_all_asset_specs():
        described[f"asset {assets_def.key.to_user_string()}"] = assets_def.description
    for key in defs.resolve_asset_graph().asset_check_keys:
        spec = defs.resolve_assets_def(key.asset_key).get_spec_for_check_key(key)
        described[f"check {key.to_user_string()}"] = spec.description
    for job in defs.resolve_all_job_defs():
        if not job.name.startswith("__"):  # Dagster's own implicit asset job
            described[f"job {job.name}"] = job.description
    for schedule in defs.schedules or []:
        described[f"schedule {schedule.name}"] = schedule.description
    for sensor in defs.sensors or []:
        described[f"sensor {sensor.name}"] = sensor.description
    assert len([k for k in described if k.startswith("check ")]) == 2 * len(WINDOW_CHECKS) + 2
    assert len([k for k in described if k.startswith("schedule ")]) == 3
    # A sentence or more each, saying more than the name does.
    short = {k: v for k, v in described.items() if not v or len(v.split()) < 12}
    assert not short
    for name, text in described.items():
        if name.startswith("asset "):
            assert "fail" in text, name  # what a failure means
