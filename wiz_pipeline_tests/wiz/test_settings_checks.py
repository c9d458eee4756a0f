"""Bad settings fail at once with a message naming the setting and what is allowed."""

from __future__ import annotations

import pytest

from wiz_pipeline.wiz import WizClient, WizConfigError

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
    WizClient(**{**GOOD, "api_url": url, "token_url": url}).close()


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
        WizClient(**{**GOOD, "api_url": url})
    assert "WIZ_API_URL" in str(caught.value)
    with pytest.raises(WizConfigError, match="WIZ_TOKEN_URL"):
        WizClient(**{**GOOD, "token_url": url})


def test_urls_carrying_credentials_are_rejected_without_echoing_them():
    url = "https://svc:hunter2-password@api.us1.app.wiz.io/graphql"
    with pytest.raises(WizConfigError, match="must not carry a user name or password") as caught:
        WizClient(**{**GOOD, "api_url": url})
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ({"page_size": 501}, "WIZ_PAGE_SIZE must be between 1 and 500"),
        ({"page_size": 0}, "WIZ_PAGE_SIZE"),
        ({"max_retries": -1}, "WIZ_MAX_RETRIES"),
        ({"max_rate_limit_retries": -1}, "max_rate_limit_retries must be >= 0"),
        ({"backoff_base_seconds": 5, "backoff_max_seconds": 1}, "0 <= base <= max"),
        ({"request_timeout_seconds": 0}, "WIZ_REQUEST_TIMEOUT_SECONDS"),
        ({"max_requests_per_second": 0}, "WIZ_MAX_REQUESTS_PER_SECOND"),
        ({"client_id": ""}, "WIZ_CLIENT_ID is empty"),
        ({"client_secret": ""}, "WIZ_CLIENT_SECRET is empty"),
        ({"refresh_margin_seconds": -5}, "WIZ_TOKEN_REFRESH_MARGIN_SECONDS"),
    ],
)
def test_out_of_range_settings_are_rejected(override, says):
    with pytest.raises(WizConfigError, match=says):
        WizClient(**{**GOOD, **override})
