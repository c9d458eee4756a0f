"""What re-reads add to a schedule tick: finding the windows due means reading the latest
materialization of every written window in the look-back (rereads.LOOKBACK_*).

    .venv/bin/python benchmarks/reread_tick.py [--reads 2]

For a 30-minute and a one-minute interval, the windows of the whole look-back before now (336 and
1,440 of them, and the windows since) are recorded as materialized, ``--reads`` times each, with the
metadata a run gives a window (about 35 entries), in a throwaway SQLite instance; half of the
look-back's windows were read late enough to be done, half are due. Then the schedule is evaluated
through Dagster's own API, twice, with WIZ_REREAD_AFTER_SECONDS=3600 and with 0 (re-reads off), and
the time ``rereads.due`` alone takes is printed.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from datetime import UTC, datetime, timedelta

import dagster as dg

from wiz_pipeline.core.times import format_time
from wiz_pipeline.orchestration import rereads
from wiz_pipeline.orchestration.checkpoints import collections_for
from wiz_pipeline.orchestration.definitions import build_definitions
from wiz_pipeline.settings import load_settings

NOW = datetime(2026, 11, 26, 10, 5, tzinfo=UTC)


def _metadata(start: datetime, interval: int, read_at: datetime, reads: int) -> dict:
    figures = dict.fromkeys(
        ["file_bytes", "row_groups", "query_windows", "query_pages", "query_requests", "query_retries"], 3
    )
    figures |= dict.fromkeys(
        ["query_rate_limited", "query_bytes_received", "query_duplicates_dropped", "rows_without_time"], 1
    )
    figures["query_passes"] = 1
    return {
        "dagster/row_count": 420,
        "dagster/uri": f"file:///data/audit_logs/{start:%Y%m%dT%H%M%SZ}.parquet",
        "path": dg.MetadataValue.path(f"/data/audit_logs/{start:%Y%m%dT%H%M%SZ}.parquet"),
        "manifest": dg.MetadataValue.path(f"/data/audit_logs/_{start:%Y%m%dT%H%M%SZ}.json"),
        "window_start": format_time(start),
        "window_end": format_time(start + timedelta(seconds=interval)),
        "interval_seconds": interval,
        "min_record_time": format_time(start),
        "max_record_time": format_time(start),
        "query_duration_seconds": 0.5,
        "run_id": "0" * 36,
        "read_at": format_time(read_at),
        "reads": reads,
        "reread": reads > 1,
        "late_records": None if reads == 1 else 0,
        "gone_records": None if reads == 1 else 0,
        "AUDIT_SINCE_TIME": format_time(start),
        "partial_windows": "",
        **figures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=2, help="materializations per window (default 2)")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    for interval in (1800, 60):
        lookback = min(rereads.LOOKBACK_WINDOWS, rereads.LOOKBACK_SECONDS // interval)
        windows = lookback + 3600 // interval + 2
        seed = NOW - timedelta(seconds=interval * windows)
        with tempfile.TemporaryDirectory() as tmp:
            env = {"WIZ_POLL_INTERVAL_SECONDS": str(interval), "AUDIT_SINCE_TIME": format_time(seed)}
            env |= {"WIZ_COLLECT_ISSUES": "false", "WIZ_OUTPUT_URI": tmp}
            collection = collections_for(load_settings(env))[0]
            start = collection.partitions_def.start
            with dg.instance_for_test() as instance:
                began = time.perf_counter()
                for i in range(windows):
                    window = start + timedelta(seconds=i * interval)
                    end = window + timedelta(seconds=interval)
                    for read in range(1, args.reads + 1):
                        # Half the windows were last read after end + 1 h (done), half before (due).
                        late = timedelta(seconds=3700 if i % 2 else 300 * read)
                        instance.report_runless_asset_event(
                            dg.AssetMaterialization(
                                asset_key=collection.asset_key,
                                partition=window.strftime("%Y-%m-%d-%H:%M"),
                                metadata=_metadata(window, interval, end + late, read),
                            )
                        )
                recorded = time.perf_counter() - began
                written = set(instance.get_materialized_partitions(collection.asset_key))
                began = time.perf_counter()
                due = rereads.due(instance, collection, NOW, written)
                alone = time.perf_counter() - began
                print(
                    f"interval {interval:>4} s: {windows} windows x {args.reads} materializations recorded "
                    f"in {recorded:.0f} s; rereads.due over a look-back of {lookback} windows: "
                    f"{alone:.3f} s, {len(due)} due"
                )
                for reread in ("3600", "0"):
                    defs = build_definitions({**env, "WIZ_REREAD_AFTER_SECONDS": reread})
                    schedule = defs.resolve_schedule_def("collect_audit_logs_schedule")
                    # The first tick with re-reads on also brings Dagster's status cache up to date
                    # over every materialization recorded above; the second is the steady state.
                    for attempt in ("first", "second"):
                        began = time.perf_counter()
                        data = schedule.evaluate_tick(
                            dg.build_schedule_context(
                                instance=instance,
                                scheduled_execution_time=NOW,
                                repository_def=defs.get_repository_def(),
                            )
                        )
                        seconds = time.perf_counter() - began
                        print(
                            f"  {attempt} tick with WIZ_REREAD_AFTER_SECONDS={reread:>4}: {seconds:.3f} s, "
                            f"{len(data.run_requests or [])} run(s) requested"
                        )


if __name__ == "__main__":
    main()
