"""Collector throughput against the simulator: pages/s, nodes/s, MiB/s, and peak memory.

    .venv/bin/python benchmarks/collect.py [--audit-entries 50000] [--issues 5000] [--rate 1000]

Audit logs are fetched in --window-hours windows, issues as one window over all of them (read twice,
as every issue window of more than one page is). With --rate 3 (the default production setting) the
run is rate-bound by design; the default here lifts the limit to measure the client and the simulator
themselves.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
from datetime import UTC, datetime, timedelta

from wiz_pipeline.collect.fetch import WindowFetch
from wiz_pipeline.data_types import DATA_TYPES
from wiz_pipeline.settings import load_settings
from wiz_pipeline.simulator import WizSimulator, generate_tenant
from wiz_pipeline.wiz import WizClient


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audit-entries", type=int, default=50_000)
    parser.add_argument("--issues", type=int, default=5_000)
    parser.add_argument("--rate", type=float, default=1000.0, help="client requests/second (default 1000)")
    parser.add_argument("--window-hours", type=float, default=2.0)
    args = parser.parse_args()

    end = datetime(2025, 9, 13, tzinfo=UTC)
    start = end - timedelta(days=1)
    began = time.perf_counter()
    tenant = generate_tenant(start, end, audit_entries=args.audit_entries, issues=args.issues)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"tenant: {args.audit_entries} audit entries, {args.issues} issues "
        f"(generated in {time.perf_counter() - began:.1f} s)"
    )
    window = timedelta(hours=args.window_hours)
    with (
        WizSimulator(tenant, client_secret="bench-secret-000000") as sim,
        WizClient(
            load_settings({}).wiz_options(
                api_url=sim.graphql_url,
                token_url=sim.token_url,
                client_id=sim.client_id,
                client_secret="bench-secret-000000",
                max_requests_per_second=args.rate,
            )
        ) as client,
    ):
        sim.set_now(end + timedelta(days=1))
        for name in ("audit_logs", "issues"):
            nodes = pages = nbytes = passes = 0
            began = time.perf_counter()
            at = start if name == "audit_logs" else start - timedelta(days=40)
            while at < end:
                fetch = WindowFetch(
                    client, DATA_TYPES[name], at, min(at + window, end) if name == "audit_logs" else end
                )
                for page in fetch:
                    nodes += len(page)
                pages += fetch.stats.requests.pages
                passes += fetch.stats.passes
                nbytes += fetch.stats.requests.bytes_received
                at = fetch.stats.end
            seconds = time.perf_counter() - began
            print(
                f"{name:<11} {nodes:>7} nodes  {pages:>4} pages ({passes} passes)  {seconds:6.2f} s  "
                f"{nodes / seconds:8.0f} nodes/s  {pages / seconds:6.1f} pages/s  "
                f"{nbytes / seconds / 2**20:6.1f} MiB/s"
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS (simulator + client in one process): {peak:.0f} MiB")


if __name__ == "__main__":
    main()
