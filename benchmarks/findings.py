"""Issue 14's figures: vulnerability_findings_current at a million findings, and each data type's
collection cost per record.

    .venv/bin/python benchmarks/findings.py [--findings 1000000] [--updated 0.02]
                                            [--records 20000] [--windows 48] [--skip-current]

**The current table.** The simulator serves a tenant of ``--findings`` vulnerability findings (first
versions over one day) from its own process, no rate limit, its clock held where the driver says.
Each step then runs alone in a fresh process, so that its wall time, CPU, requests and peak RSS
(VmHWM) are its own, through the code the asset runs (``plan_build`` and ``build_current``):

1. the first build (a full read of the list, since there is no previous build);
2. a day later, ``--updated`` of the findings updated at random times during that day: the day's 48
   windows collected (``collect_windows``, as the window asset does), then a build, which must merge
   those windows and send no request;
3. a forced full read (as ``full_read: true`` in the run's config asks).

**Cost per record.** For each data type, ``--records`` records over ``--windows`` 30-minute windows:
one Dagster run of every window (``execute_in_process`` on a fresh instance, as ``dagster asset
materialize`` runs it), and one run of a single empty window (Dagster's fixed cost). The figure is the
run's CPU (user + system, ``wait4``) less the empty run's, per record.
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

START = datetime(2025, 9, 12, tzinfo=UTC)
DAY = timedelta(days=1)
WINDOW = timedelta(minutes=30)
CLIENT_ID, CLIENT_SECRET = "bench-client", "bench-secret-0123456789"
KIND = "vulnerability_findings"
TYPES = ("audit_logs", "vulnerability_findings", "configuration_findings", "detections")


def vm_hwm_mib() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the simulator's process -----------------------------------------------------------------------


def serve(spec: dict) -> None:
    """Generate the tenant, print where it is served, then obey one command a line on stdin:
    ``now <iso>`` moves its clock, ``update <share> <from> <to>`` updates that share of the findings."""
    from wiz_pipeline.simulator import WizSimulator, generate_tenant

    began = time.perf_counter()
    counts = spec["counts"]
    tenant = generate_tenant(
        START,
        START + timedelta(seconds=spec["seconds"]),
        audit_entries=counts.get("audit_logs", 0),
        issues=0,
        vulnerability_findings=counts.get(KIND, 0),
        configuration_findings=counts.get("configuration_findings", 0),
        detections=counts.get("detections", 0),
        finding_update_share=0.0,
        finding_delete_share=0.0,
        seed=5,
    )
    sim = WizSimulator(tenant, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, audit_result_cap=10**12)
    sim.configuration_result_cap = 10**12  # the figures are per record, not per split
    sim.start()
    sim.set_now(START + timedelta(seconds=spec["seconds"]) + timedelta(hours=1))
    generated = round(time.perf_counter() - began, 1)
    print(json.dumps({"url": sim.base_url, "generated_seconds": generated}), flush=True)
    for line in sys.stdin:
        words = line.split()
        if words[0] == "now":
            sim.set_now(datetime.fromisoformat(words[1]))
        elif words[0] == "update":
            low, high = datetime.fromisoformat(words[2]), datetime.fromisoformat(words[3])
            ids = tenant.update_random_findings(KIND, float(words[1]), low, high, seed=29)
            print(json.dumps({"updated": len(ids)}), flush=True)
            continue
        print(json.dumps({"ok": True, "requests": sim.counters.graphql_requests}), flush=True)
    sim.stop()


# -- steps, each in its own process ------------------------------------------------------------------


def client_options():
    from wiz_pipeline.settings import load_settings

    base = os.environ["BENCH_URL"]
    return load_settings({}).wiz_options(
        api_url=f"{base}/graphql",
        token_url=f"{base}/oauth/token",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        max_requests_per_second=100_000,
    )


def child_build(force: bool) -> dict:
    from wiz_pipeline.collect.current import build_current, plan_build
    from wiz_pipeline.landing.outputs import open_output
    from wiz_pipeline.settings import load_settings
    from wiz_pipeline.wiz import WizClient

    settings = load_settings({"WIZ_COLLECT_VULNERABILITY_FINDINGS": "true"})
    data_type = settings.data_types[KIND]
    output = open_output(os.environ["BENCH_OUTPUT"])
    output.check()
    plan = plan_build(output, data_type, full_read_days=settings.full_read_days[KIND], force=force)
    with WizClient(client_options()) as client:
        built = build_current(client, output, run_id="bench", data_type=data_type, plan=plan)
    read = built.manifest.get("read", {})
    return {
        "rows": built.rows,
        "full_read": plan.full_read,
        "requests": read.get("requests", 0),
        "windows_merged": built.manifest.get("windows_merged", len(built.manifest.get("windows", []))),
        "changes": built.changes.as_dict(),
        "file_mib": built.bytes / 2**20,
        "vm_hwm_mib": vm_hwm_mib(),
    }


def child_windows(start: str, count: int) -> dict:
    from wiz_pipeline.collect.windows import collect_windows
    from wiz_pipeline.core.windows import KEY_FORMAT, Window
    from wiz_pipeline.settings import load_settings
    from wiz_pipeline.wiz import WizClient

    data_type = load_settings({}).data_types[KIND]
    first = datetime.fromisoformat(start)
    starts = [first + i * WINDOW for i in range(count)]
    windows = [Window(s.strftime(KEY_FORMAT), s, s + WINDOW, s) for s in starts]
    rows = 0
    with WizClient(client_options()) as client:
        for result in collect_windows(client, data_type, windows, os.environ["BENCH_OUTPUT"], run_id="bench"):
            rows += result.file.rows
    return {"rows": rows, "vm_hwm_mib": vm_hwm_mib()}


def child_run(kind: str, windows: int, empty: bool) -> dict:
    import dagster as dg
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from wiz_pipeline.orchestration.definitions import build_definitions

    defs = build_definitions()
    job = defs.resolve_job_def(f"collect_{kind}")
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


# -- the driver ----------------------------------------------------------------------------------------


def measure(command: list[str], env: dict[str, str], log: Path) -> dict:
    """Run one step in a fresh process; its last stdout line is its JSON figures."""
    with open(log, "w") as stderr:
        began = time.perf_counter()
        child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)  # noqa: S603
        out = child.stdout.read() if child.stdout else ""
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - began
    if os.waitstatus_to_exitcode(status):
        sys.exit(f"{command[2:]} failed; see {log}:\n{log.read_text()[-3000:]}")
    figures = json.loads(out.strip().splitlines()[-1])
    figures["wall"] = wall
    figures["cpu"] = usage.ru_utime + usage.ru_stime
    return figures


class Simulator:
    def __init__(self, spec: dict) -> None:
        self.process = subprocess.Popen(  # noqa: S603
            [sys.executable, __file__, "--serve", json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.info = json.loads(self.ask(None))

    def ask(self, command: str | None) -> str:
        if command is not None:
            self.process.stdin.write(command + "\n")
            self.process.stdin.flush()
        return self.process.stdout.readline()

    def requests(self) -> int:
        return json.loads(self.ask(f"now {iso(self.now)}"))["requests"]

    def set_now(self, when: datetime) -> None:
        self.now = when
        self.ask(f"now {iso(when)}")

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=120)


def current_figures(args: argparse.Namespace, work: Path) -> None:
    sim = Simulator({"counts": {KIND: args.findings}, "seconds": DAY.total_seconds()})
    output = work / "current"
    output.mkdir(mode=0o750)
    env = {**os.environ, "BENCH_URL": sim.info["url"], "BENCH_OUTPUT": str(output)}
    me = [sys.executable, __file__, "--child"]
    print(
        f"\n{args.findings:,} vulnerability findings (tenant generated in {sim.info['generated_seconds']} s)"
    )
    print(f"{'build':<44} {'wall s':>8} {'CPU s':>7} {'requests':>9} {'rows':>10} {'peak RSS MiB':>12}")

    def line(name: str, f: dict, requests: int) -> None:
        print(
            f"{name:<44} {f['wall']:>8.1f} {f['cpu']:>7.1f} {requests:>9} {f['rows']:>10,} "
            f"{f['vm_hwm_mib']:>12.0f}",
            flush=True,
        )

    try:
        sim.set_now(START + DAY + timedelta(minutes=10))
        before = sim.requests()
        first = measure([*me, "build"], env, work / "first.log")
        line("first build (full read)", first, sim.requests() - before)
        updated = json.loads(sim.ask(f"update {args.updated} {iso(START + DAY)} {iso(START + 2 * DAY)}"))
        sim.set_now(START + 2 * DAY + timedelta(minutes=10))
        before = sim.requests()
        windows = measure([*me, "windows", iso(START + DAY), "48"], env, work / "windows.log")
        line(f"the day's 48 windows ({updated['updated']:,} updated)", windows, sim.requests() - before)
        before = sim.requests()
        after = measure([*me, "build"], env, work / "after.log")
        line(
            f"build after the day ({after['windows_merged']} windows merged)", after, sim.requests() - before
        )
        assert not after["full_read"] and sim.requests() == before, "the build after the day read the API"
        before = sim.requests()
        forced = measure([*me, "build", "--force"], env, work / "forced.log")
        line("forced full read", forced, sim.requests() - before)
        assert forced["rows"] == after["rows"], (forced["rows"], after["rows"])
        print(f"changes seen by the build after the day: {after['changes']}")
        print(f"file: {after['file_mib']:.1f} MiB")
    finally:
        sim.close()


def cost_figures(args: argparse.Namespace, work: Path) -> None:
    seconds = args.windows * WINDOW.total_seconds()
    print(f"\n{args.records:,} records of each type over {args.windows} windows, one Dagster run each")
    print(f"{'data type':<24} {'run CPU s':>9} {'empty run CPU s':>15} {'net us/record':>13} {'wall s':>7}")
    for kind in TYPES:
        sim = Simulator({"counts": {kind: args.records}, "seconds": seconds})
        try:
            figures = {}
            for mode in ("run", "empty"):
                home = work / f"{kind}-{mode}"
                (home / "dagster_home").mkdir(parents=True, mode=0o750)
                env = {
                    **os.environ,
                    "WIZ_API_URL": f"{sim.info['url']}/graphql",
                    "WIZ_TOKEN_URL": f"{sim.info['url']}/oauth/token",
                    "WIZ_CLIENT_ID": CLIENT_ID,
                    "WIZ_CLIENT_SECRET": CLIENT_SECRET,
                    "WIZ_MAX_REQUESTS_PER_SECOND": "100000",
                    "WIZ_OUTPUT_URI": str(home / "data"),
                    "DAGSTER_HOME": str(home / "dagster_home"),
                    "WIZ_COLLECT_ISSUES": "false",
                    "WIZ_CONFIGURATION_FINDING_RESULTS": "PASS,FAIL,ERROR,NOT_ASSESSED",
                    **{f"WIZ_COLLECT_{t.upper()}": "true" for t in TYPES[1:]},
                    **{v: iso(START) for v in since_variables()},
                }
                command = [sys.executable, __file__, "--child", "run", kind, str(args.windows)]
                figures[mode] = measure(
                    [*command, *(["--empty"] if mode == "empty" else [])], env, home / "log"
                )
            run, empty = figures["run"], figures["empty"]
            net = (run["cpu"] - empty["cpu"]) / max(1, run["rows"]) * 1e6
            print(
                f"{kind:<24} {run['cpu']:>9.2f} {empty['cpu']:>15.2f} {net:>13.1f} {run['wall']:>7.1f}"
                f"   ({run['rows']:,} rows)",
                flush=True,
            )
        finally:
            sim.close()


def since_variables() -> list[str]:
    from wiz_pipeline.data_types import DATA_TYPES

    return [dt.checkpoint_variable for dt in DATA_TYPES.values()]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, load {load:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--findings", type=int, default=1_000_000)
    parser.add_argument("--updated", type=float, default=0.02, help="share of findings updated in the day")
    parser.add_argument("--records", type=int, default=20_000, help="records of each type for the cost")
    parser.add_argument("--windows", type=int, default=48)
    parser.add_argument("--skip-current", action="store_true")
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--force", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--empty", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(json.loads(args.serve))
    if args.child:
        step, *rest = args.child
        if step == "build":
            figures = child_build(args.force)
        elif step == "windows":
            figures = child_windows(rest[0], int(rest[1]))
        else:
            figures = child_run(rest[0], int(rest[1]), args.empty)
        print(json.dumps(figures))
        return None
    print(machine())
    with tempfile.TemporaryDirectory() as work:
        if not args.skip_current:
            current_figures(args, Path(work))
        if not args.skip_cost:
            cost_figures(args, Path(work))
    return None


if __name__ == "__main__":
    main()
