"""A one-year backfill of 30-minute windows (17,520), launched as a user would, against a simulated tenant.

    .venv/bin/python benchmarks/backfill_year.py [--days 365] [--audit-per-day 5000] [--rate none 3]

The tenant is a mid-size one: on average 5,000 audit entries a day (weekday working hours three times
busier than nights, weekends at 0.4, each day 0.6-1.4x the average; about 1.8 M entries a year, up to
about 220 in a busy window). Only audit logs are backfilled (WIZ_COLLECT_ISSUES=false), since a backfill
is per asset. The simulator runs in its own process (entries made on demand, see
``generate_long_tenant``). For each rate (``none``: the client's limit lifted, the simulator unlimited;
a number: the client's WIZ_MAX_REQUESTS_PER_SECOND and the simulator's own limit, with 429s beyond it):

- a fresh DAGSTER_HOME with deploy/dagster.yaml, ``concurrency set wiz_api 1`` as the README says, and
  the catch-up schedule stopped (``dagster schedule stop``) so that only the backfill runs;
- ``dagster-daemon run`` (backfill daemon, queued run coordinator, default run launcher) and
  ``dagster-webserver`` on 127.0.0.1; the backfill is submitted with the UI's own GraphQL mutation
  (``launchPartitionBackfill`` over the range of every window of the year), then the webserver stops;
- the clock runs from the submission until the backfill daemon marks the backfill completed.

It prints the total time, runs, windows, records, GraphQL requests (and 429s), the time spent fetching
pages (the query durations from the windows' manifests: one query's duration counts once, however
many windows it covered; it includes the writing done between pages, and not the pages of a query
that reached the result cap and was split), the ratio total / fetch against the 1.5x target, and
where the rest went: the mean gap between runs (queue polling, launching the run's process, loading
the definitions) and the mean time inside a run outside its queries.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ASSET = ["wiz", "audit_logs"]
TARGET_RATIO = 1.5


# -- the simulator, in its own process -------------------------------------------------------------


def serve(args: argparse.Namespace) -> None:
    """Child process: serve the tenant until stdin closes, then print the simulator's counters."""
    from wiz_pipeline.simulator import WizSimulator, generate_long_tenant

    end = datetime.fromisoformat(args.end)
    tenant = generate_long_tenant(end - timedelta(days=args.days), end, audit_per_day=args.audit_per_day)
    rate = None if args.serve_rate == "none" else float(args.serve_rate)
    with WizSimulator(tenant, rate_limit_per_second=rate) as sim:
        print(
            json.dumps(
                {
                    "graphql_url": sim.graphql_url,
                    "token_url": sim.token_url,
                    "client_id": sim.client_id,
                    "client_secret": sim.client_secret,
                    "entries": len(tenant.audit_times),
                }
            ),
            flush=True,
        )
        sys.stdin.read()
        counters = sim.counters
        print(
            json.dumps(
                {
                    "graphql_requests": counters.graphql_requests,
                    "token_requests": counters.token_requests,
                    "rate_limited": counters.rate_limited,
                }
            ),
            flush=True,
        )


# -- one backfill ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(port: int, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.post(
        f"http://127.0.0.1:{port}/graphql", json={"query": query, "variables": variables}, timeout=120
    )
    answer.raise_for_status()
    return answer.json()


LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on UnauthorizedError { message }
  }
}
"""


def wait_for_webserver(port: int, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit("dagster-webserver exited before it was ready")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    sys.exit("dagster-webserver did not answer in time")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def backfill(
    args: argparse.Namespace, rate: str, end: datetime, work: Path, instance_env: dict[str, str]
) -> dict[str, Any]:
    import dagster as dg
    from dagster._core.execution.backfill import BulkActionStatus

    from wiz_pipeline.orchestration.partitions import KEY_FORMAT

    home, output = work / "home", work / "data"
    home.mkdir(mode=0o750)
    config = "dagster-postgres.yaml" if instance_env else "dagster.yaml"
    shutil.copy(REPO / "deploy" / config, home / "dagster.yaml")
    start = end - timedelta(days=args.days)
    simulator = subprocess.Popen(  # noqa: S603 - this script
        [
            sys.executable,
            __file__,
            "--serve",
            "--end",
            end.isoformat(),
            "--serve-rate",
            rate,
            "--days",
            str(args.days),
            "--audit-per-day",
            str(args.audit_per_day),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    sim = json.loads(simulator.stdout.readline())
    env = {
        **os.environ,
        **instance_env,
        "DAGSTER_HOME": str(home),
        "WIZ_API_URL": sim["graphql_url"],
        "WIZ_TOKEN_URL": sim["token_url"],
        "WIZ_CLIENT_ID": sim["client_id"],
        "WIZ_CLIENT_SECRET": sim["client_secret"],
        "WIZ_OUTPUT_URI": str(output),
        "AUDIT_SINCE_TIME": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "WIZ_COLLECT_ISSUES": "false",
        "WIZ_MAX_REQUESTS_PER_SECOND": "1000" if rate == "none" else rate,
    }
    os.environ.update(instance_env)  # for this process's own look at the instance
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.event_log_storage.set_concurrency_slots("wiz_api", 1)
    subprocess.run(  # noqa: S603
        [BIN / "dagster", "schedule", "stop", "collect_audit_logs_schedule", "-w", "workspace.yaml"],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
    )
    logs = (work / "daemon.log").open("w")
    daemon = subprocess.Popen(  # noqa: S603
        [BIN / "dagster-daemon", "run", "-w", "workspace.yaml"],
        cwd=REPO,
        env=env,
        stdout=logs,
        stderr=subprocess.STDOUT,
    )
    port = free_port()
    webserver = subprocess.Popen(  # noqa: S603
        [BIN / "dagster-webserver", "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_webserver(port, webserver)
        first = start.strftime(KEY_FORMAT)
        last = (end - timedelta(minutes=30)).strftime(KEY_FORMAT)
        params = {
            "partitionsByAssets": [
                {"assetKey": {"path": ASSET}, "partitions": {"range": {"start": first, "end": last}}}
            ]
        }
        began = time.monotonic()
        launched = graphql(port, LAUNCH, {"params": params})["data"]["launchPartitionBackfill"]
        if launched["__typename"] != "LaunchBackfillSuccess":
            sys.exit(f"backfill not launched: {launched}")
        backfill_id = launched["backfillId"]
        stop(webserver)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            while True:
                status = instance.get_backfill(backfill_id).status
                if args.timeout and time.monotonic() - began > args.timeout:
                    status = None  # reported as unfinished, with what was done so far
                    break
                if status not in (BulkActionStatus.REQUESTED, BulkActionStatus.CANCELING):
                    break
                if daemon.poll() is not None:
                    sys.exit(f"dagster-daemon exited; see {work / 'daemon.log'}")
                time.sleep(1)
            total = time.monotonic() - began
            runs = instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
    finally:
        stop(webserver)
        stop(daemon)
        logs.close()
        simulator.stdin.close()
        counters = json.loads(simulator.stdout.readline() or "{}")
        simulator.wait()
    return {
        "status": status.value if status else f"UNFINISHED after --timeout {args.timeout:g} s, so far",
        "total": total,
        "runs": runs,
        "manifests": [json.loads(p.read_text()) for p in output.glob("audit_logs/date=*/_*.json")],
        "counters": counters,
        "entries": sim["entries"],
    }


def report(rate: str, days: float, figures: dict[str, Any]) -> None:
    runs, manifests = figures["runs"], figures["manifests"]
    fetch_by_run: dict[str, float] = defaultdict(float)
    records = pages = 0
    for m in manifests:
        q = m["query"]
        fetch_by_run[m["run_id"]] += q["duration_seconds"] / q["windows"]
        records += m["rows"]
        pages += q["pages"] / q["windows"]
    fetch = sum(fetch_by_run.values())
    total = figures["total"]
    statuses = defaultdict(int)
    for r in runs:
        statuses[r.dagster_run.status.value] += 1
    ordered = sorted((r for r in runs if r.start_time and r.end_time), key=lambda r: r.start_time)
    gaps = [b.start_time - a.end_time for a, b in itertools.pairwise(ordered)]
    inside = [r.end_time - r.start_time - fetch_by_run.get(r.dagster_run.run_id, 0.0) for r in ordered]
    first_start = ordered[0].start_time - ordered[0].create_timestamp.timestamp() if ordered else 0.0
    c = figures["counters"]
    label = "API without a rate limit" if rate == "none" else f"{rate} requests/s (client and simulator)"
    print(f"\n{days:g} days of 30-minute windows, {label}")
    print(f"  backfill {figures['status']} in {total:,.1f} s")
    print(f"  runs {len(runs)} ({', '.join(f'{n} {s}' for s, n in sorted(statuses.items()))})")
    print(f"  windows written {len(manifests)}, records {records:,} (tenant {figures['entries']:,})")
    print(
        f"  GraphQL requests {c.get('graphql_requests')} ({c.get('rate_limited')} answered 429), "
        f"token requests {c.get('token_requests')}; pages in the manifests {pages:,.0f}"
    )
    print(f"  fetching pages (query durations in the manifests) {fetch:,.1f} s")
    ratio = total / fetch if fetch else float("inf")
    verdict = "met" if ratio <= TARGET_RATIO else "missed"
    print(f"  ratio total / fetch {ratio:.2f}x (target <= {TARGET_RATIO}x: {verdict})")
    if ordered:
        print(
            f"  per run: {sum(gaps) / max(1, len(gaps)):.2f} s between runs (dequeue, launch, load), "
            f"{sum(inside) / len(inside):.2f} s inside a run outside its queries; "
            f"{first_start:.1f} s from the first run's creation to its start"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=365)
    parser.add_argument("--audit-per-day", type=int, default=5000)
    parser.add_argument("--rate", nargs="+", default=["none", "3"], help="'none' or requests per second")
    parser.add_argument(
        "--instance",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="sqlite: deploy/dagster.yaml; postgres: deploy/dagster-postgres.yaml against a PostgreSQL "
        "server started on 127.0.0.1 for the run (needs dagster-postgres and initdb/pg_ctl)",
    )
    parser.add_argument("--timeout", type=float, default=0, help="stop waiting after this many seconds")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, instance)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-rate", default="none", help=argparse.SUPPRESS)
    parser.add_argument("--end", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"tenant: {args.audit_per_day:,} audit entries a day on average over {args.days:g} days; "
        f"WIZ_MAX_WINDOWS_PER_RUN={os.environ.get('WIZ_MAX_WINDOWS_PER_RUN', 'default')}, "
        f"WIZ_MAX_WINDOWS_PER_BACKFILL_RUN={os.environ.get('WIZ_MAX_WINDOWS_PER_BACKFILL_RUN', 'default')}"
    )
    # The year ends at the last whole hour at least an hour ago, so that every window has closed.
    end = (datetime.now(UTC) - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    print(f"instance: {args.instance}")
    for n, rate in enumerate(args.rate):
        work = Path(tempfile.mkdtemp(prefix="wiz-backfill-"))
        server = None
        try:
            instance_env: dict[str, str] = {}
            if args.instance == "postgres":
                # The test suite's loopback server (a fresh cluster in a temporary directory).
                sys.path.insert(0, str(REPO))
                from wiz_pipeline_tests.postgres_server import start_server

                server = start_server()
                instance_env = server.env(server.create_database(f"backfill{n}"))
            report(rate, args.days, backfill(args, rate, end, work, instance_env))
        finally:
            if server is not None:
                from wiz_pipeline_tests.postgres_server import stop_server

                stop_server(server)
            if args.keep:
                print(f"  kept {work}")
            else:
                shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
