"""Audit log entries: logins, configuration changes and API calls, by their ``timestamp``."""

from __future__ import annotations

import dagster as dg

from wiz_pipeline.assets.window_asset import window_asset
from wiz_pipeline.checkpoints import Collection


def audit_logs_asset(collection: Collection, max_windows_per_backfill_run: int) -> dg.AssetsDefinition:
    return window_asset(
        collection,
        "Wiz audit log entries (logins, configuration changes, API calls), one Parquet file per "
        "window by `timestamp`, under {WIZ_OUTPUT_URI}/audit_logs/.",
        max_windows_per_backfill_run,
    )
