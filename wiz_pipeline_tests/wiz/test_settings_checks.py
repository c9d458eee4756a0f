"""Bad settings fail at once with a message naming the setting and what is allowed.

Values that come from settings are checked by the settings when they load; the client's options
object checks only the endpoint, the credentials and the tuning no setting covers."""

from __future__ import annotations

import pytest

from wiz_pipeline.settings import load_settings
from wiz_pipeline.wiz import WizClient, WizConfigError
from wiz_pipeline_tests.conftest import client_options

GOOD = {"api_url": "https://api.us1.app.wiz.io/graphql", "client_id": "id", "client_secret": "secret"}


@pytest.mark.parametrize(
    "url",
    [
        "https://api.us17.app.wiz.io/graphql",
        "http://127.0.0.1:8765/graphql",
        "http://127.4.5.6/graphql",
        "http://localhost:8765/graphql",
        "http://[::1]:8765/graphql",
    ],
)
def test_https_or_loopback_http_urls_are_accepted(url):
    WizClient(client_options(**{**GOOD, "api_url": url, "token_url": url})).close()
    assert load_settings({"WIZ_TOKEN_URL": url}).token_url


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://api.us1.app.wiz.io/graphql", "plain http to a non-loopback host"),
        ("http://10.0.0.5/graphql", "plain http to a non-loopback host"),
        ("http://127.0.0.1.evil.example/graphql", "plain http to a non-loopback host"),
        ("ftp://api.us1.app.wiz.io/graphql", "must start with https://"),
        ("api.us1.app.wiz.io/graphql", "must start with https://"),
        ("https:///graphql", "no host"),
    ],
)
def test_other_urls_are_rejected_naming_the_setting(url, says):
    with pytest.raises(WizConfigError, match=says) as caught:
        client_options(**{**GOOD, "api_url": url})
    assert "WIZ_API_URL" in str(caught.value)
    with pytest.raises(WizConfigError, match="WIZ_TOKEN_URL"):
        load_settings({"WIZ_TOKEN_URL": url})


def test_urls_carrying_credentials_are_rejected_without_echoing_them():
    url = "https://svc:hunter2-password@api.us1.app.wiz.io/graphql"
    with pytest.raises(WizConfigError, match="must not carry a user name or password") as caught:
        client_options(**{**GOOD, "api_url": url})
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"WIZ_PAGE_SIZE": "501"}, "WIZ_PAGE_SIZE=501 is out of range: it must be between 1 and 500"),
        ({"WIZ_PAGE_SIZE": "0"}, "WIZ_PAGE_SIZE"),
        ({"WIZ_MAX_RETRIES": "-1"}, "WIZ_MAX_RETRIES"),
        ({"WIZ_REQUEST_TIMEOUT_SECONDS": "0"}, "WIZ_REQUEST_TIMEOUT_SECONDS"),
        ({"WIZ_MAX_REQUESTS_PER_SECOND": "0"}, "WIZ_MAX_REQUESTS_PER_SECOND"),
        ({"WIZ_TOKEN_REFRESH_MARGIN_SECONDS": "-5"}, "WIZ_TOKEN_REFRESH_MARGIN_SECONDS"),
    ],
)
def test_out_of_range_client_settings_are_rejected_when_the_settings_load(env, says):
    with pytest.raises(WizConfigError, match=says):
        load_settings(env)


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ({"max_rate_limit_retries": -1}, "max_rate_limit_retries must be >= 0"),
        ({"backoff_base_seconds": 5, "backoff_max_seconds": 1}, "0 <= base <= max"),
        ({"client_id": ""}, "WIZ_CLIENT_ID is empty"),
        ({"client_secret": ""}, "WIZ_CLIENT_SECRET is empty"),
    ],
)
def test_bad_endpoint_credentials_or_tuning_are_rejected_by_the_options(override, says):
    with pytest.raises(WizConfigError, match=says):
        client_options(**{**GOOD, **override})


def test_the_options_show_the_secret_nowhere():
    options = client_options(**{**GOOD, "client_secret": "hunter2-secret"})
    assert "hunter2" not in repr(options) and "hunter2" not in str(options)
    assert options.client_secret.reveal() == "hunter2-secret"
