"""The error policy, row by row, against faults the simulator injects."""

from __future__ import annotations

import logging
import random
import time
from datetime import timedelta
from email.utils import format_datetime

import httpx
import pytest

from wiz_pipeline.collect.fetch import WindowFetch
from wiz_pipeline.data_types.audit_logs import AUDIT_LOGS
from wiz_pipeline.data_types.audit_logs import QUERY as AUDIT_LOG_QUERY
from wiz_pipeline.data_types.issues import ISSUES
from wiz_pipeline.simulator import Fault
from wiz_pipeline.wiz import (
    RequestStats,
    WizAuthError,
    WizPaginationError,
    WizPermissionError,
    WizQueryError,
    WizRetriesExhaustedError,
)
from wiz_pipeline.wiz.graphql_errors import ErrorKind, classify_error
from wiz_pipeline.wiz.retry import RetryPolicy, parse_retry_after
from wiz_pipeline_tests.conftest import T0

VARIABLES = {"first": 5, "filterBy": {"timestamp": {"after": "2025-09-12T21:00:00Z"}}}


def audit_page(client, stats=None):
    return client.execute(
        AUDIT_LOG_QUERY, VARIABLES, operation="AuditLogTable", permission="admin:audit", stats=stats
    )


def statuses(sim):
    return [r.status for r in sim.graphql_records()]


# -- 200 with GraphQL errors: classified into the rows below -------------------------------------


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("INTERNAL_SERVER_ERROR", "resolver crashed"),
        (None, "Something went wrong"),
        ("TIMEOUT", "took too long"),
    ],
)
def test_200_with_server_kind_graphql_error_is_retried(sim, make_client, code, message):
    sim.inject(Fault.graphql_error(message, code))
    stats = RequestStats()
    assert len(audit_page(make_client(), stats)["auditLogEntries"]["nodes"]) == 5
    assert stats.retries == 1
    assert statuses(sim) == [200, 200]


def test_200_with_rate_limit_graphql_error_is_retried_as_a_429(sim, make_client):
    sim.inject(Fault.graphql_error("Rate limit exceeded", "RATE_LIMIT_EXCEEDED"))
    stats = RequestStats()
    audit_page(make_client(), stats)
    assert stats.rate_limited == 1
    assert stats.retries == 1


def test_200_with_auth_graphql_error_refreshes_the_token_once(sim, make_client):
    sim.inject(Fault.graphql_error("Unauthenticated", "UNAUTHENTICATED"))
    stats = RequestStats()
    audit_page(make_client(), stats)
    assert stats.token_refreshes == 1
    assert sim.counters.tokens_issued == 2


def test_200_with_forbidden_graphql_error_fails_without_retry(sim, make_client):
    sim.inject(Fault.graphql_error("Access denied", "FORBIDDEN"))
    with pytest.raises(WizPermissionError, match="admin:audit"):
        audit_page(make_client())
    assert sim.counters.graphql_requests == 1


def test_unknown_field_is_a_bad_query_logged_and_not_retried(sim, make_client, caplog):
    query = AUDIT_LOG_QUERY.replace("userAgent", "userAgent mood")
    with caplog.at_level(logging.ERROR), pytest.raises(WizQueryError, match='Cannot query field "mood"'):
        make_client().execute(query, VARIABLES, operation="AuditLogTable")
    assert sim.counters.graphql_requests == 1
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "AuditLogTable" in record.getMessage()
    assert "2025-09-12T21:00:00Z" in record.getMessage()  # the variables
    assert 'Cannot query field "mood" on type "AuditLogEntry"' in record.getMessage()


# -- 400 --------------------------------------------------------------------------------------------


def test_400_is_logged_with_query_name_variables_and_message_and_not_retried(sim, make_client, caplog):
    sim.inject(Fault.http_status(400, "Invalid filterBy.timestamp"))
    with caplog.at_level(logging.ERROR), pytest.raises(WizQueryError, match=r"Invalid filterBy\.timestamp"):
        audit_page(make_client())
    assert statuses(sim) == [400]
    message = "\n".join(r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    assert "AuditLogTable" in message
    assert '"first": 5' in message
    assert "Invalid filterBy.timestamp" in message


# -- 401: see test_auth.py ----------------------------------------------------------------------------


def test_401_twice_is_an_auth_error(sim, make_client):
    sim.inject(Fault.expired_token(), times=2)
    with pytest.raises(WizAuthError, match="WIZ_CLIENT_ID / WIZ_CLIENT_SECRET"):
        audit_page(make_client())
    assert statuses(sim) == [401, 401]


# -- 403 --------------------------------------------------------------------------------------------


def test_403_for_audit_logs_names_admin_audit_and_project_scoped_accounts(sim, make_client):
    sim.add_account("project-scoped", "another-secret-0000", {"read:issues"})
    client = make_client(client_id="project-scoped", client_secret="another-secret-0000")
    with pytest.raises(WizPermissionError) as caught:
        list(WindowFetch(client, AUDIT_LOGS, T0, T0 + timedelta(minutes=30)))
    assert "admin:audit" in str(caught.value)
    assert "scoped to projects" in str(caught.value)
    assert statuses(sim) == [403]


def test_403_for_issues_names_read_issues(sim, make_client):
    sim.add_account("audit-only", "another-secret-0001", {"admin:audit"})
    client = make_client(client_id="audit-only", client_secret="another-secret-0001")
    with pytest.raises(WizPermissionError, match="read:issues"):
        list(WindowFetch(client, ISSUES, T0, T0 + timedelta(minutes=30)))
    assert statuses(sim) == [403]


# -- 429 --------------------------------------------------------------------------------------------


def test_429_is_retried_after_retry_after_seconds(sim, make_client, caplog):
    sim.inject(Fault.rate_limited(retry_after=1))
    stats = RequestStats()
    with caplog.at_level(logging.WARNING):
        audit_page(make_client(), stats)
    first, second = sim.graphql_records()
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 1.0
    assert stats.rate_limited == 1
    assert any("Rate limited" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_429_with_an_http_date_retry_after_is_honoured(sim, make_client):
    from datetime import UTC, datetime

    sim.inject(
        Fault.rate_limited(retry_after=format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True))
    )
    audit_page(make_client())
    first, second = sim.graphql_records()
    assert second.at - first.at >= 0.9  # HTTP dates have whole-second resolution


def test_429_without_retry_after_backs_off_and_retries(sim, make_client):
    sim.inject(Fault.rate_limited(), times=2)
    stats = RequestStats()
    audit_page(make_client(backoff_base_seconds=0.2, backoff_max_seconds=1), stats)
    first, second, third = sim.graphql_records()
    assert second.at - first.at >= 0.1  # equal jitter: at least half of 0.2 s
    assert third.at - second.at >= 0.2  # then at least half of 0.4 s
    assert stats.rate_limited == 2


def test_429_retries_are_bounded(sim, make_client):
    sim.inject(Fault.rate_limited(retry_after=0), times=5)
    with pytest.raises(WizRetriesExhaustedError, match="still rate limited after 2 retries"):
        audit_page(make_client(max_rate_limit_retries=2))
    assert statuses(sim) == [429, 429, 429]


def test_429_asking_for_too_long_a_wait_fails_with_a_clear_message(sim, make_client):
    client = make_client()
    client.retry.max_retry_after_seconds = 5
    sim.inject(Fault.rate_limited(retry_after=3600))
    with pytest.raises(WizRetriesExhaustedError, match="told to wait 3600 s"):
        audit_page(client)


def test_429s_do_not_use_up_the_retries_meant_for_failures(sim, make_client):
    sim.inject(Fault.rate_limited(retry_after=0), times=3)
    sim.inject(Fault.http_status(503))
    audit_page(make_client(max_retries=1))
    assert statuses(sim) == [429, 429, 429, 503, 200]


# -- other: 5xx, timeouts, resets, truncated or non-JSON bodies ------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        Fault.http_status(500),
        Fault.http_status(502),
        Fault.http_status(503),
        Fault.http_status(504),
        Fault.drop_connection(),
        Fault.truncated_body(),
        Fault.malformed_json(),
        Fault.corrupt_gzip(),
        Fault.html_error(502),
    ],
    ids=[
        "500",
        "502",
        "503",
        "504",
        "connection-drop",
        "truncated-body",
        "malformed-json",
        "corrupt-gzip",
        "html-502",
    ],
)
def test_transient_failures_are_retried_with_backoff(sim, make_client, fault):
    sim.inject(fault, times=2)
    stats = RequestStats()
    data = audit_page(make_client(), stats)
    assert len(data["auditLogEntries"]["nodes"]) == 5
    assert stats.retries == 2
    assert stats.requests == 3


@pytest.mark.parametrize("status", [404, 405, 409, 413, 422, 302])
def test_any_other_status_is_retried_like_a_5xx(sim, make_client, status):
    """The table's "other" row: a gateway in front of the API can answer anything for a moment."""
    sim.inject(Fault.http_status(status, "gateway hiccup"))
    stats = RequestStats()
    assert len(audit_page(make_client(), stats)["auditLogEntries"]["nodes"]) == 5
    assert statuses(sim) == [status, 200]
    assert stats.retries == 1


def test_a_404_that_persists_fails_naming_the_api_url_setting(sim, make_client):
    sim.inject(Fault.http_status(404, "no such route"), times=3)
    with pytest.raises(WizRetriesExhaustedError) as caught:
        audit_page(make_client(max_retries=2))
    assert "404" in str(caught.value)
    assert "WIZ_API_URL" in str(caught.value)
    assert caught.value.status == 404


@pytest.mark.parametrize(
    "fault",
    [Fault.null_connection(), Fault.missing_cursor(), Fault.partial_data()],
    ids=["null-connection", "hasNextPage-without-endCursor", "partial-data-with-errors"],
)
def test_a_200_with_an_unusable_page_is_retried_and_the_window_still_comes_whole(sim, make_client, fault):
    client = make_client(page_size=50)
    sim.inject(fault, skip=1)  # the second page
    fetch = WindowFetch(client, AUDIT_LOGS, T0, T0 + timedelta(hours=6))
    ids = [node["id"] for page in fetch for node in page]
    assert sorted(ids) == sorted(node["id"] for node in sim.tenant.audit_nodes)
    assert fetch.stats.duplicates_dropped == 0
    assert fetch.stats.requests.retries == 1
    assert [r.fault for r in sim.graphql_records()].count(fault.kind) == 1


def test_an_unusable_page_that_persists_fails_the_window(sim, make_client):
    sim.inject(Fault.null_connection(), times=3)
    with pytest.raises(WizRetriesExhaustedError, match="no `auditLogEntries` object"):
        list(WindowFetch(make_client(max_retries=2), AUDIT_LOGS, T0, T0 + timedelta(hours=1)))
    assert sim.counters.graphql_requests == 3


def test_pages_that_bring_nothing_new_while_saying_hasnextpage_end_the_window(sim, make_client):
    sim.inject(Fault.empty_page(), times=50)
    with pytest.raises(WizPaginationError, match="10 pages in a row brought nothing new"):
        list(WindowFetch(make_client(page_size=5), AUDIT_LOGS, T0, T0 + timedelta(hours=6)))
    assert sim.counters.graphql_requests == 10


def test_a_failed_window_fetched_again_with_the_same_object_comes_whole(sim, make_client):
    fetch = WindowFetch(make_client(page_size=50, max_retries=1), AUDIT_LOGS, T0, T0 + timedelta(hours=6))
    sim.inject(Fault.http_status(503), times=2, skip=3)  # the fourth page fails for good
    with pytest.raises(WizRetriesExhaustedError):
        list(fetch)
    ids = [node["id"] for page in fetch for node in page]
    assert len(ids) == len(set(ids)) == len(sim.tenant.audit_nodes)
    assert fetch.stats.duplicates_dropped == 0
    assert fetch.stats.nodes_in_window == len(ids)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        ({"message": "Unauthorized"}, ErrorKind.AUTH),
        ({"message": "User is not authorized to read audit logs"}, ErrorKind.FORBIDDEN),
        ({"message": "x", "extensions": {"code": 429}}, ErrorKind.RATE_LIMIT),
        ({"message": "x", "extensions": {"code": "401"}}, ErrorKind.AUTH),
        ({"message": "x", "extensions": {"http": {"status": "429"}}}, ErrorKind.RATE_LIMIT),
        ({"message": "x", "extensions": {"statusCode": 403}}, ErrorKind.FORBIDDEN),
        ({"message": 'Field "bogus" is not defined by type "AuditLogEntryFilters".'}, ErrorKind.BAD_QUERY),
        ({"message": "x", "extensions": {"code": "internal_server_error"}}, ErrorKind.SERVER),
        ("not even an object", ErrorKind.SERVER),
    ],
)
def test_graphql_errors_are_classified_whatever_their_shape(error, kind):
    assert classify_error(error) is kind


def test_a_bare_unauthorized_graphql_error_refreshes_the_token(sim, make_client):
    sim.inject(Fault.graphql_error("Unauthorized"))
    stats = RequestStats()
    audit_page(make_client(), stats)
    assert stats.token_refreshes == 1


def test_partial_data_with_a_permission_error_is_a_permission_error(sim, make_client):
    """Partial data is never passed on: the errors beside it decide, as for any other 200."""
    sim.inject(Fault.partial_data("Not authorized to read field serviceAccount", "FORBIDDEN"))
    with pytest.raises(WizPermissionError):
        list(WindowFetch(make_client(), AUDIT_LOGS, T0, T0 + timedelta(hours=1)))
    assert sim.counters.graphql_requests == 1


def test_a_503_with_retry_after_waits_as_told(sim, make_client):
    sim.inject(Fault.http_status(503, "maintenance", retry_after=1))
    audit_page(make_client())
    first, second = sim.graphql_records()
    assert (first.status, second.status) == (503, 200)
    assert second.at - first.at >= 1.0  # the backoff alone would be 0.01 s here


def test_a_retry_after_date_is_read_against_a_date_header_written_with_minus_0000(sim, make_client):
    """RFC 5322 allows "-0000" for UTC; it parses to a naive time, which must not crash the client."""
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    stamp = "%a, %d %b %Y %H:%M:%S -0000"
    sim.inject(
        Fault.http_status(
            503,
            retry_after=(now + timedelta(seconds=1)).strftime(stamp),
            headers={"Date": now.strftime(stamp)},
        )
    )
    audit_page(make_client())
    first, second = sim.graphql_records()
    assert (first.status, second.status) == (503, 200)
    assert second.at - first.at >= 0.5  # waited as told (whole-second dates), not the 0.01 s backoff


def test_a_redirect_quoting_the_token_is_scrubbed(sim, make_client, caplog):
    client = make_client(max_retries=1)
    token = client.tokens.token().reveal()
    location = f"https://login.example.com/?next=/graphql&access_token={token}"
    sim.inject(Fault.http_status(302, "moved", headers={"Location": location}), times=2)
    with caplog.at_level(logging.DEBUG), pytest.raises(WizRetriesExhaustedError) as caught:
        audit_page(client)
    assert "login.example.com" in str(caught.value) and "WIZ_API_URL" in str(caught.value)
    assert token not in str(caught.value) + caplog.text


@pytest.mark.parametrize(
    "fault",
    [Fault.drip(3.0), Fault.gzip_stall(3.0)],
    ids=["body-in-slices", "gzip-that-decodes-to-nothing"],
)
def test_an_answer_that_trickles_in_past_the_timeout_is_abandoned_and_retried(sim, make_client, fault):
    """Every gap is at most 0.15 s, well inside the 0.5 s timeout; the whole answer takes 3 s."""
    sim.inject(fault)
    stats = RequestStats()
    started = time.monotonic()
    audit_page(make_client(request_timeout_seconds=0.5), stats)
    assert stats.retries == 1
    assert time.monotonic() - started < 2.0


def test_timeouts_are_retried(sim, make_client):
    sim.inject(Fault.slow(1.0))
    stats = RequestStats()
    audit_page(make_client(request_timeout_seconds=0.3), stats)
    assert stats.retries == 1


def test_retries_give_up_after_max_retries_with_the_last_status_and_message(sim, make_client):
    sim.inject(Fault.http_status(503, "upstream maintenance"), times=10)
    with pytest.raises(WizRetriesExhaustedError) as caught:
        audit_page(make_client(max_retries=3))
    assert "after 3 retries" in str(caught.value)
    assert "503" in str(caught.value)
    assert "upstream maintenance" in str(caught.value)
    assert caught.value.status == 503
    assert statuses(sim) == [503] * 4


def test_timeouts_that_persist_fail_naming_the_timeout_setting(sim, make_client):
    sim.inject(Fault.slow(0.6), times=3)
    with pytest.raises(WizRetriesExhaustedError, match="WIZ_REQUEST_TIMEOUT_SECONDS"):
        audit_page(make_client(request_timeout_seconds=0.2, max_retries=2))


def test_dead_network_fails_clearly_after_retries(make_client):
    client = make_client(api_url="http://127.0.0.1:9/graphql", max_retries=1)  # discard port: nothing listens
    client.tokens.token()  # the token endpoint (the simulator) is fine; the API host is not
    with pytest.raises(WizRetriesExhaustedError, match="ConnectError") as caught:
        audit_page(client)
    # httpx's exception carries the request and its Authorization header: it must not be chained.
    chain, exc = [], caught.value
    while exc is not None:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    assert not any(isinstance(e, httpx.HTTPError) for e in chain)


def test_a_page_that_fails_is_resumed_from_its_cursor(sim, make_client):
    client = make_client(page_size=50)
    sim.inject(Fault.http_status(502), skip=2)  # the third page fails once
    fetch = WindowFetch(client, AUDIT_LOGS, T0, T0 + timedelta(hours=6))
    ids = [node["id"] for page in fetch for node in page]
    assert len(ids) == len(set(ids)) == len(sim.tenant.audit_nodes)
    assert fetch.stats.requests.retries == 1


# -- the backoff itself ---------------------------------------------------------------------------


def test_backoff_is_exponential_with_jitter_and_capped():
    policy = RetryPolicy(backoff_base_seconds=1, backoff_max_seconds=8, rng=random.Random(3))
    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 8), (9, 8)]:
        waits = {policy.backoff(attempt) for _ in range(50)}
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert len(waits) > 1  # jittered


def test_retry_after_parsing():
    assert parse_retry_after("7") == 7
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # in the past: go now
