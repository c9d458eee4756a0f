"""What a window's checks and summary cost next to turning the same pages into Arrow batches.

    .venv/bin/python benchmarks/quality.py [--entries 50000] [--page-size 500]

Audit entries and issues from the simulator's tenant, cut into pages as the API sends them, each page
made into a record batch (``Table.to_batch``, which collection does anyway) and then noted by
``quality.WindowQuality`` (checks, value counts, the first node of the page decoded whole). Prints both
times per data type and the checks' share; a last line times decoding every node whole, the cost the
first-node sampling avoids.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

import msgspec

from wiz_pipeline.core.records import Nodes
from wiz_pipeline.data_types import DATA_TYPES
from wiz_pipeline.landing.quality import WindowQuality
from wiz_pipeline.landing.tables import table_for
from wiz_pipeline.landing.times import parse_times
from wiz_pipeline.simulator import generate_tenant

START = datetime(2025, 9, 12, 21, tzinfo=UTC)


def pages(nodes: list[dict], time_field: str, size: int) -> list[Nodes]:
    out = []
    for i in range(0, len(nodes), size):
        chunk = nodes[i : i + size]
        raw = [msgspec.Raw(msgspec.json.encode(n)) for n in chunk]
        micros, readable = parse_times([n.get(time_field) for n in chunk])
        out.append(Nodes(raw, micros, readable))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=50_000)
    parser.add_argument("--page-size", type=int, default=500)
    args = parser.parse_args()
    end = START + timedelta(days=1)
    tenant = generate_tenant(START, end, audit_entries=args.entries, issues=args.entries // 10)
    samples = {
        "audit_logs": [n if isinstance(n, dict) else msgspec.json.decode(n) for n in tenant.audit_nodes],
        "issues": tenant.issues_as_of(end),
    }
    for name, nodes in samples.items():
        data_type = DATA_TYPES[name]
        table = table_for(data_type)
        batches_of = pages(nodes, data_type.time_field, args.page_size)
        clock = time.perf_counter()
        batches = [table.to_batch(p) for p in batches_of]
        to_batch = time.perf_counter() - clock
        window = (START - timedelta(days=400), end + timedelta(days=400))  # every record inside
        quality = WindowQuality(table, *window, None, data_type.summary_columns)
        clock = time.perf_counter()
        for p, b in zip(batches_of, batches, strict=True):
            quality.note(p, b)
        outcomes = quality.outcomes(table.schema)
        quality.markdown()
        checks = time.perf_counter() - clock
        clock = time.perf_counter()
        for p in batches_of:
            for raw in p.raw:
                msgspec.json.decode(raw)
        decode_all = time.perf_counter() - clock
        rows = sum(len(p) for p in batches_of)
        # (Not no_unknown_fields: the tenant's stored issues name `sourceRule.description` without the
        # aliases the query gives it.)
        assert all(o.passed for o in outcomes if o.error), outcomes
        print(
            f"{name:10} {rows:7d} rows in {len(batches_of)} pages: batches {to_batch * 1000:7.1f} ms, "
            f"checks+summary {checks * 1000:6.1f} ms ({checks / to_batch:5.1%} of batches); "
            f"decoding every node whole instead of the first of each page: {decode_all * 1000:7.1f} ms"
        )


if __name__ == "__main__":
    main()
