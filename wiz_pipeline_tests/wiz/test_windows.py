"""Pagination and exact half-open windows for both data types."""

from __future__ import annotations

import contextlib
import math
from datetime import timedelta

import pytest

from wiz_pipeline.collect.fetch import WindowFetch
from wiz_pipeline.core.times import parse_time
from wiz_pipeline.data_types.audit_logs import AUDIT_LOGS
from wiz_pipeline.data_types.issues import ISSUES
from wiz_pipeline.simulator import IssueRecord, Tenant, WizSimulator, generate_tenant, wiz_time
from wiz_pipeline.wiz import WizClient, WizResultCapError
from wiz_pipeline_tests.conftest import CLIENT_SECRET, T0, audit_entry, client_options

W = timedelta(minutes=30)


@contextlib.contextmanager
def serve(tenant):
    """A simulator over a hand-made ``tenant`` and a client for it."""
    with WizSimulator(tenant, client_id="c", client_secret=CLIENT_SECRET) as sim:
        sim.set_now(T0 + timedelta(days=1))
        options = client_options(
            api_url=sim.graphql_url,
            token_url=sim.token_url,
            client_id="c",
            client_secret=CLIENT_SECRET,
            max_requests_per_second=1000,
        )
        with WizClient(options) as client:
            yield sim, client


def collect(client, data_type, start, end):
    fetch = WindowFetch(client, data_type, start, end)
    nodes = [node for page in fetch for node in page]
    return nodes, fetch.stats


def test_pagination_follows_cursors_across_many_pages(sim, make_client):
    nodes, stats = collect(make_client(page_size=7), AUDIT_LOGS, T0, T0 + timedelta(hours=6))
    expected = {n["id"] for n in sim.tenant.audit_nodes}
    assert len(nodes) == len(expected) == 600
    assert {n["id"] for n in nodes} == expected
    assert stats.requests.pages == math.ceil(600 / 7) + (1 if 600 % 7 == 0 else 0)
    assert stats.requests.requests == stats.requests.pages
    first_page = sim.graphql_records()[0]
    assert first_page.variables["first"] == 7 and first_page.variables["after"] is None
    assert all(r.variables["after"] for r in sim.graphql_records()[1:])


def test_issue_pagination_follows_cursors_across_many_pages(sim, make_client):
    nodes, stats = collect(make_client(page_size=9), ISSUES, T0 - timedelta(days=40), T0 + timedelta(days=2))
    assert {n["id"] for n in nodes} == {r.node["id"] for r in sim.tenant.issues}
    assert stats.requests.pages >= 120 // 9


def test_default_page_size_is_the_api_maximum(sim, make_client):
    collect(make_client(), AUDIT_LOGS, T0, T0 + W)
    assert sim.graphql_records()[0].variables["first"] == 500


def test_audit_window_is_half_open_and_exact_to_the_microsecond():
    start, end = T0, T0 + W
    tenant = Tenant()
    cases = {
        "before-start": "2025-09-12T20:59:59.999999Z",
        "at-start": "2025-09-12T21:00:00Z",
        "at-start-fraction": "2025-09-12T21:00:00.000001Z",
        "just-before-end": "2025-09-12T21:29:59.9999999Z",  # 7 digits, as some APIs send
        "at-end": "2025-09-12T21:30:00Z",
        "at-end-offset": "2025-09-12T23:30:00+02:00",  # the same instant as at-end
        "after-end": "2025-09-12T21:30:00.5Z",
    }
    for ident, stamp in cases.items():
        tenant.add_audit_entry(audit_entry(stamp, ident))
    with serve(tenant) as (_, client):
        first, stats = collect(client, AUDIT_LOGS, start, end)
        second, _ = collect(client, AUDIT_LOGS, end, end + W)
    assert {n["id"] for n in first} == {"at-start", "at-start-fraction", "just-before-end"}
    assert {n["id"] for n in second} == {"at-end", "at-end-offset", "after-end"}
    # The simulator's bounds are inclusive and the query is padded, so neighbours did arrive:
    assert stats.nodes_outside_window == 4
    assert stats.min_time == parse_time(cases["at-start"])


def test_boundary_records_of_generated_data_land_in_exactly_one_window(sim, make_client):
    on_boundary = [
        n
        for t, n in zip(sim.tenant.audit_times, sim.tenant.audit_nodes, strict=True)
        if t.minute in (0, 30) and t.second == 0 and t.microsecond == 0
    ]
    assert on_boundary, "the generator should put some entries exactly on window boundaries"
    client = make_client()
    seen: list[str] = []
    at = T0
    while at < T0 + timedelta(hours=6):
        nodes, _ = collect(client, AUDIT_LOGS, at, at + W)
        seen += [n["id"] for n in nodes]
        at += W
    assert len(seen) == len(set(seen)) == len(sim.tenant.audit_nodes)


def test_issue_windows_follow_status_changed_at_and_partition_the_issues(sim, make_client):
    client = make_client()
    by_window: dict = {}
    at = T0 - timedelta(hours=1)
    while at < T0 + timedelta(hours=7):
        nodes, _ = collect(client, ISSUES, at, at + W)
        for node in nodes:
            assert at <= parse_time(node["statusChangedAt"]) < at + W
            assert node["id"] not in by_window
            by_window[node["id"]] = at
        at += W
    visible = {
        n["id"]
        for n in sim.tenant.issues_as_of(sim.now())
        if T0 - timedelta(hours=1) <= parse_time(n["statusChangedAt"]) < T0 + timedelta(hours=7)
    }
    assert set(by_window) == visible
    assert len(visible) > 50


def issue(ident: str, *changes) -> IssueRecord:
    base = {
        "sourceRule": None,
        "projects": [],
        "severity": "LOW",
        "type": "CLOUD_CONFIGURATION",
        "entitySnapshot": None,
        "serviceTickets": [],
        "dueAt": None,
    }
    return IssueRecord({**base, "id": ident}, list(changes))


def test_issue_window_boundary_is_half_open():
    tenant = Tenant()
    tenant.add_issue(issue("on-start", (T0, "OPEN")))
    tenant.add_issue(issue("on-end", (T0 - timedelta(days=3), "OPEN"), (T0 + W, "RESOLVED")))
    with serve(tenant) as (_, client):
        first, _ = collect(client, ISSUES, T0, T0 + W)
        second, _ = collect(client, ISSUES, T0 + W, T0 + 2 * W)
    assert [n["id"] for n in first] == ["on-start"]
    assert [(n["id"], n["status"], n["resolvedAt"]) for n in second] == [
        ("on-end", "RESOLVED", wiz_time(T0 + W))
    ]


def test_issues_that_change_status_later_move_to_the_later_window(sim, make_client):
    changed = next(r for r in sim.tenant.issues if len(r.changes) >= 2 and r.changes[0][0] >= T0)
    (created, _), (moved, new_status) = changed.changes[0], changed.changes[1]
    # Windows on whole seconds: the API may send the times with fewer fractional digits.
    created, moved = created.replace(microsecond=0), moved.replace(microsecond=0)
    client = make_client()
    sim.set_now(moved - timedelta(seconds=1))  # before the change: the issue sits at its creation
    nodes, _ = collect(client, ISSUES, created, created + timedelta(seconds=1))
    assert [(n["id"], n["status"]) for n in nodes] == [(changed.node["id"], "OPEN")]
    sim.set_now(moved + timedelta(seconds=1))  # after it: the creation window no longer has it
    assert collect(client, ISSUES, created, created + timedelta(seconds=1))[0] == []
    nodes, _ = collect(client, ISSUES, moved, moved + timedelta(seconds=1))
    assert [(n["id"], n["status"]) for n in nodes] == [(changed.node["id"], new_status)]


def test_nodes_are_passed_on_as_received_with_every_documented_field(sim, make_client):
    client = make_client()
    audit, _ = collect(client, AUDIT_LOGS, T0, T0 + timedelta(hours=6))
    stored = {n["id"]: n for n in sim.tenant.audit_nodes}
    assert all(node == stored[node["id"]] for node in audit)
    assert set(audit[0]) == {
        "id",
        "action",
        "requestId",
        "status",
        "timestamp",
        "actionParameters",
        "userAgent",
        "sourceIP",
        "serviceAccount",
        "user",
    }
    issues, _ = collect(client, ISSUES, T0 - timedelta(days=40), T0 + timedelta(days=1))
    assert set(issues[0]) == {
        "id",
        "sourceRule",
        "createdAt",
        "updatedAt",
        "dueAt",
        "resolvedAt",
        "statusChangedAt",
        "projects",
        "status",
        "severity",
        "type",
        "entitySnapshot",
        "serviceTickets",
        "notes",
    }
    rules = {n["sourceRule"]["__typename"]: n["sourceRule"] for n in issues if n["sourceRule"]}
    assert set(rules) == {"Control", "CloudEventRule", "CloudConfigurationRule"}
    assert {"controlDescription", "resolutionRecommendation", "securitySubCategories"} <= set(
        rules["Control"]
    )
    assert {"cloudEventRuleDescription", "sourceType", "type"} <= set(rules["CloudEventRule"])
    assert {"cloudConfigurationRuleDescription", "remediationInstructions", "serviceType"} <= set(
        rules["CloudConfigurationRule"]
    )
    entity = next(n["entitySnapshot"] for n in issues if n["entitySnapshot"])
    assert len(entity) == 15 and "subscriptionTags" in entity and "cloudProviderURL" in entity
    assert {p["riskProfile"]["businessImpact"] for n in issues for p in n["projects"]} >= {"HBI", "MBI"}


def test_per_window_figures_are_counted(sim, make_client):
    nodes, stats = collect(make_client(page_size=20), AUDIT_LOGS, T0, T0 + timedelta(hours=1))
    figures = stats.as_dict()
    assert figures["nodes_in_window"] == len(nodes) > 40
    assert figures["pages"] == figures["requests"] == len(sim.graphql_records())
    assert figures["retries"] == 0
    assert figures["bytes_received"] > 200 * len(nodes)
    assert figures["duration_seconds"] > 0
    assert figures["window_start"] == "2025-09-12T21:00:00Z"
    assert T0 <= parse_time(figures["min_time"]) <= parse_time(figures["max_time"]) < T0 + timedelta(hours=1)


def test_a_window_reaching_the_10000_result_cap_fails_instead_of_coming_back_short():
    tenant = generate_tenant(T0, T0 + W, audit_entries=10_050, issues=0)
    with serve(tenant) as (sim, client):
        with pytest.raises(WizResultCapError, match="10000 nodes, the API's cap"):
            collect(client, AUDIT_LOGS, T0, T0 + W)
        assert len(sim.graphql_records()) == 20  # 20 full pages, then hasNextPage false
        half, _ = collect(client, AUDIT_LOGS, T0, T0 + W / 2)  # about 5,000: under the cap
    assert 4000 < len(half) < 6000


def test_a_capped_query_that_goes_on_saying_hasnextpage_is_still_a_cap_error():
    tenant = generate_tenant(T0, T0 + W, audit_entries=10_050, issues=0)
    with serve(tenant) as (sim, client):
        sim.audit_cap_says_more = True
        with pytest.raises(WizResultCapError, match="Use shorter windows"):
            collect(client, AUDIT_LOGS, T0, T0 + W)
        assert len(sim.graphql_records()) == 20


def test_windows_must_be_aware_and_non_empty(make_client):
    with pytest.raises(ValueError, match="timezone-aware"):
        WindowFetch(make_client(), AUDIT_LOGS, T0.replace(tzinfo=None), T0.replace(tzinfo=None) + W)
    with pytest.raises(ValueError, match="empty window"):
        WindowFetch(make_client(), AUDIT_LOGS, T0, T0)


def test_records_arriving_while_paging_do_not_come_back_twice(sim, make_client):
    """Audit entries are listed newest first: entries that become visible between two pages push
    the list down, and the next page repeats the tail of the previous one. Each id is passed on once."""
    sim.set_now(T0 + timedelta(hours=1))
    fetch = WindowFetch(make_client(page_size=25), AUDIT_LOGS, T0, T0 + timedelta(hours=2))
    ids = []
    for page in fetch:
        ids += [node["id"] for node in page]
        sim.set_now(sim.now() + timedelta(minutes=3))  # more entries appear before the next page
    assert len(ids) == len(set(ids))
    assert fetch.stats.duplicates_dropped > 0
    assert fetch.stats.as_dict()["duplicates_dropped"] == fetch.stats.duplicates_dropped
    first_hour = [
        n["id"] for n in sim.tenant.audit_nodes if parse_time(n["timestamp"]) <= T0 + timedelta(hours=1)
    ]
    assert set(first_hour) <= set(ids)  # nothing that was there when paging began is lost


def test_an_issue_changing_status_while_its_window_is_paged_costs_no_other_issue():
    """Ten issues in one closed window, three per page. Between the first two pages the issue
    listed first is resolved: it leaves the window, the list moves up one place, and a single pass
    would skip the issue that moved onto the page already read."""
    tenant = Tenant()
    tenant.add_issue(issue("issue-00", (T0, "OPEN"), (T0 + timedelta(hours=2), "RESOLVED")))
    for i in range(1, 10):
        tenant.add_issue(issue(f"issue-{i:02d}", (T0 + timedelta(minutes=i), "OPEN")))
    with serve(tenant) as (sim, client):
        client.page_size = 3
        sim.set_now(T0 + timedelta(hours=1))
        fetch = WindowFetch(client, ISSUES, T0, T0 + W)
        ids = []
        for page in fetch:
            ids += [node["id"] for node in page]
            sim.set_now(T0 + timedelta(hours=3))
    assert sorted(ids) == [f"issue-{i:02d}" for i in range(10)]  # issue-00 as it was when read
    assert fetch.stats.found_on_reread == 1
    assert fetch.stats.passes == 3  # the second pass differs from the first; the third agrees


def test_a_window_that_fits_in_one_page_is_read_once(sim, make_client):
    fetch = WindowFetch(make_client(), ISSUES, T0, T0 + timedelta(hours=6))
    assert 0 < sum(len(page) for page in fetch) <= 500
    assert (fetch.stats.passes, fetch.stats.requests.requests) == (1, 1)


def test_a_multi_page_issue_window_is_read_twice_when_nothing_changes(sim, make_client):
    fetch = WindowFetch(make_client(page_size=10), ISSUES, T0 - timedelta(days=60), T0 + timedelta(days=2))
    nodes = [node for page in fetch for node in page]
    assert len(nodes) == len({n["id"] for n in nodes}) == len(sim.tenant.issues)
    assert fetch.stats.passes == 2
    assert fetch.stats.found_on_reread == 0
    assert fetch.stats.duplicates_dropped == 0
    assert fetch.stats.requests.pages == 2 * -(-len(nodes) // 10)


def test_audit_windows_are_read_once_however_many_pages(sim, make_client):
    fetch = WindowFetch(make_client(page_size=10), AUDIT_LOGS, T0, T0 + timedelta(hours=6))
    nodes = [node for page in fetch for node in page]
    assert fetch.stats.passes == 1
    assert fetch.stats.requests.pages == -(-len(nodes) // 10)


def test_a_page_that_is_not_utf8_is_retried_and_never_reaches_raw(sim, make_client):
    """msgspec skips unread fields unchecked and ``raw`` keeps the bytes: without the check, a
    window file no reader can decode would be committed."""
    from wiz_pipeline.simulator import Fault

    start, end = T0, T0 + W
    clean, _ = collect(make_client(), AUDIT_LOGS, start, end)
    sim.inject(Fault.invalid_utf8())
    nodes, stats = collect(make_client(), AUDIT_LOGS, start, end)
    assert stats.requests.retries == 1
    assert [n["id"] for n in nodes] == [n["id"] for n in clean]
    assert "bad-1" not in {n["id"] for n in nodes}
