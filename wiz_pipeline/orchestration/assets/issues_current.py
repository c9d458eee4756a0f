"""The current state of every issue: an unpartitioned asset rebuilt on its own schedule."""

# No `from __future__ import annotations` here: Dagster reads the asset function's annotations
# (context and resources) at definition time.
from collections.abc import Iterator
from typing import Any

import dagster as dg

from wiz_pipeline.collect.current import CHECKS, DATASET, CurrentBuild, build_current
from wiz_pipeline.data_types.issues import ISSUES
from wiz_pipeline.landing.quality import Outcome
from wiz_pipeline.orchestration.assets.window_asset import (
    POOL,
    CheckFailedError,
    column_schema,
    latest_materialization,
    unshared_budget,
)
from wiz_pipeline.orchestration.resources import ParquetDatasets, WizResource
from wiz_pipeline.orchestration.schedules import RUN_TAGS

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
            "columns of `issues`): what is open, how severe, on which resource, right now. A full "
            "read of the API merged with newer versions from issue windows, replacing "
            "{WIZ_OUTPUT_URI}/issues_current/issues_current.parquet whole at each build. A failed "
            "build leaves the previous file as it was: the data is as old as the last materialization "
            "until the next build succeeds."
        ),
        pool=POOL,
        kinds={"parquet"},
        metadata={"dagster/column_schema": schema},
        check_specs=[
            dg.AssetCheckSpec(name, asset=ASSET_KEY, description=description)
            for name, (description, _) in CHECKS.items()
        ],
    )
    def _asset(
        context: dg.AssetExecutionContext, wiz: WizResource, datasets: ParquetDatasets
    ) -> Iterator[dg.MaterializeResult | dg.AssetMaterialization | dg.AssetCheckEvaluation]:
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
        metadata = _metadata(built, schema, context.run.run_id)
        evaluations = [_evaluation(outcome) for outcome in built.checks]
        failed = [o for o in built.checks if o.error and not o.passed]
        if not failed:
            yield dg.MaterializeResult(metadata=metadata, check_results=evaluations)
            return
        # The file is in place (it replaced the previous one whole) and is recorded as such, but a
        # bug wrote it: the run fails, as a window's does (see window_asset).
        yield dg.AssetMaterialization(asset_key=ASSET_KEY, metadata=metadata)
        target = latest_materialization(context.instance, ASSET_KEY)
        for result in evaluations:
            yield dg.AssetCheckEvaluation(
                asset_key=ASSET_KEY,
                check_name=result.check_name or "",
                passed=result.passed,
                severity=result.severity,
                description=result.description,
                metadata=result.metadata,
                target_materialization_data=target,
            )
        raise CheckFailedError(
            f"{DATASET}: check(s) failed on the file just written, which only a bug can cause: "
            + "; ".join(f"{o.name} ({o.description})" for o in failed)
        )

    job = dg.define_asset_job(
        JOB_NAME,
        selection=[ASSET_KEY],
        description=(
            "Rebuilds the current state of every issue from a full read of the Wiz API. Launched by "
            f"{SCHEDULE_NAME}; run it by hand for an up-to-date view. A failed run changes nothing."
        ),
        tags=RUN_TAGS,
    )
    schedule = dg.ScheduleDefinition(
        name=SCHEDULE_NAME,
        job=job,
        cron_schedule=cron,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=(
            f"Rebuilds {DATASET} at `{cron}` UTC (WIZ_ISSUES_CURRENT_CRON), so the current state of "
            "issues is at most that old. A failed tick's run is not retried until the next tick."
        ),
    )
    return _asset, job, schedule


def _evaluation(outcome: Outcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=outcome.name,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity.ERROR if outcome.error else dg.AssetCheckSeverity.WARN,
        description=outcome.description,
        metadata=outcome.metadata,
    )


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
