"""Faults the simulator injects on demand, so every row of the client's error policy can be tested."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import Enum
from typing import Any


class Endpoint(Enum):
    GRAPHQL = "graphql"
    TOKEN = "token"


@dataclass(frozen=True)
class Fault:
    """What to do instead of (or before) answering normally. Build one with the class methods."""

    kind: str
    status: int = 200
    retry_after: str | None = None
    delay_seconds: float = 0.0
    message: str = ""
    code: str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def http_status(
        cls,
        status: int,
        message: str = "simulated failure",
        retry_after: str | float | None = None,
        headers: dict[str, str] | None = None,
    ) -> Fault:
        """Answer ``status`` with a GraphQL-style error body (use for 400, 403, 500, 502, 503 ...),
        with a ``Retry-After`` header if given, and any other ``headers`` (``Location``, ``Date``)."""
        return cls(
            "status",
            status=status,
            message=message,
            retry_after=_header(retry_after),
            headers=tuple((headers or {}).items()),
        )

    @classmethod
    def rate_limited(cls, retry_after: str | float | None = None) -> Fault:
        """429, with ``Retry-After`` (seconds, or an HTTP date string) or without it."""
        return cls("status", status=429, message="Rate limit exceeded", retry_after=_header(retry_after))

    @classmethod
    def graphql_error(cls, message: str, code: str | None = None) -> Fault:
        """200 with ``{"errors": [...], "data": null}``."""
        return cls("graphql_error", message=message, code=code)

    @classmethod
    def expired_token(cls) -> Fault:
        """401 as for an expired token; the presented token stays rejected from then on."""
        return cls("expire_token", status=401, message="Unauthorized: token expired")

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        """Wait ``seconds`` before answering normally (past the client's timeout, it sees a timeout)."""
        return cls("slow", delay_seconds=seconds)

    @classmethod
    def drop_connection(cls) -> Fault:
        """Close the connection without answering."""
        return cls("drop")

    @classmethod
    def truncated_body(cls) -> Fault:
        """Send the headers and half the body, then close."""
        return cls("truncate")

    @classmethod
    def malformed_json(cls) -> Fault:
        """200 with a body that is not JSON."""
        return cls("malformed_json")

    @classmethod
    def invalid_utf8(cls) -> Fault:
        """200 with a well-formed audit page whose node carries bytes that are not UTF-8 in a field no
        column reads (a proxy that re-encoded the body, a server bug)."""
        return cls("invalid_utf8")

    @classmethod
    def html_error(cls, status: int = 502, message: str = "Bad Gateway") -> Fault:
        """``status`` with an HTML page, as a load balancer in front of an API answers."""
        return cls("html_error", status=status, message=message)

    @classmethod
    def corrupt_gzip(cls) -> Fault:
        """200 with ``Content-Encoding: gzip`` and a body that does not decompress."""
        return cls("corrupt_gzip")

    @classmethod
    def drip(cls, seconds: float) -> Fault:
        """Answer normally, but send the body in 20 slices spread over about ``seconds``: each gap is
        far shorter than the whole, so only a deadline on the whole answer notices."""
        return cls("drip", delay_seconds=seconds)

    @classmethod
    def gzip_stall(cls, seconds: float) -> Fault:
        """200 with ``Content-Encoding: gzip``, then for ``seconds`` a trickle of empty deflate
        blocks: bytes keep arriving, but they decode to nothing."""
        return cls("gzip_stall", delay_seconds=seconds)

    @classmethod
    def echo_request(cls, status: int = 500, padding: int = 0) -> Fault:
        """Answer ``status`` with an error message that quotes the request: its Authorization
        header at /graphql, its form body (the client secret) at /oauth/token. Some proxies do.
        ``padding`` characters go before the quote, to move it about in the message."""
        return cls("echo", status=status, message="x" * padding)

    # The faults below answer the query normally, then spoil the answer.

    @classmethod
    def partial_data(cls, message: str = "Internal error resolving field", code: str | None = None) -> Fault:
        """200 with the real ``data`` plus an ``errors`` entry that has a ``path`` into it, the way
        GraphQL reports a field that failed while the rest resolved."""
        return cls("partial_data", message=message, code=code)

    @classmethod
    def null_connection(cls) -> Fault:
        """200 with ``data: {"<connection>": null}`` and no errors."""
        return cls("null_connection")

    @classmethod
    def empty_page(cls) -> Fault:
        """200 with no nodes, but ``pageInfo`` as it would have been (``hasNextPage`` and all)."""
        return cls("empty_page")

    @classmethod
    def missing_cursor(cls) -> Fault:
        """200 whose ``pageInfo`` says ``hasNextPage: true`` but has no ``endCursor``."""
        return cls("missing_cursor")

    @classmethod
    def extra_field(cls, name: str = "riskScore") -> Fault:
        """200 with every node of the page carrying a field ``name`` the query didn't ask for, as
        after an API change."""
        return cls("extra_field", message=name)

    @classmethod
    def numeric_ids(cls) -> Fault:
        """200 with every node of the page having the number 1 as its id (an API that changed the
        id's type, a server bug)."""
        return cls("numeric_ids")

    @property
    def spoils_answer(self) -> bool:
        return self.kind in (
            "partial_data",
            "null_connection",
            "missing_cursor",
            "empty_page",
            "drip",
            "extra_field",
            "numeric_ids",
        )


def _header(value: str | float | None) -> str | None:
    return None if value is None else str(value)


@dataclass
class _Armed:
    fault: Fault
    endpoint: Endpoint
    skip: int
    times: int


class FaultQueue:
    """Faults in the order they were injected; each request takes the head one for its endpoint."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: list[_Armed] = []

    def add(self, fault: Fault, *, endpoint: Endpoint, times: int = 1, skip: int = 0) -> None:
        if times < 1 or skip < 0:
            raise ValueError("times must be >= 1 and skip >= 0")
        with self._lock:
            self._armed.append(_Armed(fault, endpoint, skip, times))

    def take(self, endpoint: Endpoint) -> Fault | None:
        with self._lock:
            for armed in self._armed:
                if armed.endpoint is not endpoint:
                    continue
                if armed.skip:
                    armed.skip -= 1
                    return None
                armed.times -= 1
                if armed.times == 0:
                    self._armed.remove(armed)
                return armed.fault
            return None

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{"kind": a.fault.kind, "status": a.fault.status, "times": a.times} for a in self._armed]
