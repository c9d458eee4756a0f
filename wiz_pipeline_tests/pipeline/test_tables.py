"""What a node becomes in Parquet: typed columns, `raw`, odd values, streaming row groups."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import msgspec
import pyarrow.parquet as pq

from wiz_pipeline.collect import windows as collect
from wiz_pipeline.core.times import parse_time
from wiz_pipeline.data_types import DATA_TYPES
from wiz_pipeline.landing.tables import table_for
from wiz_pipeline.simulator import IssueRecord
from wiz_pipeline_tests.conftest import audit_entry


def test_an_audit_entry_gets_typed_columns_and_its_raw_node():
    node = {
        **audit_entry("2023-08-24T08:54:21.44203Z", "e1"),
        "action": " user Login",
        "sourceIP": None,
        "actionParameters": {"scopes": ["read:issues"], "groups": None},
        "serviceAccount": {"id": "sa1", "name": "op-us"},
        "user": {"id": "123abc", "name": "admin11"},
        "newField": {"added": "later"},
    }
    sent = json.dumps(node, indent=1).encode()  # spacing, key order and escapes as the API chose
    row = table_for(DATA_TYPES["audit_logs"]).rows_to_batch([sent]).to_pylist()[0]
    assert row["timestamp"] == datetime(2023, 8, 24, 8, 54, 21, 442030, tzinfo=UTC)
    assert row["action"] == "user Login"
    assert (row["user_id"], row["user_name"]) == ("123abc", "admin11")
    assert (row["service_account_id"], row["service_account_name"]) == ("sa1", "op-us")
    assert row["source_ip"] is None
    assert json.loads(row["action_parameters"]) == {"scopes": ["read:issues"], "groups": None}
    assert row["raw"].encode() == sent  # byte for byte, with the field nobody knew about


def test_odd_values_never_fail_a_window():
    node = {
        "id": "e2",
        "timestamp": "not a time",
        "action": 42,
        "user": "just a string",
        "serviceAccount": None,
        "actionParameters": None,
    }
    row = table_for(DATA_TYPES["audit_logs"]).rows_to_batch([json.dumps(node).encode()]).to_pylist()[0]
    assert row["timestamp"] is None and row["action"] == "42" and row["user_id"] is None
    assert row["action_parameters"] is None and json.loads(row["raw"]) == node


def test_an_issue_is_flattened_by_its_kind_of_source_rule(sim):
    now = sim.now()
    nodes = sim.tenant.issues_as_of(now)
    rows = table_for(DATA_TYPES["issues"]).rows_to_batch([json.dumps(n).encode() for n in nodes]).to_pylist()
    by_kind = {r["source_rule_type"]: r for r in rows}
    assert {"Control", "CloudEventRule", "CloudConfigurationRule"} <= set(by_kind)
    for row, node in zip(rows, nodes, strict=True):
        assert row["id"] == node["id"] and row["severity"] == node["severity"]
        assert row["status_changed_at"].tzinfo is not None
        rule = node.get("sourceRule") or {}
        assert row["source_rule_id"] == rule.get("id")
        snapshot = node.get("entitySnapshot") or {}
        assert row["entity_cloud_platform"] == snapshot.get("cloudPlatform")
        assert row["entity_region"] == snapshot.get("region")
        assert json.loads(row["raw"]) == node
        if node.get("projects") is not None:
            assert json.loads(row["projects"]) == node["projects"]


def test_rows_are_streamed_in_row_groups_and_memory_stays_bounded(pipeline, monkeypatch):
    # Row groups would only be written at 10,000 rows; the byte bound across all files must force them.
    monkeypatch.setattr(collect, "MAX_BUFFERED_BYTES", 60_000)
    keys = pipeline.keys()
    peaks: list[int] = []
    original = collect._bound_memory

    def spy(writers):
        original(writers)
        peaks.append(sum(w.pending_bytes for w in writers.values()))

    monkeypatch.setattr(collect, "_bound_memory", spy)
    assert pipeline.run(keys[0], keys[-1]).success
    groups = [pq.read_metadata(f).num_row_groups for f in pipeline.files()]
    assert sum(groups) > len(groups)  # windows of ~50 rows came in several row groups
    assert peaks and max(peaks) <= 60_000
    seed = datetime(2025, 9, 12, 21, 0, 9, tzinfo=UTC)
    assert pipeline.table().num_rows == sum(1 for t in pipeline.sim.tenant.audit_times if t >= seed)


def test_an_issue_lands_again_in_the_window_of_its_status_change(pipeline, sim):
    changed = datetime(2025, 9, 12, 21, 40, tzinfo=UTC)
    resolved = datetime(2025, 9, 12, 22, 15, tzinfo=UTC)
    record = IssueRecord(
        node={"id": "moving-issue", "severity": "HIGH", "type": "THREAT_DETECTION"},
        changes=[(changed, "OPEN"), (resolved, "RESOLVED")],
    )
    sim.tenant.add_issue(record)
    keys = pipeline.keys("issues")
    sim.set_now(datetime(2025, 9, 12, 22, 0, tzinfo=UTC))
    assert pipeline.run(keys[1], data_type="issues").success
    sim.set_now(datetime(2025, 9, 13, 4, 0, tzinfo=UTC))
    assert pipeline.run(keys[2], data_type="issues").success
    table = pipeline.table("issues").to_pylist()
    rows = sorted((r["status_changed_at"], r["status"]) for r in table if r["id"] == "moving-issue")
    assert rows == [(changed, "OPEN"), (resolved, "RESOLVED")]


def test_raw_holds_the_bytes_the_api_sent_end_to_end(pipeline, sim):
    # The simulator serves stored encoded nodes as they are: spacing, key order and escapes of its
    # choosing, which a decode-and-encode of the node would all change.
    sim.tenant.encode_audit_nodes()
    seed = datetime(2025, 9, 12, 21, 0, 9, tzinfo=UTC)
    index = next(i for i, t in enumerate(sim.tenant.audit_times) if t >= seed)
    node = json.loads(bytes(sim.tenant.audit_nodes[index]))
    node["user"] = {"name": "Zoë", "id": "u-9"}  # key order reversed on purpose
    sent = json.dumps(node, indent=2, ensure_ascii=True).encode()
    sim.tenant.audit_nodes[index] = msgspec.Raw(sent)
    keys = pipeline.keys()
    assert pipeline.run(keys[0], keys[-1]).success
    rows = {r["id"]: r for r in pipeline.table().to_pylist()}
    row = rows[node["id"]]
    assert row["raw"].encode() == sent
    assert (row["user_id"], row["user_name"]) == ("u-9", "Zoë")
    assert len(rows) == sum(1 for t in sim.tenant.audit_times if t >= seed)
    assert all(r["raw"].encode() == bytes(sim.tenant.audit_nodes[i]) for i, r in _by_index(sim, rows))


def _by_index(sim, rows):
    for i, raw in enumerate(sim.tenant.audit_nodes):
        row = rows.get(json.loads(bytes(raw))["id"])
        if row is not None:
            yield i, row


def test_json_text_columns_keep_the_value_as_received():
    sent = (
        b'{"id": "e3", "timestamp": "2025-09-12T21:00:00Z", "action": "  Login ",'
        b' "actionParameters": {"z": 1, "a": [true, null]}, "user": ["not", "an", "object"],'
        b' "serviceAccount": {"id": 7, "name": {"first": "x"}}}'
    )
    row = table_for(DATA_TYPES["audit_logs"]).rows_to_batch([sent]).to_pylist()[0]
    assert row["action_parameters"] == '{"z": 1, "a": [true, null]}'  # key order and spacing kept
    assert row["action"] == "Login"
    assert row["user_id"] is None and row["user_name"] is None  # a list where an object should be
    assert row["service_account_id"] == "7" and row["service_account_name"] == '{"first":"x"}'
    nothing = (
        table_for(DATA_TYPES["audit_logs"])
        .rows_to_batch([b'{"id": "e4", "actionParameters": null}'])
        .to_pylist()[0]
    )
    assert nothing["action_parameters"] is None and nothing["timestamp"] is None


def test_times_of_every_form_in_one_batch_are_read_as_parse_time_reads_them():
    stamps = [
        "2023-08-24T08:54:21.44203Z",
        "2025-09-12T21:29:59.9999999Z",
        "2025-09-12T23:30:00+02:00",
        "2025-09-12T21:00:00",  # no offset: UTC
        " 2025-09-12T21:00:00Z ",
        "not a time",
        "",
        None,
        42,
    ]
    nodes = [json.dumps({"id": str(i), "createdAt": s}).encode() for i, s in enumerate(stamps)]
    rows = table_for(DATA_TYPES["issues"]).rows_to_batch(nodes).to_pylist()
    assert [r["created_at"] for r in rows] == [parse_time(s) for s in stamps]
    good = [json.dumps({"id": "g", "createdAt": s}).encode() for s in stamps[:3]]
    rows = table_for(DATA_TYPES["issues"]).rows_to_batch(good).to_pylist()  # a batch Arrow reads alone
    assert [r["created_at"] for r in rows] == [parse_time(s) for s in stamps[:3]]
