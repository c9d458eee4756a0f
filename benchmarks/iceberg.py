"""Issue 16's figures: what WIZ_ICEBERG costs per window and per backfill run, what a year of 30-minute
windows leaves in snapshots and metadata, and how long a day and a year take to scan.

    .venv/bin/python benchmarks/iceberg.py [--records 20000] [--windows 96] [--year-windows 17520]

Part 1, through Dagster: the simulator (in this process, no rate limit) serves ``--records`` audit
entries over ``--windows`` 30-minute windows; one backfill run collects them all with WIZ_ICEBERG off,
then on (SQLite catalog, the default), on fresh outputs; then each window is collected once more by a
run of its own, as the schedule does, with WIZ_ICEBERG on. Commit times are the manifests' own
(``iceberg_commit_seconds``: the transaction, from loading the table to the catalog's answer).

Part 2, a simulated year: ``--year-windows`` window files (``--rows`` rows each, the pipeline's own
writer options) committed as a backfill does, 48 windows per snapshot, through the same
``Tables.replace_windows``; then 48 single-window commits on top (the schedule after a year), the
metadata's size, maintenance (expiry at 7 days keeps all of a backfill made now; then at 0 days), and
scans of one day and of the whole year: pyiceberg's own (``scan().to_arrow()``) and DuckDB through
``analytics.connect`` (the snapshot's files as an Arrow dataset).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from dagster._core.storage.tags import (  # noqa: E402
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)
from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan  # noqa: E402

from wiz_pipeline.data_types import DATA_TYPES  # noqa: E402
from wiz_pipeline.landing.files import WINDOW_FIELD, writer_options  # noqa: E402
from wiz_pipeline.landing.iceberg import Tables, catalog_properties  # noqa: E402
from wiz_pipeline.landing.iceberg_maintenance import maintain  # noqa: E402
from wiz_pipeline.landing.outputs import open_output  # noqa: E402
from wiz_pipeline.landing.tables import file_schema, table_for  # noqa: E402
from wiz_pipeline.orchestration.definitions import build_definitions  # noqa: E402
from wiz_pipeline.orchestration.resources import WizResource  # noqa: E402
from wiz_pipeline.readers import analytics  # noqa: E402
from wiz_pipeline.settings import load_settings  # noqa: E402
from wiz_pipeline.simulator import WizSimulator, generate_tenant  # noqa: E402

T0 = datetime(2025, 9, 12, 21, 0, tzinfo=UTC)
SECRET = "bench-secret-5a1e"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, load {os.getloadavg()[0]:.1f}"


def _defs(sim: WizSimulator, env: dict[str, str]) -> dg.Definitions:
    wiz = WizResource.from_settings(
        load_settings(env),
        api_url=sim.graphql_url,
        client_id=sim.client_id,
        client_secret=sim.client_secret,
        token_url=sim.token_url,
        max_requests_per_second=10_000,
    )
    return build_definitions(env, resources={"wiz": wiz})


def part_one(records: int, windows: int, base: Path) -> None:
    end = T0 + timedelta(minutes=30 * windows)
    tenant = generate_tenant(T0, end, audit_entries=records, issues=1, seed=16)
    sim = WizSimulator(tenant, client_id="bench", client_secret=SECRET)
    sim.set_now(end + timedelta(days=1))
    print(f"## Part 1: {records} audit entries over {windows} windows, through Dagster (execute_in_process)")
    with sim:
        walls = {}
        # Off, on, off again: the first run of a process also pays for warming up (imports, caches).
        for n, iceberg in enumerate(("false", "true", "false")):
            root = base / f"part1-{n}-{iceberg}"
            env = {
                "WIZ_OUTPUT_URI": str(root),
                "WIZ_ICEBERG": iceberg,
                "AUDIT_SINCE_TIME": "2025-09-12T21:00:00Z",
                "WIZ_COLLECT_ISSUES": "false",
                "WIZ_POLL_INTERVAL_SECONDS": "1800",
            }
            defs = _defs(sim, env)
            keys = [f"{(T0 + timedelta(minutes=30 * i)):%Y-%m-%d-%H:%M}" for i in range(windows)]
            job = defs.resolve_job_def("collect_audit_logs")
            with dg.instance_for_test() as instance:
                tags = {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]}
                clock = time.perf_counter()
                assert job.execute_in_process(instance=instance, tags=tags).success
                walls.setdefault(iceberg, []).append(time.perf_counter() - clock)
                if iceberg == "true":
                    commits = _commit_seconds(root)
                    snapshots = len(
                        Tables(catalog_properties({}, str(root))).load("audit_logs").metadata.snapshots
                    )
                    print(
                        f"backfill run of {windows} windows: {snapshots} snapshot(s); commit time per batch "
                        f"{sorted(set(commits))} s, i.e. {sum(set(commits)) / windows * 1000:.1f} ms "
                        "per window"
                    )
                    clock = time.perf_counter()
                    for key in keys[:24]:  # one run per window, as the schedule runs them
                        assert job.execute_in_process(instance=instance, partition_key=key).success
                    per_run = (time.perf_counter() - clock) / 24
                    single = _commit_seconds(root, keys[:24])
                    print(
                        f"runs of one window (24 of them, on a table of {windows} windows): commit "
                        f"median {statistics.median(single) * 1000:.1f} ms, max {max(single) * 1000:.1f} ms; "
                        f"whole run {per_run:.2f} s"
                    )
        off, on = walls["false"], walls["true"][0]
        print(
            f"backfill run wall: WIZ_ICEBERG off {off[0]:.2f} s (first run of the process) and "
            f"{off[1]:.2f} s, on {on:.2f} s ({on / off[1]:.2f}x the second off)"
        )


def _commit_seconds(root: Path, keys: list[str] | None = None) -> list[float]:
    found = []
    for path in (root / "audit_logs").rglob("_audit_logs_*.json"):
        manifest = json.loads(path.read_text())
        if keys is None or manifest["partition_key"] in keys:
            found.append(manifest["iceberg_commit_seconds"])
    return found


def part_two(year_windows: int, rows: int, base: Path) -> None:
    print(f"\n## Part 2: a simulated year, {year_windows} windows of {rows} rows, 48 windows per commit")
    root = base / "year"
    folder = root / "audit_logs"
    table = table_for(DATA_TYPES["audit_logs"])
    schema = file_schema(table)
    tables = Tables(catalog_properties({}, str(root)))
    template = _template(table, rows)
    commit_times = []
    write_seconds = 0.0
    starts = [T0 + timedelta(minutes=30 * i) for i in range(year_windows)]
    for batch_start in range(0, year_windows, 48):
        batch = []
        clock = time.perf_counter()
        for start in starts[batch_start : batch_start + 48]:
            batch.append((start, [_write(folder, template, start, schema, table)]))
        write_seconds += time.perf_counter() - clock
        committed = tables.replace_windows("audit_logs", str(folder), batch, schema)
        commit_times.append(committed.seconds)
    iceberg = tables.load("audit_logs")
    metadata_dir = folder / "_iceberg_metadata"
    print(
        f"{len(commit_times)} commits: first {commit_times[0] * 1000:.0f} ms, median "
        f"{statistics.median(commit_times) * 1000:.0f} ms, last {commit_times[-1] * 1000:.0f} ms "
        f"(writing the {year_windows} files: {write_seconds:.1f} s)"
    )
    _metadata_figures(iceberg, metadata_dir, "after the backfill")
    singles = []
    for start in starts[-48:]:
        committed = tables.replace_window(
            "audit_logs", str(folder), start, [_write(folder, template, start, schema, table)], schema
        )
        singles.append(committed.seconds)
    print(
        f"48 single-window commits after it (the schedule, a day of it): median "
        f"{statistics.median(singles) * 1000:.0f} ms, max {max(singles) * 1000:.0f} ms"
    )
    iceberg = tables.load("audit_logs")
    _metadata_figures(iceberg, metadata_dir, "after a day of scheduled commits")
    output = open_output(str(root))
    for days in (7, 0):
        clock = time.perf_counter()
        result = maintain(tables, "audit_logs", output, "audit_logs", retention=timedelta(days=days))
        print(
            f"maintenance at {days} days: {result.snapshots_expired} snapshots expired, "
            f"{result.snapshots_kept} kept, "
            f"{result.files_deleted} files deleted, {time.perf_counter() - clock:.1f} s"
        )
    iceberg = tables.load("audit_logs")
    _metadata_figures(iceberg, metadata_dir, "after maintenance at 0 days")
    singles = []
    for start in starts[-96:-48]:  # the schedule again, with few snapshots kept (as expiry keeps it)
        path = _write(folder, template, start, schema, table)
        singles.append(tables.replace_window("audit_logs", str(folder), start, [path], schema).seconds)
    print(
        f"48 single-window commits after maintenance: median {statistics.median(singles) * 1000:.0f} ms, "
        f"max {max(singles) * 1000:.0f} ms"
    )
    iceberg = tables.load("audit_logs")
    day = T0 + timedelta(days=year_windows // 96)  # mid-year
    day_filter = And(
        GreaterThanOrEqual("window_start", day.isoformat()),
        LessThan("window_start", (day + timedelta(days=1)).isoformat()),
    )
    for label, row_filter in (("a day", day_filter), ("the year", None)):
        clock = time.perf_counter()
        scan = iceberg.scan(row_filter=row_filter) if row_filter is not None else iceberg.scan()
        got = scan.to_arrow().num_rows
        print(f"pyiceberg scan of {label}: {got} rows in {time.perf_counter() - clock:.2f} s")
    os.environ["WIZ_ICEBERG"] = "true"
    clock = time.perf_counter()
    con = analytics.connect(root, ["audit_logs"])
    opened = time.perf_counter() - clock
    for label, where in (("a day", f"date = DATE '{day:%Y-%m-%d}'"), ("the year", "TRUE")):
        clock = time.perf_counter()
        count = con.execute(
            f"SELECT count(*), count(DISTINCT action) FROM audit_logs WHERE {where}"  # noqa: S608
        ).fetchone()
        print(f"DuckDB over the snapshot, {label}: {count[0]} rows in {time.perf_counter() - clock:.2f} s")
    print(f"(analytics.connect planning the year's snapshot: {opened:.2f} s)")


def _template(table, rows: int) -> pa.Table:
    base = {f.name: pa.nulls(rows, f.type) for f in table.schema}
    base["id"] = pa.array([f"id-{i}" for i in range(rows)])
    base["action"] = pa.array(
        ["Login", "UpdateUser", "CreateServiceAccount", "Delete"] * (rows // 4) + ["Login"] * (rows % 4)
    )
    base["raw"] = pa.array(['{"id":"x","action":"Login"}'] * rows)
    return pa.table(base, schema=table.schema)


def _write(folder: Path, template: pa.Table, start: datetime, schema: pa.Schema, table) -> str:
    day = folder / f"date={start:%Y-%m-%d}"
    day.mkdir(parents=True, exist_ok=True)
    path = day / f"audit_logs_{start:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:12]}.parquet"
    data = template.append_column(
        WINDOW_FIELD, pa.repeat(pa.scalar(start, WINDOW_FIELD.type), template.num_rows)
    )
    data = data.set_column(0, "id", pa.array([f"{start:%Y%m%d%H%M}-{i}" for i in range(template.num_rows)]))
    pq.write_table(data.cast(schema), path, **writer_options(table))
    return str(path)


def _metadata_figures(iceberg, metadata_dir: Path, when: str) -> None:
    files = list(metadata_dir.iterdir())
    snapshot = iceberg.current_snapshot()
    manifests = snapshot.manifests(iceberg.io)
    current = Path(iceberg.metadata_location.removeprefix("file://"))
    print(
        f"{when}: {len(iceberg.metadata.snapshots)} snapshots; current metadata file "
        f"{current.stat().st_size / 1024:.0f} KiB; {len(manifests)} manifests in the current snapshot "
        f"({sum(m.manifest_length for m in manifests) / 1024:.0f} KiB); metadata folder {len(files)} files, "
        f"{sum(f.stat().st_size for f in files) / 2**20:.1f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--windows", type=int, default=96)
    parser.add_argument("--year-windows", type=int, default=17_520)
    parser.add_argument("--rows", type=int, default=50)
    args = parser.parse_args()
    print(f"# benchmarks/iceberg.py on {machine()}")
    with tempfile.TemporaryDirectory(prefix="wiz-iceberg-bench-") as base:
        part_one(args.records, args.windows, Path(base))
        part_two(args.year_windows, args.rows, Path(base))


if __name__ == "__main__":
    main()
