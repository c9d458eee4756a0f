"""Talks to Wiz. Imports nothing from Dagster, so it can be read, used and tested on its own."""

from wiz_pipeline.wiz.auth import Secret, TokenProvider
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
)
from wiz_pipeline.wiz.queries import (
    AUDIT_LOGS,
    DATA_TYPES,
    ISSUES,
    DataType,
    Nodes,
    WindowFetch,
    WindowStats,
    fetch_window,
)

__all__ = [
    "AUDIT_LOGS",
    "DATA_TYPES",
    "ISSUES",
    "DataType",
    "Nodes",
    "Page",
    "RequestStats",
    "Secret",
    "TokenProvider",
    "WindowFetch",
    "WindowStats",
    "WizAuthError",
    "WizClient",
    "WizConfigError",
    "WizError",
    "WizPaginationError",
    "WizPermissionError",
    "WizQueryError",
    "WizResultCapError",
    "WizRetriesExhaustedError",
    "fetch_window",
]
