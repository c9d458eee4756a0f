"""The client secret and access tokens never show in logs, exceptions or reprs."""

from __future__ import annotations

import html
import json
import logging
import re
from datetime import timedelta
from urllib.parse import quote, quote_plus

import pytest

from wiz_pipeline.collect.fetch import WindowFetch
from wiz_pipeline.data_types.audit_logs import AUDIT_LOGS
from wiz_pipeline.data_types.issues import ISSUES
from wiz_pipeline.simulator import Fault
from wiz_pipeline.wiz import WizError
from wiz_pipeline_tests.conftest import CLIENT_SECRET, T0


def test_no_secret_or_token_in_any_log_line_exception_or_repr_during_a_full_run(sim, make_client, caplog):
    texts: list[str] = []
    caplog.set_level(logging.DEBUG)  # root: the client's own loggers, httpx and httpcore alike
    logging.getLogger("httpcore").setLevel(logging.DEBUG)
    logging.getLogger("httpx").setLevel(logging.DEBUG)

    client = make_client(page_size=25)
    texts += [repr(client), repr(client.tokens), str(client.tokens), repr(client.tokens._secret)]
    sim.inject(Fault.expired_token(), skip=1)
    sim.inject(Fault.rate_limited(retry_after=0))
    sim.inject(Fault.http_status(503))
    sim.inject(Fault.truncated_body())
    sim.inject(Fault.graphql_error("Unauthenticated", "UNAUTHENTICATED"), skip=2)  # a later page
    for data_type in (AUDIT_LOGS, ISSUES):
        fetch = WindowFetch(client, data_type, T0, T0 + timedelta(hours=3))
        for page in fetch:
            assert page
        texts.append(repr(fetch.stats.as_dict()))
    texts.append(repr(client.tokens.token()))

    failures = [
        (Fault.http_status(400, "bad"), {}),
        (Fault.http_status(403, "denied"), {}),
        (Fault.http_status(401), {"times": 2}),
        (Fault.http_status(500), {"times": 9}),
        (Fault.echo_request(500), {"times": 9}),  # a server quoting our Authorization header back
    ]
    for fault, kwargs in failures:
        sim.inject(fault, **kwargs)
        with pytest.raises(WizError) as caught:
            list(WindowFetch(make_client(max_retries=1), AUDIT_LOGS, T0, T0 + timedelta(minutes=30)))
        texts += [
            str(caught.value),
            repr(caught.value),
            repr(caught.value.__cause__),
            repr(caught.value.__context__),
        ]
    with pytest.raises(WizError) as caught:
        make_client(client_secret=CLIENT_SECRET + "-wrong").tokens.token()
    texts += [str(caught.value), repr(caught.value)]
    for status in (500, 400):  # a token endpoint quoting the form, client secret and all
        sim.inject(Fault.echo_request(status), endpoint="token", times=9)
        with pytest.raises(WizError) as caught:
            make_client(max_retries=1).tokens.token()
        assert "client_credentials" in str(caught.value)  # the echo did reach the message ...
        texts += [str(caught.value), repr(caught.value), repr(caught.value.__context__)]

    tokens = sim.issued_tokens()
    assert len(tokens) >= 4
    assert sim.counters.faults_injected >= 10
    everything = caplog.text + "\n".join(texts) + "\n".join(r.getMessage() for r in caplog.records)
    assert "HTTP Request: POST" in caplog.text  # httpx really did log at DEBUG/INFO
    for secret in [CLIENT_SECRET, CLIENT_SECRET + "-wrong", *tokens]:
        assert secret not in everything
    # and no fragment long enough to matter: the random middle of each JWT-like token
    for token in tokens:
        assert token.split(".")[1][:24] not in everything


def fragments(value: str, size: int = 10) -> set[str]:
    return {value[i : i + size] for i in range(len(value) - size + 1)}


def test_secrets_quoted_back_by_a_server_are_scrubbed_before_messages_are_cut_short(sim, make_client, caplog):
    """Messages are cut to a few hundred characters; a secret straddling the cut must not leave
    its first half behind. The secret has characters that form encoding changes, as servers
    usually quote the form body back encoded."""
    secret = 'Zq7+w/Yx3="&k p@9-Lm4T8vR2'
    sim.add_account("svc-special", secret, {"admin:audit", "read:issues"})
    caplog.set_level(logging.DEBUG)
    texts = []
    for padding in range(100, 320, 4):  # moves the quoted form across the 300-character cut
        sim.inject(Fault.echo_request(400, padding=padding), endpoint="token")
        with pytest.raises(WizError) as caught:
            make_client(client_id="svc-special", client_secret=secret).tokens.token()
        texts.append(str(caught.value))
    assert any("client_credentials" in text for text in texts)  # the echo did reach the messages
    client = make_client(client_id="svc-special", client_secret=secret)
    token = client.tokens.token().reveal()
    for padding in range(700, 1020, 4):  # the Authorization header across the 1,000-character cut
        sim.inject(Fault.echo_request(400, padding=padding))
        with pytest.raises(WizError) as caught:
            client.execute("query Ping { __typename }", {}, operation="Ping")
        texts.append(str(caught.value))
    assert any("Bearer" in text for text in texts)
    everything = "\n".join(texts) + caplog.text
    for value in (secret, quote_plus(secret), quote(secret, safe=""), token):
        leaked = [f for f in fragments(value) if f in everything]
        assert not leaked, leaked


def test_redaction_knows_the_spellings_a_server_may_quote_a_secret_in(make_client):
    secret = 'Zq7+w/Yx3="&k p@9<Lm4>'
    tokens = make_client(client_secret=secret).tokens
    spellings = [
        secret,
        quote_plus(secret),
        quote(secret, safe=""),
        re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), quote(secret, safe="")),
        json.dumps(secret)[1:-1],
        json.dumps(secret)[1:-1].replace("/", "\\/"),
        html.escape(secret),
    ]
    for spelling in spellings:
        assert tokens.redact(f"echo: {spelling} end") == "echo: *** end", spelling
