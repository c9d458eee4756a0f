"""The Wiz GraphQL client: one POST, the error policy, retries, the rate limit, pagination."""

from __future__ import annotations

import codecs
import dataclasses
import functools
import json
import logging
import operator
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import msgspec

from wiz_pipeline.wiz import transport
from wiz_pipeline.wiz.auth import TokenProvider
from wiz_pipeline.wiz.errors import (
    WizAuthError,
    WizPaginationError,
    WizPermissionError,
    WizQueryError,
    WizRateLimitError,
    WizResponseError,
    WizRetryableError,
    WizUnauthorizedResponse,
)
from wiz_pipeline.wiz.graphql_errors import ErrorKind, classify_errors, error_messages, retry_after_from
from wiz_pipeline.wiz.options import WizOptions
from wiz_pipeline.wiz.ratelimit import RateLimiter
from wiz_pipeline.wiz.retry import RetryPolicy
from wiz_pipeline.wiz.secret import Secret
from wiz_pipeline.wiz.tls import ssl_context
from wiz_pipeline.wiz.transport import Reply

log = logging.getLogger(__name__)

USER_AGENT = "wiz-pipeline/0.1"

T = TypeVar("T")


@dataclass
class RequestStats:
    """What fetching something cost. One per window, so figures never mix between windows."""

    requests: int = 0  # HTTP requests to the GraphQL endpoint, retries included
    retries: int = 0  # of which repeated after a failure (429s included)
    rate_limited: int = 0  # 429s (or GraphQL rate-limit errors) received
    token_refreshes: int = 0  # tokens replaced after a 401
    bytes_received: int = 0  # response bytes as they came over the wire
    pages: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Page:
    """One page of a connection. ``nodes`` are each node's bytes exactly as the API sent them;
    ``rows`` the same nodes decoded once, each as the ``node_type`` given to ``paginate``; ``ids``
    and ``times`` are, per node, its ``id`` and its time field as decoded JSON values (whatever
    their type: the caller decides what to make of a missing or odd one), read from ``rows``."""

    nodes: list[msgspec.Raw]
    rows: list[Any]
    has_next_page: bool
    end_cursor: str | None
    timed: bool = True  # whether ``rows`` carry a time field

    @functools.cached_property
    def ids(self) -> list[Any]:
        return list(map(_ID, self.rows))

    @functools.cached_property
    def times(self) -> list[Any]:
        return list(map(_TIME, self.rows)) if self.timed else [None] * len(self.rows)


_ID, _TIME = operator.attrgetter("id"), operator.attrgetter("time")


class _Envelope(msgspec.Struct, gc=False):
    """A GraphQL answer; ``data`` is left undecoded until we know the answer is good."""

    data: msgspec.Raw = msgspec.Raw()
    errors: Any = None


_ENVELOPE = msgspec.json.Decoder(_Envelope)


class _PageInfo(msgspec.Struct, gc=False):
    hasNextPage: Any = None
    endCursor: Any = None


class _Connection(msgspec.Struct, gc=False):
    nodes: list[msgspec.Raw]
    pageInfo: _PageInfo


@functools.cache
def _page_decoders(
    connection: str, time_field: str | None, node_type: type[msgspec.Struct] | None
) -> tuple[msgspec.json.Decoder, msgspec.json.Decoder]:
    """Two decoders for ``data``: one keeping each node's bytes, one decoding each node once into
    ``node_type`` (by default a struct of its id and time field only). Two passes of msgspec over a
    page cost less than building one Python object per JSON value, and the second builds only the
    values the caller reads. The structs hold no references back (``gc=False``), so the garbage
    collector needn't track them."""
    nodes = msgspec.defstruct(
        "Nodes", [("conn", _Connection | None, None)], rename={"conn": connection}, gc=False
    )
    if node_type is None:
        keys: list[tuple[str, Any, Any]] = [("id", Any, None)]
        if time_field is not None:
            keys.append(("time", Any, None))
        node_type = msgspec.defstruct("NodeKeys", keys, rename={"time": time_field or "time"}, gc=False)
    else:
        names = dict(zip(node_type.__struct_fields__, node_type.__struct_encode_fields__, strict=True))
        if names.get("id") != "id" or (time_field is not None and names.get("time") != time_field):
            raise ValueError(
                f"node_type {node_type.__name__} must have the fields `id` and `time` (named "
                f"{time_field!r} in the node)"
            )
    row_conn = msgspec.defstruct("RowConnection", [("nodes", list[node_type])], gc=False)
    rows = msgspec.defstruct("Rows", [("conn", row_conn | None, None)], rename={"conn": connection}, gc=False)
    return msgspec.json.Decoder(nodes), msgspec.json.Decoder(rows)


class WizClient:
    """Talks to one Wiz tenant. Thread-safe; share one per process so the rate limit is shared."""

    def __init__(self, options: WizOptions, *, transport: httpx.BaseTransport | None = None) -> None:
        self.options = options
        self.api_url = options.api_url
        self.page_size = options.page_size
        self.request_timeout_seconds = timeout_seconds = options.request_timeout_seconds
        self.limiter = RateLimiter(options.max_requests_per_second)
        # Heavy issue queries can take minutes; without a read timeout a stuck one hangs the run.
        timeout = httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 10.0))
        self._http = httpx.Client(
            timeout=timeout,
            # Our own context only to add WIZ_CA_BUNDLE; it keeps httpx's SSL_CERT_FILE handling.
            # HTTPS_PROXY / NO_PROXY are read by httpx itself (trust_env), tunnelled with this context.
            verify=ssl_context(options.ca_bundle),
            transport=transport,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
        )
        self.retry = RetryPolicy(
            max_retries=options.max_retries,
            max_rate_limit_retries=options.max_rate_limit_retries,
            backoff_base_seconds=options.backoff_base_seconds,
            backoff_max_seconds=options.backoff_max_seconds,
            on_rate_limited=self.limiter.rate_limited,
        )
        # The token host has its own limits: a 429 there must not pause or slow the API.
        self.tokens = TokenProvider(
            options, http=self._http, retry=dataclasses.replace(self.retry, on_rate_limited=None)
        )

    def __repr__(self) -> str:
        return f"WizClient(api_url={self.api_url!r}, client_id={self.tokens.client_id!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> WizClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- one query ------------------------------------------------------------------------------

    def execute(
        self,
        query: str,
        variables: Mapping[str, Any],
        *,
        operation: str,
        permission: str | None = None,
        stats: RequestStats | None = None,
    ) -> dict[str, Any]:
        """POST one GraphQL query and return its ``data``, applying the whole error policy.

        ``operation`` names the query in logs and errors; ``permission`` is what a 403 should say
        the service account is missing.
        """
        return self._request(query, variables, operation, permission, stats, parse=msgspec.json.decode)

    def _request(
        self,
        query: str,
        variables: Mapping[str, Any],
        operation: str,
        permission: str | None,
        stats: RequestStats | None,
        *,
        parse: Callable[[msgspec.Raw], T],
    ) -> T:
        """One query, retried as a whole. ``parse`` runs inside each attempt, so a 200 whose data has
        the wrong shape (a null connection, a missing pageInfo) is retried like a truncated body."""
        stats = stats if stats is not None else RequestStats()
        refreshed = False

        def attempt() -> T:
            nonlocal refreshed
            # A token fetched between the slot and the request would delay this request but not the
            # next one's slot: the two would reach the server closer than the budget allows (a 429
            # when several steps took turns on a busy machine). So the token is fetched first, and
            # asked for again after the slot, in case a long pause after a 429 outlasted its life.
            self.tokens.token()
            with self.limiter.turn():
                token = self.tokens.token()
                stats.requests += 1
                response = self._post(query, variables, token, operation)
            stats.bytes_received += response.num_bytes_downloaded
            try:
                return parse(self._interpret(response, operation, variables, permission))
            except WizUnauthorizedResponse as exc:
                if refreshed and exc.in_graphql:
                    # The token is fresh and accepted (no HTTP 401), yet the query is refused: Wiz
                    # reports a missing permission this way too (see the shared API notes).
                    message = self._permission_message(operation, permission, str(exc))
                    raise WizPermissionError(message) from None
                if refreshed:
                    raise WizAuthError(
                        f"{operation}: the Wiz API answered 401 again with a freshly issued token. "
                        "Verify WIZ_CLIENT_ID / WIZ_CLIENT_SECRET, that WIZ_TOKEN_URL and WIZ_API_URL "
                        "belong to the same tenant, and the service account's permissions."
                    ) from None
                refreshed = True
                stats.token_refreshes += 1
                log.info("%s: the API answered 401; fetching a new token and repeating once.", operation)
                self.tokens.invalidate(token)
            return attempt()

        def count_retry(failure: WizRetryableError, _delay: float) -> None:
            stats.retries += 1
            if isinstance(failure, WizRateLimitError):
                stats.rate_limited += 1

        return self.retry.run(attempt, what=f"{operation} query", on_retry=count_retry)

    def _post(self, query: str, variables: Mapping[str, Any], token: Secret, operation: str) -> Reply:
        return transport.post(
            self._http,
            self.api_url,
            timeout=self.request_timeout_seconds,
            what=operation,
            scrub=self.tokens.redact,
            json={"query": query, "variables": dict(variables)},
            headers={"Authorization": f"Bearer {token.reveal()}"},
        )

    def _interpret(
        self,
        response: Reply,
        operation: str,
        variables: Mapping[str, Any],
        permission: str | None,
    ) -> msgspec.Raw:
        """The answer's ``data`` (a JSON object, still undecoded), or the error the policy says."""
        status = response.status_code
        payload = _envelope_or_none(response)
        errors = payload.errors if payload is not None else None
        if not isinstance(errors, list) or not errors:
            errors = None

        def server_says() -> str:
            text = error_messages(errors) if errors else response.text.strip() or "(empty body)"
            return self.tokens.scrub(text, 1000 if errors else 300)

        if status == 200:
            if payload is None:
                start = self.tokens.scrub(response.text, 80)
                raise WizResponseError(
                    f"{operation}: the API answered 200 with a body that is not a JSON object "
                    f"({len(response.content)} bytes, starts {start!r}).",
                    status=status,
                )
            if errors:
                # Also when `data` came with them: a window is written whole or not at all, so
                # partial data (null nodes, missing fields) is never passed on.
                self._raise_graphql_errors(errors, operation, variables, permission, status, server_says())
            data = payload.data
            if memoryview(data)[:1].tobytes() != b"{":  # null, missing, or not an object
                raise WizResponseError(f"{operation}: the API answered 200 without `data`.", status=status)
            return data

        if status == 401:
            raise WizUnauthorizedResponse(server_says())
        if status == 403:
            raise WizPermissionError(self._permission_message(operation, permission, f"403: {server_says()}"))
        retry_after = response.retry_after()
        if status == 429:
            if retry_after is None and errors:
                retry_after = retry_after_from(errors)
            raise WizRateLimitError(
                f"{operation}: 429 Too Many Requests ({server_says()})", retry_after=retry_after
            )
        if status == 400:
            self._log_bad_query(operation, variables, server_says(), status)
            raise WizQueryError(f"{operation}: the API rejected the query (400): {server_says()}")
        # Every other status is retried, as the error policy says: a proxy or gateway in front of
        # the API can answer anything for a moment. The hints matter once the retries run out.
        hint = ""
        if 300 <= status < 400:
            location = self.tokens.scrub(response.headers.get("Location", ""), 200)
            hint = f" (redirecting to {location!r}); set WIZ_API_URL to the final GraphQL URL"
        elif status == 404:
            hint = (
                "; WIZ_API_URL should be the tenant's GraphQL endpoint, e.g. "
                "https://api.us1.app.wiz.io/graphql"
            )
        raise WizRetryableError(
            f"{operation}: the API answered {status}{hint}: {server_says()}",
            status=status,
            retry_after=retry_after,
        )

    def _raise_graphql_errors(
        self,
        errors: list[Any],
        operation: str,
        variables: Mapping[str, Any],
        permission: str | None,
        status: int,
        text: str,
    ) -> None:
        kind = classify_errors(errors)
        if kind is ErrorKind.AUTH:
            raise WizUnauthorizedResponse(text, in_graphql=True)
        if kind is ErrorKind.FORBIDDEN:
            raise WizPermissionError(self._permission_message(operation, permission, text))
        if kind is ErrorKind.BAD_QUERY:
            self._log_bad_query(operation, variables, text, status)
            raise WizQueryError(f"{operation}: the API rejected the query: {text}")
        if kind is ErrorKind.RATE_LIMIT:
            raise WizRateLimitError(
                f"{operation}: rate limited ({text})", retry_after=retry_after_from(errors)
            )
        raise WizRetryableError(f"{operation}: the API reported an error: {text}", status=status)

    @staticmethod
    def _log_bad_query(operation: str, variables: Mapping[str, Any], server_says: str, status: int) -> None:
        log.error(
            "Wiz rejected query %s (HTTP %s, not retried): %s. Variables: %s",
            operation,
            status,
            server_says,
            json.dumps(dict(variables), default=str, sort_keys=True),
        )

    @staticmethod
    def _permission_message(operation: str, permission: str | None, server_says: str) -> str:
        need = f" It needs {permission}." if permission else ""
        return (
            f"{operation}: the service account is not allowed to run this query ({server_says}).{need} "
            "Grant the permission to the service account in Wiz (Settings > Service Accounts)."
        )

    # -- a whole list ---------------------------------------------------------------------------

    def paginate(
        self,
        query: str,
        variables: Mapping[str, Any],
        *,
        operation: str,
        connection: str,
        time_field: str | None = None,
        node_type: type[msgspec.Struct] | None = None,
        permission: str | None = None,
        stats: RequestStats | None = None,
    ) -> Iterator[Page]:
        """Yield every page of the connection ``connection`` (a top-level field or alias of ``data``),
        with each node's ``id`` and ``time_field`` read out.

        ``node_type``, a msgspec struct with the fields ``id`` and ``time`` (renamed to
        ``time_field``), is what each node is decoded into (``Page.rows``), once: give it the fields
        you will read, so that nothing decodes the page again.

        Each page is fetched with its own retries, resuming from the last good cursor.
        """
        stats = stats if stats is not None else RequestStats()
        after: str | None = None
        seen: set[str] = set()
        while True:
            page = self._request(
                query,
                {**variables, "first": self.page_size, "after": after},
                operation,
                permission,
                stats,
                parse=lambda data: _read_page(data, connection, time_field, node_type, operation),
            )
            stats.pages += 1
            yield page
            if not page.has_next_page:
                return
            if page.end_cursor in seen:
                raise WizPaginationError(
                    f"{operation}: the API gave an endCursor it had given before; stopping rather "
                    "than looping. This is a server-side fault; retry the window later."
                )
            seen.add(page.end_cursor)
            after = page.end_cursor


def _read_page(
    data: msgspec.Raw,
    connection: str,
    time_field: str | None,
    node_type: type[msgspec.Struct] | None,
    operation: str,
) -> Page:
    nodes_decoder, rows_decoder = _page_decoders(connection, time_field, node_type)
    try:
        # msgspec skips the fields no column reads without checking them, and `raw` keeps every
        # node's bytes: a body that isn't UTF-8 would land as a file no reader can decode.
        codecs.utf_8_decode(data, "strict", True)
    except UnicodeDecodeError as exc:
        raise WizResponseError(f"{operation}: the response is not valid UTF-8 ({exc.reason}).") from None
    try:
        conn = getattr(nodes_decoder.decode(data), "conn")  # noqa: B009 - a renamed field
        rows = getattr(rows_decoder.decode(data), "conn")  # noqa: B009
    except msgspec.DecodeError as exc:
        try:
            whole = msgspec.json.decode(data)
        except msgspec.DecodeError:
            raise WizResponseError(f"{operation}: `{connection}` could not be read: {exc}") from None
        _explain_bad_page(whole, connection, operation)
        raise WizResponseError(f"{operation}: `{connection}` could not be read: {exc}") from None
    if conn is None or rows is None:
        raise WizResponseError(f"{operation}: the response has no `{connection}` object.")
    page_info = conn.pageInfo
    cursor = page_info.endCursor
    has_next_page = page_info.hasNextPage is True
    if has_next_page and not (isinstance(cursor, str) and cursor):
        raise WizResponseError(f"{operation}: `{connection}.pageInfo` says hasNextPage but has no endCursor.")
    return Page(
        nodes=conn.nodes,
        rows=rows.nodes,
        has_next_page=has_next_page,
        end_cursor=cursor if isinstance(cursor, str) and cursor else None,
        timed=time_field is not None,
    )


def _explain_bad_page(data: dict[str, Any], connection: str, operation: str) -> None:
    """Raise the error that says what is wrong with a page the fast decoders refused."""
    conn = data.get(connection)
    if not isinstance(conn, dict):
        raise WizResponseError(f"{operation}: the response has no `{connection}` object.")
    nodes = conn.get("nodes")
    if not isinstance(nodes, list) or not isinstance(conn.get("pageInfo"), dict):
        raise WizResponseError(f"{operation}: `{connection}` lacks a `nodes` list or a `pageInfo` object.")
    if not all(isinstance(node, dict) for node in nodes):
        raise WizResponseError(f"{operation}: `{connection}.nodes` holds something other than objects.")


def _envelope_or_none(response: Reply) -> _Envelope | None:
    try:
        return _ENVELOPE.decode(response.content)
    except msgspec.DecodeError:  # not JSON, or JSON but not an object
        return None
