"""Vulnerability findings, configuration findings and detections: windows through Dagster against the
simulator on 127.0.0.1 (exact windows, the filters the API's quirks need, the cap split, a missing
permission, reruns, checkpoints and the ledger)."""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import pyarrow.parquet as pq
import pytest

from wiz_pipeline.cli.commands import main
from wiz_pipeline.core.times import parse_time
from wiz_pipeline.data_types import DATA_TYPES
from wiz_pipeline.simulator import Fault, WizSimulator, generate_tenant
from wiz_pipeline.simulator.server import ALL_PERMISSIONS
from wiz_pipeline_tests.conftest import CLIENT_SECRET, T0
from wiz_pipeline_tests.pipeline.conftest import SEED, Pipeline

HOURS = 4
NOW = T0 + timedelta(hours=HOURS, days=1)
KINDS = ("vulnerability_findings", "configuration_findings", "detections")
SWITCH = {kind: DATA_TYPES[kind].enabled_by for kind in KINDS}
SEED_VARIABLE = {kind: DATA_TYPES[kind].checkpoint_variable for kind in KINDS}
COUNTS = {"vulnerability_findings": 400, "configuration_findings": 300, "detections": 200}


def tenant(**counts: int):
    return generate_tenant(
        T0,
        T0 + timedelta(hours=HOURS),
        audit_entries=10,
        issues=5,
        seed=23,
        **{k: counts.get(k, 0) for k in KINDS},
    )


def started(tenant_, **kwargs: Any) -> WizSimulator:
    sim = WizSimulator(tenant_, client_id="findings-client", client_secret=CLIENT_SECRET, **kwargs)
    sim.set_now(NOW)
    return sim


@pytest.fixture
def findings(tmp_path):
    """A pipeline collecting the three types (and nothing else of note) from a tenant of each."""
    sim = started(tenant(**COUNTS))
    with sim, dg.instance_for_test() as instance:
        env = {
            "WIZ_OUTPUT_URI": str(tmp_path / "data"),
            "AUDIT_SINCE_TIME": SEED,
            "WIZ_COLLECT_ISSUES": "false",
            "WIZ_POLL_INTERVAL_SECONDS": "1800",
            "WIZ_WINDOW_LAG_SECONDS": "300",
            "WIZ_PAGE_SIZE": "50",
            **{SWITCH[k]: "true" for k in KINDS},
            **{SEED_VARIABLE[k]: SEED for k in KINDS},
        }
        yield Pipeline(sim, env, instance, tmp_path / "data", {})


def collected(kind: str, nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the pipeline's settings ask for: config findings' default results are FAIL only."""
    if kind == "configuration_findings":
        return [n for n in nodes if n.get("result") == "FAIL"]
    return nodes


def expected_in(sim: WizSimulator, kind: str, low: datetime, high: datetime) -> dict[str, str]:
    current = collected(kind, sim.tenant.findings_as_of(kind, sim.now()))
    found = {}
    for node in current:
        at = parse_time(node["updatedAt"])
        if at is not None and low <= at < high:
            found[node["id"]] = node["updatedAt"]
    return found


def window_rows(path) -> list[dict[str, Any]]:
    return [json.loads(r) for r in pq.read_table(path)["raw"].to_pylist()]


def written(pipeline: Pipeline, kind: str) -> dict[str, list[dict[str, Any]]]:
    """Each window file's nodes, by partition key (from the file's manifest)."""
    found = {}
    for path in pipeline.files(kind):
        manifest = json.loads(path.with_name(f"_{path.stem}.json").read_text())
        found[manifest["partition_key"]] = window_rows(path)
    return found


@pytest.mark.parametrize("kind", KINDS)
def test_every_record_of_each_window_lands_once_in_its_window_from_the_seed(findings, kind):
    keys = findings.keys(kind, hours=HOURS)
    assert len(keys) == 2 * HOURS
    result = findings.run(keys[0], keys[-1], data_type=kind)
    assert result.success
    by_window = written(findings, kind)
    assert sorted(by_window) == keys
    seed = parse_time(SEED)
    total = 0
    for key in keys:
        start = datetime.strptime(key, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC)
        want = expected_in(findings.sim, kind, max(start, seed), start + timedelta(minutes=30))
        nodes = by_window[key]
        assert Counter(n["id"] for n in nodes) == Counter(set(want)), key
        assert {n["id"]: n["updatedAt"] for n in nodes} == want, key
        total += len(nodes)
    # The seed is 9 s into the first window: records before it are not collected.
    before_seed = expected_in(findings.sim, kind, T0, seed)
    everything = expected_in(findings.sim, kind, T0, T0 + timedelta(hours=HOURS))
    assert total == len(everything) - len(before_seed) > 50
    # Typed columns come out of the declarations, `updated_at` is the window's time column.
    table = findings.table(kind)
    assert table.schema.field("updated_at").type.tz == "UTC"
    assert table.num_rows == total


def test_each_query_sends_the_filters_without_which_the_api_drops_records(findings):
    for kind in KINDS:
        keys = findings.keys(kind, hours=HOURS)
        assert findings.run(keys[0], keys[-1], data_type=kind).success
    sent = {r.operation: r.variables["filterBy"] for r in findings.sim.graphql_records() if r.variables}
    vulns = sent["VulnerabilityFindingsPage"]
    assert vulns["status"] == ["OPEN", "IN_PROGRESS", "RESOLVED", "REJECTED"]
    assert sent["DetectionsTable"]["type"] == {"equals": ["GENERATED_THREAT", "MATCH_ONLY"]}
    assert sent["CloudConfigurationFindingsPage"]["result"] == ["FAIL"]
    for filters in sent.values():
        assert set(filters["updatedAt"]) == {"after", "before"}
    # And the windows hold what only those filters bring: resolved findings, MATCH_ONLY detections.
    vuln_rows = findings.table("vulnerability_findings")
    assert {"OPEN", "RESOLVED"} <= set(vuln_rows["status"].to_pylist())
    assert "MATCH_ONLY" in set(findings.table("detections")["type"].to_pylist())
    assert set(findings.table("configuration_findings")["result"].to_pylist()) == {"FAIL"}


def test_the_configuration_finding_results_setting_chooses_the_results_and_is_checked_at_load(findings):
    findings.env["WIZ_CONFIGURATION_FINDING_RESULTS"] = "fail, error"
    keys = findings.keys("configuration_findings", hours=HOURS)
    assert findings.run(keys[0], keys[-1], data_type="configuration_findings").success
    results = set(findings.table("configuration_findings")["result"].to_pylist())
    assert results == {"FAIL", "ERROR"}
    findings.env["WIZ_CONFIGURATION_FINDING_RESULTS"] = "FAIL,PASSED"
    with pytest.raises(
        Exception, match=r"WIZ_CONFIGURATION_FINDING_RESULTS='FAIL,PASSED'.*PASSED is not one"
    ):
        findings.defs  # noqa: B018 - building the definitions checks the settings


def test_a_configuration_window_past_the_result_cap_is_split_and_written_whole(tmp_path):
    busy = tenant(configuration_findings=0)
    start = T0 + timedelta(hours=1)
    count = 12_500  # past the API's cap of 10,000 results a query, in one 30-minute window
    for i in range(count):
        at = start + timedelta(seconds=1800 * i / count)
        busy.add_finding("configuration_findings", configuration_finding(f"cf-{i:05d}", at))
    sim = started(busy)
    assert sim.configuration_result_cap == 10_000
    with sim, dg.instance_for_test() as instance:
        env = {
            "WIZ_OUTPUT_URI": str(tmp_path / "data"),
            "WIZ_COLLECT_ISSUES": "false",
            "WIZ_COLLECT_CONFIGURATION_FINDINGS": "true",
            "CONFIGURATION_FINDINGS_SINCE_TIME": SEED,
        }
        pipeline = Pipeline(sim, env, instance, tmp_path / "data", {})
        key = start.strftime("%Y-%m-%d-%H:%M")
        result = pipeline.run(key, data_type="configuration_findings")
        assert result.success
        nodes = written(pipeline, "configuration_findings")[key]
        assert sorted(n["id"] for n in nodes) == [f"cf-{i:05d}" for i in range(count)]
        manifest = json.loads(next(pipeline.root.rglob("_*.json")).read_text())
        assert manifest["queries"] > 1  # the window took several sub-queries


def configuration_finding(ident: str, at: datetime) -> dict[str, Any]:
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "id": ident,
        "name": "S3 bucket is public",
        "analyzedAt": stamp,
        "firstSeenAt": stamp,
        "updatedAt": stamp,
        "severity": "HIGH",
        "result": "FAIL",
        "status": "OPEN",
        "remediation": None,
        "resource": None,
        "rule": {
            "id": "r1",
            "shortId": "S3-001",
            "name": "public bucket",
            "description": "",
            "remediationInstructions": "",
            "functionAsControl": False,
        },
        "securitySubCategories": [],
        "evidence": None,
        "ignoreRules": [],
    }


@pytest.mark.parametrize(
    ("kind", "permission"),
    [
        ("vulnerability_findings", "read:vulnerabilities"),
        ("configuration_findings", "read:cloud_configuration"),
        ("detections", "read:detections"),
    ],
)
def test_a_missing_permission_fails_the_run_in_one_line_writes_nothing_and_is_not_retried(
    findings, kind, permission
):
    findings.sim.add_account("scoped", CLIENT_SECRET, [p for p in ALL_PERMISSIONS if p != permission])
    findings.overrides["client_id"] = "scoped"
    keys = findings.keys(kind, hours=HOURS)
    result = findings.run(keys[0], keys[3], data_type=kind)
    assert not result.success
    message = failure_message(result)
    assert "\n" not in message.strip()
    assert kind in message and permission in message and f"{SWITCH[kind]}=false" in message
    requests = [r for r in findings.sim.graphql_records() if r.status == 403]
    assert len(requests) == 1  # refused once, not retried
    assert findings.files(kind) == []
    assert not findings.instance.fetch_materializations(
        dg.AssetKey(["wiz", kind]), limit=1
    ).records  # nothing materialized: the checkpoint stays at the seed


@pytest.mark.parametrize("code", ["FORBIDDEN", "UNAUTHORIZED"])
def test_a_permission_refused_inside_a_200_is_the_same_one_line_failure(findings, code):
    findings.sim.inject(Fault.graphql_error("You are not authorized to perform this action", code), times=5)
    keys = findings.keys("vulnerability_findings", hours=HOURS)
    result = findings.run(keys[0], data_type="vulnerability_findings")
    assert not result.success
    message = failure_message(result)
    assert "vulnerability_findings" in message and "read:vulnerabilities" in message
    assert "WIZ_COLLECT_VULNERABILITY_FINDINGS=false" in message
    # FORBIDDEN: one request. UNAUTHORIZED: one more, with a fresh token, in case it was the token.
    assert len(findings.sim.graphql_records()) == (1 if code == "FORBIDDEN" else 2)
    assert findings.files("vulnerability_findings") == []


def test_a_query_the_api_refuses_says_which_data_types_query_it_was(findings):
    findings.sim.inject(
        Fault.graphql_error(
            'Cannot query field "updatedAt" on type "VulnerabilityFinding".', "GRAPHQL_VALIDATION_FAILED"
        ),
        times=5,
    )
    keys = findings.keys("vulnerability_findings", hours=HOURS)
    result = findings.run(keys[0], data_type="vulnerability_findings")
    assert not result.success
    message = failure_message(result)
    assert message.startswith("vulnerability_findings: ") or "vulnerability_findings: " in message
    assert 'Cannot query field "updatedAt"' in message
    assert len(findings.sim.graphql_records()) == 1
    assert findings.files("vulnerability_findings") == []


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    """The message of the error the step raised (under Dagster's own wrapper)."""
    failures = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failures
    error = failures[0].step_failure_data.error
    while error.cause is not None:
        error = error.cause
    return error.message


def test_a_rerun_replaces_a_window_with_the_findings_current_versions(findings):
    kind = "vulnerability_findings"
    keys = findings.keys(kind, hours=HOURS)
    key = keys[2]
    assert findings.run(key, data_type=kind).success
    before = {n["id"]: n for n in written(findings, kind)[key]}
    assert len(before) >= 3
    moved, resolved = sorted(before)[:2]
    # One finding is updated later (it leaves this window for a later one); the rerun no longer has it.
    findings.sim.tenant.update_finding(kind, moved, T0 + timedelta(hours=HOURS + 1), status="RESOLVED")
    assert findings.run(key, data_type=kind).success
    after = {n["id"]: n for n in written(findings, kind)[key]}
    assert moved not in after and resolved in after
    assert set(after) == set(before) - {moved}
    assert len(findings.files(kind)) == 1


def test_checkpoints_and_the_ledger_know_the_new_types(findings, monkeypatch, capsys):
    for kind in KINDS:
        keys = findings.keys(kind, hours=HOURS)
        assert findings.run(keys[0], keys[3], data_type=kind).success
    for name, value in findings.env.items():
        monkeypatch.setenv(name, value)
    assert os.environ["DAGSTER_HOME"]
    assert main(["checkpoints"]) == 0
    out = capsys.readouterr().out
    for kind in KINDS:
        assert f"{SEED_VARIABLE[kind]}=2025-09-12T23:00:00Z  # 4 of " in out
    for kind in KINDS:
        code = main(["ledger", "--type", kind, "--to", "2025-09-12T23:00:00Z"])
        out = capsys.readouterr().out
        assert code == 0, out
        assert f"{kind}: no gap: all 4 closed windows from 2025-09-12-21:00 to 2025-09-12-22:30" in out


def test_the_new_types_are_off_by_default_and_their_assets_appear_when_turned_on(findings):
    env = dict(findings.env)
    for kind in KINDS:
        env.pop(SWITCH[kind])
    findings.env = env
    keys = {key.to_user_string() for key in findings.defs.resolve_all_asset_keys()}
    assert not any(kind in key for key in keys for kind in KINDS)
    findings.env = {**env, **{SWITCH[k]: "true" for k in KINDS}}
    keys = {key.to_user_string() for key in findings.defs.resolve_all_asset_keys()}
    assert {f"wiz/{kind}" for kind in KINDS} <= keys
    for kind in KINDS:
        key = dg.AssetKey(["wiz", kind])
        spec = findings.defs.resolve_assets_def(key).specs_by_key[key]
        assert "state, not events" in spec.description or "change log" in spec.description
