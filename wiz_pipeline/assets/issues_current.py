"""The current state of every issue: an unpartitioned asset rebuilt on its own schedule."""

# No `from __future__ import annotations` here: Dagster reads the asset function's annotations
# (context and resources) at definition time.
from typing import Any

import dagster as dg

from wiz_pipeline.assets.window_asset import POOL, column_schema, unshared_budget
from wiz_pipeline.current import DATASET, CurrentBuild, build_current
from wiz_pipeline.data_types.issues import ISSUES
from wiz_pipeline.resources import ParquetDatasets, WizResource
from wiz_pipeline.schedules import RUN_TAGS

ASSET_KEY = dg.AssetKey(["wiz", DATASET])
JOB_NAME = f"collect_{DATASET}"
SCHEDULE_NAME = f"collect_{DATASET}_schedule"


def issues_current_definitions(
    cron: str,
) -> "tuple[dg.AssetsDefinition, dg.UnresolvedAssetJobDefinition, dg.ScheduleDefinition]":
    """The asset, its job and its schedule (``cron``: WIZ_ISSUES_CURRENT_CRON, in UTC)."""
    schema = column_schema(ISSUES.name)

    @dg.asset(
        key=ASSET_KEY,
        group_name="wiz",
        description=(
            "The current state of every Wiz issue, one row per issue id in its latest version (the "
            "columns of `issues`): a full read of the API merged with newer versions from issue "
            "windows, replacing {WIZ_OUTPUT_URI}/issues_current/issues_current.parquet whole."
        ),
        pool=POOL,
        kinds={"parquet"},
        metadata={"dagster/column_schema": schema},
    )
    def _asset(
        context: dg.AssetExecutionContext, wiz: WizResource, datasets: ParquetDatasets
    ) -> dg.MaterializeResult:
        unshared = unshared_budget(context.instance)
        if unshared:
            context.log.warning(unshared)
        output = datasets.output()
        # A wrong bucket, credential or endpoint fails here, before any Wiz request is made.
        output.check()
        with wiz.client() as client:
            built = build_current(client, output, run_id=context.run.run_id)
        c = built.changes
        context.log.info(
            f"{DATASET}: {built.rows} issues written; {c.new} new, {c.resolved} resolved, "
            f"{c.reopened} reopened, {c.edited} otherwise edited, {c.gone} gone"
        )
        return dg.MaterializeResult(metadata=_metadata(built, schema, context.run.run_id))

    job = dg.define_asset_job(
        JOB_NAME,
        selection=[ASSET_KEY],
        description="Rebuilds the current state of every issue from a full read of the Wiz API.",
        tags=RUN_TAGS,
    )
    schedule = dg.ScheduleDefinition(
        name=SCHEDULE_NAME,
        job=job,
        cron_schedule=cron,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Rebuilds {DATASET} at `{cron}` UTC (WIZ_ISSUES_CURRENT_CRON).",
    )
    return _asset, job, schedule


def _metadata(built: CurrentBuild, schema: dg.TableSchema, run_id: str) -> dict[str, Any]:
    read = built.manifest["read"]
    changes = built.changes
    metadata: dict[str, Any] = {
        "dagster/row_count": built.rows,
        "dagster/uri": built.uri,
        "dagster/column_schema": schema,
        "path": dg.MetadataValue.path(built.path),
        "manifest": dg.MetadataValue.path(built.manifest_path),
        "changes": dg.MetadataValue.md(changes.markdown()),
        "new": changes.new,
        "resolved": changes.resolved,
        "reopened": changes.reopened,
        "edited": changes.edited,
        "gone": changes.gone,
        "unchanged": changes.unchanged,
    }
    if changes.previous_rows is not None:
        metadata["previous_rows"] = changes.previous_rows
    metadata.update({f"status_{name}": n for name, n in built.by_status.items()})
    metadata.update({f"severity_{name}": n for name, n in built.by_severity.items()})
    metadata.update(
        {
            "file_bytes": built.bytes,
            "row_groups": built.row_groups,
            "read_started": built.manifest["read_started"],
            "pages": read["pages"],
            "requests": read["requests"],
            "retries": read["retries"],
            "rate_limited": read["rate_limited"],
            "bytes_received": read["bytes_received"],
            "read_passes": read["passes"],
            "duplicates_dropped": read["duplicates_dropped"],
            "recovered_on_second_pass": read["recovered_on_second_pass"],
            "windows_merged": built.manifest["windows_merged"],
            "versions_from_windows": built.manifest["versions_from_windows"],
            "duration_seconds": read["duration_seconds"],
            "run_id": run_id,
        }
    )
    return metadata
