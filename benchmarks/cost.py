"""The collector's own cost per record, side by side with a bare HTTP loop (the floor) and dlt.

    .venv/bin/python benchmarks/cost.py [--sizes 200000:48 2000000:480] [--repeat 1] [--no-dlt]
                                        [--dagster-windows]

Each size is a number of audit entries spread over a number of 30-minute windows (by default
200,000 in 48 and 2,000,000 in 480: about 4,200 a window). Its tenant is served by the simulator in
its own process (no rate limit; nodes pre-encoded so that serving a page costs little). Entries are
the simulator's, made heavier as busy tenants' are: one in nine has a 2 KB user agent, and every
`actionParameters` is nested three levels deep, about 780 bytes a node. The API's 10,000-node result
cap is lifted on both sides: 2M records in one query is far more than the real API returns. Each
contender then runs alone in a fresh process, one after another:

- floor: a bare httpx loop POSTing the same query for the same pages, reading only the cursor;
- wiz-pipeline: one ranged run of all the windows through Dagster (``execute_in_process`` on a
  fresh DAGSTER_HOME instance, as ``dagster asset materialize`` would run it);
- empty run: the same job over one window without records: Dagster's fixed cost;
- empty windows (with --dagster-windows): the job over as many windows as the size, all without
  records: Dagster's own cost per window (the events it stores for each), which the net figures
  below include;
- dlt 1.31: its RESTClient paginating the same GraphQL query by cursor into its filesystem
  destination as Parquet, in its own virtualenv (made with pip on first use, --dlt-venv).

Wall time is measured here around each child (interpreter start included); CPU is the child's
user + system time (``wait4``, threads included); peak RSS is the child's own high-water mark
(VmHWM; ``ru_maxrss`` would include the pages a fork shares with this process). One table at the end
has a row per size, then each target of issue 13 and whether it is met: at most 10 us of CPU per
record net of the empty run, wall time net of the empty run at most 1.5x the floor's, at least 3x
faster than dlt, and at 2M records a peak RSS at most 100 MB over the empty run's. The machine's
other load shows in the figures (the load average is printed with them): run it on a quiet machine,
and use --repeat to keep the median of several runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
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
LONG_AGENT = 2048
DEFAULT_SIZES = ["200000:48", "2000000:480"]
# Issue 13's targets.
MAX_NET_CPU_US = 10.0  # per record, net of the empty run
MAX_NET_WALL_OVER_FLOOR = 1.5
MIN_TIMES_FASTER_THAN_DLT = 3.0
MAX_RSS_OVER_EMPTY_MB = 100.0  # at 2M records
RSS_TARGET_RECORDS = 2_000_000


def vm_hwm_mib() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


# -- the simulator's process ---------------------------------------------------------------------


def heavier(node: dict, rng: random.Random) -> dict:
    """One in nine entries gets a 2 KB user agent (browser extensions, SDK chains), and the action
    parameters are wrapped as the request that carried them: three levels of nesting."""
    if rng.random() < 0.11:
        agent = node["userAgent"] or "Mozilla/5.0 (X11; Linux x86_64)"
        while len(agent) < LONG_AGENT:
            agent += f" Ext{rng.randrange(1000)}/{rng.randrange(100)}.{rng.randrange(10)}"
        node["userAgent"] = agent[:LONG_AGENT]
    if node["actionParameters"] is not None:
        session = {"mfa": rng.random() < 0.5, "ageSeconds": rng.randrange(86400)}
        node["actionParameters"] = {
            "request": {
                "operation": node["action"].strip(),
                "input": node["actionParameters"],
                "context": {"ip": node["sourceIP"], "session": session},
            }
        }
    return node


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
        rng = random.Random(k)
        part.audit_nodes = [heavier(node, rng) for node in part.audit_nodes]
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
                "bytes_per_node": sum(map(len, tenant.audit_nodes)) / max(1, len(tenant.audit_nodes)),
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


def child_pipeline(windows: int, mode: str) -> dict:
    """``mode``: "pipeline" (the size's windows), "empty" (one window after the tenant's records),
    "empty-windows" (as many windows as the size, all after the tenant's records)."""
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
        if mode == "empty":  # a closed window after the tenant's records
            result = job.execute_in_process(
                instance=instance, partition_key=keys[windows + 2], run_config=quiet
            )
        else:
            first = 0 if mode == "pipeline" else windows + 2
            tags = {
                ASSET_PARTITION_RANGE_START_TAG: keys[first],
                ASSET_PARTITION_RANGE_END_TAG: keys[first + windows - 1],
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


def one_size(records: int, windows: int, args: argparse.Namespace, work: Path) -> dict[str, dict]:
    from wiz_pipeline.data_types.audit_logs import AUDIT_LOGS

    end = START + windows * WINDOW
    server = subprocess.Popen(  # noqa: S603
        [sys.executable, __file__, "--serve", str(records), "--windows", str(windows)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        sim = json.loads(server.stdout.readline())
        print(
            f"\n{sim['records']:,} audit records in {windows} windows of 30 minutes, "
            f"{sim['bytes_per_node']:.0f} bytes a node (tenant generated in {sim['generated_seconds']} s)",
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
        me = [sys.executable, __file__, "--child"]
        contenders: dict[str, list[str]] = {
            "floor": [*me, "floor"],
            "wiz-pipeline": [*me, "pipeline", "--windows", str(windows)],
            "empty run": [*me, "empty", "--windows", str(windows)],
        }
        if args.dagster_windows:
            contenders["empty windows"] = [*me, "empty-windows", "--windows", str(windows)]
        if not args.no_dlt:
            contenders[f"dlt {DLT_VERSION}"] = [str(dlt_python(args.dlt_venv)), str(HERE / "cost_dlt.py")]
        results: dict[str, list[dict]] = {name: [] for name in contenders}
        for attempt in range(args.repeat):
            for name, command in contenders.items():
                run_dir = work / f"{records}-{windows}-{attempt}-{name.replace(' ', '-')}"
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
    chosen = {name: best(runs) for name, runs in results.items()}
    report(records, windows, chosen)
    return chosen


def report(records: int, windows: int, r: dict[str, dict]) -> None:
    print("| contender | rows | wall | CPU | peak RSS |")
    print("|---|---:|---:|---:|---:|")
    for name, f in r.items():
        print(f"| {name} | {f['rows']:,} | {f['wall']:.2f} s | {f['cpu']:.2f} s | {f['rss']:.0f} MB |")
    if "empty windows" in r:
        per_window = (r["empty windows"]["cpu"] - r["empty run"]["cpu"]) / max(windows - 1, 1)
        print(
            f"Dagster's own CPU per window (empty windows less the empty run): {per_window * 1000:.0f} ms, "
            f"{per_window * windows / records * 1e6:.1f} us per record at this size"
        )
    if r["wiz-pipeline"]["rows"] != records or r["floor"]["rows"] != records:
        print(f"WARNING: expected {records:,} rows everywhere")


def summary(sizes: list[tuple[int, int]], results: list[dict[str, dict]]) -> None:
    """One row per size with the issue's columns, then each target and whether it is met."""
    print(
        "\n| records, windows | floor wall | wiz-pipeline wall / CPU | net CPU per record "
        "| peak RSS over the empty run | dlt wall |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    checks: list[tuple[str, float, bool]] = []  # (target, measured, met)
    for (records, windows), r in zip(sizes, results, strict=True):
        floor, ours, empty = r["floor"], r["wiz-pipeline"], r["empty run"]
        dlt = next((f for name, f in r.items() if name.startswith("dlt")), None)
        net_cpu = (ours["cpu"] - empty["cpu"]) / records * 1e6
        net_wall = ours["wall"] - empty["wall"]
        rss = ours["rss"] - empty["rss"]
        dlt_wall = f"{dlt['wall']:.1f} s" if dlt else "-"
        print(
            f"| {records:,} in {windows} | {floor['wall']:.1f} s "
            f"| {ours['wall']:.1f} s / {ours['cpu']:.1f} s | {net_cpu:.1f} us | {rss:+.0f} MB | {dlt_wall} |"
        )
        at = f"{records:,}"
        checks.append(
            (f"{at}: net CPU per record <= {MAX_NET_CPU_US:g} us", net_cpu, net_cpu <= MAX_NET_CPU_US)
        )
        ratio = net_wall / floor["wall"]
        limit = MAX_NET_WALL_OVER_FLOOR
        checks.append((f"{at}: wall net of the empty run <= {limit:g}x the floor", ratio, ratio <= limit))
        if dlt:
            faster = dlt["wall"] / ours["wall"]
            limit = MIN_TIMES_FASTER_THAN_DLT
            checks.append((f"{at}: dlt's wall / wiz-pipeline's >= {limit:g}x", faster, faster >= limit))
        if records >= RSS_TARGET_RECORDS:
            limit = MAX_RSS_OVER_EMPTY_MB
            checks.append((f"{at}: peak RSS over the empty run's <= {limit:g} MB", rss, rss <= limit))
    print("\n| target | measured | met |")
    print("|---|---:|---|")
    for what, measured, met in checks:
        print(f"| {what} | {measured:.2f} | {'yes' if met else 'NO'} |")


def machine() -> str:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"machine: {model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}"


def parse_size(text: str) -> tuple[int, int]:
    records, _, windows = text.partition(":")
    if not records.isdigit() or not windows.isdigit() or int(windows) < 1:
        raise argparse.ArgumentTypeError(f"expected RECORDS:WINDOWS, got {text!r}")
    return int(records), int(windows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=parse_size,
        nargs="+",
        default=[parse_size(s) for s in DEFAULT_SIZES],
        metavar="RECORDS:WINDOWS",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per contender; the median is shown")
    parser.add_argument("--no-dlt", action="store_true", help="leave dlt out")
    parser.add_argument(
        "--dagster-windows", action="store_true", help="also run the size's windows without records"
    )
    parser.add_argument(
        "--dlt-venv",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        / "wiz-pipeline-benchmarks"
        / f"dlt-{DLT_VERSION}",
    )
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--windows", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--child", choices=["floor", "pipeline", "empty", "empty-windows"], help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.windows)
        return
    if args.child:
        figures = child_floor() if args.child == "floor" else child_pipeline(args.windows, args.child)
        print(json.dumps(figures))
        return
    print(machine())
    print(f"at the start: {load()}", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="wiz-cost-") as tmp:
        for records, windows in args.sizes:
            results.append(one_size(records, windows, args, Path(tmp)))
    print(f"\n{machine()}; at the end: {load()}")
    summary(args.sizes, results)


if __name__ == "__main__":
    main()
