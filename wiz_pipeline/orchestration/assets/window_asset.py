"""One partitioned asset per data type: a run's windows in, one Parquet file per window out."""

# No `from __future__ import annotations` here: Dagster reads the asset function's annotations
# (context and resources) at definition time.
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)
from dagster._core.instance.config import PoolGranularity

from wiz_pipeline.collect.ocsf_views import write_ocsf_window
from wiz_pipeline.collect.windows import WindowResult, collect_windows, windows_per_query_for
from wiz_pipeline.core.times import format_time
from wiz_pipeline.data_types import DATA_TYPES, DataType
from wiz_pipeline.landing.iceberg import PendingCommits
from wiz_pipeline.landing.outputs import Output, open_output
from wiz_pipeline.landing.quality import CHECKS, Outcome
from wiz_pipeline.landing.tables import file_schema, table_for
from wiz_pipeline.ocsf import SOURCES
from wiz_pipeline.ocsf.layout import MANIFESTS
from wiz_pipeline.orchestration.assets import ocsf_view
from wiz_pipeline.orchestration.checkpoints import (
    CheckpointTracker,
    Collection,
    interval_change,
    recent_max_rows,
    written_windows,
)
from wiz_pipeline.orchestration.partitions import windows_for
from wiz_pipeline.orchestration.rereads import requested_at, windows_to_write
from wiz_pipeline.orchestration.resources import ParquetDatasets, WizResource
from wiz_pipeline.wiz import WizConfigError

POOL = "wiz_api"
# Appended to each window asset's description: when it runs, what a failure means, what to do.
WINDOW_NOTE = (
    " Each partition is a time window, written whole or not at all by {schedule} once it has "
    "closed. A failed window is collected again by the next tick, and {checkpoint} (where the next "
    "collection starts) stays before it until then: a red partition is data not yet collected, "
    "not data lost. If a window keeps failing, the run's log names the cause (credentials, "
    "permissions, the output location). Each window's checks say whether its rows are sound."
)
# The latest windows written whose rows size a run's first window's sub-queries (see collect).
RECENT_NEIGHBOURS = 3


def column_schema(data_type: str, *, window_column: bool = True) -> dg.TableSchema:
    """The columns of a data type's files: its windows' (``window_column``) or its current table's."""
    table = table_for(DATA_TYPES[data_type])
    schema = file_schema(table) if window_column else table.schema
    return dg.TableSchema(columns=[dg.TableColumn(field.name, str(field.type)) for field in schema])


def window_asset(collection: Collection, max_windows_per_backfill_run: int) -> dg.AssetsDefinition:
    """The asset of ``collection``'s data type, described and shaped by its definition."""
    data_type = collection.definition or DATA_TYPES[collection.data_type]
    schema = column_schema(collection.data_type)

    with warnings.catch_warnings():
        # BackfillPolicy is marked beta; we rely only on its documented multi_run behaviour.
        warnings.simplefilter("ignore", dg.BetaWarning)
        # Partitioned check specs are a preview: without them, a run of many windows would have one
        # result per check, not one per window.
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return _define(collection, max_windows_per_backfill_run, data_type, schema)


def check_specs(collection: Collection) -> list[dg.AssetCheckSpec]:
    """One per check of ``quality``, evaluated per window as it is written (and the OCSF view's)."""
    ocsf = ocsf_view.ocsf_check_specs(collection) if collection.ocsf_key else []
    return ocsf + [
        dg.AssetCheckSpec(
            name,
            asset=collection.asset_key,
            description=description,
            partitions_def=collection.partitions_def,
        )
        for name, (description, _) in CHECKS.items()
    ]


class CheckFailedError(Exception):
    """Rows were written that failed a check only a bug can fail (the run fails; see the checks)."""


def _define(
    collection: Collection,
    max_windows_per_backfill_run: int,
    data_type: DataType,
    schema: dg.TableSchema,
) -> dg.AssetsDefinition:
    @dg.multi_asset(
        name=collection.asset_key.to_python_identifier(),
        specs=[
            dg.AssetSpec(
                collection.asset_key,
                group_name="wiz",
                description=data_type.description
                + WINDOW_NOTE.format(
                    schedule=collection.schedule_name, checkpoint=collection.checkpoint_name
                ),
                kinds={"parquet"},
                metadata={
                    "dagster/column_schema": schema,
                    "seed": format_time(collection.seed),
                    "time_field": data_type.time_field,
                },
            ),
            *([ocsf_view.ocsf_spec(collection)] if collection.ocsf_key else []),
        ],
        partitions_def=collection.partitions_def,
        # Each run fetches its windows with as few queries as it can. UI backfills are cut into runs
        # of at most this many windows: bigger than catch-up runs, since each run costs seconds of
        # Dagster's own time (queue, process, definitions), yet bounded, since a run may hold a file
        # open per window.
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=max_windows_per_backfill_run),
        pool=POOL,
        check_specs=check_specs(collection),
        # Windows and their checks are reported one by one (below), not as outputs, so that a run
        # that fails half-way keeps what it wrote: neither the asset's output nor the checks' are
        # required (this is what can_subset does; the step still collects only whole).
        can_subset=True,
    )
    def _asset(
        context: dg.AssetExecutionContext, wiz: WizResource, datasets: ParquetDatasets
    ) -> Iterator[dg.Output[None] | dg.AssetMaterialization | dg.AssetCheckEvaluation]:
        if collection.asset_key not in context.selected_asset_keys:
            if collection.ocsf_key in context.selected_asset_keys:
                yield from _rebuild_ocsf(context, collection, datasets)
                return
            # "Execute" on a check alone: the checks are computed while the window's data streams.
            raise WizConfigError(
                f"{collection.data_type}'s checks run with its windows: materialize the windows "
                "(their checks are recorded with each materialization)."
            )
        run_keys = list(context.partition_keys)
        # A schedule run may be asked to write only some of its range (a re-read joined with the
        # window that just closed, skipping written windows between); any other run writes them all.
        keys, rereads = windows_to_write(context.run.tags, run_keys)
        windows = windows_for(collection.partitions_def, keys, collection.seed)
        skipped = len(run_keys) - len(keys)
        context.log.info(
            f"{collection.data_type}: {len(windows)} window(s), {windows[0].start:%Y-%m-%d %H:%M:%S} .. "
            f"{windows[-1].end:%Y-%m-%d %H:%M:%S} UTC"
            + (f", {len(rereads)} of them re-read(s)" if rereads else "")
            + (f"; {skipped} written window(s) in the range skipped" if skipped else "")
        )
        changed = interval_change(context.instance, collection)
        if changed:
            # A UI backfill must not write under the new interval either: its materializations would
            # hide the change from every later check.
            raise WizConfigError(changed)
        tracker = CheckpointTracker(context.instance, collection)
        # Windows with a file already: it is compared with the new one before being replaced.
        replacing = tracker.written | tracker.partial
        unshared = unshared_budget(context.instance)
        if unshared:
            context.log.warning(unshared)
        output = datasets.output()
        # A wrong bucket, credential or endpoint fails here, before any Wiz request is made.
        output.check()
        ocsf_output = _ocsf_output(collection, datasets) if collection.ocsf_key else None
        tables = datasets.tables()
        # Sized from the busiest recent window, so that a long run (a backfill) doesn't first
        # send one query over all its windows only to reach the API's result cap.
        per_query = windows_per_query_for(data_type, recent_max_rows(context.instance, collection))
        # A window whose latest neighbours held more than one query returns is split up front, so
        # that a busy tenant's catch-up run (often one window) doesn't waste a capped query on it.
        neighbours = recent_max_rows(context.instance, collection, limit=RECENT_NEIGHBOURS)
        tally = _Tally()
        # WIZ_ICEBERG: windows are committed to their tables a batch at a time, then recorded.
        pending = PendingCommits(tables, {"wiz.run-id": context.run.run_id}) if tables else None
        batch: list[tuple[WindowResult, Any]] = []
        try:
            with wiz.client() as client:
                for result in collect_windows(
                    client,
                    data_type,
                    windows,
                    output,
                    run_id=context.run.run_id,
                    windows_per_query=per_query,
                    rows_per_window=neighbours,
                    replacing=replacing,
                    rereads=rereads,
                    requested_at=requested_at(context.run.tags),
                    seed=collection.seed,
                    pending=pending,
                ):
                    # The window's OCSF rows, from the file just written, before either
                    # materialization, and the view's recorded first: a window whose native
                    # materialization is recorded has its view (a kill between the two leaves the
                    # window itself unwritten, so it is collected again, view and all).
                    view = None
                    if ocsf_output is not None:
                        view = write_ocsf_window(
                            output,
                            ocsf_output,
                            collection.ocsf_layout,
                            collection.data_type,
                            result.window,
                            run_id=context.run.run_id,
                            pending=pending,
                            source_key=result.file.key,
                        )
                    batch.append((result, view))
                    if pending is None or len(pending) >= batch_windows(collection.interval_seconds):
                        yield from _record(context, collection, schema, tracker, pending, batch, tally)
        except Exception:
            # Windows of spans that finished before the failure stay written, as without tables.
            yield from _record(context, collection, schema, tracker, pending, batch, tally)
            raise
        else:
            yield from _record(context, collection, schema, tracker, pending, batch, tally)
        finally:
            context.log.info(
                f"{collection.data_type}: {tally.written} of {len(windows)} window(s) written, "
                f"{tally.rows} rows; "
                + (
                    f"{tally.reread} re-read(s) found {tally.late} late record(s), {tally.gone} gone; "
                    if rereads
                    else ""
                )
                + f"{collection.checkpoint_name} is now {format_time(tracker.checkpoint)}"
            )
        failed = tally.failed
        if failed:
            # The files are whole and their materializations stand (the data is as Wiz sent it), but a
            # bug wrote them: the run fails so that nobody mistakes them for good ones.
            raise CheckFailedError(
                f"{collection.data_type}: {len(failed)} check(s) failed on written windows, which "
                "only a bug can cause; see the asset's checks. " + "; ".join(failed[:5])
            )
        yield from _check_outputs(context)

    return _asset


def batch_windows(interval_seconds: int) -> int:
    """Windows per Iceberg commit: a day of them, so a backfill of a year is 365 snapshots (each
    commit rewrites the table's metadata file, which lists every snapshot not yet expired), while a
    scheduled run (one window, or a few) still commits, and is recorded, at once."""
    return max(1, 86400 // interval_seconds)


@dataclass
class _Tally:
    written: int = 0
    rows: int = 0
    late: int = 0
    gone: int = 0
    reread: int = 0
    failed: list[str] = field(default_factory=list)  # "window: check" for each ERROR check failed


def _record(
    context: dg.AssetExecutionContext,
    collection: Collection,
    schema: dg.TableSchema,
    tracker: CheckpointTracker,
    pending: PendingCommits | None,
    batch: list[tuple[WindowResult, Any]],
    tally: _Tally,
) -> Iterator[Any]:
    """Commit the batch's windows to their tables (WIZ_ICEBERG), then yield each window's events:
    its OCSF view's, then its own. Empties ``batch``."""
    if not batch:
        return
    # Taken first: a batch whose commit fails is never recorded, not even by the caller's retry.
    done = list(batch)
    batch.clear()
    if pending is not None:
        # Only the batch's windows: one whose OCSF view failed after its file was pending is not.
        pending.keep_only({result.window.boundary for result, _ in done})
        pending.flush()
    for result, view in done:
        if view is not None:
            tally.failed += yield from _ocsf_window_events(context, collection, view)
        # The materialization names the window's file and rows; no log line per window besides it
        # (each one is another write to the instance's storage). Yielded, not logged, so that it is
        # stored before its checks name it as their target: a check result targeting no
        # materialization is shown as out of date.
        yield dg.AssetMaterialization(
            asset_key=collection.asset_key,
            partition=result.window.key,
            metadata=_metadata(result, schema, context, collection, tracker),
        )
        target = latest_materialization(context.instance, collection.asset_key, result.window.key)
        for outcome in result.checks:
            yield _evaluation(collection.asset_key, result.window.key, outcome, target)
            if outcome.error and not outcome.passed:
                tally.failed.append(f"{result.window.key}: {outcome.name} ({outcome.description})")
        tally.written, tally.rows = tally.written + 1, tally.rows + result.file.rows
        if result.manifest["queries"] > 1:  # one line per split window, not per sub-query
            context.log.info(
                f"{collection.data_type}: window {result.window.key} held more than one query returns; "
                f"fetched in {result.manifest['queries']} sub-queries (capped queries thrown away: "
                f"{result.manifest['capped_queries']}), {result.file.rows} rows."
            )
        if result.manifest["reread"]:
            tally.reread += 1
            tally.late += result.manifest["late_records"] or 0
            tally.gone += result.manifest["gone_records"] or 0


def _ocsf_output(collection: Collection, datasets: ParquetDatasets) -> Output:
    """WIZ_OCSF_URI, with what dead runs left under the view's datasets cleaned. Checked under each
    class's own folder, not at its root: a Security Lake custom source's role may write only under
    its ext/<source>/ prefix."""
    output = datasets.ocsf_output()
    layout = collection.ocsf_layout
    for class_name in SOURCES[collection.data_type]:
        open_output(f"{output.uri.rstrip('/')}/{layout.dataset(class_name)}", output.setting).check()
        output.sweep(layout.dataset(class_name))
    if not layout.manifests_beside:
        datasets.output().sweep(MANIFESTS)
    return output


def _ocsf_window_events(
    context: dg.AssetExecutionContext, collection: Collection, view: Any
) -> Iterator[Any]:
    """Yields the view's materialization and checks of one window; returns the failed checks."""
    assert collection.ocsf_key is not None
    yield ocsf_view.materialization(collection, view, context.run.run_id)
    target = latest_materialization(context.instance, collection.ocsf_key, view.window.key)
    failed = []
    for evaluation, failure in ocsf_view.check_evaluations(collection, view, target):
        yield evaluation
        if failure:
            failed.append(failure)
    return failed


def _rebuild_ocsf(
    context: dg.AssetExecutionContext, collection: Collection, datasets: ParquetDatasets
) -> Iterator[Any]:
    """The OCSF view alone: each window's rows again from its native file, no API read."""
    keys = list(context.partition_keys)
    written = written_windows(context.instance, collection)
    unwritten = [k for k in keys if k not in written]
    if unwritten:
        raise WizConfigError(
            f"wiz/ocsf/{collection.data_type} is derived from wiz/{collection.data_type}, which has not "
            f"written {len(unwritten)} of these windows (the first {unwritten[0]}): materialize "
            f"wiz/{collection.data_type} for them (their OCSF rows are written with them)."
        )
    output, ocsf_output = datasets.output(), _ocsf_output(collection, datasets)
    tables = datasets.tables()
    pending = PendingCommits(tables, {"wiz.run-id": context.run.run_id}) if tables else None
    failed: list[str] = []
    rows = 0
    views: list[Any] = []

    def record() -> Iterator[Any]:
        if pending is not None:
            pending.flush()
        for view in views:
            failed.extend((yield from _ocsf_window_events(context, collection, view)))
        views.clear()

    for window in windows_for(collection.partitions_def, keys, collection.seed):
        view = write_ocsf_window(
            output,
            ocsf_output,
            collection.ocsf_layout,
            collection.data_type,
            window,
            run_id=context.run.run_id,
            pending=pending,
        )
        rows += view.rows
        views.append(view)
        if pending is None or len(pending) >= batch_windows(collection.interval_seconds):
            yield from record()
    yield from record()
    context.log.info(
        f"wiz/ocsf/{collection.data_type}: {len(keys)} window(s) rebuilt from the native files, {rows} rows"
    )
    if failed:
        raise CheckFailedError(
            f"wiz/ocsf/{collection.data_type}: {len(failed)} check(s) failed; see the asset's checks. "
            + "; ".join(failed[:5])
        )
    yield from _check_outputs(context)


def _check_outputs(context: dg.AssetExecutionContext) -> Iterator[dg.Output[None]]:
    """The checks' outputs carry nothing (their results were yielded per window); yielding them, as
    Dagster does for an AssetCheckResult, tells it that none was left out."""
    for output_name, spec in context.assets_def.check_specs_by_output_name.items():
        if spec.key in context.selected_asset_check_keys:
            yield dg.Output(None, output_name=output_name)


def unshared_budget(instance: dg.DagsterInstance) -> str | None:
    """Why concurrent runs of this instance would not share one rate budget, if they would not.

    The budget is shared by taking turns: every step of both assets claims the wiz_api pool's only
    slot in the instance's storage (deploy/dagster.yaml). A per-run pool isn't claimed by runs that
    bypass the run queue (a terminal, execute_in_process), and a limit above 1 lets steps overlap.
    """
    fix = (
        "so overlapping runs each send up to WIZ_MAX_REQUESTS_PER_SECOND. Use deploy/dagster.yaml's "
        "concurrency settings (pools: granularity: op, default_limit: 1) or "
        f"`dagster instance concurrency set {POOL} 1`."
    )
    if not instance.event_log_storage.supports_global_concurrency_limits:
        return f"This Dagster instance's storage holds no pool slots, {fix}"
    if instance.get_concurrency_config().pool_config.pool_granularity == PoolGranularity.RUN:
        return f"The {POOL} pool is counted per run, which runs started outside the run queue skip, {fix}"
    info = instance.event_log_storage.get_concurrency_info(POOL)
    if info.limit != 1:
        return f"The {POOL} pool's limit is {'unset' if info.limit is None else info.limit}, not 1, {fix}"
    if info.slot_count > 1:
        # Dagster makes a pool's slots by counting then adding them, not in one step: two first
        # claims at once can leave two.
        return f"The {POOL} pool has {info.slot_count} slots for a limit of 1, {fix}"
    return None


def latest_materialization(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition: str | None = None
) -> AssetCheckEvaluationTargetMaterializationData | None:
    """The materialization a check result is about (the UI shows a result as current only when it
    targets the latest one), looked up as Dagster does for an ``AssetCheckResult``."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition] if partition else None),
        limit=1,
    ).records
    if not records:
        return None
    record = records[0]
    return AssetCheckEvaluationTargetMaterializationData(
        storage_id=record.storage_id, run_id=record.event_log_entry.run_id, timestamp=record.timestamp
    )


def _evaluation(
    asset_key: dg.AssetKey,
    partition: str | None,
    outcome: Outcome,
    target: AssetCheckEvaluationTargetMaterializationData | None,
) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        target_materialization_data=target,
        asset_key=asset_key,
        check_name=outcome.name,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity.ERROR if outcome.error else dg.AssetCheckSeverity.WARN,
        description=outcome.description,
        metadata=outcome.metadata,
        partition=partition,
    )


def _metadata(
    result: WindowResult,
    schema: dg.TableSchema,
    context: dg.AssetExecutionContext,
    collection: Collection,
    tracker: CheckpointTracker,
) -> dict[str, Any]:
    m, q = result.manifest, result.manifest["query"]
    return {
        "dagster/row_count": result.file.rows,
        # The window's most frequent values (audit actions and statuses; issue severities and
        # statuses), near the top: what a person reads first.
        "summary": dg.MetadataValue.md(result.summary),
        "dagster/uri": result.file.uri,
        "dagster/column_schema": schema,
        "path": dg.MetadataValue.path(result.file.path),
        "manifest": dg.MetadataValue.path(result.file.manifest),
        "window_start": m["window_start"],
        "window_end": m["window_end"],
        "interval_seconds": collection.interval_seconds,
        "min_record_time": m["min_time"] or "",
        "max_record_time": m["max_time"] or "",
        "file_bytes": result.file.bytes,
        # The file's SHA-256 as written (also in its manifest): what `wiz-pipeline ledger` shows.
        "sha256": result.file.sha256,
        "row_groups": result.file.row_groups,
        # Queries whose records are in the file (more than 1: split by time inside the window), and
        # those covering the window thrown away for reaching the API's result cap.
        "queries": m["queries"],
        "capped_queries": m["capped_queries"],
        # The figures of the query the window was fetched with, which covered query_windows windows
        # (the sum of its sub-queries when split): shared by those windows, so never sum them over
        # partitions. With query_windows 1 they are the window's own.
        "query_windows": q["windows"],
        "query_pages": q["pages"],
        "query_requests": q["requests"],
        "query_retries": q["retries"],
        "query_rate_limited": q["rate_limited"],
        "query_bytes_received": q["bytes_received"],
        "query_duplicates_dropped": q["duplicates_dropped"],
        "query_duration_seconds": q["duration_seconds"],
        "query_passes": q["passes"],
        "run_id": context.run.run_id,
        "rows_without_time": m["rows_without_time"],
        # Re-reads (see rereads.py): when this read began, how many reads this file is, whether the
        # schedule asked for it as a re-read, and what it found that the file it replaced had not
        # (late_records) or had (gone_records); None when it replaced no file.
        "read_at": m["read_at"],
        "reads": m["reads"],
        "reread": m["reread"],
        "late_records": m["late_records"],
        "gone_records": m["gone_records"],
        # WIZ_ICEBERG: the table and the snapshot that holds this window's file (its only file there).
        **(
            {"iceberg_table": m["iceberg_table"], "iceberg_snapshot_id": str(m["iceberg_snapshot_id"])}
            if "iceberg_table" in m
            else {}
        ),
        # The checkpoint as this window's write moves it (it moves only if no earlier window is missing).
        collection.checkpoint_name: format_time(tracker.write(result.window.key)),
        # Windows written from an older, later seed; carried on so that they stay unwritten until
        # rewritten (see checkpoints.partial_windows).
        "partial_windows": ",".join(sorted(tracker.partial)),
    }
