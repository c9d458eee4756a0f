"""One partitioned asset per data type: a run's windows in, one Parquet file per window out."""

# No `from __future__ import annotations` here: Dagster reads the asset function's annotations
# (context and resources) at definition time.
import warnings
from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster._core.instance.config import PoolGranularity

from wiz_pipeline.checkpoints import CheckpointTracker, Collection, interval_change, recent_max_rows
from wiz_pipeline.collect import WindowResult, collect_windows, windows_per_query_for
from wiz_pipeline.data_types import DATA_TYPES, DataType
from wiz_pipeline.partitions import windows_for
from wiz_pipeline.rereads import requested_at, windows_to_write
from wiz_pipeline.resources import ParquetDatasets, WizResource
from wiz_pipeline.times import format_time
from wiz_pipeline.wiz import WizConfigError

POOL = "wiz_api"
# The latest windows written whose rows size a run's first window's sub-queries (see collect).
RECENT_NEIGHBOURS = 3


def column_schema(data_type: str) -> dg.TableSchema:
    table = DATA_TYPES[data_type].table
    return dg.TableSchema(columns=[dg.TableColumn(field.name, str(field.type)) for field in table.schema])


def window_asset(collection: Collection, max_windows_per_backfill_run: int) -> dg.AssetsDefinition:
    """The asset of ``collection``'s data type, described and shaped by its definition."""
    data_type = DATA_TYPES[collection.data_type]
    schema = column_schema(collection.data_type)

    with warnings.catch_warnings():
        # BackfillPolicy is marked beta; we rely only on its documented multi_run behaviour.
        warnings.simplefilter("ignore", dg.BetaWarning)
        return _define(collection, max_windows_per_backfill_run, data_type, schema)


def _define(
    collection: Collection,
    max_windows_per_backfill_run: int,
    data_type: DataType,
    schema: dg.TableSchema,
) -> dg.AssetsDefinition:
    @dg.asset(
        key=collection.asset_key,
        group_name="wiz",
        description=data_type.description,
        partitions_def=collection.partitions_def,
        # Each run fetches its windows with as few queries as it can. UI backfills are cut into runs
        # of at most this many windows: bigger than catch-up runs, since each run costs seconds of
        # Dagster's own time (queue, process, definitions), yet bounded, since a run may hold a file
        # open per window.
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=max_windows_per_backfill_run),
        # Windows are reported one by one (below), so a run that fails half-way keeps what it wrote.
        output_required=False,
        pool=POOL,
        kinds={"parquet"},
        metadata={
            "dagster/column_schema": schema,
            "seed": format_time(collection.seed),
            "time_field": data_type.time_field,
        },
    )
    def _asset(
        context: dg.AssetExecutionContext, wiz: WizResource, datasets: ParquetDatasets
    ) -> Iterator[dg.Output[None]]:
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
        # Sized from the busiest recent window, so that a long run (a backfill) doesn't first
        # send one query over all its windows only to reach the API's result cap.
        per_query = windows_per_query_for(data_type, recent_max_rows(context.instance, collection))
        # A window whose latest neighbours held more than one query returns is split up front, so
        # that a busy tenant's catch-up run (often one window) doesn't waste a capped query on it.
        neighbours = recent_max_rows(context.instance, collection, limit=RECENT_NEIGHBOURS)
        written = rows = late = gone = reread = 0
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
                ):
                    # The materialization names the window's file and rows; no log line per window
                    # besides it (each one is another write to the instance's storage).
                    context.log_event(
                        dg.AssetMaterialization(
                            asset_key=collection.asset_key,
                            partition=result.window.key,
                            metadata=_metadata(result, schema, context, collection, tracker),
                        )
                    )
                    written, rows = written + 1, rows + result.file.rows
                    if result.manifest["queries"] > 1:  # one line per split window, not per sub-query
                        context.log.info(
                            f"{collection.data_type}: window {result.window.key} held more than one "
                            f"query returns; fetched in {result.manifest['queries']} sub-queries "
                            f"(capped queries thrown away: {result.manifest['capped_queries']}), "
                            f"{result.file.rows} rows."
                        )
                    if result.manifest["reread"]:
                        reread += 1
                        late += result.manifest["late_records"] or 0
                        gone += result.manifest["gone_records"] or 0
        finally:
            context.log.info(
                f"{collection.data_type}: {written} of {len(windows)} window(s) written, {rows} rows; "
                + (f"{reread} re-read(s) found {late} late record(s), {gone} gone; " if rereads else "")
                + f"{collection.checkpoint_name} is now {format_time(tracker.checkpoint)}"
            )
        yield from ()

    return _asset


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
    limit = instance.event_log_storage.get_concurrency_info(POOL).limit
    if limit != 1:
        return f"The {POOL} pool's limit is {'unset' if limit is None else limit}, not 1, {fix}"
    return None


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
        "query_windows": q["windows"],
        # Queries whose records are in the file (more than 1: split by time inside the window), and
        # those covering the window thrown away for reaching the API's result cap.
        "queries": m["queries"],
        "capped_queries": m["capped_queries"],
        "pages": q["pages"],
        "requests": q["requests"],
        "retries": q["retries"],
        "rate_limited": q["rate_limited"],
        "bytes_received": q["bytes_received"],
        "duplicates_dropped": q["duplicates_dropped"],
        "duration_seconds": q["duration_seconds"],
        "run_id": context.run.run_id,
        "rows_without_time": m["rows_without_time"],
        "passes": q["passes"],
        # Re-reads (see rereads.py): when this read began, how many reads this file is, whether the
        # schedule asked for it as a re-read, and what it found that the file it replaced had not
        # (late_records) or had (gone_records); None when it replaced no file.
        "read_at": m["read_at"],
        "reads": m["reads"],
        "reread": m["reread"],
        "late_records": m["late_records"],
        "gone_records": m["gone_records"],
        # The checkpoint as this window's write moves it (it moves only if no earlier window is missing).
        collection.checkpoint_name: format_time(tracker.write(result.window.key)),
        # Windows written from an older, later seed; carried on so that they stay unwritten until
        # rewritten (see checkpoints.partial_windows).
        "partial_windows": ",".join(sorted(tracker.partial)),
    }
