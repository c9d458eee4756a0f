"""Issue 15's figures: what the OCSF view costs per source record, and its files' size beside the native.

    .venv/bin/python benchmarks/ocsf_views.py [--records 20000] [--windows 48]

For each data type, the simulator (in this process, no rate limit) serves ``--records`` records over
``--windows`` 30-minute windows. One Dagster run (``execute_in_process``) collects every window with
WIZ_OCSF off. Then each window's OCSF files are written from its native file exactly as the window
asset does (``collect.ocsf_views.write_ocsf_window``: read the native file's ``raw`` column, map,
validate against OCSF 1.5.0, write one file per class), timed with this process's CPU clock: that is
the view's cost net of the native window. The mapping and the validation alone are timed too (one pass
over every record each). Last, the same windows are collected again by a Dagster run with WIZ_OCSF on,
next to a run with it off, for the whole-run ratio (wall time; the simulator shares the process).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Not named ocsf.py: this folder is first on sys.path, and pydantic-ocsf's package is `ocsf`.
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from dagster._core.storage.tags import (  # noqa: E402
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from wiz_pipeline.collect.ocsf_views import write_ocsf_window  # noqa: E402
from wiz_pipeline.data_types import DATA_TYPES  # noqa: E402
from wiz_pipeline.landing.outputs import open_output  # noqa: E402
from wiz_pipeline.ocsf import SOURCES, map_records  # noqa: E402
from wiz_pipeline.ocsf.layout import OcsfLayout  # noqa: E402
from wiz_pipeline.ocsf.validate import invalid_rows  # noqa: E402
from wiz_pipeline.orchestration.checkpoints import collections_for  # noqa: E402
from wiz_pipeline.orchestration.definitions import build_definitions  # noqa: E402
from wiz_pipeline.orchestration.partitions import windows_for  # noqa: E402
from wiz_pipeline.orchestration.resources import WizResource  # noqa: E402
from wiz_pipeline.settings import load_settings  # noqa: E402
from wiz_pipeline.simulator import WizSimulator, generate_tenant  # noqa: E402

START = datetime(2025, 9, 12, tzinfo=UTC)
SEED = "2025-09-12T00:00:00Z"
OFF_BY_DEFAULT = ("vulnerability_findings", "configuration_findings", "detections")


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


def tenant(data_type: str, records: int, windows: int):
    end = START + timedelta(minutes=30 * windows)
    counts = {"audit_entries": 0, "issues": 0, **{t: 0 for t in OFF_BY_DEFAULT}}
    key = {"audit_logs": "audit_entries", "issues": "issues"}.get(data_type, data_type)
    counts[key] = records
    # No update or deletion: each finding is in one window once, so records == rows.
    return generate_tenant(START, end, seed=5, finding_update_share=0, finding_delete_share=0, **counts)


def run(sim: WizSimulator, env: dict[str, str], data_type: str, keys: list[str], instance) -> float:
    wiz = WizResource.from_settings(
        load_settings(env),
        api_url=sim.graphql_url,
        client_id=sim.client_id,
        client_secret=sim.client_secret,
        token_url=sim.token_url,
        max_requests_per_second=100_000,
    )
    job = build_definitions(env, resources={"wiz": wiz}).resolve_job_def(f"collect_{data_type}")
    tags = {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]}
    began = time.perf_counter()
    result = job.execute_in_process(instance=instance, tags=tags, raise_on_error=True)
    assert result.success
    return time.perf_counter() - began


def size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*.parquet"))


def measure(data_type: str, records: int, windows: int, work: Path) -> dict:
    sim = WizSimulator(tenant(data_type, records, windows), client_id="bench", client_secret="bench-secret")
    sim.set_now(START + timedelta(days=3))
    env = {
        "WIZ_POLL_INTERVAL_SECONDS": "1800",
        **{DATA_TYPES[t].enabled_by: "true" for t in OFF_BY_DEFAULT},
        **{dt.checkpoint_variable: SEED for dt in DATA_TYPES.values()},
    }
    figures: dict = {"type": data_type}
    with sim:
        native_root = work / data_type / "off"
        off_env = {**env, "WIZ_OUTPUT_URI": str(native_root)}
        collection = next(c for c in collections_for(load_settings(off_env)) if c.data_type == data_type)
        keys = collection.partitions_def.get_partition_keys(
            current_time=START + timedelta(minutes=30 * windows)
        )
        with dg.instance_for_test() as instance:
            figures["run_off_s"] = run(sim, off_env, data_type, keys, instance)
        native = open_output(native_root)
        rows = sum(pq.read_metadata(p).num_rows for p in (native_root / data_type).rglob("*.parquet"))
        figures["rows"] = rows
        figures["native_bytes"] = size(native_root / data_type)
        # The view from the native files, as the asset writes it, on this process's CPU clock.
        ocsf_root = work / data_type / "view"
        ocsf = open_output(ocsf_root)
        cpu = time.process_time()
        for window in windows_for(collection.partitions_def, keys, collection.seed):
            write_ocsf_window(native, ocsf, OcsfLayout(), data_type, window, run_id="bench")
        figures["view_cpu_us"] = (time.process_time() - cpu) / rows * 1e6
        figures["ocsf_bytes"] = size(ocsf_root)
        # Mapping and validation alone, over the same records.
        raw = [
            r
            for p in sorted((native_root / data_type).rglob("*.parquet"))
            for r in pq.read_table(p, columns=["raw"])["raw"].cast("binary").to_pylist()
        ]
        cpu = time.process_time()
        tables = map_records(data_type, raw, START)
        figures["map_us"] = (time.process_time() - cpu) / rows * 1e6
        cpu = time.process_time()
        bad = sum(invalid_rows(c, t)[0] for c, t in tables.items())
        figures["validate_us"] = (time.process_time() - cpu) / rows * 1e6
        figures["invalid"] = bad
        # Whole runs, WIZ_OCSF on and off, on the same windows.
        on_env = {**env, "WIZ_OUTPUT_URI": str(work / data_type / "on"), "WIZ_OCSF": "true"}
        with dg.instance_for_test() as instance:
            figures["run_on_s"] = run(sim, on_env, data_type, keys, instance)
        with dg.instance_for_test() as instance:
            again = {**off_env, "WIZ_OUTPUT_URI": str(work / data_type / "off2")}
            figures["run_off_s"] = min(figures["run_off_s"], run(sim, again, data_type, keys, instance))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=20_000, help="records per data type")
    parser.add_argument("--windows", type=int, default=48, help="30-minute windows they are spread over")
    parser.add_argument("--types", default=",".join(SOURCES), help="comma list of data types")
    args = parser.parse_args()
    print(f"# {machine()}")
    print(f"# {args.records} records per data type over {args.windows} windows")
    print(
        f"{'data type':<24} {'rows':>7} {'view CPU/rec':>13} {'map/rec':>9} {'validate/rec':>13} "
        f"{'native MiB':>10} {'OCSF MiB':>9} {'OCSF/native':>11} {'run off s':>9} {'run on s':>9} "
        f"{'invalid':>7}"
    )
    with tempfile.TemporaryDirectory(prefix="wiz-ocsf-bench-") as work:
        for data_type in args.types.split(","):
            f = measure(data_type, args.records, args.windows, Path(work))
            print(
                f"{f['type']:<24} {f['rows']:>7} {f['view_cpu_us']:>10.1f} µs {f['map_us']:>6.1f} µs "
                f"{f['validate_us']:>10.1f} µs {f['native_bytes'] / 2**20:>10.2f} "
                f"{f['ocsf_bytes'] / 2**20:>9.2f} "
                f"{f['ocsf_bytes'] / f['native_bytes']:>10.2f}x {f['run_off_s']:>9.1f} {f['run_on_s']:>9.1f} "
                f"{f['invalid']:>7}",
                flush=True,
            )


if __name__ == "__main__":
    main()
