"""What a build of issues_current costs, by tenant size: wall time and the builder's peak memory.

    .venv/bin/python benchmarks/issues_current.py [--issues 10000 100000] [--page-size 500]

For each size, the simulator serves a generated tenant with that many issues from its own process
(no rate limit, its clock frozen after the last change); a fresh process then builds issues_current
twice into a temporary directory (the second build compares with the first, as every daily build
but the first does) through the same code the asset runs, and reports the second build's figures
and its own peak RSS (VmHWM). Memory should grow by tens of bytes per issue, not by the size of the
nodes (a few KiB each): pages are spooled to disk as they arrive.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

START = datetime(2025, 9, 12, tzinfo=UTC)
CLIENT_ID, CLIENT_SECRET = "bench-client", "bench-secret-0123456789"


def vm_hwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def serve(issues: int) -> None:
    from wiz_pipeline.simulator import WizSimulator, generate_tenant

    tenant = generate_tenant(START, START + timedelta(days=2), audit_entries=0, issues=issues, seed=3)
    sim = WizSimulator(tenant, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    sim.set_now(START + timedelta(days=3))
    with sim:
        print(sim.port, flush=True)
        sys.stdin.read()  # until the parent closes it


def build(port: int, page_size: int) -> None:
    from wiz_pipeline.collect.current import build_current
    from wiz_pipeline.landing.outputs import open_output
    from wiz_pipeline.settings import load_settings
    from wiz_pipeline.wiz import WizClient

    base = f"http://127.0.0.1:{port}"
    options = load_settings({}).wiz_options(
        api_url=f"{base}/graphql",
        token_url=f"{base}/oauth/token",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        max_requests_per_second=10_000,
        page_size=page_size,
    )
    with tempfile.TemporaryDirectory() as root, WizClient(options) as client:
        output = open_output(root)
        output.check()
        build_current(client, output, run_id="first")
        started = time.monotonic()
        built = build_current(client, output, run_id="second")
        wall = time.monotonic() - started
    read = built.manifest["read"]
    print(
        json.dumps(
            {
                "rows": built.rows,
                "pages": read["pages"],
                "wall_s": wall,
                "peak_rss_mib": vm_hwm_mib(),
                "file_mib": built.bytes / 2**20,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--issues", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--build", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        return serve(args.serve)
    if args.build is not None:
        return build(args.build, args.page_size)
    me = [sys.executable, __file__]
    print(f"{'issues':>8} {'pages':>6} {'2nd build s':>11} {'peak RSS MiB':>12} {'file MiB':>9}")
    for issues in args.issues:
        server = subprocess.Popen(  # noqa: S603 - this script
            [*me, "--serve", str(issues)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        try:
            port = int(server.stdout.readline())
            out = subprocess.run(  # noqa: S603
                [*me, "--build", str(port), "--page-size", str(args.page_size)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            figures = json.loads(out.strip().splitlines()[-1])
        finally:
            server.stdin.close()
            server.wait(timeout=60)
        print(
            f"{figures['rows']:>8} {figures['pages']:>6} {figures['wall_s']:>11.2f} "
            f"{figures['peak_rss_mib']:>12.1f} {figures['file_mib']:>9.1f}"
        )


if __name__ == "__main__":
    main()
