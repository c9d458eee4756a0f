"""How long one schedule tick takes to work out what to request, with many windows on record.

    .venv/bin/python benchmarks/tick.py [--written 3000]

For a 30-minute interval with the default 2025 seed (about 21,000 closed windows by late 2026) and a
one-minute interval with a seed a year back (about 525,000), --written windows are recorded as
materialized (reported straight to a throwaway instance), then the schedule is evaluated through
Dagster's own API. Dagster cancels a schedule evaluation after 60 s by default.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from datetime import UTC, datetime, timedelta

import dagster as dg

from wiz_pipeline.orchestration.definitions import build_definitions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--written", type=int, default=3000)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    now = datetime(2026, 11, 26, 10, 5, tzinfo=UTC)
    for interval, seed in ((1800, "2025-09-12T21:00:09Z"), (60, "2025-11-26T10:00:00Z")):
        with tempfile.TemporaryDirectory() as tmp:
            env = {"WIZ_POLL_INTERVAL_SECONDS": str(interval), "AUDIT_SINCE_TIME": seed}
            env |= {"WIZ_COLLECT_ISSUES": "false", "WIZ_OUTPUT_URI": tmp}
            defs = build_definitions(env)
            partitions = defs.resolve_assets_def(dg.AssetKey(["wiz", "audit_logs"])).partitions_def
            start = partitions.start
            with dg.instance_for_test() as instance:
                for i in range(args.written):
                    key = (start + timedelta(seconds=i * interval)).strftime("%Y-%m-%d-%H:%M")
                    instance.report_runless_asset_event(
                        dg.AssetMaterialization(
                            asset_key=["wiz", "audit_logs"],
                            partition=key,
                            metadata={"window_start": seed, "interval_seconds": interval},
                        )
                    )
                schedule = defs.resolve_schedule_def("collect_audit_logs_schedule")
                for attempt in ("first", "second"):
                    began = time.perf_counter()
                    data = schedule.evaluate_tick(
                        dg.build_schedule_context(
                            instance=instance,
                            scheduled_execution_time=now,
                            repository_def=defs.get_repository_def(),
                        )
                    )
                    seconds = time.perf_counter() - began
                    print(
                        f"interval {interval:>4} s, seed {seed}: {args.written} windows written; "
                        f"{attempt} tick {seconds:.2f} s, {len(data.run_requests or [])} runs requested"
                    )


if __name__ == "__main__":
    main()
