"""The current state of a data type (issues, vulnerability findings, configuration findings): an
unpartitioned asset rebuilt on its own schedule (``collect.current`` says how)."""

# No `from __future__ import annotations` here: Dagster reads the asset function's annotations
# (context, config and resources) at definition time.
import contextlib
from collections.abc import Iterator
from typing import Any

import dagster as dg
from pydantic import Field

from wiz_pipeline.collect.current import (
    CurrentBuild,
    build_current,
    check_descriptions,
    leavers_query,
    plan_build,
    reads_in_full_at_every_build,
    state_of,
)
from wiz_pipeline.data_types import DataType
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


def asset_key(data_type: DataType) -> dg.AssetKey:
    return dg.AssetKey(["wiz", state_of(data_type).dataset])


def current_job_name(data_type: DataType) -> str:
    return f"collect_{state_of(data_type).dataset}"


def current_schedule_name(data_type: DataType) -> str:
    return f"{current_job_name(data_type)}_schedule"


class CurrentConfig(dg.Config):
    full_read: bool = Field(
        default=False,
        description=(
            "Read every record from the Wiz API, whatever WIZ_<TYPE>_FULL_READ_DAYS says: the only "
            "way a deletion, or a change no window holds, reaches the file between full reads "
            "(issues_current reads everything at every build anyway)."
        ),
    )


def current_definitions(
    data_type: DataType, cron: str, full_read_days: int | None = None
) -> "tuple[dg.AssetsDefinition, dg.UnresolvedAssetJobDefinition, dg.ScheduleDefinition]":
    """The asset, its job and its schedule. ``data_type``: its declaration as the settings chose its
    filters; ``cron``: its cron setting, in UTC; ``full_read_days``: its WIZ_<TYPE>_FULL_READ_DAYS
    (None: a full read at every build)."""
    state = state_of(data_type)
    key, job_name, schedule_name = (
        asset_key(data_type),
        current_job_name(data_type),
        current_schedule_name(data_type),
    )
    dataset = state.dataset
    schema = column_schema(data_type.name, window_column=False)
    checks = check_descriptions(data_type)

    @dg.asset(
        key=key,
        group_name="wiz",
        description=_description(data_type),
        pool=POOL,
        kinds={"parquet"},
        metadata={"dagster/column_schema": schema},
        check_specs=[
            dg.AssetCheckSpec(name, asset=key, description=description)
            for name, (description, _) in checks.items()
        ],
    )
    def _asset(
        context: dg.AssetExecutionContext,
        config: CurrentConfig,
        wiz: WizResource,
        datasets: ParquetDatasets,
    ) -> Iterator[dg.MaterializeResult | dg.AssetMaterialization | dg.AssetCheckEvaluation]:
        output = datasets.output()
        # A wrong bucket, credential or endpoint fails here, before any Wiz request is made.
        output.check()
        plan = plan_build(output, data_type, full_read_days=full_read_days, force=config.full_read)
        # Between full reads a build reads only files (no client, no Wiz request), but for the
        # records whose value left the collected ones (leavers_query: a control that now passes).
        asks_wiz = plan.full_read or leavers_query(data_type) is not None
        if asks_wiz:
            unshared = unshared_budget(context.instance)
            if unshared:
                context.log.warning(unshared)
        with wiz.client() if asks_wiz else contextlib.nullcontext() as client:
            built = build_current(
                client,
                output,
                run_id=context.run.run_id,
                data_type=data_type,
                plan=plan,
                tables=datasets.tables(),
            )
        c = built.changes
        how = (
            ""
            if full_read_days is None
            else f" ({'full read' if plan.full_read else 'no full read'}: {plan.reason})"
        )
        context.log.info(
            f"{dataset}: {built.rows} {state.noun} written{how}; {c.new} new, {c.resolved} resolved, "
            f"{c.reopened} reopened, {c.edited} otherwise edited, {c.gone} gone"
        )
        metadata = _metadata(data_type, built, schema, context.run.run_id)
        evaluations = [_evaluation(outcome) for outcome in built.checks]
        failed = [o for o in built.checks if o.error and not o.passed]
        if not failed:
            yield dg.MaterializeResult(metadata=metadata, check_results=evaluations)
            return
        # The file is in place (it replaced the previous one whole) and is recorded as such, but a
        # bug wrote it: the run fails, as a window's does (see window_asset).
        yield dg.AssetMaterialization(asset_key=key, metadata=metadata)
        target = latest_materialization(context.instance, key)
        for result in evaluations:
            yield dg.AssetCheckEvaluation(
                asset_key=key,
                check_name=result.check_name or "",
                passed=result.passed,
                severity=result.severity,
                description=result.description,
                metadata=result.metadata,
                target_materialization_data=target,
            )
        raise CheckFailedError(
            f"{dataset}: check(s) failed on the file just written, which only a bug can cause: "
            + "; ".join(f"{o.name} ({o.description})" for o in failed)
        )

    job = dg.define_asset_job(
        job_name,
        selection=[key],
        description=_job_description(data_type, schedule_name),
        tags=RUN_TAGS,
    )
    schedule = dg.ScheduleDefinition(
        name=schedule_name,
        job=job,
        cron_schedule=cron,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=(
            f"Rebuilds {dataset} at `{cron}` UTC ({state.cron_setting}), so the current state of "
            f"{state.noun} is at most that old. A failed tick's run is not retried until the next tick."
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


def _description(data_type: DataType) -> str:
    state = state_of(data_type)
    one, dataset, name = state.noun[:-1], state.dataset, data_type.name
    where = f"{{WIZ_OUTPUT_URI}}/{dataset}/{dataset}.parquet"
    by = ", then ".join(f"`{c}`" for c in state.version_columns)
    kept = (
        f"The current state of every Wiz {one}, one row per {one} id in its latest version (the "
        f"columns of `{name}`)"
    )
    tail = (
        " A failed build leaves the previous file as it was: the data is as old as the last "
        "materialization until the next build succeeds."
    )
    if reads_in_full_at_every_build(data_type):
        return (
            f"{kept}: what is open, how severe, on which resource, right now. A full read of the API "
            f"merged with newer versions from {one} windows, replacing {where} whole at each build.{tail}"
        )
    between = (
        "makes no API request"
        if leavers_query(data_type) is None
        else "asks the API only for the findings updated since whose result is no longer collected "
        "(a failing control that now passes), and drops them"
    )
    return (
        f"{kept}, replacing {where} whole at each build. The current state is the last full read "
        f"of the API plus every {name} window written since, latest {by} per id (on a tie the later "
        "source: a window over the previous build, a later window over an earlier one); a build "
        f"between full reads {between}. A full read happens at the first build, when the "
        f"previous file can't be read, every {state.full_read_days_setting} days (0: every build), or "
        "when the run's config says `full_read: true`; only a full read drops what Wiz deleted. The "
        "step claims the `wiz_api` "
        f"slot either way.{tail}"
    )


def _job_description(data_type: DataType, schedule_name: str) -> str:
    state = state_of(data_type)
    if reads_in_full_at_every_build(data_type):
        how = f"Rebuilds the current state of every {state.noun[:-1]} from a full read of the Wiz API."
    else:
        how = (
            f"Rebuilds the current state of every {state.noun[:-1]} from the last full read and the "
            f"windows written since; a full read every {state.full_read_days_setting} days, or when "
            "launched with `full_read: true` in the asset's config."
        )
    return (
        f"{how} Launched by {schedule_name}; run it by hand for an up-to-date view. A failed run "
        "changes nothing."
    )


def _metadata(
    data_type: DataType, built: CurrentBuild, schema: dg.TableSchema, run_id: str
) -> dict[str, Any]:
    read = built.manifest["read"]
    changes = built.changes
    metadata: dict[str, Any] = {
        "dagster/row_count": built.rows,
        "dagster/uri": built.uri,
        "dagster/column_schema": schema,
        "path": dg.MetadataValue.path(built.path),
        "manifest": dg.MetadataValue.path(built.manifest_path),
        "changes": dg.MetadataValue.md(changes.markdown(state_of(data_type).noun)),
        "new": changes.new,
        "resolved": changes.resolved,
        "reopened": changes.reopened,
        "edited": changes.edited,
        "gone": changes.gone,
        "unchanged": changes.unchanged,
    }
    if changes.previous_rows is not None:
        metadata["previous_rows"] = changes.previous_rows
    if "iceberg_table" in built.manifest:  # WIZ_ICEBERG: the snapshot that holds the new file alone
        metadata["iceberg_table"] = built.manifest["iceberg_table"]
        metadata["iceberg_snapshot_id"] = str(built.manifest["iceberg_snapshot_id"])
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
    if not reads_in_full_at_every_build(data_type):
        # Only where builds between full reads exist (issues_current's metadata keeps its keys).
        metadata |= {
            "full_read": built.plan.full_read,
            "full_read_reason": built.plan.reason,
            "last_full_read": built.last_full_read,
        }
    return metadata
