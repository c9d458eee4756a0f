"""Talks to Wiz. Imports nothing from Dagster, so it can be read, used and tested on its own."""

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
)
from wiz_pipeline.wiz.options import MAX_PAGE_SIZE, WizOptions
from wiz_pipeline.wiz.queries import Nodes, WindowFetch, WindowStats, fetch_window
from wiz_pipeline.wiz.secret import Secret

__all__ = [
    "MAX_PAGE_SIZE",
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
    "WizOptions",
    "WizPaginationError",
    "WizPermissionError",
    "WizQueryError",
    "WizResultCapError",
    "WizRetriesExhaustedError",
    "fetch_window",
]
