"""How long each wiz_pipeline.analytics question takes, by output size.

    .venv/bin/python benchmarks/analytics.py [--audit-entries 200000 1000000] [--issues 20000] [--days 30]

For each size, generated audit entries and issues (the simulator's tenant) are turned into rows by
the pipeline's own tables code and written in the pipeline's layout (one zstd file per 30-minute
window under date= directories; issues_current as one file) into a temporary directory; each
question is then timed (best of three, a fresh DuckDB connection each time, as the functions open
one), over everything and over the last day.
"""

from __future__ import annotations

import argparse
import functools
import json
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from wiz_pipeline.core.times import parse_time
from wiz_pipeline.data_types import DATA_TYPES
from wiz_pipeline.landing.tables import table_for
from wiz_pipeline.readers import analytics
from wiz_pipeline.simulator import generate_tenant

START = datetime(2025, 9, 1, tzinfo=UTC)
WINDOW = timedelta(minutes=30)


def window_of(t: datetime) -> datetime:
    return START + ((t - START) // WINDOW) * WINDOW


def write(root: Path, name: str, nodes: list[dict], time_field: str) -> None:
    table = table_for(DATA_TYPES[name])
    by_window: dict[datetime, list[bytes]] = defaultdict(list)
    for node in nodes:
        by_window[window_of(parse_time(node[time_field]))].append(json.dumps(node).encode())
    for start, raw in by_window.items():
        folder = root / name / f"date={start:%Y-%m-%d}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(
            pa.Table.from_batches([table.rows_to_batch(raw)]),
            folder / f"{name}_{start:%Y%m%dT%H%M%S}Z.parquet",
            compression="zstd",
        )


def best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audit-entries", type=int, nargs="+", default=[200_000])
    parser.add_argument("--issues", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    end = START + timedelta(days=args.days)
    for entries in args.audit_entries:
        tenant = generate_tenant(START, end, audit_entries=entries, issues=args.issues, seed=5)
        issues = tenant.issues_as_of(end)
        with tempfile.TemporaryDirectory() as directory:
            root = Path(directory)
            began = time.perf_counter()
            write(root, "audit_logs", list(tenant.audit_nodes), "timestamp")
            write(root, "issues", issues, "statusChangedAt")
            current = root / "issues_current"
            current.mkdir()
            raw = [json.dumps(n).encode() for n in issues]
            pq.write_table(
                pa.Table.from_batches([table_for(DATA_TYPES["issues"]).rows_to_batch(raw)]),
                current / "issues_current.parquet",
                compression="zstd",
            )
            size = sum(p.stat().st_size for p in root.rglob("*.parquet")) / 2**20
            print(
                f"\n{entries} audit entries, {len(issues)} issues over {args.days} days "
                f"({size:.0f} MiB of Parquet, written in {time.perf_counter() - began:.0f} s)"
            )
            last_day = end - timedelta(days=1)
            questions = [
                ("audit_activity (all)", analytics.audit_activity, ()),
                ("audit_activity (last day)", analytics.audit_activity, (last_day,)),
                ("failed_logins (all)", analytics.failed_logins, ()),
                ("api_calls_by_service_account (all)", analytics.api_calls_by_service_account, ()),
                ("open_issues", analytics.open_issues, ()),
                ("mean_time_to_resolve", analytics.mean_time_to_resolve, ()),
                ("status_changes (last day)", analytics.status_changes, (last_day,)),
            ]
            for label, question, arguments in questions:
                seconds = best(functools.partial(question, *arguments, uri=root))
                print(f"  {label:<38} {seconds * 1000:8.0f} ms")


if __name__ == "__main__":
    main()
