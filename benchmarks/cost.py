"""The collector's own cost per record, side by side with a bare HTTP loop (the floor) and dlt.

    .venv/bin/python benchmarks/cost.py [--records 200000 2000000] [--windows 48] [--repeat 1] [--no-dlt]

For each size, a simulated tenant with that many audit entries spread over --windows 30-minute
windows is served by the simulator in its own process (no rate limit; nodes pre-encoded so that
serving a page costs little). The API's 10,000-node result cap is lifted on both sides: 2M records
in 48 windows is 41,667 per window, which the real API could not return in one query at all. Each
contender then runs alone in a fresh process, one after another:

- floor: a bare httpx loop POSTing the same query for the same pages, reading only the cursor;
- wiz-pipeline: one ranged run of all the windows through Dagster (``execute_in_process`` on a
  fresh DAGSTER_HOME instance, as ``dagster asset materialize`` would run it);
- empty run: the same job over one window without records: Dagster's fixed cost;
- dlt 1.31: its RESTClient paginating the same GraphQL query by cursor into its filesystem
  destination as Parquet, in its own virtualenv (made with pip on first use, --dlt-venv).

Wall time is measured here around each child (interpreter start included); CPU is the child's
user + system time (``wait4``, threads included); peak RSS is the child's own high-water mark
(VmHWM; ``ru_maxrss`` would include the pages a fork shares with this process). The ratios are
printed against the targets of issue 7. The machine's other load shows in the figures: run it on a
quiet machine, and use --repeat to keep the best of several runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec

HERE = Path(__file__).resolve().parent
START = datetime(2025, 9, 12, tzinfo=UTC)
WINDOW = timedelta(minutes=30)
CLIENT_ID, CLIENT_SECRET = "bench-client", "bench-secret-0123456789"
DLT_VERSION = "1.31"
CHUNK = 250_000  # audit entries generated at a time, so that the simulator never holds them as dicts


def vm_hwm_mib() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


# -- the simulator's process ---------------------------------------------------------------------


def serve(records: int, windows: int) -> None:
    """Generate the tenant, serve it, print where, and run until stdin closes."""
    from wiz_pipeline.simulator import Tenant, WizSimulator, generate_tenant

    began = time.perf_counter()
    end = START + windows * WINDOW
    tenant = Tenant()
    chunks = max(1, -(-records // CHUNK))
    for k in range(chunks):
        # Chunks cover equal stretches of time cut at window boundaries (boundary cases included).
        lo = START + (end - START) * k // chunks
        hi = START + (end - START) * (k + 1) // chunks
        part = generate_tenant(lo, hi, audit_entries=records // chunks, issues=0, seed=11 + k)
        part.encode_audit_nodes()
        tenant.audit_times += part.audit_times
        tenant.audit_nodes += part.audit_nodes
    sim = WizSimulator(
        tenant,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        audit_result_cap=10**12,
    ).start()
    sim.set_now(end + timedelta(days=1))
    print(
        json.dumps(
            {
                "graphql_url": sim.graphql_url,
                "token_url": sim.token_url,
                "records": len(tenant.audit_nodes),
                "generated_seconds": round(time.perf_counter() - began, 1),
            }
        ),
        flush=True,
    )
    sys.stdin.read()
    sim.stop()


# -- contenders, each in its own process ------------------------------------------------------------


class PageInfo(msgspec.Struct):
    hasNextPage: bool
    endCursor: str | None


class Connection(msgspec.Struct):
    pageInfo: PageInfo
    nodes: list[msgspec.Raw]  # counted, not decoded


class Data(msgspec.Struct):
    auditLogEntries: Connection


class Answer(msgspec.Struct):
    data: Data


def child_floor() -> dict:
    """The least a client can do: POST, read the whole answer, find the cursor."""
    import httpx

    decoder = msgspec.json.Decoder(Answer)
    env = os.environ
    with httpx.Client(timeout=60) as http:
        token = http.post(
            env["WIZ_TOKEN_URL"],
            data={
                "grant_type": "client_credentials",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "audience": "wiz-api",
            },
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        variables = json.loads(env["BENCH_VARIABLES"])
        after, nodes, pages = None, 0, 0
        while True:
            response = http.post(
                env["WIZ_API_URL"],
                json={"query": env["BENCH_QUERY"], "variables": {**variables, "first": 500, "after": after}},
                headers=headers,
            )
            response.raise_for_status()
            connection = decoder.decode(response.content).data.auditLogEntries
            nodes += len(connection.nodes)
            pages += 1
            if not connection.pageInfo.hasNextPage:
                break
            after = connection.pageInfo.endCursor
    return {"rows": nodes, "pages": pages, "vm_hwm_mib": vm_hwm_mib()}


def child_pipeline(windows: int, empty: bool) -> dict:
    import dagster as dg
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from wiz_pipeline.data_types.audit_logs import AUDIT_LOGS
    from wiz_pipeline.orchestration.definitions import build_definitions

    # The tenant is denser than the real API's cap allows in one query per window (see the top).
    object.__setattr__(AUDIT_LOGS, "result_cap", None)
    defs = build_definitions()
    job = defs.resolve_job_def("collect_audit_logs")
    keys = job.partitions_def.get_partition_keys()
    quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
    with dg.DagsterInstance.get() as instance:
        if empty:  # a closed window after the tenant's records
            result = job.execute_in_process(
                instance=instance, partition_key=keys[windows + 2], run_config=quiet
            )
        else:
            tags = {
                ASSET_PARTITION_RANGE_START_TAG: keys[0],
                ASSET_PARTITION_RANGE_END_TAG: keys[windows - 1],
            }
            result = job.execute_in_process(instance=instance, tags=tags, run_config=quiet)
        events = result.get_asset_materialization_events()
        rows = sum(e.materialization.metadata["dagster/row_count"].value for e in events)
    return {"rows": rows, "windows": len(events), "vm_hwm_mib": vm_hwm_mib()}


# -- the driver ---------------------------------------------------------------------------------------


def dlt_python(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv} with dlt {DLT_VERSION} (once)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)  # noqa: S603
        subprocess.run(  # noqa: S603
            [str(python), "-m", "pip", "install", "-q", f"dlt[parquet]=={DLT_VERSION}.*"], check=True
        )
    return python


def measure(command: list[str], env: dict[str, str], log: Path) -> dict:
    """Run one contender; its last stdout line is its JSON figures."""
    with open(log, "w") as stderr:
        began = time.perf_counter()
        child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)  # noqa: S603
        out = child.stdout.read() if child.stdout else ""
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - began
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        sys.exit(f"{command[-1]} failed ({child.returncode}); see {log}:\n{log.read_text()[-3000:]}")
    figures = json.loads(out.strip().splitlines()[-1])
    figures["wall"] = wall
    figures["cpu"] = usage.ru_utime + usage.ru_stime
    figures["rss"] = figures.get("vm_hwm_mib") or usage.ru_maxrss / 1024
    return figures


def best(runs: list[dict]) -> dict:
    """The run with the median wall time, so that one disturbed run doesn't decide."""
    return sorted(runs, key=lambda f: f["wall"])[(len(runs) - 1) // 2] if runs else {}


def one_size(records: int, args: argparse.Namespace, work: Path) -> None:
    from wiz_pipeline.data_types.audit_logs import AUDIT_LOGS

    end = START + args.windows * WINDOW
    server = subprocess.Popen(  # noqa: S603
        [sys.executable, __file__, "--serve", str(records), "--windows", str(args.windows)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        sim = json.loads(server.stdout.readline())
        print(
            f"\n{sim['records']:,} audit records in {args.windows} windows of 30 minutes "
            f"(tenant generated in {sim['generated_seconds']} s)",
            flush=True,
        )
        env = {
            **os.environ,
            "WIZ_API_URL": sim["graphql_url"],
            "WIZ_TOKEN_URL": sim["token_url"],
            "WIZ_CLIENT_ID": CLIENT_ID,
            "WIZ_CLIENT_SECRET": CLIENT_SECRET,
            "WIZ_MAX_REQUESTS_PER_SECOND": "100000",
            "WIZ_POLL_INTERVAL_SECONDS": "1800",
            "AUDIT_SINCE_TIME": START.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ISSUES_SINCE_TIME": START.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "BENCH_QUERY": AUDIT_LOGS.query,
            "BENCH_VARIABLES": json.dumps(AUDIT_LOGS.variables(START, end)),
            "RUNTIME__DLTHUB_TELEMETRY": "false",  # no network but loopback
        }
        contenders: dict[str, list[str]] = {
            "floor": [sys.executable, __file__, "--child", "floor"],
            "wiz-pipeline": [sys.executable, __file__, "--child", "pipeline", "--windows", str(args.windows)],
            "empty run": [sys.executable, __file__, "--child", "empty", "--windows", str(args.windows)],
        }
        if not args.no_dlt:
            contenders[f"dlt {DLT_VERSION}"] = [str(dlt_python(args.dlt_venv)), str(HERE / "cost_dlt.py")]
        results: dict[str, list[dict]] = {name: [] for name in contenders}
        for attempt in range(args.repeat):
            for name, command in contenders.items():
                run_dir = work / f"{records}-{attempt}-{name.split()[0]}"
                run_dir.mkdir(mode=0o750)
                (run_dir / "dagster_home").mkdir(mode=0o750)
                child_env = {
                    **env,
                    "WIZ_OUTPUT_URI": str(run_dir / "data"),
                    "DAGSTER_HOME": str(run_dir / "dagster_home"),
                    "BENCH_OUTPUT": str(run_dir / "data"),
                }
                results[name].append(measure(command, child_env, run_dir / "stderr.log"))
    finally:
        if server.stdin:
            server.stdin.close()
        server.wait()
    report(records, {name: best(runs) for name, runs in results.items()})


def report(records: int, r: dict[str, dict]) -> None:
    print("| contender | rows | wall | CPU | peak RSS |")
    print("|---|---:|---:|---:|---:|")
    for name, f in r.items():
        print(f"| {name} | {f['rows']:,} | {f['wall']:.2f} s | {f['cpu']:.2f} s | {f['rss']:.0f} MB |")
    floor, ours, empty = r["floor"], r["wiz-pipeline"], r["empty run"]
    net_wall = ours["wall"] - empty["wall"]
    net_cpu = ours["cpu"] - empty["cpu"]
    print(
        f"wall net of the empty run: {net_wall:.2f} s = {net_wall / floor['wall']:.2f}x the floor "
        f"(target <= 1.25x)"
    )
    print(f"CPU net of the empty run: {net_cpu / records * 1e6:.1f} us per record (target <= 10)")
    print(f"peak RSS over the empty run's: {ours['rss'] - empty['rss']:+.0f} MB (target at 2M: <= +100 MB)")
    dlt = next((f for name, f in r.items() if name.startswith("dlt")), None)
    if dlt:
        print(
            f"dlt / wiz-pipeline: wall {dlt['wall'] / ours['wall']:.1f}x, "
            f"CPU {dlt['cpu'] / ours['cpu']:.1f}x (target >= 3x)"
        )
    if ours["rows"] != records or floor["rows"] != records:
        print(f"WARNING: expected {records:,} rows everywhere")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs="+", default=[200_000, 2_000_000])
    parser.add_argument("--windows", type=int, default=48)
    parser.add_argument("--repeat", type=int, default=1, help="runs per contender; the median is shown")
    parser.add_argument("--no-dlt", action="store_true", help="leave dlt out")
    parser.add_argument(
        "--dlt-venv",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        / "wiz-pipeline-benchmarks"
        / f"dlt-{DLT_VERSION}",
    )
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=["floor", "pipeline", "empty"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.windows)
        return
    if args.child:
        if args.child == "floor":
            figures = child_floor()
        else:
            figures = child_pipeline(args.windows, empty=args.child == "empty")
        print(json.dumps(figures))
        return
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory(prefix="wiz-cost-") as tmp:
        for records in args.records:
            one_size(records, args, Path(tmp))


if __name__ == "__main__":
    main()
