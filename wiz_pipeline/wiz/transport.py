"""One HTTP POST with a deadline for the whole exchange; every httpx failure made retryable but a
refused certificate, which no retry can cure."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from wiz_pipeline.wiz.errors import WizError, WizRetryableError, WizTLSError
from wiz_pipeline.wiz.retry import parse_retry_after
from wiz_pipeline.wiz.tls import certificate_failure, certificate_message


@dataclass(frozen=True)
class Reply:
    """A whole answer, read within the deadline."""

    status_code: int
    headers: httpx.Headers
    content: bytes  # decoded (gzip etc. undone)
    num_bytes_downloaded: int  # as they came over the wire

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def server_date(self) -> datetime | None:
        """The server's ``Date`` header: the clock an HTTP-date ``Retry-After`` is measured on."""
        try:
            when = parsedate_to_datetime(self.headers.get("Date", ""))
        except (TypeError, ValueError):
            return None
        # "-0000" parses to a naive datetime; HTTP dates are UTC whatever they say.
        return when if when.tzinfo is not None else when.replace(tzinfo=UTC)

    def retry_after(self) -> float | None:
        """Seconds the server asked us to wait (``Retry-After``: seconds, or a date on its clock)."""
        return parse_retry_after(self.headers.get("Retry-After"), now=self.server_date())


def post(
    http: httpx.Client,
    url: str,
    *,
    timeout: float,
    what: str,
    scrub: Callable[[str], str],
    **request: Any,
) -> Reply:
    """POST and read the whole answer, or raise ``WizRetryableError`` (``WizTLSError`` if the server's
    certificate was refused: trust is configuration, and retrying it only delays the message).

    httpx's timeouts bound each connect, write and read separately, so a server that sends a
    little now and then could hold a request for ever; here the body, counted in bytes as they
    come over the wire (compressed or not), must also be complete within ``timeout`` of sending.
    The status line and headers are bounded by the read timeout per read and by h11's 16 KiB
    limit on headers. ``scrub`` cleans error text that may quote the request. Failures are raised
    outside the ``except`` blocks on purpose: an httpx exception carries the request, headers
    and body included, and must not ride along as ``__context__``.
    """
    deadline = time.monotonic() + timeout
    failure: WizError
    try:
        with http.stream("POST", url, **request) as response:
            raw: list[bytes] = []
            for chunk in response.iter_raw():
                raw.append(chunk)
                if time.monotonic() > deadline:
                    break
            else:
                # Decoded (gzip, deflate, ...) only once whole; a bad encoding is an httpx error below.
                decoded = httpx.Response(
                    response.status_code, headers=response.headers, content=b"".join(raw)
                )
                return Reply(
                    response.status_code, response.headers, decoded.content, response.num_bytes_downloaded
                )
        failure = WizRetryableError(
            f"{what}: the answer from {url} was still arriving after {timeout:g} s; "
            "raise WIZ_REQUEST_TIMEOUT_SECONDS if the tenant is slow."
        )
    except httpx.TimeoutException as exc:
        failure = WizRetryableError(
            f"{what}: no answer from {url} within {timeout:g} s ({type(exc).__name__}); "
            "raise WIZ_REQUEST_TIMEOUT_SECONDS if the tenant is slow."
        )
    except httpx.LocalProtocolError as exc:
        # Our own request was malformed; its text would quote our headers, so it is left out.
        failure = WizRetryableError(f"{what}: could not send the request to {url} ({type(exc).__name__}).")
    except httpx.HTTPError as exc:  # connection errors, resets, a body that fails to decompress, ...
        refused = certificate_failure(exc)
        if refused is not None:
            failure = WizTLSError(certificate_message(what, url, refused))
        else:
            failure = WizRetryableError(f"{what}: {type(exc).__name__} talking to {url}: {scrub(str(exc))}")
    raise failure
