"""Everything the client needs to know, in one frozen object made once and passed down.

The pipeline's settings (``settings.py``) check every value that comes from a setting once, when the
definitions load (``Settings.client_options``); the resource adds the endpoint and credentials, which
Dagster reads when a run starts, and makes this object then (``Settings.wiz_options`` does the same
outside Dagster). What is checked here is only what no setting checks: the endpoint and credentials
themselves, and the tuning that tests lower.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from wiz_pipeline.core.urls import check_url
from wiz_pipeline.wiz.errors import WizConfigError
from wiz_pipeline.wiz.secret import Secret

MAX_PAGE_SIZE = 500  # the API's maximum for `first`


@dataclass(frozen=True)
class WizOptions:
    api_url: str
    client_id: str
    client_secret: Secret  # a str is wrapped; never shown by repr
    token_url: str
    scopes: str  # space-separated; empty: none sent
    oauth_data: Mapping[str, str]
    oauth_headers: Mapping[str, str]
    refresh_margin_seconds: float  # a token is replaced this long before it expires
    page_size: int
    max_retries: int
    request_timeout_seconds: float
    max_requests_per_second: float
    # WIZ_CA_BUNDLE, checked by the settings: a PEM file of CAs trusted on top of the default ones.
    ca_bundle: str = ""
    # Not settings: the client's own tuning, lowered by tests so that retries don't take seconds.
    max_rate_limit_retries: int = 10
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 60.0

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "api_url", check_url(self.api_url, name="WIZ_API_URL"))
        if not self.client_id:
            raise WizConfigError("WIZ_CLIENT_ID is empty: set it to the service account's client id.")
        secret = self.client_secret if isinstance(self.client_secret, Secret) else Secret(self.client_secret)
        if not secret:
            raise WizConfigError("WIZ_CLIENT_SECRET is empty: set it to the service account's secret.")
        set_(self, "client_secret", secret)
        # Copied, so that nobody's dict can change a frozen object's contents later.
        set_(self, "oauth_data", dict(self.oauth_data))
        set_(self, "oauth_headers", dict(self.oauth_headers))
        if self.max_rate_limit_retries < 0:
            raise WizConfigError(f"max_rate_limit_retries must be >= 0, got {self.max_rate_limit_retries!r}.")
        if not 0 <= self.backoff_base_seconds <= self.backoff_max_seconds:
            raise WizConfigError(
                "backoff_base_seconds and backoff_max_seconds must satisfy 0 <= base <= max, got "
                f"{self.backoff_base_seconds!r} and {self.backoff_max_seconds!r}."
            )
