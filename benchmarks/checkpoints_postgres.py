"""Checkpoint derivation with a year of 30-minute windows materialized, on PostgreSQL and on SQLite.

    .venv/bin/python benchmarks/checkpoints_postgres.py [--windows N] [--backend postgres sqlite] 2>/dev/null

(The figures go to stdout; Dagster's run logs, the deliberate failure's traceback among them, to stderr.)

For each backend, a Dagster instance is built from the shipped file (deploy/dagster-postgres.yaml
against a throwaway PostgreSQL server on 127.0.0.1, or deploy/dagster.yaml), with the audit seed a
year back. A first real ranged run against the simulator writes the first windows; the rest of the
year (--windows in all) is recorded with the same metadata as those (the per-window figures, the
checkpoint, `window_start`, `interval_seconds`, `partial_windows`, the column schema), in batches
through the event log storage, as a year of runs would have left them; then a real run fails on the
next windows (so a tick also has failed windows to work out), two ticks are evaluated through Dagster's
own schedule API, and `wiz-pipeline checkpoints` is run as its own process before the ticks and after
(beside the time its imports alone take, and the time of the same derivation in this process).
Target: under 5 s each on PostgreSQL. The SQLite instance lives on /dev/shm when there is one;
recording a year in it still takes minutes (events are stored one by one there).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.events.log import EventLogEntry
from dagster._core.instance.utils import RUNLESS_RUN_ID
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the PostgreSQL server helper lives with the tests

from wiz_pipeline.core.times import format_time  # noqa: E402
from wiz_pipeline.orchestration.checkpoints import collections_for, progress, window_keys  # noqa: E402
from wiz_pipeline.orchestration.definitions import build_definitions  # noqa: E402
from wiz_pipeline.orchestration.resources import WizResource  # noqa: E402
from wiz_pipeline.settings import load_settings  # noqa: E402
from wiz_pipeline.simulator import Fault, WizSimulator, generate_tenant  # noqa: E402
from wiz_pipeline_tests.postgres_server import start_server, stop_server  # noqa: E402

INTERVAL = 1800
# What `wiz-pipeline checkpoints` imports before it reads anything: Dagster's start-up, not ours.
IMPORTS = [
    sys.executable,
    "-c",
    "import wiz_pipeline.cli, wiz_pipeline.orchestration.checkpoints, dagster_postgres",
]
BATCH = 500


def _batch(instance: dg.DagsterInstance, template: dg.AssetMaterialization, keys: list[str]) -> None:
    events = []
    for key in keys:
        start = datetime.strptime(key, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC)
        metadata = dict(template.metadata)
        metadata["window_start"] = dg.TextMetadataValue(format_time(start))
        metadata["window_end"] = dg.TextMetadataValue(format_time(start + timedelta(seconds=INTERVAL)))
        materialization = dg.AssetMaterialization(
            asset_key=template.asset_key, partition=key, metadata=metadata
        )
        event = DagsterEvent(
            event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
            job_name="collect_audit_logs",
            event_specific_data=StepMaterializationData(materialization),
        )
        events.append(
            EventLogEntry(
                user_message="",
                level=logging.INFO,
                job_name="collect_audit_logs",
                run_id=RUNLESS_RUN_ID,
                error_info=None,
                timestamp=time.time(),
                dagster_event=event,
            )
        )
    instance.event_log_storage.store_event_batch(events)


def measure(backend: str, windows: int, pg_env: dict[str, str]) -> None:
    now = datetime.now(UTC)
    # The seed a year (plus a bit) back, off a boundary, so that --windows windows and a few more closed.
    seed = now - timedelta(seconds=(windows + 3) * INTERVAL + 600)
    # SQLite's event log stores events one at a time, each in its own transaction: recording a year takes
    # minutes (most of an hour through a busy disk's fsyncs). /dev/shm spares those; reads are cached
    # in memory either way.
    shm = "/dev/shm" if backend == "sqlite" and os.path.isdir("/dev/shm") else None  # noqa: S108
    with tempfile.TemporaryDirectory(dir=shm) as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        shutil.copy(ROOT / "deploy" / ("dagster-postgres.yaml" if backend == "postgres" else "dagster.yaml"),
                    home / "dagster.yaml")  # fmt: skip
        env = {
            "AUDIT_SINCE_TIME": format_time(seed),
            "WIZ_COLLECT_ISSUES": "false",
            "WIZ_OUTPUT_URI": str(Path(tmp) / "data"),
            "WIZ_POLL_INTERVAL_SECONDS": str(INTERVAL),
        }
        collection = collections_for(load_settings(env))[0]
        keys = window_keys(collection, now - timedelta(seconds=300))
        first, tail = keys[:4], keys[windows : windows + 2]
        span_start = collection.partitions_def.start.astimezone(UTC)
        # Records only where the real runs read: the first windows (the failing run gets no answer).
        tenant = generate_tenant(span_start, span_start + timedelta(hours=2), audit_entries=200, seed=3)
        with WizSimulator(tenant, client_id="bench", client_secret="bench-secret-4d1c") as sim, \
                dg.DagsterInstance.from_config(str(home)) as instance:  # fmt: skip
            sim.set_now(now)
            wiz = WizResource.from_settings(
                load_settings(env), api_url=sim.graphql_url, client_id="bench",
                client_secret="bench-secret-4d1c",
                token_url=sim.token_url, max_requests_per_second=1000, backoff_base_seconds=0.01,
                backoff_max_seconds=0.05,
            )  # fmt: skip
            defs = build_definitions(env, resources={"wiz": wiz})
            job = defs.resolve_job_def("collect_audit_logs")

            def run(keys: list[str]) -> bool:
                tags = {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]}
                return job.execute_in_process(instance=instance, tags=tags, raise_on_error=False).success

            assert run(first)
            template = instance.fetch_materializations(collection.asset_key, limit=1).records[0]
            began = time.perf_counter()
            rest = keys[len(first) : windows]
            for i in range(0, len(rest), BATCH):
                _batch(instance, template.asset_materialization, rest[i : i + BATCH])
            recorded = time.perf_counter() - began
            sim.inject(Fault.http_status(500), times=6)
            assert not run(tail)
            written = len(instance.get_materialized_partitions(collection.asset_key))
            print(f"{backend}: {written} windows materialized ({recorded:.1f} s to record), 2 failed")
            command = [sys.executable, "-m", "wiz_pipeline.cli", "checkpoints"]
            command_env = {**os.environ, **env, **pg_env, "DAGSTER_HOME": str(home)}

            def checkpoints(when: str) -> None:
                began = time.perf_counter()
                subprocess.run(IMPORTS, env=command_env, check=True)  # noqa: S603
                imports = time.perf_counter() - began
                began = time.perf_counter()
                done = subprocess.run(command, env=command_env, capture_output=True, text=True, check=True)  # noqa: S603
                seconds = time.perf_counter() - began
                began = time.perf_counter()
                progress(instance, collection, datetime.now(UTC), timedelta(seconds=300))
                derivation = time.perf_counter() - began
                print(
                    f"{backend}: wiz-pipeline checkpoints, {when}: {seconds:.2f} s as a command "
                    f"(its imports alone {imports:.2f} s); the derivation in process {derivation:.2f} s"
                )
                print(f"    {done.stdout.strip()}")

            checkpoints("before the ticks")
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
                print(
                    f"{backend}: {attempt} tick {time.perf_counter() - began:.2f} s, "
                    f"{len(data.run_requests or [])} run(s) requested"
                )
            checkpoints("after the ticks")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=17520)
    parser.add_argument(
        "--backend", nargs="+", default=["postgres", "sqlite"], choices=["postgres", "sqlite"]
    )
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    server = start_server() if "postgres" in args.backend else None
    try:
        for backend in args.backend:
            pg_env = (
                server.env(server.create_database(f"bench_{os.getpid()}")) if backend == "postgres" else {}
            )
            os.environ.update(pg_env)  # deploy/dagster-postgres.yaml reads them when the instance loads
            measure(backend, args.windows, pg_env)
    finally:
        if server:
            stop_server(server)


if __name__ == "__main__":
    main()
