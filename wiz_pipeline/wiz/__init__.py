"""The Wiz client: HTTP, OAuth, pagination, retries, the error policy and the rate limit.

Imports ``core`` only (and httpx, msgspec): no Dagster, no Arrow, no data type. It pages any GraphQL
connection; what a data type's window is, and how its nodes are placed, is ``collect``'s business."""

from wiz_pipeline.wiz.auth import TokenProvider
from wiz_pipeline.wiz.client import Page, RequestStats, WizClient
from wiz_pipeline.wiz.errors import (
    WizAuthError,
    WizConfigError,
    WizError,
    WizPaginationError,
    WizPermissionError,
    WizQueryError,
    WizResultCapError,
    WizRetriesExhaustedError,
    WizTLSError,
)
from wiz_pipeline.wiz.options import MAX_PAGE_SIZE, WizOptions
from wiz_pipeline.wiz.secret import Secret

__all__ = [
    "MAX_PAGE_SIZE",
    "Page",
    "RequestStats",
    "Secret",
    "TokenProvider",
    "WizAuthError",
    "WizClient",
    "WizConfigError",
    "WizError",
    "WizOptions",
    "WizPaginationError",
    "WizPermissionError",
    "WizQueryError",
    "WizResultCapError",
    "WizRetriesExhaustedError",
    "WizTLSError",
]
