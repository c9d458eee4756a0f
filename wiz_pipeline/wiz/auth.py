"""OAuth 2.0 client-credentials tokens for the Wiz API: fetched once, cached, refreshed early."""

from __future__ import annotations

import html
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, quote_plus

import httpx

from wiz_pipeline.wiz import log_scrub, transport
from wiz_pipeline.wiz.errors import (
    WizAuthError,
    WizRateLimitError,
    WizResponseError,
    WizRetryableError,
)
from wiz_pipeline.wiz.options import WizOptions
from wiz_pipeline.wiz.retry import RetryPolicy
from wiz_pipeline.wiz.secret import Secret
from wiz_pipeline.wiz.transport import Reply

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Token:
    value: Secret
    expires_at: float  # monotonic clock


class TokenProvider:
    """Gets a bearer token by client credentials and keeps it until ``refresh_margin`` before expiry.

    Thread-safe: concurrent callers share one token and at most one fetch is in flight.
    """

    def __init__(
        self,
        options: WizOptions,
        *,
        http: httpx.Client,
        retry: RetryPolicy,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client_id = options.client_id
        self._secret = options.client_secret
        self.token_url = options.token_url
        self.oauth_data = dict(options.oauth_data)
        self.oauth_headers = dict(options.oauth_headers)
        self.scopes = options.scopes or None
        self.refresh_margin_seconds = options.refresh_margin_seconds
        self._timeout = options.request_timeout_seconds
        self._http = http
        self._retry = retry
        self._clock = clock
        self._lock = threading.Lock()
        self._token: _Token | None = None
        # The ways the secret and the last few tokens may be quoted back, worked out once each:
        # redact runs for every httpx log record when INFO is on.
        self._secret_spellings = _spellings(self._secret.reveal())
        self._token_spellings: list[set[str]] = []
        self.tokens_fetched = 0
        log_scrub.register(self)

    def __repr__(self) -> str:
        return f"TokenProvider(client_id={self.client_id!r}, token_url={self.token_url!r})"

    def redact(self, text: str) -> str:
        """``text`` with the client secret and every token we hold replaced by ``***``.

        For text that comes from a server (error messages, response snippets): a misbehaving proxy
        or API can echo back the request it was sent, form-encoded or JSON-escaped.
        """
        for forms in (self._secret_spellings, *self._token_spellings):
            for form in forms:
                if form in text:
                    text = text.replace(form, "***")
        return text

    def scrub(self, text: str, limit: int) -> str:
        """Server text fit for a message: redacted first, then cut to ``limit`` characters (a
        secret cut in half would no longer be recognised)."""
        text = self.redact(text)
        return text if len(text) <= limit else text[:limit] + "..."

    def token(self) -> Secret:
        """A token with more than ``refresh_margin`` seconds of life left, fetched if needed."""
        with self._lock:
            if self._token is None or self._clock() >= self._token.expires_at - self.refresh_margin_seconds:
                self._token = self._fetch()
            return self._token.value

    def invalidate(self, rejected: Secret) -> None:
        """Forget ``rejected`` (the API answered 401 to it), unless another thread already replaced it."""
        with self._lock:
            if self._token is not None and self._token.value is rejected:
                self._token = None

    def _fetch(self) -> _Token:
        form = {
            "grant_type": "client_credentials",
            **self.oauth_data,
            "client_id": self.client_id,
            "client_secret": self._secret.reveal(),
        }
        if self.scopes:
            form["scope"] = self.scopes
        started = self._clock()
        response = self._retry.run(lambda: self._post(form), what=f"token request to {self.token_url}")
        payload = _json_object(response, self.token_url)
        access_token = payload.get("access_token")
        if isinstance(access_token, str):
            access_token = access_token.strip()
        if not isinstance(access_token, str) or not access_token:
            raise WizAuthError(
                f"The token endpoint {self.token_url} answered {response.status_code} without an "
                "access_token; check WIZ_TOKEN_URL points at the OAuth token endpoint."
            )
        if not _HEADER_SAFE.fullmatch(access_token):
            # It could not travel in an Authorization header; the message must not quote it.
            raise WizAuthError(
                f"The token endpoint {self.token_url} answered with an access_token holding spaces, "
                "control or non-ASCII characters, which no bearer token has; check WIZ_TOKEN_URL."
            )
        lifetime = _lifetime(payload.get("expires_in"))
        self.tokens_fetched += 1
        self._token_spellings = [*self._token_spellings[-9:], _spellings(access_token)]
        log.info("Fetched a Wiz API token (expires in %s s).", int(lifetime))
        if lifetime <= self.refresh_margin_seconds:
            log.warning(
                "The token lives %s s, not more than the refresh margin of %s s: every request will "
                "fetch a new token. Lower WIZ_TOKEN_REFRESH_MARGIN_SECONDS.",
                lifetime,
                self.refresh_margin_seconds,
            )
        # Measured from before the request, so a slow token endpoint can't make us overestimate.
        return _Token(Secret(access_token), started + lifetime)

    def _post(self, form: dict[str, str]) -> Reply:
        response = transport.post(
            self._http,
            self.token_url,
            timeout=self._timeout,
            what="Token request",
            scrub=self.redact,
            data=form,
            headers=self.oauth_headers,
        )
        status = response.status_code
        retry_after = response.retry_after()
        if status == 429:
            raise WizRateLimitError(
                f"Token endpoint {self.token_url} answered 429 (rate limited).", retry_after=retry_after
            )
        if status >= 500:
            raise WizRetryableError(
                f"Token endpoint {self.token_url} answered {status}: {self._error_text(response)}",
                status=status,
                retry_after=retry_after,
            )
        if status >= 400:
            raise WizAuthError(
                f"{status} from the token endpoint {self.token_url}: {self._error_text(response)}. "
                "Check WIZ_CLIENT_ID / WIZ_CLIENT_SECRET, WIZ_TOKEN_URL (commercial, FedRAMP and gov "
                "tenants use different ones) and the audience in WIZ_OAUTH_DATA."
            )
        return response

    def _error_text(self, response: Reply) -> str:
        """The server's own error words (OAuth ``error``/``error_description``), scrubbed and short."""
        try:
            payload = json.loads(response.content)
        except ValueError:
            payload = None
        text = response.text.strip() or "(empty body)"
        if isinstance(payload, dict):
            parts = [str(payload[k]) for k in ("error", "error_description", "message") if payload.get(k)]
            text = ": ".join(parts) if parts else text
        return self.scrub(text, 300)


def _json_object(response: Reply, url: str) -> dict:
    try:
        payload = json.loads(response.content)
    except ValueError:
        raise WizResponseError(
            f"Token endpoint {url} answered {response.status_code} with a body that is not JSON.",
            status=response.status_code,
        ) from None
    if not isinstance(payload, dict):
        raise WizResponseError(f"Token endpoint {url} answered with JSON that is not an object.")
    return payload


# What can travel in an Authorization header: visible ASCII (RFC 6750's b64token is narrower still).
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")
_DEFAULT_LIFETIME = 3600.0


def _lifetime(expires_in: object) -> float:
    """``expires_in`` in seconds if it is a finite positive number; otherwise an hour, with a warning."""
    try:
        lifetime = float(expires_in)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        lifetime = math.nan
    if not (math.isfinite(lifetime) and lifetime > 0):
        log.warning("Token endpoint sent expires_in=%r; assuming %s s.", expires_in, _DEFAULT_LIFETIME)
        return _DEFAULT_LIFETIME
    return lifetime


def _spellings(value: str) -> set[str]:
    """``value`` as it may be quoted back: as is, form- or URL-encoded, JSON-escaped."""
    if not value:
        return set()
    encoded = {quote_plus(value), quote(value, safe="")}
    encoded |= {_LOWER_HEX.sub(lambda m: m.group().lower(), e) for e in encoded}  # %2f as well as %2F
    escaped = json.dumps(value)[1:-1]
    return {value, *encoded, escaped, escaped.replace("/", "\\/"), html.escape(value)}


_LOWER_HEX = re.compile(r"%[0-9A-F]{2}")
