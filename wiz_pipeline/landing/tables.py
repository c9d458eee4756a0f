"""How Wiz nodes become Parquet rows, a batch at a time (each data type's columns are in ``data_types/``).

Every field in the shared API notes gets a typed snake_case column: times as UTC timestamps, nested
objects flattened where they hold scalars, and free-form values (action parameters, tags, projects,
tickets, notes) kept as JSON text, as received. The ``raw`` column holds each node's bytes exactly as
the API sent them, so no field the API adds later is lost. Values of an unexpected type never fail a
window: a timestamp that does not parse becomes null (``raw`` still has it), and a non-text value in a
text column is kept as JSON.

Each node is decoded once, into msgspec structs of only the fields the columns read (``rows``); the
client does it as it reads a page, and the window fetch takes each node's id and time from the same
structs. Each column is then made with one Arrow call per path; times go through Arrow's ISO-8601
parser, the time field's once for the fetch and the column both.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wiz_pipeline.data_types import DataType
from wiz_pipeline.data_types.columns import RAW_DOC, Column, Kind, as_json, text, when
from wiz_pipeline.landing.arrays import joined, numbers
from wiz_pipeline.landing.rows import RowShape, column_array
from wiz_pipeline.landing.times import MICROS_UTC

if TYPE_CHECKING:
    from wiz_pipeline.core.records import Nodes

TIMESTAMP = MICROS_UTC


__all__ = [
    "RAW_DOC",
    "Column",
    "Kind",
    "Table",
    "arrow_type",
    "as_json",
    "columns_table",
    "table_for",
    "text",
    "when",
]


_ARROW_TYPES = {Kind.TIME: TIMESTAMP, Kind.FLOAT: pa.float64(), Kind.INT: pa.int64(), Kind.BOOL: pa.bool_()}


# Every window file's last column: the window's start, the same in each row (``landing.files``).
WINDOW_COLUMN = "window_start"
WINDOW_FIELD = pa.field(WINDOW_COLUMN, TIMESTAMP)


def file_schema(table: Table) -> pa.Schema:
    """The columns of a window's file: the data type's, then ``window_start``."""
    return table.schema.append(WINDOW_FIELD)


def arrow_type(column: Column) -> pa.DataType:
    return _ARROW_TYPES.get(column.kind, pa.string())


@functools.cache
def table_for(data_type: DataType) -> Table:
    """The Parquet table of a data type's windows."""
    return Table(data_type.name, data_type.columns, time_field=data_type.time_field)


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    time_field: str  # the node field that places a row in its window (parsed once, by collect.fetch)

    @functools.cached_property
    def schema(self) -> pa.Schema:
        return pa.schema(
            [*(pa.field(c.name, arrow_type(c)) for c in self.columns), pa.field("raw", pa.string())]
        )

    @functools.cached_property
    def shape(self) -> RowShape:
        return RowShape(self.name, self.columns, self.time_field)

    @property
    def row_type(self) -> type[msgspec.Struct]:
        """The struct a node is decoded into: the columns' fields, with the node's id as ``id`` and
        its time field as ``time`` (as ``WizClient.paginate`` reads them)."""
        return self.shape.row_type

    def to_batch(self, nodes: Nodes) -> pa.RecordBatch:
        return self.rows_to_batch(nodes.raw, (nodes.micros, nodes.readable), nodes.rows)

    def rows_to_batch(
        self,
        raw: Sequence[bytes | msgspec.Raw],
        times: tuple[np.ndarray, np.ndarray] | None = None,
        rows: Sequence[Any] | None = None,
    ) -> pa.RecordBatch:
        """``raw``: each node's JSON bytes; ``times``: its ``time_field`` already parsed, if it was;
        ``rows``: the nodes already decoded as ``row_type``, if they were."""
        shape = self.shape
        if rows is None:
            rows = shape.decode(raw)
        leaves = shape.leaves(rows)
        arrays = []
        for column in self.columns:
            if times is not None and column.kind is Kind.TIME and column.path == (self.time_field,):
                micros, readable = times
                arrays.append(numbers(TIMESTAMP, micros, readable))
                continue
            found = [column_array(column, *leaves[path], len(rows)) for path in column.paths]
            array = found[0] if len(found) == 1 else pc.coalesce(*found)
            arrays.append(pc.utf8_trim_whitespace(array) if column.strip else array)
        arrays.append(joined(raw))
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)


_DOC_TYPES = {Kind.TIME: "timestamp (UTC)", Kind.FLOAT: "double", Kind.INT: "int64", Kind.BOOL: "bool"}


def columns_table(data_type: DataType) -> str:
    """The Markdown table of a data type's columns, as in docs/output.md (a test keeps them equal)."""
    lines = ["| column | type | from the node | notes |", "|---|---|---|---|"]
    for c in data_type.columns:
        source = " or ".join(".".join(path) for path in c.paths)
        lines.append(f"| `{c.name}` | {_DOC_TYPES.get(c.kind, 'string')} | `{source}` | {c.doc} |")
    lines.append("| `raw` | string | the whole node | JSON, byte for byte as received |")
    return "\n".join(lines)
