"""Sorting GraphQL ``errors`` (which can arrive in a 200) into the rows of the HTTP error policy."""

from __future__ import annotations

from enum import Enum
from typing import Any


class ErrorKind(Enum):
    AUTH = "auth"  # like a 401: refresh the token once
    FORBIDDEN = "forbidden"  # like a 403: fail, name the permission
    BAD_QUERY = "bad_query"  # like a 400: log the query, fail
    RATE_LIMIT = "rate_limit"  # like a 429: wait, retry
    SERVER = "server"  # like a 5xx: back off, retry


# Codes seen across GraphQL servers (Apollo's conventions and vendors' own); Wiz does not publish a list,
# so the message is consulted too and anything unknown counts as a server-side error (retried, bounded).
_CODES = {
    ErrorKind.AUTH: {
        "UNAUTHENTICATED",
        "UNAUTHORIZED",
        "INVALID_TOKEN",
        "TOKEN_EXPIRED",
        "AUTHENTICATION_ERROR",
    },
    ErrorKind.FORBIDDEN: {"FORBIDDEN", "PERMISSION_DENIED", "ACCESS_DENIED", "INSUFFICIENT_PERMISSIONS"},
    ErrorKind.BAD_QUERY: {
        "BAD_USER_INPUT",
        "BAD_REQUEST",
        "GRAPHQL_VALIDATION_FAILED",
        "GRAPHQL_PARSE_FAILED",
        "VALIDATION_ERROR",
        "INVALID_ARGUMENT",
        "PERSISTED_QUERY_NOT_SUPPORTED",
    },
    ErrorKind.RATE_LIMIT: {"RATE_LIMIT_EXCEEDED", "RATE_LIMITED", "TOO_MANY_REQUESTS", "THROTTLED"},
}
_HTTP_STATUS = {
    401: ErrorKind.AUTH,
    403: ErrorKind.FORBIDDEN,
    400: ErrorKind.BAD_QUERY,
    429: ErrorKind.RATE_LIMIT,
}
_MESSAGE_HINTS = [
    (
        ErrorKind.BAD_QUERY,
        (
            "cannot query field",
            "unknown argument",
            "syntax error",
            "unknown type",
            "got invalid value",
            "expected type",
            'variable "$',
            "must have a selection",
            "is not defined by type",
            "unknown field",
        ),
    ),
    (ErrorKind.RATE_LIMIT, ("rate limit", "too many requests", "throttl")),
    (ErrorKind.FORBIDDEN, ("permission", "forbidden", "access denied", "not authorized")),
    # After FORBIDDEN, so that "not authorized to read ..." is a permission problem, not a bad token.
    (
        ErrorKind.AUTH,
        ("unauthenticated", "unauthorized", "invalid token", "token expired", "expired token", "jwt"),
    ),
]
# When several errors disagree, the one that settles what to do wins: no retry can fix a bad query.
_PRECEDENCE = [
    ErrorKind.AUTH,
    ErrorKind.FORBIDDEN,
    ErrorKind.BAD_QUERY,
    ErrorKind.RATE_LIMIT,
    ErrorKind.SERVER,
]


def classify_error(error: Any) -> ErrorKind:
    if not isinstance(error, dict):
        return ErrorKind.SERVER
    extensions = error.get("extensions") if isinstance(error.get("extensions"), dict) else {}
    code = str(extensions.get("code") or extensions.get("errorCode") or "").strip().upper()
    for kind, codes in _CODES.items():
        if code in codes:
            return kind
    http = extensions.get("http")
    candidates = [
        code,  # some servers put the HTTP status in `code`
        http.get("status") if isinstance(http, dict) else None,
        extensions.get("errorHttpCode"),
        extensions.get("statusCode"),
        extensions.get("status"),
    ]
    for candidate in candidates:
        status = _as_int(candidate)
        if status in _HTTP_STATUS:
            return _HTTP_STATUS[status]
    message = str(error.get("message") or "").lower()
    for kind, hints in _MESSAGE_HINTS:
        if any(hint in message for hint in hints):
            return kind
    return ErrorKind.SERVER


def _as_int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def classify_errors(errors: list[Any]) -> ErrorKind:
    kinds = {classify_error(e) for e in errors} or {ErrorKind.SERVER}
    return next(kind for kind in _PRECEDENCE if kind in kinds)


def error_messages(errors: list[Any], limit: int = 3) -> str:
    """The first few messages with their codes, for logs and exceptions."""
    parts = []
    for error in errors[:limit]:
        if isinstance(error, dict):
            ext = error.get("extensions") if isinstance(error.get("extensions"), dict) else {}
            code = ext.get("code")
            parts.append(f"{error.get('message')}" + (f" [{code}]" if code else ""))
        else:
            parts.append(str(error))
    if len(errors) > limit:
        parts.append(f"... and {len(errors) - limit} more")
    return "; ".join(parts)  # not cut short here: callers scrub secrets first, then cut


def retry_after_from(errors: list[Any]) -> float | None:
    """Some servers put the delay in ``extensions.retryAfter`` (seconds) instead of a header."""
    for error in errors:
        ext = error.get("extensions") if isinstance(error, dict) else None
        if isinstance(ext, dict):
            for key in ("retryAfter", "retry_after", "retryAfterSeconds"):
                try:
                    return max(0.0, float(ext[key]))
                except (KeyError, TypeError, ValueError):
                    continue
    return None
