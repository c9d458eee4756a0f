"""A window past the result cap: queries, requests and seconds to collect a burst inside one window.

    .venv/bin/python benchmarks/split.py [--entries 60000] [--minutes 5] [--rate 1000]

A 30-minute window holds --entries audit entries within --minutes of it (and ~50 others). It is
collected twice into a temporary directory, as the pipeline would: first knowing nothing (one query
over the window reaches the 10,000 cap, then sub-queries sized from it), then as a run whose recent
neighbours held as many rows (split up front).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from wiz_pipeline.collect.windows import collect_windows
from wiz_pipeline.data_types.audit_logs import AUDIT_LOGS
from wiz_pipeline.orchestration.partitions import Window
from wiz_pipeline.settings import load_settings
from wiz_pipeline.simulator import WizSimulator, generate_tenant
from wiz_pipeline.wiz import WizClient

START = datetime(2025, 9, 12, 22, tzinfo=UTC)
SECRET = "bench-secret-000000"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=60_000)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=1000.0, help="client requests/second (default 1000)")
    args = parser.parse_args()

    tenant = generate_tenant(START - timedelta(hours=1), START + timedelta(hours=2), audit_entries=300)
    burst = START + timedelta(minutes=max(0.0, min(10.0, 30 - args.minutes)))
    tenant.add_audit_burst(burst, burst + timedelta(minutes=args.minutes), args.entries)
    tenant.encode_audit_nodes()
    window = Window(
        key=f"{START:%Y-%m-%d-%H:%M}", start=START, end=START + timedelta(minutes=30), boundary=START
    )
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"window {window.key}: {args.entries} entries within {args.minutes:g} minutes of it, cap 10,000")
    with (
        WizSimulator(tenant, client_secret=SECRET) as sim,
        WizClient(
            load_settings({}).wiz_options(
                api_url=sim.graphql_url,
                token_url=sim.token_url,
                client_id=sim.client_id,
                client_secret=SECRET,
                max_requests_per_second=args.rate,
            )
        ) as client,
        tempfile.TemporaryDirectory() as root,
    ):
        sim.set_now(START + timedelta(days=1))
        hint = 0
        for label in ("knowing nothing", "from neighbours"):
            before = len(sim.graphql_records())
            began = time.perf_counter()
            [result] = collect_windows(
                client, AUDIT_LOGS, [window], Path(root), run_id="bench", rows_per_window=hint
            )
            seconds = time.perf_counter() - began
            manifest = json.loads(Path(result.file.manifest).read_text())
            print(
                f"{label:<16} {manifest['rows']:>7} rows  {manifest['queries']:>3} queries  "
                f"{manifest['capped_queries']} capped  {len(sim.graphql_records()) - before:>4} requests  "
                f"{seconds:6.2f} s  {manifest['rows'] / seconds:8.0f} rows/s"
            )
            hint = manifest["rows"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS (simulator, its tenant and the collector in one process): {peak:.0f} MiB")


if __name__ == "__main__":
    main()
