"""What can go wrong when talking to Wiz, as classes an operator can act on.

Every message names what failed and what to do about it. None of them ever carries the client
secret or an access token: messages are built from status codes, URLs and the server's own error
text, never from request headers or the token request's body.
"""

from __future__ import annotations

from wiz_pipeline.core.errors import WizConfigError, WizError

__all__ = ["WizConfigError", "WizError"]  # re-exported: the client's callers catch them from here too


class WizAuthError(WizError):
    """The token endpoint refused the credentials, or the API refused the token twice."""


class WizPermissionError(WizError):
    """403: the service account lacks a permission. Not retried."""


class WizQueryError(WizError):
    """400, or a GraphQL validation error: the query itself is wrong. Not retried."""


class WizTLSError(WizError):
    """The server's certificate was refused (unknown CA, wrong host, expired). Not retried: the fix
    is trust configuration (WIZ_CA_BUNDLE, SSL_CERT_FILE), not time."""


class WizResultCapError(WizError):
    """A query hit the API's cap on results per query, so the window may be incomplete."""


class WizPaginationError(WizError):
    """Paging on would loop for ever: the server handed back a cursor it had already given, or kept
    saying hasNextPage while its pages brought nothing new."""


class WizRetryableError(WizError):
    """A failure worth another try: 5xx, network trouble, a malformed or truncated body.

    Never reaches callers of the client: once retries are used up it becomes a
    ``WizRetriesExhaustedError`` carrying the last failure's details.
    """

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after  # seconds the server asked us to wait (a 503 may say too)


class WizRateLimitError(WizRetryableError):
    """429, or a GraphQL rate-limit error. ``retry_after`` is the server's delay in seconds, if any."""

    def __init__(self, message: str, *, retry_after: float | None = None, status: int | None = 429) -> None:
        super().__init__(message, status=status, retry_after=retry_after)


class WizResponseError(WizRetryableError):
    """The server answered, but not with a usable GraphQL response (non-JSON, wrong shape)."""


class WizRetriesExhaustedError(WizError):
    """Retries ran out (or the server asked for a longer wait than we accept). Final; not retried again."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class WizUnauthorizedResponse(WizError):
    """Internal signal: the API answered 401 (or an auth GraphQL error). The client refreshes once."""

    def __init__(self, message: str, *, in_graphql: bool = False) -> None:
        super().__init__(message)
        # A 200 whose errors say UNAUTHORIZED: with a fresh token too, it means a missing permission.
        self.in_graphql = in_graphql
