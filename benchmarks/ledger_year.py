"""`wiz-pipeline ledger` over a year of one-minute windows (525,600), locally and on S3 (moto's server).

    .venv/bin/python benchmarks/ledger_year.py [--windows 525600] [--s3-windows 10080]
        [--backend sqlite postgres] 2>/dev/null

How the year is built, quickly:

- a real ranged run through Dagster against the simulator writes the first two windows, so that the
  template file, manifest and materialization are the pipeline's own;
- every other window gets a data file (the template's bytes: the ledger lists files, it doesn't read
  them) and a manifest (the template's, with the window's key, times and the file's SHA-256), written
  straight to disk;
- its materializations are stored straight into the event log's index with Dagster's own insert
  statement (``SqlEventLogStorage.prepare_insert_event_batch``, what the PostgreSQL storage's
  ``store_event_batch`` runs) in one transaction per 2,000, then the asset's entry is updated once
  (``store_asset_event``). ``report_runless_asset_event`` / ``store_event_batch`` on SQLite store
  events one at a time, each in its own transaction: hours for a year. The synthetic events carry the
  metadata the ledger and checkpoints read (window times, interval, SHA-256, row count, paths), not
  the column schema.
- three gaps are made: one window never materialized (its files are there), one whose data file is
  deleted, one whose manifest is deleted. The ledger must exit 1 naming exactly those three.

Then ``wiz-pipeline ledger`` runs as its own process (imports and the instance's opening included),
its output to a file: every window as text, ``--gaps-only``, and ``--json``; the time and the peak RSS
of that process (``wait4``) are printed. On S3, the first ``--s3-windows`` windows are uploaded to a
bucket of moto's server (run in its own process on 127.0.0.1) and the ledger lists them (the instance
still holds the whole year); the figure for a year is extrapolated from it, and printed as such.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the PostgreSQL server helper lives with the tests

from wiz_pipeline.core.times import format_time  # noqa: E402
from wiz_pipeline.landing.files import manifest_key, window_key  # noqa: E402
from wiz_pipeline.orchestration.checkpoints import collections_for  # noqa: E402
from wiz_pipeline.orchestration.definitions import build_definitions  # noqa: E402
from wiz_pipeline.orchestration.partitions import KEY_FORMAT  # noqa: E402
from wiz_pipeline.orchestration.resources import WizResource  # noqa: E402
from wiz_pipeline.settings import load_settings  # noqa: E402
from wiz_pipeline.simulator import WizSimulator, generate_tenant  # noqa: E402

INTERVAL = 60
LAG = 300
BATCH = 2000
STEP = timedelta(seconds=INTERVAL)
# What the command imports before it reads anything (run once first, so no run pays for compiling).
IMPORTS = (
    "import wiz_pipeline.cli, wiz_pipeline.readers.ledger, wiz_pipeline.orchestration.checkpoints, dagster"
)


def build_files(root: Path, template_data: bytes, template_manifest: dict, starts: list[datetime]) -> None:
    digest = hashlib.sha256(template_data).hexdigest()
    made: set[Path] = set()
    for start in starts:
        key = window_key("audit_logs", start)
        folder = (root / key).parent
        if folder not in made:
            folder.mkdir(mode=0o750, parents=True, exist_ok=True)
            made.add(folder)
        manifest = {
            **template_manifest,
            "partition_key": start.strftime(KEY_FORMAT),
            "window_start": format_time(start),
            "window_end": format_time(start + STEP),
            "file": str(root / key),
            "sha256": digest,
            "bytes": len(template_data),
        }
        for name, body in (
            (key, template_data),
            (manifest_key(key), json.dumps(manifest, indent=2).encode()),
        ):
            fd = os.open(root / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
            try:
                os.write(fd, body)
            finally:
                os.close(fd)


def record(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, template: dict, starts: list[datetime]
) -> None:
    storage = instance.event_log_storage
    last: EventLogEntry | None = None
    for i in range(0, len(starts), BATCH):
        events = []
        for start in starts[i : i + BATCH]:
            metadata = {
                **template,
                "window_start": format_time(start),
                "window_end": format_time(start + STEP),
            }
            materialization = dg.AssetMaterialization(
                asset_key=asset_key, partition=start.strftime(KEY_FORMAT), metadata=metadata
            )
            events.append(
                EventLogEntry(
                    user_message="",
                    level=logging.INFO,
                    job_name="collect_audit_logs",
                    run_id=template["run_id"],
                    error_info=None,
                    timestamp=time.time(),
                    dagster_event=DagsterEvent(
                        event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
                        job_name="collect_audit_logs",
                        event_specific_data=StepMaterializationData(materialization),
                    ),
                )
            )
        with storage.index_transaction() as conn:
            conn.execute(storage.prepare_insert_event_batch(events))
        last = events[-1]
    if last is not None:
        newest = storage.get_event_records(
            dg.EventRecordsFilter(DagsterEventType.ASSET_MATERIALIZATION, asset_key=asset_key), limit=1
        )[0]
        storage.store_asset_event(last, newest.storage_id)


def measure(label: str, command: list[str], env: dict[str, str], out: Path, expected: int) -> None:
    began = time.perf_counter()
    with out.open("wb") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.PIPE)  # noqa: S603
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - began
    process.returncode = os.waitstatus_to_exitcode(status)
    error = process.stderr.read().decode().strip() if process.stderr else ""
    lines = out.read_bytes().splitlines()
    last = lines[-1].decode()[:200] if lines else ""
    verdict = "as expected" if process.returncode == expected else f"EXPECTED {expected}"
    print(
        f"  {label}: {seconds:.1f} s, peak RSS {usage.ru_maxrss / 1024:.0f} MiB, exit {process.returncode} "
        f"({verdict}), {len(lines):,} lines"
    )
    print(f"      last line: {last}")
    if error and process.returncode not in (0, 1):
        print(f"      stderr: {error[-500:]}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def s3_part(
    args: argparse.Namespace, base_env: dict[str, str], root: Path, starts: list[datetime], work: Path
) -> None:
    import boto3

    port = free_port()
    server = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    try:
        aws = {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench-secret",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(work / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(work / "no-aws-credentials"),
        }
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench-secret",
        )
        for _ in range(100):
            try:
                client.create_bucket(Bucket="ledger-bench")
                break
            except Exception:
                time.sleep(0.1)
        keys = [
            k
            for s in starts[: args.s3_windows]
            for k in (window_key("audit_logs", s),)
            for k in (k, manifest_key(k))
        ]
        began = time.perf_counter()

        def put(key: str) -> None:
            client.put_object(Bucket="ledger-bench", Key=f"wiz/{key}", Body=(root / key).read_bytes())

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(put, keys))
        uploaded = time.perf_counter() - began
        print(
            f"\nS3 (moto's server, its own process): {args.s3_windows:,} windows uploaded in {uploaded:.1f} s"
        )
        env = {**base_env, **aws, "WIZ_OUTPUT_URI": "s3://ledger-bench/wiz"}
        to = format_time(starts[args.s3_windows - 1] + STEP)
        command = [sys.executable, "-m", "wiz_pipeline.cli", "ledger", "--type", "audit_logs", "--to", to]
        gaps = sum(1 for g in args.gap_at if g < args.s3_windows)
        expected = 1 if gaps else 0
        for label, extra in (("every window, text", []), ("--gaps-only", ["--gaps-only"])):
            measure(label, command + extra, env, work / "s3-ledger.out", expected)
        print(
            f"  (a year is {len(starts) / args.s3_windows:.0f}x these windows: extrapolate the output part "
            "linearly; the instance part was already the whole year's)"
        )
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=525_600)
    parser.add_argument("--s3-windows", type=int, default=10_080, help="0: skip S3")
    parser.add_argument("--backend", nargs="+", default=["sqlite"], choices=["sqlite", "postgres"])
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    server = None
    if "postgres" in args.backend:
        from wiz_pipeline_tests.postgres_server import start_server

        server = start_server()
    try:
        for backend in args.backend:
            run(args, backend, server)
    finally:
        if server is not None:
            from wiz_pipeline_tests.postgres_server import stop_server

            stop_server(server)


def run(args: argparse.Namespace, backend: str, server) -> None:
    pg_env = server.env(server.create_database(f"ledger_{os.getpid()}")) if backend == "postgres" else {}
    os.environ.update(pg_env)
    work = Path(tempfile.mkdtemp(prefix="wiz-ledger-"))
    try:
        home, root = work / "home", work / "data"
        home.mkdir(mode=0o750)
        config = "dagster-postgres.yaml" if backend == "postgres" else "dagster.yaml"
        shutil.copy(ROOT / "deploy" / config, home / "dagster.yaml")
        now = datetime.now(UTC)
        closed = now - timedelta(seconds=LAG)
        first = closed.replace(second=0, microsecond=0) - args.windows * STEP
        starts = [first + i * STEP for i in range(args.windows)]
        args.gap_at = sorted({args.windows // 3, args.windows // 2, 2 * args.windows // 3})
        env = {
            "AUDIT_SINCE_TIME": format_time(first),
            "WIZ_COLLECT_ISSUES": "false",
            "WIZ_OUTPUT_URI": str(root),
            "WIZ_POLL_INTERVAL_SECONDS": str(INTERVAL),
            "WIZ_WINDOW_LAG_SECONDS": str(LAG),
        }
        collection = collections_for(load_settings(env))[0]
        tenant = generate_tenant(first, first + 2 * STEP, audit_entries=40, seed=3)
        with WizSimulator(tenant, client_id="bench", client_secret="bench-secret-4d1c") as sim, \
                dg.DagsterInstance.from_config(str(home)) as instance:  # fmt: skip
            sim.set_now(now)
            wiz = WizResource.from_settings(
                load_settings(env),
                api_url=sim.graphql_url,
                client_id="bench",
                client_secret="bench-secret-4d1c",
                token_url=sim.token_url,
                max_requests_per_second=1000,
            )
            job = build_definitions(env, resources={"wiz": wiz}).resolve_job_def("collect_audit_logs")
            keys = [s.strftime(KEY_FORMAT) for s in starts[:2]]
            tags = {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[1]}
            assert job.execute_in_process(instance=instance, tags=tags).success
            sample = root / window_key("audit_logs", starts[1])
            template_data = sample.read_bytes()
            template_manifest = json.loads(
                (root / manifest_key(window_key("audit_logs", starts[1]))).read_text()
            )
            real = instance.fetch_materializations(collection.asset_key, limit=1).records[0]
            template = {
                k: v
                for k, v in real.asset_materialization.metadata.items()
                if k
                in (
                    "dagster/row_count",
                    "dagster/uri",
                    "path",
                    "manifest",
                    "interval_seconds",
                    "sha256",
                    "run_id",
                )
            }
            template["sha256"] = dg.TextMetadataValue(hashlib.sha256(template_data).hexdigest())
            template["run_id"] = real.run_id
            rest = starts[2:]
            began = time.perf_counter()
            build_files(root, template_data, template_manifest, rest)
            files = time.perf_counter() - began
            began = time.perf_counter()
            never = starts[args.gap_at[0]]
            record(instance, collection.asset_key, template, [s for s in rest if s != never])
            recorded = time.perf_counter() - began
            (root / window_key("audit_logs", starts[args.gap_at[1]])).unlink()
            (root / manifest_key(window_key("audit_logs", starts[args.gap_at[2]]))).unlink()
        print(
            f"\n{backend}: {args.windows:,} one-minute windows ({args.windows * INTERVAL / 86400:.0f} days); "
            f"files and manifests written in {files:.1f} s, materializations recorded in {recorded:.1f} s; "
            f"gaps made at {', '.join(starts[i].strftime(KEY_FORMAT) for i in args.gap_at)}"
        )
        base_env = {**os.environ, **env, **pg_env, "DAGSTER_HOME": str(home)}
        to = format_time(starts[-1] + STEP)
        command = [sys.executable, "-m", "wiz_pipeline.cli", "ledger", "--type", "audit_logs", "--to", to]
        out = work / "ledger.out"
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", IMPORTS], env=base_env, check=True)  # noqa: S603
        print(f"local output (the command's imports alone: {time.perf_counter() - began:.1f} s):")
        measure("every window, text", command, base_env, out, 1)
        measure("--gaps-only", [*command, "--gaps-only"], base_env, out, 1)
        measure("every window, --json", [*command, "--json"], base_env, out, 1)
        if args.s3_windows:
            s3_part(args, base_env, root, starts, work)
    finally:
        if args.keep:
            print(f"  kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
