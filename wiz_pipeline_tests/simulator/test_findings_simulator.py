"""Vulnerability findings, configuration findings and detections in the simulator, over plain HTTP."""

from __future__ import annotations

import time
import tracemalloc
from datetime import timedelta

import pytest

from wiz_pipeline.core.times import parse_time
from wiz_pipeline.data_types.configuration_findings import QUERY as CONFIGURATION_QUERY
from wiz_pipeline.data_types.detections import QUERY as DETECTIONS_QUERY
from wiz_pipeline.data_types.vulnerability_findings import QUERY as VULNERABILITY_QUERY
from wiz_pipeline.simulator import WizSimulator, generate_tenant
from wiz_pipeline.simulator.tenant import wiz_time
from wiz_pipeline_tests.conftest import CLIENT_SECRET, HISTORY, T0
from wiz_pipeline_tests.simulator.test_simulator import post

ALL_STATUSES = ["OPEN", "IN_PROGRESS", "RESOLVED", "REJECTED"]
BOTH_TYPES = {"equals": ["GENERATED_THREAT", "MATCH_ONLY"]}
LATER = T0 + HISTORY + timedelta(days=1)


def tenant(**counts):
    return generate_tenant(T0, T0 + HISTORY, audit_entries=50, issues=10, seed=11, **counts)


@pytest.fixture(scope="module")
def fsim():
    simulator = WizSimulator(
        tenant(vulnerability_findings=400, configuration_findings=300, detections=200),
        client_id="test-client",
        client_secret=CLIENT_SECRET,
    )
    simulator.set_now(LATER)
    with simulator:
        yield simulator


def read_all(sim, query, connection, filter_by=None, first=500):
    nodes, after = [], None
    while True:
        variables = {"first": first, "after": after}
        if filter_by is not None:
            variables["filterBy"] = filter_by
        response = post(sim, query, variables)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body
        page = body["data"][connection]
        nodes += page["nodes"]
        if not page["pageInfo"]["hasNextPage"]:
            return nodes
        after = page["pageInfo"]["endCursor"]


def test_the_pipelines_queries_validate_and_answer_every_shape(fsim):
    vulns = read_all(fsim, VULNERABILITY_QUERY, "vulnerabilityFindings", {"status": ALL_STATUSES})
    assets = {n["vulnerableAsset"]["type"] for n in vulns}
    assert assets == {"VIRTUAL_MACHINE", "CONTAINER_IMAGE", "SERVERLESS", "CONTAINER"}
    by_type = {n["vulnerableAsset"]["type"]: n["vulnerableAsset"] for n in vulns}
    assert "operatingSystem" in by_type["VIRTUAL_MACHINE"] and "ipAddresses" in by_type["VIRTUAL_MACHINE"]
    assert "imageId" in by_type["CONTAINER_IMAGE"] and "runtime" in by_type["SERVERLESS"]
    assert "PodName" in by_type["CONTAINER"] and "imageId" not in by_type["CONTAINER"]
    assert "__typename" not in by_type["CONTAINER"]  # not selected, so not sent
    assert {n["status"] for n in vulns} == set(ALL_STATUSES)
    names = {n["name"].split("-")[0] for n in vulns}
    assert names == {"CVE", "GHSA", "ALAS"}
    assert any(n["fixedVersion"] is None for n in vulns) and any(n["epssProbability"] is None for n in vulns)
    assert all(
        (n["resolvedAt"] is None) == (n["status"] != "RESOLVED") for n in vulns if n["status"] == "OPEN"
    )
    assert any(n["resolvedAt"] for n in vulns if n["status"] == "RESOLVED")

    configs = read_all(
        fsim,
        CONFIGURATION_QUERY,
        "configurationFindings",
        {"result": ["PASS", "FAIL", "ERROR", "NOT_ASSESSED"]},
    )
    assert {n["result"] for n in configs} == {"PASS", "FAIL", "ERROR", "NOT_ASSESSED"}
    frameworks = {s["category"]["framework"]["name"] for n in configs for s in n["securitySubCategories"]}
    assert {"CIS AWS 1.5", "NIST 800-53", "PCI DSS"} <= frameworks
    assert all(isinstance(n["resource"]["tags"], list) for n in configs)
    assert any(t and set(t[0]) == {"key", "value"} for t in (n["resource"]["tags"] for n in configs))
    assert all(n["resource"]["subscription"]["externalId"] for n in configs)

    detections = read_all(fsim, DETECTIONS_QUERY, "detections", {"type": BOTH_TYPES})
    assert {n["type"] for n in detections} == {"GENERATED_THREAT", "MATCH_ONLY"}
    assert {n["severity"] for n in detections} == {"INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL"}
    events = [n["triggeringEvents"] for n in detections]
    assert any(e["totalCountV2"] > 50 for e in events)
    assert all(len(e["nodes"]) == min(50, e["totalCountV2"]) for e in events)
    assert all(n["primaryActor"]["cloudAccount"]["externalId"] for n in detections)


def test_unknown_fields_are_rejected_like_today(fsim):
    body = post(fsim, "{ vulnerabilityFindings(first: 1) { nodes { id severityX } } }").json()
    assert body["data"] is None and 'Cannot query field "severityX"' in body["errors"][0]["message"]
    body = post(fsim, "{ detections(filterBy: {kind: 1}) { nodes { id } } }").json()
    assert body["data"] is None


def test_nested_first_caps_triggering_events(fsim):
    query = (
        "{ detections(first: 500, filterBy: {type: {equals: [GENERATED_THREAT, MATCH_ONLY]}}) { nodes {"
        " triggeringEvents(first: 2) { totalCountV2 nodes { ... on CloudEvent { id } } } } } }"
    )
    nodes = post(fsim, query).json()["data"]["detections"]["nodes"]
    assert all(len(n["triggeringEvents"]["nodes"]) <= 2 for n in nodes)
    assert any(n["triggeringEvents"]["totalCountV2"] > 2 for n in nodes)


def test_without_a_status_filter_only_open_vulnerabilities_come_back(fsim):
    unfiltered = read_all(fsim, VULNERABILITY_QUERY, "vulnerabilityFindings")
    assert unfiltered and {n["status"] for n in unfiltered} == {"OPEN"}
    window = {"updatedAt": {"after": wiz_time(T0), "before": wiz_time(LATER)}}
    assert {n["status"] for n in read_all(fsim, VULNERABILITY_QUERY, "vulnerabilityFindings", window)} == {
        "OPEN"
    }
    every = read_all(fsim, VULNERABILITY_QUERY, "vulnerabilityFindings", {**window, "status": ALL_STATUSES})
    assert len(every) == len(fsim.tenant.findings_as_of("vulnerability_findings", LATER)) > len(unfiltered)
    sent = [r.variables for r in fsim.graphql_records() if r.operation == "VulnerabilityFindingsPage"]
    assert sent[-1]["filterBy"]["status"] == ALL_STATUSES  # the request records keep the variables


def test_detections_filter_by_without_type_drops_match_only(fsim):
    everything = read_all(fsim, DETECTIONS_QUERY, "detections")
    assert {n["type"] for n in everything} == {"GENERATED_THREAT", "MATCH_ONLY"}
    window = {"updatedAt": {"after": wiz_time(T0 - timedelta(days=1))}}
    assert {n["type"] for n in read_all(fsim, DETECTIONS_QUERY, "detections", window)} == {"GENERATED_THREAT"}
    both = read_all(fsim, DETECTIONS_QUERY, "detections", {**window, "type": BOTH_TYPES})
    assert len(both) == len(everything)


def test_configuration_result_status_and_severity_filters(fsim):
    fails = read_all(fsim, CONFIGURATION_QUERY, "configurationFindings", {"result": ["FAIL"]})
    assert fails and {n["result"] for n in fails} == {"FAIL"}
    mixed = {"result": ["FAIL", "ERROR"], "severity": ["HIGH", "CRITICAL"], "status": ["OPEN"]}
    some = read_all(fsim, CONFIGURATION_QUERY, "configurationFindings", mixed)
    assert some and all(
        n["result"] in ("FAIL", "ERROR") and n["severity"] in ("HIGH", "CRITICAL") for n in some
    )
    assert {n["status"] for n in some} == {"OPEN"}
    expected = [
        n
        for n in fsim.tenant.findings_as_of("configuration_findings", LATER)
        if n["result"] in ("FAIL", "ERROR")
        and n["severity"] in ("HIGH", "CRITICAL")
        and n["status"] == "OPEN"
    ]
    assert sorted(n["id"] for n in some) == sorted(n["id"] for n in expected)


def test_a_capped_configuration_query_stops_silently(fsim):
    fsim.configuration_result_cap = 120
    try:
        nodes = read_all(fsim, CONFIGURATION_QUERY, "configurationFindings", {}, first=50)
    finally:
        fsim.configuration_result_cap = 10_000
    assert len(nodes) == 120 and len({n["id"] for n in nodes}) == 120


def test_windows_partition_the_findings_and_order_is_not_by_time(fsim):
    full = read_all(fsim, VULNERABILITY_QUERY, "vulnerabilityFindings", {"status": ALL_STATUSES})
    times = [parse_time(n["updatedAt"]) for n in full]
    assert times != sorted(times) and times != sorted(times, reverse=True)
    assert len({n["id"] for n in full}) == len(full)
    seen = []
    for hour in range(6):
        bounds = {
            "after": wiz_time(T0 + timedelta(hours=hour)),
            "before": wiz_time(T0 + timedelta(hours=hour + 1) - timedelta(microseconds=1)),
        }
        window = read_all(
            fsim, VULNERABILITY_QUERY, "vulnerabilityFindings", {"updatedAt": bounds, "status": ALL_STATUSES}
        )
        assert all(
            T0 + timedelta(hours=hour) <= parse_time(n["updatedAt"]) < T0 + timedelta(hours=hour + 1)
            for n in window
        )
        seen += [n["id"] for n in window]
    assert sorted(seen) == sorted(n["id"] for n in full)


def test_updates_move_updated_at_and_only_the_latest_version_shows():
    sim = WizSimulator(
        tenant(vulnerability_findings=50, detections=20), client_id="test-client", client_secret=CLIENT_SECRET
    )
    store = sim.tenant.finding_store("vulnerability_findings")
    fid = next(i for i in sim.tenant.finding_ids("vulnerability_findings") if i not in store.records)
    first = sim.tenant.finding_versions("vulnerability_findings", fid)[0]
    created = parse_time(first["updatedAt"])
    resolved_at = T0 + HISTORY + timedelta(hours=2)
    sim.tenant.update_finding("vulnerability_findings", fid, resolved_at, status="RESOLVED")
    sim.tenant.update_finding(
        "vulnerability_findings", fid, resolved_at - timedelta(hours=1), status="IN_PROGRESS"
    )
    versions = sim.tenant.finding_versions("vulnerability_findings", fid)
    assert [v["status"] for v in versions][1:] == ["IN_PROGRESS", "RESOLVED"]
    filter_by = {"status": ALL_STATUSES}
    with sim:
        for now, status, updated in [
            (created - timedelta(microseconds=1), None, None),  # not there yet
            # A stamp may be shortened to fewer fractional digits (the API's length varies), so the
            # record's own time can be up to a second after it.
            (created + timedelta(seconds=1), first["status"], first["updatedAt"]),
            (resolved_at - timedelta(minutes=1), "IN_PROGRESS", wiz_time(resolved_at - timedelta(hours=1))),
            (resolved_at, "RESOLVED", wiz_time(resolved_at)),
        ]:
            sim.set_now(now)
            nodes = [
                n
                for n in read_all(sim, VULNERABILITY_QUERY, "vulnerabilityFindings", filter_by)
                if n["id"] == fid
            ]
            assert [n["status"] for n in nodes] == ([status] if status else [])
            if status:
                assert nodes[0]["updatedAt"] == updated
        assert nodes[0]["resolvedAt"] == wiz_time(resolved_at)
        # The update's window has it, the first version's window no longer does.
        window = {"after": wiz_time(resolved_at), "before": wiz_time(resolved_at)}
        hits = read_all(sim, VULNERABILITY_QUERY, "vulnerabilityFindings", {"updatedAt": window, **filter_by})
        assert [n["id"] for n in hits] == [fid]
        old = {"after": first["updatedAt"], "before": first["updatedAt"]}
        assert fid not in {
            n["id"]
            for n in read_all(
                sim, VULNERABILITY_QUERY, "vulnerabilityFindings", {"updatedAt": old, **filter_by}
            )
        }
        # Deleted: gone from every read from then on.
        sim.tenant.delete_finding("vulnerability_findings", fid, resolved_at + timedelta(hours=1))
        sim.set_now(resolved_at + timedelta(hours=1))
        assert fid not in {
            n["id"] for n in read_all(sim, VULNERABILITY_QUERY, "vulnerabilityFindings", filter_by)
        }
        # A hand-made detection, then a change of severity.
        node = dict(
            sim.tenant.findings_as_of("detections", LATER)[0], id="det-hand-1", updatedAt=wiz_time(T0)
        )
        sim.tenant.add_finding("detections", node)
        sim.tenant.update_finding("detections", "det-hand-1", T0 + timedelta(minutes=5), severity="CRITICAL")
        found = [n for n in read_all(sim, DETECTIONS_QUERY, "detections") if n["id"] == "det-hand-1"]
        assert [(n["severity"], n["updatedAt"]) for n in found] == [
            ("CRITICAL", wiz_time(T0 + timedelta(minutes=5)))
        ]


def test_generated_findings_change_inside_the_range():
    generated = tenant(vulnerability_findings=1000)
    store = generated.finding_store("vulnerability_findings")
    changed = [r for r in store.records.values() if r.changes]
    assert 50 < len(changed) < 150 and any(r.deleted_us for r in store.records.values())
    assert all(
        T0 <= parse_time(wiz_time(parse_time(v["updatedAt"]))) < T0 + HISTORY
        for v in generated.findings_as_of("vulnerability_findings", LATER)
    )
    ids = generated.update_random_findings(
        "vulnerability_findings", 0.05, T0 + HISTORY, T0 + HISTORY + timedelta(hours=1), seed=3
    )
    assert len(ids) == 50 and all(
        len(generated.finding_versions("vulnerability_findings", i)) >= 2 for i in ids
    )
    again = tenant(vulnerability_findings=1000)
    assert (
        again.findings_as_of("vulnerability_findings", LATER)[:20]
        == tenant(vulnerability_findings=1000).findings_as_of("vulnerability_findings", LATER)[:20]
    )


@pytest.mark.parametrize("denial", ["403", "FORBIDDEN", "UNAUTHORIZED"])
def test_a_missing_permission_is_answered_in_each_form(denial):
    sim = WizSimulator(
        tenant(detections=5),
        client_id="test-client",
        client_secret=CLIENT_SECRET,
        permissions={"read:issues", "admin:audit"},
    )
    sim.permission_denial = {"detections": denial}
    with sim:
        response = post(sim, DETECTIONS_QUERY, {"first": 5})
        assert response.status_code == (403 if denial == "403" else 200)
        body = response.json()
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == ("FORBIDDEN" if denial == "403" else denial)
        assert "read:detections" in body["errors"][0]["message"]
        # Other types' denial stays the default 403.
        assert post(sim, VULNERABILITY_QUERY, {"first": 5}).status_code == 403


def test_a_million_vulnerability_findings_are_made_fast_and_small():
    # Memory grows linearly with the count (the overlay is a share of it): measured on a tenth, as
    # tracemalloc slows generation tenfold.
    tracemalloc.start()
    generate_tenant(T0, T0 + timedelta(days=30), audit_entries=0, issues=0, vulnerability_findings=100_000)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 30 * 2**20  # so under 300 MB for a million
    started = time.perf_counter()
    big = generate_tenant(
        T0, T0 + timedelta(days=30), audit_entries=0, issues=0, vulnerability_findings=1_000_000
    )
    assert time.perf_counter() - started < 15
    store = big.finding_store("vulnerability_findings")
    assert 90_000 < len(store.records) < 120_000  # the overlay: generated changes and deletions only
    sim = WizSimulator(big, client_id="test-client", client_secret=CLIENT_SECRET)
    sim.set_now(T0 + timedelta(days=31))
    with sim:
        variables = {"first": 500, "filterBy": {"status": ALL_STATUSES}}
        post(sim, VULNERABILITY_QUERY, variables)  # the first page scans the overlay once
        started = time.perf_counter()
        page = post(sim, VULNERABILITY_QUERY, variables).json()["data"]["vulnerabilityFindings"]
        assert len(page["nodes"]) == 500 and page["pageInfo"]["hasNextPage"]
        assert time.perf_counter() - started < 1.0
