"""What a window's rows say about themselves, gathered while they stream into its file.

The asset turns a window's ``Outcome``s into Dagster asset checks recorded with its materialization,
and its ``Summary`` into the Markdown table of its metadata. Nothing here reads the file again: every
figure comes from the batches on their way to the writer.

- **ids unique**: every row has a non-empty id and no id is there twice. The client drops a repeated
  id within a read, so a failure is a bug (ours, or an API that sends ids we can't compare). The ids
  are the writer's (``WindowWriter.ids``, gathered once for this and for a re-read's comparison).
- **records in window** and **none before the seed**: every readable time is in ``[start, end)`` and
  not before the seed. The client cuts windows exactly, so a failure is a bug too.
- **columns as declared**: the file's schema is exactly the data type's declared columns plus ``raw``, then
  ``window_start``.
- **no unknown fields** (a warning, never a failure): a node carries a field no column reads. The API
  changed; the field is kept in ``raw`` but has no column yet. Detected on the first node of each page
  part only (one full decode per up to 500 nodes): a GraphQL answer holds exactly the fields the query
  selects, so a new field shows on every node of the type, and the first one is enough. Decoding
  every node, or even every node's keys, would cost about as much as building the columns again.

Dagster-free, like ``collect``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wiz_pipeline.core.records import Nodes
from wiz_pipeline.core.times import format_time, to_micros
from wiz_pipeline.landing.ids import WindowIds
from wiz_pipeline.landing.tables import Table, file_schema

IDS_UNIQUE = "ids_unique"
RECORDS_IN_WINDOW = "records_in_window"
NONE_BEFORE_SEED = "none_before_seed"
COLUMNS_AS_DECLARED = "columns_as_declared"
NO_UNKNOWN_FIELDS = "no_unknown_fields"

# Per check: its description in the UI (what it checks, what a failure means, what to do), and
# whether a failure is an error (a bug) rather than a warning.
CHECKS: dict[str, tuple[str, bool]] = {
    IDS_UNIQUE: (
        "Every row of the window has an id, and no id appears twice. A failure is a bug (the client "
        "drops repeats) or ids the API sent in a form we can't compare: the file is written as "
        "received, so deduplicate on `id` when reading it, and report the bug.",
        True,
    ),
    RECORDS_IN_WINDOW: (
        "Every record's time is inside its window. A failure is a bug in how records are routed to "
        "windows: counts per window are wrong. Report it, then rematerialize the window.",
        True,
    ),
    NONE_BEFORE_SEED: (
        "No record is older than the seed (the checkpoint variable's first value). A failure is a "
        "bug: data from before what was asked for is in the file. Report it.",
        True,
    ),
    COLUMNS_AS_DECLARED: (
        "The file's columns and types are exactly the ones the asset declares (its column schema). "
        "A failure means readers expecting the documented columns will break; report it.",
        True,
    ),
    NO_UNKNOWN_FIELDS: (
        "Warns when Wiz sends fields no column reads: the API changed. Nothing is lost (the whole "
        "node is in the `raw` column); a column for the field needs a new release.",
        False,
    ),
}

# Values shown per column in the window's Markdown table.
TOP_VALUES = 5


@dataclass(frozen=True)
class Outcome:
    """One check's result for one window; ``error``: a failure is a bug (else only a warning)."""

    name: str
    passed: bool
    error: bool
    description: str
    metadata: dict[str, Any]


@dataclass
class WindowQuality:
    """Fed every batch of one window on its way to the file (``note``); read once it is whole."""

    table: Table
    start: datetime
    end: datetime
    seed: datetime | None
    summary_columns: tuple[str, ...] = ()
    rows: int = 0
    outside: int = 0
    before_seed: int = 0
    sampled: int = 0
    unknown: Counter[str] = field(default_factory=Counter)
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    schemas: set[str] = field(default_factory=set)
    # The window's ids, gathered once: a writer's (``WindowWriter.ids``), which it feeds itself, or
    # if none is given this quality's own, fed by ``note``.
    ids: WindowIds | None = None

    def __post_init__(self) -> None:
        self._own_ids = self.ids is None
        if self.ids is None:
            self.ids = WindowIds()

    def note(self, nodes: Nodes, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        known = nodes.micros[nodes.readable]
        inside = (known >= to_micros(self.start)) & (known < to_micros(self.end))
        self.outside += int(np.count_nonzero(~inside))
        if self.seed is not None:
            self.before_seed += int(np.count_nonzero(known < to_micros(self.seed)))
        if self._own_ids:
            self.ids.add(batch.column("id"))
        if not batch.schema.equals(self.table.schema):
            self.schemas.add(str(batch.schema))
        for name in self.summary_columns:
            counter = self.counts.setdefault(name, Counter())
            for item in pc.value_counts(batch.column(name)).to_pylist():
                counter[item["values"] or "(none)"] += item["counts"]
        if len(nodes):
            self.sampled += 1
            for path in unknown_fields(self.table, msgspec.json.decode(nodes.raw[0])):
                self.unknown[path] += 1

    def outcomes(self, written_schema: pa.Schema) -> list[Outcome]:
        figures = self.ids.figures()
        blank, repeated = figures.without_id, figures.repeated
        declared = file_schema(self.table)
        schema_ok = written_schema.equals(declared) and not self.schemas
        window = {"window_start": format_time(self.start), "window_end": format_time(self.end)}

        def outcome(name: str, passed: bool, text: str, **metadata: Any) -> Outcome:
            return Outcome(name, passed, CHECKS[name][1], text, metadata)

        return [
            outcome(
                IDS_UNIQUE,
                repeated == 0 and blank == 0,
                f"{repeated} repeated id(s), {blank} row(s) without an id, of {self.rows}",
                rows=self.rows,
                repeated_ids=repeated,
                rows_without_id=blank,
            ),
            outcome(
                RECORDS_IN_WINDOW,
                self.outside == 0,
                f"{self.outside} record(s) outside the window",
                records_outside=self.outside,
                **window,
            ),
            outcome(
                NONE_BEFORE_SEED,
                self.before_seed == 0,
                f"{self.before_seed} record(s) before the seed",
                records_before_seed=self.before_seed,
                seed=format_time(self.seed) if self.seed else "",
            ),
            outcome(
                COLUMNS_AS_DECLARED,
                schema_ok,
                "the file's columns are the declared ones"
                if schema_ok
                else f"written: {', '.join(f'{f.name} {f.type}' for f in written_schema)}",
                columns=len(written_schema),
                declared_columns=len(declared),
            ),
            outcome(
                NO_UNKNOWN_FIELDS,
                not self.unknown,
                (
                    f"fields no column reads (kept in `raw`): {', '.join(sorted(self.unknown))}"
                    if self.unknown
                    else "no field outside the declared columns"
                ),
                unknown_fields=", ".join(sorted(self.unknown)),
                nodes_sampled=self.sampled,
            ),
        ]

    def markdown(self) -> str:
        """Per summary column, its most frequent values and their rows, as one Markdown table."""
        lines = ["| column | value | rows |", "|---|---|---:|"]
        for name in self.summary_columns:
            counter = self.counts.get(name, Counter())
            for value, n in counter.most_common(TOP_VALUES):
                lines.append(f"| {name} | {_cell(value)} | {n} |")
            others = sum(counter.values()) - sum(n for _, n in counter.most_common(TOP_VALUES))
            if others:
                lines.append(f"| {name} | (others) | {others} |")
        if len(lines) == 2:
            lines.append("| (no rows) | | 0 |")
        return "\n".join(lines)


def _cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")


def unknown_fields(table: Table, node: Any) -> list[str]:
    """Dotted paths of ``node``'s fields that no column of ``table`` reads (JSON columns' insides
    are the column's own)."""
    found: list[str] = []

    def walk(value: Any, branch: dict[str, Any], prefix: str) -> None:
        if not isinstance(value, dict):
            return
        for key, sub in value.items():
            if key not in branch:
                found.append(prefix + key)
            elif isinstance(branch[key], dict):
                walk(sub, branch[key], f"{prefix}{key}.")

    walk(node, _known(table), "")
    return found


_KNOWN: dict[str, dict[str, Any]] = {}


def _known(table: Table) -> dict[str, Any]:
    """The fields the columns read, as a tree: a column's leaf (or a JSON column) is a ``Kind``."""
    if table.name not in _KNOWN:
        tree: dict[str, Any] = {}
        for column in table.columns:
            for path in column.paths:
                branch = tree
                for part in path[:-1]:
                    branch = branch.setdefault(part, {})
                branch.setdefault(path[-1], column.kind)
        _KNOWN[table.name] = tree
    return _KNOWN[table.name]
