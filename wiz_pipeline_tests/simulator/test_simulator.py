"""The simulator speaks the Wiz API's shapes over plain HTTP (checked here with raw httpx, no client)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

import httpx
import pytest

from wiz_pipeline.core.times import parse_time
from wiz_pipeline.data_types.audit_logs import QUERY as AUDIT_LOG_QUERY
from wiz_pipeline.data_types.issues import QUERY as ISSUES_QUERY
from wiz_pipeline.simulator import Fault, WizSimulator, generate_long_tenant, generate_tenant
from wiz_pipeline_tests.conftest import CLIENT_SECRET, T0, small_tenant


def token(sim) -> str:
    response = httpx.post(
        sim.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": sim.client_id,
            "client_secret": CLIENT_SECRET,
            "audience": "wiz-api",
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == sim.token_lifetime_seconds
    assert body["access_token"].startswith("eyJ") and len(body["access_token"]) > 200
    return body["access_token"]


def post(sim, query, variables=None, bearer=None):
    headers = {"Authorization": f"Bearer {bearer or token(sim)}"}
    return httpx.post(sim.graphql_url, json={"query": query, "variables": variables or {}}, headers=headers)


def test_audit_log_page_has_the_real_response_shape(sim):
    response = post(sim, AUDIT_LOG_QUERY, {"first": 3})
    assert response.status_code == 200
    connection = response.json()["data"]["auditLogEntries"]
    assert len(connection["nodes"]) == 3
    assert connection["pageInfo"]["hasNextPage"] is True
    assert isinstance(connection["pageInfo"]["endCursor"], str)
    times = [parse_time(n["timestamp"]) for n in connection["nodes"]]
    assert times == sorted(times, reverse=True)  # newest first, like the Wiz UI


def test_generated_data_is_messy_like_real_data():
    tenant = small_tenant(audit_entries=3000, issues=600)
    nodes = tenant.audit_nodes
    assert any(n["action"].startswith(" ") for n in nodes)
    assert any(n["sourceIP"] is None for n in nodes) and any(":" in (n["sourceIP"] or "") for n in nodes)
    actors = {(n["user"] is not None, n["serviceAccount"] is not None) for n in nodes}
    assert actors == {(True, False), (False, True), (True, True), (False, False)}
    assert len({len(n["timestamp"]) for n in nodes}) >= 3  # fractional seconds of varying length
    assert any(n["actionParameters"] == {} for n in nodes) and any(
        n["actionParameters"] is None for n in nodes
    )
    assert any("scopes" in (n["actionParameters"] or {}) for n in nodes)
    issues = tenant.issues_as_of(T0 + timedelta(days=2))
    assert {i["status"] for i in issues} == {"OPEN", "IN_PROGRESS", "RESOLVED", "REJECTED"}
    assert {i["severity"] for i in issues} == {"INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL"}
    assert {i["type"] for i in issues} > {"TOXIC_COMBINATION", "THREAT_DETECTION", "CLOUD_CONFIGURATION"}
    snapshots = [i["entitySnapshot"] for i in issues]
    assert None in snapshots and None in [i["sourceRule"] for i in issues]
    assert {s["cloudPlatform"] for s in snapshots if s} == {"AWS", "Azure", "GCP", "Kubernetes"}
    assert {r["__typename"] for i in issues if (r := i["sourceRule"])} == {
        "Control",
        "CloudEventRule",
        "CloudConfigurationRule",
    }
    assert any(i["serviceTickets"] for i in issues) and any(i["notes"] for i in issues)
    assert any(s["tags"] == {} for s in snapshots if s)
    assert len({len(i["createdAt"]) for i in issues}) >= 3
    assert any(parse_time(i["updatedAt"]) < parse_time(i["statusChangedAt"]) for i in issues)


def test_tenant_is_deterministic_for_a_seed():
    assert small_tenant().audit_nodes == small_tenant().audit_nodes
    assert small_tenant().audit_nodes != small_tenant(seed=12).audit_nodes


def test_unknown_field_is_a_graphql_error_in_a_200(sim):
    response = post(sim, "{ auditLogEntries(first: 1) { nodes { id mood } } }")
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["message"] == 'Cannot query field "mood" on type "AuditLogEntry".'


def test_wrong_variable_type_is_rejected(sim):
    response = post(sim, AUDIT_LOG_QUERY, {"first": "many"})
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_first_above_500_is_rejected(sim):
    response = post(sim, AUDIT_LOG_QUERY, {"first": 501})
    assert "between 0 and 500" in response.json()["errors"][0]["message"]


def test_cursors_are_opaque_and_bound_to_their_query(sim):
    bearer = token(sim)
    window = {"timestamp": {"after": "2025-09-12T21:00:00Z", "before": "2025-09-12T22:00:00Z"}}
    page = post(sim, AUDIT_LOG_QUERY, {"first": 2, "filterBy": window}, bearer).json()["data"][
        "auditLogEntries"
    ]
    cursor = page["pageInfo"]["endCursor"]
    assert not cursor.isdigit()  # not a bare offset
    tampered = cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")
    refused = post(sim, AUDIT_LOG_QUERY, {"first": 2, "after": tampered, "filterBy": window}, bearer).json()
    assert "Invalid cursor" in refused["errors"][0]["message"]
    again = post(sim, AUDIT_LOG_QUERY, {"first": 2, "after": cursor, "filterBy": window}, bearer).json()
    assert {n["id"] for n in again["data"]["auditLogEntries"]["nodes"]}.isdisjoint(
        n["id"] for n in page["nodes"]
    )
    other = post(sim, AUDIT_LOG_QUERY, {"first": 2, "after": cursor}, bearer).json()
    assert "Invalid cursor" in other["errors"][0]["message"]


def test_audit_time_filter_bounds_are_inclusive(sim):
    bearer = token(sim)
    stamp = sim.tenant.audit_nodes[10]["timestamp"]
    page = post(
        sim,
        AUDIT_LOG_QUERY,
        {"first": 50, "filterBy": {"timestamp": {"after": stamp, "before": stamp}}},
        bearer,
    ).json()["data"]["auditLogEntries"]
    assert sim.tenant.audit_nodes[10]["id"] in {n["id"] for n in page["nodes"]}


def test_issues_query_with_aliases_and_fragments_and_filters(sim):
    variables = {
        "first": 500,
        "filterBy": {"statusChangedAt": {"after": "2025-09-12T21:00:00Z"}, "severity": ["CRITICAL", "HIGH"]},
        "orderBy": {"field": "SEVERITY", "direction": "DESC"},
    }
    nodes = post(sim, ISSUES_QUERY, variables).json()["data"]["issues"]["nodes"]
    assert nodes and {n["severity"] for n in nodes} <= {"CRITICAL", "HIGH"}
    severities = [n["severity"] for n in nodes]
    assert severities == ["CRITICAL"] * severities.count("CRITICAL") + ["HIGH"] * severities.count("HIGH")
    assert 0 < severities.count("CRITICAL") < len(severities)  # both were there to be ordered
    control = next(n["sourceRule"] for n in nodes if n["sourceRule"]["__typename"] == "Control")
    assert "controlDescription" in control and "description" not in control
    assert "cloudEventRuleDescription" not in control


def test_named_fragments_on_object_types_and_typename_anywhere(sim):
    query = """
    query Q($first: Int) {
      issuesV2(first: $first) {
        __typename
        nodes { __typename ...IssueBits sourceRule { __typename ... on Control { id } } }
        pageInfo { __typename hasNextPage }
      }
    }
    fragment IssueBits on Issue { id status entitySnapshot { __typename cloudPlatform } }
    """
    connection = post(sim, query, {"first": 20}).json()["data"]["issuesV2"]
    assert connection["__typename"] == "IssueConnection"
    assert connection["pageInfo"] == {"__typename": "PageInfo", "hasNextPage": True}
    node = connection["nodes"][0]
    assert node["__typename"] == "Issue" and node["id"] and node["status"]
    assert node["entitySnapshot"]["__typename"] == "EntitySnapshot"
    rules = [n["sourceRule"] for n in connection["nodes"] if n["sourceRule"]]
    assert {r["__typename"] for r in rules} >= {"Control", "CloudConfigurationRule"}
    assert all(("id" in r) == (r["__typename"] == "Control") for r in rules)


def test_first_zero_answers_no_nodes_and_a_cursor_to_go_on_from(sim):
    bearer = token(sim)
    page = post(sim, AUDIT_LOG_QUERY, {"first": 0}, bearer).json()["data"]["auditLogEntries"]
    assert page["nodes"] == [] and page["pageInfo"]["hasNextPage"] is True
    after = page["pageInfo"]["endCursor"]
    nxt = post(sim, AUDIT_LOG_QUERY, {"first": 1, "after": after}, bearer).json()["data"]["auditLogEntries"]
    assert nxt["nodes"][0]["id"] == sim.tenant.audit_nodes[-1]["id"]  # the newest: nothing was skipped


def test_filters_it_does_not_implement_are_rejected_not_ignored(sim):
    body = post(sim, AUDIT_LOG_QUERY, {"filterBy": {"status": ["SUCCESS"]}}).json()
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_graphql_requests_must_be_json(sim):
    response = httpx.post(
        sim.graphql_url,
        content=json.dumps({"query": AUDIT_LOG_QUERY}),
        headers={"Authorization": f"Bearer {token(sim)}", "Content-Type": "text/plain"},
    )
    assert response.status_code == 415


def test_tokens_expire_and_unknown_tokens_get_401(sim):
    assert post(sim, AUDIT_LOG_QUERY, bearer="eyJnot-a-token").status_code == 401
    sim.token_lifetime_seconds = 0
    assert post(sim, AUDIT_LOG_QUERY).status_code == 401


def test_token_endpoint_checks_credentials_and_audience(sim):
    form = {
        "grant_type": "client_credentials",
        "client_id": sim.client_id,
        "client_secret": "nope",
        "audience": "wiz-api",
    }
    assert httpx.post(sim.token_url, data=form).status_code == 401
    form["client_secret"] = CLIENT_SECRET
    assert httpx.post(sim.token_url, data={**form, "audience": "beyond-api"}).status_code == 403
    assert httpx.post(sim.token_url, data={**form, "grant_type": "password"}).status_code == 400


def test_rate_limit_answers_429_with_retry_after(sim):
    sim.rate_limit_per_second = 2
    bearer = token(sim)
    answers = [post(sim, AUDIT_LOG_QUERY, {"first": 1}, bearer) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].headers["Retry-After"] == "1"
    sim.rate_limit_sends_retry_after = False
    assert "Retry-After" not in post(sim, AUDIT_LOG_QUERY, {"first": 1}, bearer).headers
    assert sim.counters.rate_limited == 2


def test_faults_are_injected_in_order_and_counted(sim):
    bearer = token(sim)
    sim.inject(Fault.rate_limited(retry_after=5), skip=1)
    sim.inject(Fault.http_status(503), times=2)
    codes = [post(sim, AUDIT_LOG_QUERY, {"first": 1}, bearer).status_code for _ in range(5)]
    assert codes == [200, 429, 503, 503, 200]
    assert sim.counters.faults_injected == 3
    assert sim.counters.by_status[503] == 2


def test_records_after_now_do_not_exist_yet(sim):
    sim.set_now(T0 + timedelta(hours=1))
    nodes = post(sim, AUDIT_LOG_QUERY, {"first": 500}).json()["data"]["auditLogEntries"]["nodes"]
    assert nodes and all(parse_time(n["timestamp"]) <= T0 + timedelta(hours=1) for n in nodes)
    assert len(nodes) < len(sim.tenant.audit_nodes) / 3


def test_simulator_counts_requests_and_tokens(sim):
    bearer = token(sim)
    post(sim, AUDIT_LOG_QUERY, {"first": 1}, bearer)
    post(sim, ISSUES_QUERY, {"first": 1}, bearer)
    assert sim.counters.tokens_issued == 1
    assert sim.counters.graphql_requests == 2
    assert [r.operation for r in sim.graphql_records()] == ["AuditLogTable", "IssuesTable"]


def test_python_m_simulator_prints_its_urls_and_serves_them():
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wiz_pipeline.simulator",
            "--port",
            "0",
            "--audit-entries",
            "50",
            "--issues",
            "5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [process.stdout.readline() for _ in range(5)]
        url = next(line.split("=", 1)[1].strip() for line in lines if "WIZ_TOKEN_URL=" in line)
        api = next(line.split("=", 1)[1].strip() for line in lines if "WIZ_API_URL=" in line)
        assert url.startswith("http://127.0.0.1:") and api.endswith("/graphql")
        form = {
            "grant_type": "client_credentials",
            "client_id": "sim-client-id",
            "audience": "wiz-api",
            "client_secret": "sim-client-secret-do-not-use-in-production",
        }
        bearer = httpx.post(url, data=form).json()["access_token"]
        response = httpx.post(
            api,
            json={"query": "{ auditLogEntries(first: 2) { nodes { id } } }"},
            headers={"Authorization": f"Bearer {bearer}"},
        )
        assert len(response.json()["data"]["auditLogEntries"]["nodes"]) == 2
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_simulator_refuses_a_non_loopback_host():
    result = subprocess.run(
        [sys.executable, "-m", "wiz_pipeline.simulator", "--host", "0.0.0.0"],  # noqa: S104
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "loopback" in result.stderr


@pytest.mark.parametrize("count", [0, 1])
def test_empty_and_tiny_tenants_page_correctly(count):
    tenant = generate_tenant(T0, T0 + timedelta(hours=1), audit_entries=count, issues=count)
    with WizSimulator(tenant, client_secret=CLIENT_SECRET, client_id="c") as sim:
        sim.set_now(T0 + timedelta(days=1))
        page = post(sim, AUDIT_LOG_QUERY, {"first": 500}).json()["data"]["auditLogEntries"]
    assert len(page["nodes"]) == count
    assert page["pageInfo"] == {"hasNextPage": False, "endCursor": page["pageInfo"]["endCursor"]}
    assert (page["pageInfo"]["endCursor"] is None) == (count == 0)
    json.dumps(page)


def test_a_long_tenant_is_made_on_demand_in_time_order_the_same_every_time():
    start = T0.replace(minute=0)  # a Friday
    tenant = generate_long_tenant(start, start + timedelta(days=14), audit_per_day=5000)
    again = generate_long_tenant(start, start + timedelta(days=14), audit_per_day=5000)
    times = list(tenant.audit_times)
    assert len(times) == 70_000 and times == sorted(times)
    assert start <= times[0] and times[-1] < start + timedelta(days=14)
    assert tenant.audit_nodes[123] == again.audit_nodes[123]
    assert abs(parse_time(tenant.audit_nodes[-1]["timestamp"]) - times[-1]) < timedelta(seconds=1)
    # Weekday working hours are busier than weekday nights, and those than weekends.
    counts = {"day": 0, "night": 0, "weekend": 0}
    for when in times:
        slot = "weekend" if when.weekday() >= 5 else ("day" if 8 <= when.hour < 18 else "night")
        counts[slot] += 1
    day, night, weekend = counts["day"] / 100, counts["night"] / 140, counts["weekend"] / 96  # per hour
    assert day > 2 * night and night > 1.5 * weekend


def test_a_long_tenant_pages_through_the_api_like_any_other():
    start = T0.replace(minute=0)
    tenant = generate_long_tenant(start, start + timedelta(days=2), audit_per_day=2000)
    with WizSimulator(tenant, client_secret=CLIENT_SECRET) as sim:
        after, before = start + timedelta(hours=30), start + timedelta(hours=31)
        variables = {
            "first": 500,
            "filterBy": {"timestamp": {"after": after.isoformat(), "before": before.isoformat()}},
        }
        nodes = post(sim, AUDIT_LOG_QUERY, variables).json()["data"]["auditLogEntries"]["nodes"]
    expected = [t for t in tenant.audit_times if after <= t <= before]
    assert len(nodes) == len(expected) > 0
    assert [parse_time(n["timestamp"]) for n in nodes] == sorted(
        (parse_time(n["timestamp"]) for n in nodes), reverse=True
    )


def _pages(sim, variables):
    """Every node of a query, page by page (newest first), as a client would read them."""
    nodes, after = [], None
    while True:
        page = post(sim, AUDIT_LOG_QUERY, {**variables, "after": after}).json()["data"]["auditLogEntries"]
        nodes += page["nodes"]
        if not page["pageInfo"]["hasNextPage"]:
            return nodes
        after = page["pageInfo"]["endCursor"]


def test_late_audit_entries_are_visible_only_from_their_publication_on():
    tenant = generate_tenant(T0, T0 + timedelta(hours=6), audit_entries=3000, issues=0, late_share=0.1)
    plain = generate_tenant(T0, T0 + timedelta(hours=6), audit_entries=3000, issues=0)
    # Late entries are drawn apart: the tenant is the same entries, only some published later.
    assert tenant.audit_times == plain.audit_times
    assert [n["id"] for n in tenant.audit_nodes] == [n["id"] for n in plain.audit_nodes]
    pairs = list(zip(tenant.audit_times, tenant.audit_published, strict=True))
    late = [i for i, (t, p) in enumerate(pairs) if p > t]
    assert 200 < len(late) < 400
    assert max(p - t for t, p in pairs) <= timedelta(seconds=3000)
    with WizSimulator(tenant, client_secret=CLIENT_SECRET) as sim:
        for now in (T0 + timedelta(hours=2), T0 + timedelta(hours=2, minutes=40), T0 + timedelta(days=1)):
            sim.set_now(now)
            nodes = _pages(sim, {"first": 100, "filterBy": {"timestamp": {"after": T0.isoformat()}}})
            expected = [
                tenant.audit_nodes[i]["id"]
                for i in range(len(tenant.audit_times) - 1, -1, -1)
                if tenant.audit_published[i] <= now
            ]
            assert [n["id"] for n in nodes] == expected  # newest first, each once, none unpublished
    assert any(tenant.audit_times[i] <= T0 + timedelta(hours=2) < tenant.audit_published[i] for i in late)


def test_an_entry_added_with_a_publication_time_appears_then(sim):
    stamp = T0 + timedelta(minutes=10)
    node = {"id": "late-1", "timestamp": stamp.isoformat().replace("+00:00", "Z"), "action": "Login"}
    sim.tenant.add_audit_entry(node, published_at=stamp + timedelta(hours=1))
    sim.tenant.add_audit_entry({**node, "id": "on-time"})
    window = {"first": 500, "filterBy": {"timestamp": {"after": T0.isoformat(), "before": stamp.isoformat()}}}
    sim.set_now(stamp + timedelta(minutes=59))
    ids = [n["id"] for n in _pages(sim, window)]
    assert "on-time" in ids and "late-1" not in ids
    sim.set_now(stamp + timedelta(hours=1))
    ids = [n["id"] for n in _pages(sim, window)]
    assert ids.count("late-1") == 1 and ids.count("on-time") == 1
