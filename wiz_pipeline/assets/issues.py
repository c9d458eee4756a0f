"""Issues: findings, placed by ``statusChangedAt`` so that new issues and status changes both land."""

from __future__ import annotations

import dagster as dg

from wiz_pipeline.assets.window_asset import window_asset
from wiz_pipeline.checkpoints import Collection


def issues_asset(collection: Collection, max_windows_per_backfill_run: int) -> dg.AssetsDefinition:
    return window_asset(
        collection,
        "Wiz issues (severity, status, type, affected resource, source rule, remediation), one "
        "Parquet file per window by `statusChangedAt`: an issue lands again in a later window each "
        "time its status changes. Under {WIZ_OUTPUT_URI}/issues/.",
        max_windows_per_backfill_run,
    )
