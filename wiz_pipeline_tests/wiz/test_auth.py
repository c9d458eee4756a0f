"""OAuth client credentials: the request's shape, caching, refresh by margin and on 401."""

from __future__ import annotations

import time

import pytest

from wiz_pipeline.data_types.audit_logs import QUERY as AUDIT_LOG_QUERY
from wiz_pipeline.simulator import Fault
from wiz_pipeline.wiz import WizAuthError, WizRetriesExhaustedError

PING = "query Ping { __typename }"


def ping(client, **kwargs):
    return client.execute(PING, {}, operation="Ping", **kwargs)


def test_token_request_is_form_encoded_client_credentials_with_audience(sim, make_client):
    ping(make_client())
    (request,) = sim.token_requests
    assert request["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert request["form"] == {
        "grant_type": "client_credentials",
        "client_id": "test-client",
        "audience": "wiz-api",
    }


def test_scopes_extra_oauth_data_and_headers_are_sent(sim, make_client):
    ping(
        make_client(
            scopes="read:issues admin:audit",
            oauth_data={"audience": "wiz-api", "resource": "tenant-7"},
            oauth_headers={"X-Proxy-Tag": "secops"},
        )
    )
    (request,) = sim.token_requests
    assert request["form"]["scope"] == "read:issues admin:audit"
    assert request["form"]["resource"] == "tenant-7"
    assert request["headers"]["x-proxy-tag"] == "secops"


def test_token_is_cached_across_requests(sim, make_client):
    client = make_client()
    for _ in range(10):
        ping(client)
    assert sim.counters.tokens_issued == 1
    assert {r.token_serial for r in sim.graphql_records()} == {1}


@pytest.mark.parametrize(("margin", "tokens"), [(2.5, 2), (0.0, 1)])
def test_token_is_refreshed_when_fewer_than_margin_seconds_remain(sim, make_client, margin, tokens):
    sim.token_lifetime_seconds = 3
    client = make_client(refresh_margin_seconds=margin)
    ping(client)
    time.sleep(0.7)  # 2.3 s of life left: inside a 2.5 s margin, outside a 0 s one
    ping(client)
    assert sim.counters.tokens_issued == tokens
    assert all(r.status == 200 for r in sim.graphql_records())


def test_token_expiring_mid_run_is_replaced_before_it_is_rejected(sim, make_client):
    sim.token_lifetime_seconds = 1.2
    client = make_client(refresh_margin_seconds=0.5, max_requests_per_second=10)
    for _ in range(15):  # ~1.5 s of requests: the token must be replaced at least once
        ping(client)
    assert sim.counters.tokens_issued >= 2
    assert all(r.status == 200 for r in sim.graphql_records())


def test_401_with_cached_token_fetches_a_new_token_and_repeats_once(sim, make_client):
    client = make_client()
    ping(client)
    sim.inject(Fault.expired_token())
    assert ping(client) == {"__typename": "Query"}
    assert sim.counters.tokens_issued == 2
    assert [(r.status, r.token_serial) for r in sim.graphql_records()] == [(200, 1), (401, None), (200, 2)]


def test_second_401_is_an_auth_error_telling_to_verify_credentials(sim, make_client):
    sim.inject(Fault.http_status(401, "Unauthorized"), times=2)
    with pytest.raises(WizAuthError) as caught:
        ping(make_client())
    message = str(caught.value)
    assert "WIZ_CLIENT_ID / WIZ_CLIENT_SECRET" in message
    assert "permissions" in message
    assert sim.counters.graphql_requests == 2
    assert sim.counters.tokens_issued == 2


def test_revoked_tokens_are_replaced_transparently(sim, make_client):
    client = make_client()
    ping(client)
    sim.revoke_tokens()
    ping(client)
    assert sim.counters.tokens_issued == 2


def test_wrong_client_secret_is_an_auth_error_without_retries(sim, make_client):
    with pytest.raises(WizAuthError) as caught:
        ping(make_client(client_secret="not-the-secret"))
    assert "401 from the token endpoint" in str(caught.value)
    assert "WIZ_CLIENT_ID / WIZ_CLIENT_SECRET" in str(caught.value)
    assert sim.counters.token_requests == 1
    assert sim.counters.graphql_requests == 0


def test_wrong_audience_is_an_auth_error_naming_the_audience(sim, make_client):
    with pytest.raises(WizAuthError) as caught:
        ping(make_client(oauth_data={"audience": "beyond-api"}))
    assert "403" in str(caught.value)
    assert "audience" in str(caught.value)


def test_token_endpoint_failures_are_retried(sim, make_client):
    sim.inject(Fault.http_status(503), endpoint="token", times=2)
    sim.inject(Fault.drop_connection(), endpoint="token")
    ping(make_client())
    assert sim.counters.token_requests == 4
    assert sim.counters.tokens_issued == 1


def test_token_endpoint_that_keeps_failing_gives_up_after_max_retries(sim, make_client):
    sim.inject(Fault.http_status(502), endpoint="token", times=10)
    with pytest.raises(WizRetriesExhaustedError) as caught:
        ping(make_client(max_retries=2))
    assert "502" in str(caught.value)
    assert sim.counters.token_requests == 3


def test_a_real_query_is_authorised_by_the_bearer_token(sim, make_client):
    data = make_client().execute(AUDIT_LOG_QUERY, {"first": 1}, operation="AuditLogTable")
    assert len(data["auditLogEntries"]["nodes"]) == 1


@pytest.mark.parametrize("expires_in", [float("inf"), float("nan"), -5, 0, "soon", None, [1]])
def test_an_unusable_expires_in_is_taken_as_an_hour_with_a_warning(sim, make_client, caplog, expires_in):
    sim.token_response_extra = {"expires_in": expires_in}
    client = make_client()
    ping(client)
    ping(client)
    assert sim.counters.tokens_issued == 1  # cached: an hour is well past the 60 s margin
    assert any("assuming 3600" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "token", ["tok-é-0123456789abcdef", "tok 0123456789abcdef", "tok-0123\n456789abcdef"]
)
def test_a_token_that_cannot_be_sent_is_an_auth_error_that_does_not_quote_it(sim, make_client, token):
    sim.token_response_extra = {"access_token": token}
    with pytest.raises(WizAuthError, match="access_token holding spaces, control or non-ASCII") as caught:
        ping(make_client())
    assert "0123" not in str(caught.value)
    assert sim.counters.graphql_requests == 0


def test_surrounding_whitespace_in_a_token_is_ignored(sim, make_client):
    sim.token_response_extra = {"access_token": " \n"}
    with pytest.raises(WizAuthError, match="without an access_token"):
        ping(make_client())


def test_a_token_endpoint_that_trickles_past_the_timeout_is_retried(sim, make_client):
    sim.inject(Fault.drip(3.0), endpoint="token")
    started = time.monotonic()
    ping(make_client(request_timeout_seconds=0.5))
    assert sim.counters.token_requests == 2
    assert time.monotonic() - started < 2.0
