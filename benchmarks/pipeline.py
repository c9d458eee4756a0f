"""The Dagster pipeline end to end: a day of windows, catch-up runs as the schedule asks for them.

    .venv/bin/python benchmarks/pipeline.py [--audit-entries 20000 80000] [--issues-per-audit 0.1]

For each tenant size, the simulator runs in this process and the collector in a fresh one (so the
tenant doesn't count towards the collector's memory), which evaluates each schedule as after a day-long
outage, executes the runs it requests through Dagster (in process, client rate limit lifted) and
prints rows, runs, queries, pages, wall time, rows/s and the collector's peak RSS. Comparing sizes shows
whether memory grows with the number of records (it should not: rows are streamed into row groups).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from wiz_pipeline.core.times import format_time
from wiz_pipeline.simulator import WizSimulator, generate_tenant


def peak_rss_mib() -> float:
    """This process's peak RSS since it started. Not ru_maxrss: on Linux a child inherits its parent's
    figure across fork and exec, and the parent here holds the whole simulated tenant."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def one() -> dict:
    """Runs in its own process, against the simulator named in the environment; returns the figures."""
    import dagster as dg

    from wiz_pipeline.orchestration.definitions import build_definitions

    baseline_rss = peak_rss_mib()
    now = datetime.now(UTC)  # a tick now: every window closed (lag included) is requested
    defs = build_definitions()
    figures: dict = {}
    with dg.instance_for_test() as instance:
        start_rss = peak_rss_mib()
        began = time.perf_counter()
        for name in ("audit_logs", "issues"):
            tick = defs.resolve_schedule_def(f"collect_{name}_schedule").evaluate_tick(
                dg.build_schedule_context(
                    instance=instance, scheduled_execution_time=now, repository_def=defs.get_repository_def()
                )
            )
            rows = windows = runs = 0
            t0 = time.perf_counter()
            for request in tick.run_requests:
                result = defs.resolve_job_def(f"collect_{name}").execute_in_process(
                    instance=instance,
                    partition_key=request.partition_key,
                    tags=dict(request.tags),
                    run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
                )
                runs += 1
                for event in result.get_asset_materialization_events():
                    windows += 1
                    rows += event.materialization.metadata["dagster/row_count"].value
            seconds = time.perf_counter() - t0
            figures[name] = {
                "runs": runs,
                "windows": windows,
                "rows": rows,
                "seconds": round(seconds, 2),
                "peak_rss_mib": peak_rss_mib(),
            }
        figures["seconds_total"] = round(time.perf_counter() - began, 2)
    files = list(Path(os.environ["WIZ_OUTPUT_URI"]).rglob("*.parquet"))
    figures["files"] = len(files)
    figures["parquet_mib"] = round(sum(f.stat().st_size for f in files) / 2**20, 1)
    figures["rss_after_imports_mib"] = baseline_rss
    figures["rss_before_runs_mib"] = start_rss
    figures["peak_rss_mib"] = peak_rss_mib()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audit-entries", type=int, nargs="+", default=[20_000, 80_000])
    parser.add_argument("--issues-per-audit", type=float, default=0.1)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one()))
        return
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    for n in args.audit_entries:
        issues = round(n * args.issues_per_audit)
        now = datetime.now(UTC).replace(microsecond=0)
        tenant = generate_tenant(now - timedelta(days=1), now, audit_entries=n, issues=issues, seed=3)
        with WizSimulator(tenant) as sim, tempfile.TemporaryDirectory() as tmp:
            sim.set_now(now)
            seed = format_time(now - timedelta(days=1) + timedelta(seconds=9))
            env = {
                **os.environ,
                "WIZ_API_URL": sim.graphql_url,
                "WIZ_TOKEN_URL": sim.token_url,
                "WIZ_CLIENT_ID": sim.client_id,
                "WIZ_CLIENT_SECRET": sim.client_secret,
                "WIZ_OUTPUT_URI": tmp,
                "AUDIT_SINCE_TIME": seed,
                "ISSUES_SINCE_TIME": seed,
                "WIZ_MAX_REQUESTS_PER_SECOND": "1000",
            }
            done = subprocess.run(  # noqa: S603 - our own script
                [sys.executable, __file__, "--one"], capture_output=True, text=True, env=env
            )
            if done.returncode:
                sys.exit(done.stderr[-3000:])
            f = json.loads(done.stdout.strip().splitlines()[-1])
            requests = sim.counters.graphql_requests
        print(f"\ntenant: {n} audit entries, {issues} issues over one day, 30-minute windows")
        for name in ("audit_logs", "issues"):
            d = f[name]
            print(
                f"  {name:<10} {d['rows']:>7} rows in {d['windows']} windows, {d['runs']} run(s), "
                f"{d['seconds']:.2f} s, {d['rows'] / d['seconds']:,.0f} rows/s, "
                f"peak RSS so far {d['peak_rss_mib']} MiB"
            )
        print(
            f"  total {f['seconds_total']:.2f} s, {requests} GraphQL requests (both data types); "
            f"{f['files']} files, {f['parquet_mib']} MiB of Parquet"
        )
        print(
            f"  collector RSS: {f['rss_after_imports_mib']} MiB after imports, "
            f"{f['rss_before_runs_mib']} MiB before the runs, peak {f['peak_rss_mib']} MiB"
        )


if __name__ == "__main__":
    main()
