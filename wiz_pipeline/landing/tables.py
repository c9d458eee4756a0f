"""How Wiz nodes become Parquet rows, a batch at a time (each data type's columns are in ``data_types/``).

Every field in the shared API notes gets a typed snake_case column: times as UTC timestamps, nested
objects flattened where they hold scalars, and free-form values (action parameters, tags, projects,
tickets, notes) kept as JSON text, as received. The ``raw`` column holds each node's bytes exactly as
the API sent them, so no field the API adds later is lost. Values of an unexpected type never fail a
window: a timestamp that does not parse becomes null (``raw`` still has it), and a non-text value in a
text column is kept as JSON.

A batch is decoded by msgspec into structs built from the column paths (only the fields the columns
read), and each column is made with one Arrow call; times go through Arrow's ISO-8601 parser.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wiz_pipeline.data_types import DataType
from wiz_pipeline.data_types.columns import RAW_DOC, Column, Kind, as_json, text, when
from wiz_pipeline.landing.times import MICROS_UTC, parse_times

if TYPE_CHECKING:
    from wiz_pipeline.core.records import Nodes

TIMESTAMP = MICROS_UTC


__all__ = ["RAW_DOC", "Column", "Kind", "Table", "arrow_type", "as_json", "table_for", "text", "when"]


def arrow_type(column: Column) -> pa.DataType:
    return TIMESTAMP if column.kind is Kind.TIME else pa.string()


@functools.cache
def table_for(data_type: DataType) -> Table:
    """The Parquet table of a data type's windows."""
    return Table(data_type.name, data_type.columns, time_field=data_type.time_field)


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    time_field: str  # the node field that places a row in its window (parsed once, in wiz/)

    @property
    def schema(self) -> pa.Schema:
        return pa.schema(
            [*(pa.field(c.name, arrow_type(c)) for c in self.columns), pa.field("raw", pa.string())]
        )

    def to_batch(self, nodes: Nodes) -> pa.RecordBatch:
        return self.rows_to_batch(nodes.raw, (nodes.micros, nodes.readable))

    def rows_to_batch(
        self,
        raw: Sequence[bytes | msgspec.Raw],
        times: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> pa.RecordBatch:
        """``raw``: each node's JSON bytes; ``times``: its ``time_field`` already parsed, if it was."""
        decoder, getters = _decoder(self)
        rows = decoder.decode(b"[" + b",".join(raw) + b"]")
        memo: dict[tuple[str, ...], list[Any]] = {}
        arrays = []
        for column in self.columns:
            if times is not None and column.kind is Kind.TIME and column.path == (self.time_field,):
                micros, readable = times
                arrays.append(pa.array(micros, TIMESTAMP, mask=~readable))
                continue
            found = [_column_array(column, getter(rows, memo)) for getter in getters[column.name]]
            arrays.append(found[0] if len(found) == 1 else pc.coalesce(*found))
        arrays.append(_raw_array(raw))
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)


def _column_array(column: Column, values: list[Any]) -> pa.Array:
    if column.kind is Kind.TIME:
        micros, readable = parse_times(values)
        return pa.array(micros, TIMESTAMP, mask=~readable)
    if column.kind is Kind.JSON:
        texts = [None if raw is None or (b := bytes(raw)) == b"null" else b for raw in values]
        return pa.array(texts, pa.binary()).cast(pa.string())
    try:
        array = pa.array(values, pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid):  # a number, object or list where text was expected
        array = pa.array([_text(v) for v in values], pa.string())
    return pc.utf8_trim_whitespace(array) if column.strip else array


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return msgspec.json.encode(value).decode()


def _raw_array(raw: Sequence[bytes | msgspec.Raw]) -> pa.Array:
    """One string column over all the nodes' bytes, without a Python string per node."""
    lengths = np.fromiter(map(len, raw), dtype=np.int64, count=len(raw))
    offsets = np.zeros(len(raw) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    data = b"".join(raw)
    return pa.Array.from_buffers(pa.string(), len(raw), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


@functools.cache
def _decoder(table: Table) -> tuple[msgspec.json.Decoder, dict[str, list[Any]]]:
    """A decoder for a list of nodes that reads only the fields the columns use, and per column
    (per alternative path) a function from the decoded rows to that column's values.

    Each object on a column's path becomes a struct; where a node has something else there (a
    string where an object should be), the struct's union takes it and the column gets null, as a
    lookup in a missing object does. Leaves are kept as decoded (text, times) or as raw JSON.
    """
    tree: dict[str, Any] = {}
    for column in table.columns:
        for path in column.paths:
            branch = tree
            for part in path[:-1]:
                branch = branch.setdefault(part, {})
                if not isinstance(branch, dict):
                    raise ValueError(f"{table.name}: {part!r} is both a value and an object")
            branch[path[-1]] = column.kind
    counter = iter(range(10**6))

    def struct(branch: dict[str, Any]) -> type[msgspec.Struct]:
        fields: list[tuple[str, Any, Any]] = []
        rename: dict[str, str] = {}
        for key, sub in branch.items():
            attr = f"f{next(counter)}"
            rename[attr] = key
            if isinstance(sub, dict):
                fields.append((attr, struct(sub) | str | int | float | bool | list | None, None))
            elif sub is Kind.JSON:
                fields.append((attr, msgspec.Raw, None))
            else:
                fields.append((attr, Any, None))
            sub_attrs[id(branch), key] = attr
        made = msgspec.defstruct(f"{table.name}_node", fields, rename=rename, gc=False)
        struct_of[id(branch)] = made
        return made

    sub_attrs: dict[tuple[int, str], str] = {}
    struct_of: dict[int, type[msgspec.Struct]] = {}
    root = struct(tree)

    def getter(path: tuple[str, ...]) -> Any:
        steps = []
        branch = tree
        for part in path:
            steps.append((sub_attrs[id(branch), part], struct_of[id(branch)]))
            branch = branch.get(part) if isinstance(branch.get(part), dict) else {}

        def values(rows: list[Any], memo: dict[tuple[str, ...], list[Any]]) -> list[Any]:
            """The values at ``path``; ``memo`` keeps each prefix's values for the other columns
            under the same object (a dozen columns read `entitySnapshot`)."""
            found = rows
            for depth, (attr, owner) in enumerate(steps, 1):
                prefix = path[:depth]
                if prefix in memo:
                    found = memo[prefix]
                elif depth == 1:
                    found = memo[prefix] = list(map(operator.attrgetter(attr), found))
                else:
                    found = memo[prefix] = [getattr(v, attr) if type(v) is owner else None for v in found]
            return found

        return values

    getters = {c.name: [getter(p) for p in c.paths] for c in table.columns}
    return msgspec.json.Decoder(list[root]), getters
