"""The local Wiz API: an OAuth token endpoint and a GraphQL endpoint over real HTTP (or HTTPS, given a
certificate) on 127.0.0.1."""

from __future__ import annotations

import base64
import collections
import functools
import hashlib
import json
import logging
import math
import os
import secrets
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import msgspec

from wiz_pipeline.core.times import parse_time
from wiz_pipeline.simulator.faults import Endpoint, Fault, FaultQueue
from wiz_pipeline.simulator.schema import PreparedQuery, QueryRejected, RootField, prepare, project
from wiz_pipeline.simulator.tenant import Tenant, generate_tenant

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50
AUDIT_RESULT_CAP = 10_000  # reported: an audit-log query stops after 10,000 nodes
CONFIGURATION_RESULT_CAP = 10_000  # reported for configuration findings too
ALL_PERMISSIONS = frozenset(
    {
        "admin:audit",
        "read:issues",
        "read:reports",
        "create:reports",
        "read:vulnerabilities",
        "read:cloud_configuration",
        "read:detections",
    }
)
_PERMISSION_FOR = {
    "auditLogEntries": "admin:audit",
    "issuesV2": "read:issues",
    "vulnerabilityFindings": "read:vulnerabilities",
    "configurationFindings": "read:cloud_configuration",
    "detections": "read:detections",
}
# Root field: (tenant kind, connection type).
_FINDINGS = {
    "vulnerabilityFindings": ("vulnerability_findings", "VulnerabilityFindingConnection"),
    "configurationFindings": ("configuration_findings", "ConfigurationFindingConnection"),
    "detections": ("detections", "DetectionConnection"),
}


@dataclass
class ServiceAccount:
    client_id: str
    client_secret: str
    permissions: frozenset[str] = ALL_PERMISSIONS


@dataclass
class _Token:
    client_id: str
    serial: int
    expires_at: float  # monotonic
    revoked: bool = False


@dataclass(frozen=True)
class RequestRecord:
    """One request as the simulator saw it; ``at`` is ``time.monotonic()`` on arrival."""

    at: float
    endpoint: str
    status: int  # 0 when the connection was dropped
    operation: str | None = None
    variables: dict[str, Any] | None = None
    token_serial: int | None = None  # which issued token authorised it (1 = first)
    fault: str | None = None


@dataclass
class Counters:
    connections: int = 0  # TCP connections accepted
    tls_handshakes_failed: int = 0  # of which the TLS handshake failed (e.g. the client refused our cert)
    requests: int = 0
    graphql_requests: int = 0
    token_requests: int = 0
    tokens_issued: int = 0
    faults_injected: int = 0
    rate_limited: int = 0  # 429s from the simulator's own rate limit (not injected ones)
    by_status: collections.Counter[int] = field(default_factory=collections.Counter)


class WizSimulator:
    """A Wiz API on 127.0.0.1. ``with WizSimulator(...) as sim:`` starts it on a free port.

    The tenant is seen "as of" ``now()``: records later than that don't exist yet, and issues
    show the status they had then. Tests can freeze or move that clock with ``set_now``.
    """

    def __init__(
        self,
        tenant: Tenant | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        client_id: str = "sim-client-id",
        client_secret: str = "sim-client-secret-do-not-use-in-production",  # noqa: S107
        permissions: Iterable[str] = ALL_PERMISSIONS,
        audience: str = "wiz-api",
        token_lifetime_seconds: float = 86400,
        rate_limit_per_second: float | None = None,
        rate_limit_sends_retry_after: bool = True,
        audit_result_cap: int = AUDIT_RESULT_CAP,
        configuration_result_cap: int = CONFIGURATION_RESULT_CAP,
        tls_cert: str | os.PathLike[str] | None = None,
        tls_key: str | os.PathLike[str] | None = None,
    ) -> None:
        """``tls_cert`` (a PEM certificate chain, and its key in ``tls_key`` or in the same file)
        serves HTTPS instead of HTTP."""
        if tenant is None:
            end = datetime.now(UTC)
            tenant = generate_tenant(end - timedelta(days=1), end)
        self.tenant = tenant
        self.host, self.port = host, port
        self.audience = audience
        self.token_lifetime_seconds = token_lifetime_seconds
        self.rate_limit_per_second = rate_limit_per_second
        self.rate_limit_sends_retry_after = rate_limit_sends_retry_after
        self.audit_result_cap = audit_result_cap
        self.configuration_result_cap = configuration_result_cap
        # How a missing permission is answered, by root field ("vulnerabilityFindings"...): "403"
        # (the default), or 200 with errors and null data, code "FORBIDDEN" or "UNAUTHORIZED".
        self.permission_denial: dict[str, str] = {}
        # How a capped audit query ends: hasNextPage false (as reported), or true with empty pages.
        self.audit_cap_says_more = False
        # (every, delay): every `every`-th entry of an audit query's newest-first list is served
        # `delay` places later, among older entries, as an API whose order isn't guaranteed may.
        self.audit_stragglers: tuple[int, int] | None = None
        # Merged into every token response, to play a token endpoint with odd answers.
        self.token_response_extra: dict[str, Any] = {}
        self.accounts = {client_id: ServiceAccount(client_id, client_secret, frozenset(permissions))}
        self.faults = FaultQueue()
        self.counters = Counters()
        # Bounded, so that a simulator left running under `dagster dev` doesn't grow without end.
        self.requests: collections.deque[RequestRecord] = collections.deque(maxlen=200_000)
        self.token_requests: collections.deque[dict[str, Any]] = collections.deque(maxlen=10_000)
        self._now: Callable[[], datetime] = lambda: datetime.now(UTC)
        self._lock = threading.Lock()
        self._tokens: dict[str, _Token] = {}
        self._recent: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._issue_cache: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
        self._latest_event: tuple[tuple[int, int], datetime] | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._tls: ssl.SSLContext | None = None
        if tls_cert is not None:
            self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._tls.load_cert_chain(tls_cert, tls_key)
        elif tls_key is not None:
            raise ValueError("tls_key needs tls_cert")

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> WizSimulator:
        handler = type("Handler", (_Handler,), {"sim": self})
        self._server = _Server((self.host, self.port), handler)
        self._server.sim, self._server.tls = self, self._tls
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="wiz-simulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> WizSimulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"{'https' if self._tls else 'http'}://{self.host}:{self.port}"

    @property
    def graphql_url(self) -> str:
        return f"{self.base_url}/graphql"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/oauth/token"

    @property
    def client_id(self) -> str:
        return next(iter(self.accounts))

    @property
    def client_secret(self) -> str:
        return self.accounts[self.client_id].client_secret

    # -- test controls --------------------------------------------------------------------------

    def now(self) -> datetime:
        return self._now()

    def set_now(self, when: datetime | Callable[[], datetime] | None) -> None:
        """Freeze the tenant's clock at ``when`` (a datetime or a callable); None for the wall clock."""
        if when is None:
            self._now = lambda: datetime.now(UTC)
        elif callable(when):
            self._now = when
        else:
            self._now = lambda: when

    def inject(self, fault: Fault, *, endpoint: str = "graphql", times: int = 1, skip: int = 0) -> None:
        """Answer the next ``times`` requests to ``endpoint`` ("graphql" or "token") with ``fault``,
        after letting ``skip`` of them through."""
        self.faults.add(fault, endpoint=Endpoint(endpoint), times=times, skip=skip)

    def add_account(self, client_id: str, client_secret: str, permissions: Iterable[str]) -> None:
        self.accounts[client_id] = ServiceAccount(client_id, client_secret, frozenset(permissions))

    def revoke_tokens(self) -> None:
        """Every token issued so far is answered with 401 from now on (as if it had expired)."""
        with self._lock:
            for token in self._tokens.values():
                token.revoked = True

    def issued_tokens(self) -> list[str]:
        """Every access token handed out so far (for tests that prove tokens never leak)."""
        with self._lock:
            return list(self._tokens)

    def graphql_records(self) -> list[RequestRecord]:
        return [r for r in self.requests if r.endpoint == "graphql"]

    # -- request handling (called from handler threads) -----------------------------------------

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self.requests.append(record)
            self.counters.by_status[record.status] += 1

    def handle_token(
        self, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        form = {
            k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()
        }
        self.token_requests.append(
            {"form": {k: v for k, v in form.items() if k != "client_secret"}, "headers": headers}
        )
        if "application/x-www-form-urlencoded" not in headers.get("content-type", ""):
            return 400, {"error": "invalid_request", "error_description": "expected a form-encoded body"}, {}
        if form.get("grant_type") != "client_credentials":
            return (
                400,
                {
                    "error": "unsupported_grant_type",
                    "error_description": "grant_type must be client_credentials",
                },
                {},
            )
        account = self.accounts.get(form.get("client_id", ""))
        if account is None or not secrets.compare_digest(
            account.client_secret, form.get("client_secret", "")
        ):
            return 401, {"error": "access_denied", "error_description": "Unauthorized"}, {}
        if form.get("audience") != self.audience:
            return (
                403,
                {
                    "error": "access_denied",
                    "error_description": f"Service not enabled within domain: {form.get('audience')}",
                },
                {},
            )
        token = (
            "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9."
            + secrets.token_urlsafe(96)
            + "."
            + secrets.token_urlsafe(64)
        )
        with self._lock:
            self.counters.tokens_issued += 1
            serial = self.counters.tokens_issued
            self._tokens[token] = _Token(
                account.client_id, serial, time.monotonic() + self.token_lifetime_seconds
            )
        payload = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": int(self.token_lifetime_seconds),
        }
        if form.get("scope"):
            payload["scope"] = form["scope"]
        payload.update(self.token_response_extra)
        return 200, payload, {}

    def authenticate(self, authorization: str) -> _Token | None:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return None
        with self._lock:
            token = self._tokens.get(value.strip())
        if token is None or token.revoked or time.monotonic() >= token.expires_at:
            return None
        return token

    def expire(self, authorization: str) -> None:
        _, _, value = authorization.partition(" ")
        with self._lock:
            if (token := self._tokens.get(value.strip())) is not None:
                token.revoked = True

    def check_rate(self, client_id: str, now: float) -> float | None:
        """None if the request may proceed; else seconds until it could."""
        if self.rate_limit_per_second is None:
            return None
        with self._lock:
            recent = self._recent[client_id]
            while recent and recent[0] <= now - 1.0:
                recent.popleft()
            if len(recent) >= self.rate_limit_per_second:
                self.counters.rate_limited += 1
                return recent[0] + 1.0 - now
            recent.append(now)
            return None

    def run_query(self, body: Any, token: _Token) -> tuple[int, dict[str, Any], str | None, dict | None]:
        """(status, payload, operation name, variables) for a GraphQL request body."""
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return (
                400,
                _errors("Request body must be a JSON object with a `query` string.", "BAD_REQUEST"),
                None,
                None,
            )
        variables = body.get("variables") if isinstance(body.get("variables"), dict) else {}
        try:
            prepared = prepare(body["query"], variables, body.get("operationName"))
        except QueryRejected as exc:
            return 200, {"errors": exc.errors, "data": None}, None, variables
        account = self.accounts.get(token.client_id)
        for root in prepared.fields:
            needed = _PERMISSION_FOR.get(root.name)
            if needed and account is not None and needed not in account.permissions:
                denial = self.permission_denial.get(root.name, "403")
                if denial != "403":
                    message = f"Unauthorized: the service account lacks the {needed} permission"
                    return 200, _errors(message, denial), prepared.operation_name, variables
                return (
                    403,
                    _errors(f"Unauthorized: the service account lacks the {needed} permission", "FORBIDDEN"),
                    prepared.operation_name,
                    variables,
                )
        try:
            data = {root.key: self._resolve(root, prepared) for root in prepared.fields}
        except QueryRejected as exc:
            return 200, {"errors": exc.errors, "data": None}, prepared.operation_name, variables
        return 200, {"data": data}, prepared.operation_name, variables

    # -- resolvers ------------------------------------------------------------------------------

    def _resolve(self, root: RootField, prepared: PreparedQuery) -> Any:
        if root.name == "__typename":
            return "Query"
        first = root.arguments.get("first")
        first = DEFAULT_PAGE_SIZE if first is None else first
        if not 0 <= first <= MAX_PAGE_SIZE:
            raise QueryRejected(
                [
                    {
                        "message": f"`first` must be between 0 and {MAX_PAGE_SIZE}, got {first}",
                        "extensions": {"code": "BAD_USER_INPUT"},
                    }
                ]
            )
        filter_by = root.arguments.get("filterBy") or {}
        key = _query_key(root.name, filter_by, root.arguments.get("orderBy"))
        offset = _decode_cursor(root.arguments.get("after"), key)
        if root.name == "auditLogEntries":
            total, fetch = self._audit(filter_by)
            if self.audit_stragglers:
                order = _straggling(total, *self.audit_stragglers)
                fetch = lambda i, f=fetch: f(order[i])  # noqa: E731
            if total > self.audit_result_cap:
                capped = self.audit_result_cap
                if self.audit_cap_says_more:
                    total, real = capped + MAX_PAGE_SIZE * 1000, fetch
                    fetch = lambda i: real(i) if i < capped else None  # noqa: E731
                else:
                    total = capped
        elif root.name in _FINDINGS:
            found = self._findings(root.name, filter_by)
            total, fetch = len(found), found.__getitem__
            if root.name == "configurationFindings":
                total = min(total, self.configuration_result_cap)  # and hasNextPage false there
        else:
            matches = self._issues(filter_by, root.arguments.get("orderBy"), key)
            total, fetch = len(matches), matches.__getitem__
        end = min(offset + first, total)
        nodes = [node for i in range(offset, end) if (node := fetch(i)) is not None]
        connection = {
            "nodes": nodes,
            "pageInfo": {
                "hasNextPage": end < total,
                # `first: 0` still gets a cursor to go on from, as relay servers give one.
                "endCursor": _encode_cursor(key, end) if nodes or end < total else None,
            },
        }
        if root.name in _FINDINGS:
            type_name = _FINDINGS[root.name][1]
        else:
            type_name = "AuditLogEntryConnection" if root.name == "auditLogEntries" else "IssueConnection"
        return project(connection, root.selection, prepared.fragments, type_name)

    def _findings(self, name: str, filter_by: dict[str, Any]) -> Sequence[dict[str, Any]]:
        """Filtered as Wiz does, quirks included; ``orderBy`` is accepted but not honoured (a stable
        order that isn't by time: clients must not rely on the order)."""
        kind = _FINDINGS[name][0]
        allowed: dict[str, frozenset[str]] = {}
        if kind == "vulnerability_findings":
            # Quirk: without a status filter only OPEN findings come back.
            allowed["status"] = frozenset(filter_by.get("status") or ["OPEN"])
            if filter_by.get("severity"):
                allowed["severity"] = frozenset(filter_by["severity"])
        elif kind == "configuration_findings":
            for field_name in ("result", "status", "severity"):
                if filter_by.get(field_name):
                    allowed[field_name] = frozenset(filter_by[field_name])
        else:
            types = (filter_by.get("type") or {}).get("equals")
            if types:
                allowed["type"] = frozenset(types)
            elif filter_by:
                # Quirk: any filterBy without a type filter drops MATCH_ONLY detections.
                allowed["type"] = frozenset({"GENERATED_THREAT"})
        window = filter_by.get("updatedAt") or {}
        store = self.tenant.finding_store(kind)
        return store.select(self.now(), window.get("after"), window.get("before"), allowed)

    def _audit(self, filter_by: dict[str, Any]) -> tuple[int, Callable[[int], dict[str, Any]]]:
        """Newest first, as the Wiz UI lists them; bounds inclusive on both ends."""
        window = filter_by.get("timestamp") or {}
        now = self.now()
        before = min(window["before"], now) if window.get("before") else now
        lo, hi = self.tenant.audit_between(window.get("after"), before)
        nodes = self.tenant.audit_nodes
        hidden = self.tenant.audit_unpublished(lo, hi, now)  # published late, not yet visible
        if not hidden:
            return hi - lo, lambda i: nodes[hi - 1 - i]

        def visible(i: int) -> Any:
            index = hi - 1 - i  # the i-th newest, then moved past each hidden entry at or above it
            for h in hidden:  # newest first
                if h < index:
                    break
                index -= 1
            return nodes[index]

        return hi - lo - len(hidden), visible

    def _issues(
        self, filter_by: dict[str, Any], order_by: dict[str, Any] | None, key: str
    ) -> list[dict[str, Any]]:
        now = self.now()
        records = self.tenant.issues
        # Once every change is in the past the view is fixed, so filtered lists can be reused by cursor.
        cache_key = (key, self.tenant.revision, len(records)) if now >= self._latest_issue_event() else None
        if cache_key in self._issue_cache:
            return self._issue_cache[cache_key]
        nodes = self.tenant.issues_as_of(now)
        for name in ("statusChangedAt", "createdAt"):
            bounds = filter_by.get(name)
            if bounds:
                nodes = [n for n in nodes if _within(n[name], bounds)]
        for name in ("status", "severity", "type"):
            allowed = filter_by.get(name)
            if allowed:
                nodes = [n for n in nodes if n[name] in allowed]
        if order_by:
            nodes.sort(key=_ISSUE_ORDER[order_by["field"]], reverse=order_by["direction"] == "DESC")
        else:
            nodes.sort(key=lambda n: n["id"])  # deliberately not time order: clients must not rely on it
        if cache_key is not None:
            if len(self._issue_cache) >= 256:  # a long-lived simulator sees endless distinct windows
                self._issue_cache.clear()
            self._issue_cache[cache_key] = nodes
        return nodes

    def _latest_issue_event(self) -> datetime:
        count = (self.tenant.revision, len(self.tenant.issues))
        if self._latest_event is None or self._latest_event[0] != count:
            latest = max((r.last_event for r in self.tenant.issues), default=datetime.min.replace(tzinfo=UTC))
            self._latest_event = (count, latest)
        return self._latest_event[1]


_SEVERITY_RANK = {
    name: rank for rank, name in enumerate(["INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL"])
}
_NEVER = datetime.min.replace(tzinfo=UTC)
# Sort keys per IssueOrderField: by meaning (time, severity rank), not by the strings' spelling;
# the id breaks ties so that pages are stable.
_ISSUE_ORDER: dict[str, Callable[[dict[str, Any]], Any]] = {
    "CREATED_AT": lambda n: (parse_time(n["createdAt"]) or _NEVER, n["id"]),
    "STATUS_CHANGED_AT": lambda n: (parse_time(n["statusChangedAt"]) or _NEVER, n["id"]),
    "SEVERITY": lambda n: (_SEVERITY_RANK.get(n["severity"], -1), n["id"]),
}


@functools.lru_cache(maxsize=16)
def _straggling(total: int, every: int, delay: int) -> tuple[int, ...]:
    """Positions ``0 .. total - 1`` with every ``every``-th one moved ``delay`` places later."""
    order: list[int] = []
    late: collections.deque[tuple[int, int]] = collections.deque()  # (due at, position)
    for position in range(total):
        if position % every == every - 1:
            late.append((len(order) + delay, position))
        else:
            order.append(position)
        while late and late[0][0] <= len(order):
            order.append(late.popleft()[1])
    order.extend(position for _, position in late)
    return tuple(order)


def _within(value: str | None, bounds: dict[str, datetime]) -> bool:
    when = parse_time(value)
    if when is None:
        return False
    return (bounds.get("after") is None or when >= bounds["after"]) and (
        bounds.get("before") is None or when <= bounds["before"]
    )


def _spoil(fault: Fault, payload: dict[str, Any]) -> None:
    """Turn a good answer into the broken one ``fault`` describes (see ``Fault``)."""
    data = payload.get("data") or {}
    connection = next(iter(data), None)
    if connection is None:
        return
    if fault.kind == "null_connection":
        data[connection] = None
    elif fault.kind == "empty_page" and isinstance(data[connection], dict):
        data[connection]["nodes"] = []
    elif fault.kind == "missing_cursor" and isinstance(data[connection], dict):
        data[connection]["pageInfo"] = {"hasNextPage": True, "endCursor": None}
    elif fault.kind in ("extra_field", "numeric_ids") and isinstance(data[connection], dict):
        nodes = [
            msgspec.json.decode(n) if isinstance(n, msgspec.Raw) else dict(n)
            for n in data[connection]["nodes"]
        ]
        for node in nodes:
            if fault.kind == "extra_field":
                node[fault.message] = 42
            else:
                node["id"] = 1
        data[connection]["nodes"] = nodes
    elif fault.kind == "partial_data":
        error: dict[str, Any] = {"message": fault.message, "path": [connection, "nodes", 0]}
        if fault.code:
            error["extensions"] = {"code": fault.code}
        payload["errors"] = [error]


def _encode(payload: Any) -> bytes:
    """JSON as a GraphQL server sends it; nodes stored pre-encoded (``msgspec.Raw``) go out as they are."""
    return msgspec.json.encode(payload)


def _errors(message: str, code: str) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code}}], "data": None}


def _query_key(name: str, filter_by: Any, order_by: Any) -> str:
    raw = json.dumps([name, filter_by, order_by], sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:12]


def _encode_cursor(key: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{key}:{offset}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None, key: str) -> int:
    if cursor is None:
        return 0
    try:
        version, cursor_key, offset = (
            base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split(":")
        )
        if version != "v1" or cursor_key != key or int(offset) < 0:
            raise ValueError
        return int(offset)
    except (ValueError, UnicodeDecodeError):
        raise QueryRejected(
            [
                {
                    "message": "Invalid cursor: `after` must be an endCursor of this same query",
                    "extensions": {"code": "BAD_USER_INPUT"},
                }
            ]
        ) from None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    sim: WizSimulator
    tls: ssl.SSLContext | None = None
    HANDSHAKE_TIMEOUT_SECONDS = 10.0

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up mid-answer is normal here (the `slow` fault), not news.
        if isinstance(sys.exc_info()[1], ConnectionError):
            log.debug("connection from %s ended abruptly", client_address)
        else:
            log.error("simulator failed serving %s", client_address, exc_info=True)

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        # http.server writes headers and body separately; without this, Nagle + delayed ACK add ~40 ms.
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.sim._lock:
            self.sim.counters.connections += 1
        if self.tls is not None:
            # The handshake waits for the request's own thread (finish_request): done here, one
            # silent client would hold up every other.
            conn = self.tls.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        return conn, addr

    def finish_request(self, request: Any, client_address: Any) -> None:
        if isinstance(request, ssl.SSLSocket):
            request.settimeout(self.HANDSHAKE_TIMEOUT_SECONDS)
            try:
                request.do_handshake()
            except (ssl.SSLError, OSError) as exc:
                with self.sim._lock:
                    self.sim.counters.tls_handshakes_failed += 1
                log.debug("TLS handshake with %s failed: %s", client_address, exc)
                return
            request.settimeout(None)
        super().finish_request(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    sim: WizSimulator
    protocol_version = "HTTP/1.1"
    server_version = "WizSimulator/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        if self.path in ("/", ""):
            self._send(200, {"graphql": self.sim.graphql_url, "token": self.sim.token_url})
        else:
            self._send(404 if self.path not in ("/graphql", "/oauth/token") else 405, {"error": "not found"})

    def do_POST(self) -> None:
        arrived = time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        sim = self.sim
        with sim._lock:
            sim.counters.requests += 1
        if path == "/oauth/token":
            with sim._lock:
                sim.counters.token_requests += 1
            fault = sim.faults.take(Endpoint.TOKEN)
            if fault is not None and self._apply_fault(fault, arrived, "token", None, None, body):
                return
            status, payload, headers = sim.handle_token(body, {k.lower(): v for k, v in self.headers.items()})
            sim._record(RequestRecord(arrived, "token", status, fault=fault.kind if fault else None))
            if fault is not None and fault.kind == "drip":
                self._drip(status, _encode(payload), fault.delay_seconds)
            else:
                self._send(status, payload, headers)
            return
        if path != "/graphql":
            sim._record(RequestRecord(arrived, "other", 404))
            self._send(404, {"error": "not found", "hint": "POST /graphql or /oauth/token"})
            return
        with sim._lock:
            sim.counters.graphql_requests += 1
        try:
            request = json.loads(body)
        except ValueError:
            request = None
        operation = request.get("operationName") if isinstance(request, dict) else None
        variables = request.get("variables") if isinstance(request, dict) else None
        fault = sim.faults.take(Endpoint.GRAPHQL)
        if fault is not None and self._apply_fault(fault, arrived, "graphql", operation, variables, body):
            return
        if "json" not in (self.headers.get("Content-Type") or ""):
            sim._record(RequestRecord(arrived, "graphql", 415, operation, variables))
            self._send(415, _errors("Content-Type must be application/json", "BAD_REQUEST"))
            return
        token = sim.authenticate(self.headers.get("Authorization", ""))
        if token is None:
            sim._record(RequestRecord(arrived, "graphql", 401, operation, variables))
            self._send(401, _errors("Unauthorized: missing, invalid or expired token", "UNAUTHENTICATED"))
            return
        wait = sim.check_rate(token.client_id, arrived)
        if wait is not None:
            headers = (
                {"Retry-After": str(max(1, math.ceil(wait)))} if sim.rate_limit_sends_retry_after else {}
            )
            sim._record(RequestRecord(arrived, "graphql", 429, operation, variables, token.serial))
            self._send(429, _errors("Rate limit exceeded", "RATE_LIMIT_EXCEEDED"), headers)
            return
        try:
            status, payload, name, variables = sim.run_query(request, token)
        except Exception:  # a simulator bug: answer like a server would, and say so loudly
            log.exception("simulator error while answering %s", operation)
            status, payload, name = (
                500,
                _errors("Internal server error (simulator)", "INTERNAL_SERVER_ERROR"),
                None,
            )
        if fault is not None and fault.spoils_answer and status == 200:
            _spoil(fault, payload)
        drip = fault.delay_seconds if fault is not None and fault.kind == "drip" else None
        sim._record(
            RequestRecord(
                arrived,
                "graphql",
                status,
                name or operation,
                variables,
                token.serial,
                fault=fault.kind if fault is not None else None,
            )
        )
        if drip is not None:
            self._drip(status, _encode(payload), drip)
        else:
            self._send(status, payload)

    def _apply_fault(
        self, fault: Fault, arrived: float, endpoint: str, operation: str | None, variables: Any, body: bytes
    ) -> bool:
        """Act out ``fault``; True if the request is answered (or dropped) and nothing more is to be done."""
        sim = self.sim
        with sim._lock:
            sim.counters.faults_injected += 1

        def record(status: int) -> None:
            sim._record(RequestRecord(arrived, endpoint, status, operation, variables, fault=fault.kind))

        if fault.spoils_answer:
            return False
        if fault.kind == "slow":
            time.sleep(fault.delay_seconds)
            return False
        if fault.kind == "echo":
            record(fault.status)
            quoted = (
                body.decode("utf-8", "replace") if endpoint == "token" else self.headers.get("Authorization")
            )
            self._send(
                fault.status, _errors(f"{fault.message}could not process request: {quoted}", "SIMULATED")
            )
            return True
        if fault.kind == "html_error":
            record(fault.status)
            page = f"<html><body><h1>{fault.status} {fault.message}</h1></body></html>".encode()
            self._send_raw(fault.status, page, "text/html")
            return True
        if fault.kind == "corrupt_gzip":
            record(200)
            self._send_raw(
                200, b"\x1f\x8b\x08\x00not really gzip", "application/json", {"Content-Encoding": "gzip"}
            )
            return True
        if fault.kind == "drop":
            record(0)
            self.close_connection = True
            return True
        if fault.kind == "truncate":
            record(200)
            payload = json.dumps({"data": {"auditLogEntries": {"nodes": [{"id": "x" * 64}] * 20}}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            return True
        if fault.kind == "malformed_json":
            record(200)
            self._send_raw(200, b'{"data": {"auditLogEntries": {"nodes": [{"id": "8f7f', "application/json")
            return True
        if fault.kind == "invalid_utf8":
            record(200)
            node = b'{"id":"bad-1","timestamp":"2025-09-12T21:00:01Z","userAgent":"\xc3("}'
            page = (
                b'{"data":{"auditLogEntries":{"nodes":['
                + node
                + b'],"pageInfo":{"hasNextPage":false,"endCursor":null}}}}'
            )
            self._send_raw(200, page, "application/json")
            return True
        if fault.kind == "graphql_error":
            record(200)
            error: dict[str, Any] = {"message": fault.message}
            if fault.code:
                error["extensions"] = {"code": fault.code}
            self._send(200, {"errors": [error], "data": None})
            return True
        if fault.kind == "expire_token":
            sim.expire(self.headers.get("Authorization", ""))
            record(401)
            self._send(401, _errors(fault.message, "UNAUTHENTICATED"))
            return True
        if fault.kind == "gzip_stall":
            record(200)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            # A gzip header, then empty deflate blocks: bytes keep coming, data never does.
            self.wfile.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")
            stop = time.monotonic() + fault.delay_seconds
            while time.monotonic() < stop:
                self.wfile.write(b"\x00\x00\x00\xff\xff")
                self.wfile.flush()
                time.sleep(0.05)
            self.close_connection = True
            return True
        # "status": an HTTP error with a body in the style of the endpoint
        record(fault.status)
        headers = dict(fault.headers)
        if fault.retry_after is not None:
            headers["Retry-After"] = fault.retry_after
        if endpoint == "token":
            self._send(fault.status, {"error": "server_error", "error_description": fault.message}, headers)
        else:
            self._send(fault.status, _errors(fault.message, "SIMULATED"), headers)
        return True

    def _drip(self, status: int, body: bytes, seconds: float) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.flush()
        steps = 20
        size = -(-len(body) // steps)
        for i in range(0, len(body), size):
            time.sleep(seconds / steps)
            self.wfile.write(body[i : i + size])
            self.wfile.flush()

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._send_raw(status, _encode(payload), "application/json", headers)

    def _send_raw(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        headers = dict(headers or {})
        if "Date" in headers:  # a fault's own Date header replaces the one send_response adds
            self.log_request(status)
            self.send_response_only(status)
            self.send_header("Server", self.version_string())
        else:
            self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
