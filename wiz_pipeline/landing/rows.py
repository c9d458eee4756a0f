"""A data type's nodes as msgspec structs of only the fields its columns read, and those structs as
Arrow columns.

Each node is decoded once, by the client, into the struct ``row_type`` (the id and the time field
among its fields, so that the window fetch reads them from the same structs). Columns are then made
a level of nesting at a time: ``msgspec.structs.astuple`` and ``zip`` turn a level's structs into
one tuple per field in C, rather than one Python step per value and column, and each tuple becomes
an Arrow array from its buffers (``arrays``). Where an object on a column's path is missing (or is
something else than an object) in some nodes, the level below is read from the nodes that have it,
and its values are placed at those nodes' rows (null elsewhere).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

from wiz_pipeline.data_types.columns import Column, Kind
from wiz_pipeline.landing.arrays import not_none, numbers, placed, spread, string_array, strings
from wiz_pipeline.landing.times import MICROS_UTC, parse_times

Path = tuple[str, ...]
# The root struct's fields for these two are named so, for the client (``WizClient.paginate``).
ID_FIELD, TIME_FIELD = "id", "time"


@dataclass(frozen=True)
class _Branch:
    """One object on the columns' paths: its struct, and per field (in the struct's order) the
    node's key and what is below it: a leaf's ``Kind``, or the next object."""

    struct: type[msgspec.Struct]
    fields: tuple[tuple[str, Kind | _Branch], ...]


class RowShape:
    """The structs one data type's nodes are decoded into, and how they become columns."""

    def __init__(self, name: str, columns: Sequence[Column], time_field: str) -> None:
        tree: dict[str, Any] = {}
        for path, kind in [((ID_FIELD,), Kind.TEXT), ((time_field,), Kind.TIME)] + [
            (path, column.kind) for column in columns for path in column.paths
        ]:
            branch = tree
            for part in path[:-1]:
                branch = branch.setdefault(part, {})
                if not isinstance(branch, dict):
                    raise ValueError(f"{name}: {part!r} is both a value and an object")
            if isinstance(branch.get(path[-1]), dict):
                raise ValueError(f"{name}: {path[-1]!r} is both a value and an object")
            branch[path[-1]] = kind
        for key in (ID_FIELD, time_field):
            if tree[key] is Kind.JSON:
                raise ValueError(f"{name}: {key!r} places and identifies a node; it can't be a JSON column")
        self.name, self.time_field = name, time_field
        self._counter = itertools.count()
        self.root = self._branch(tree, {ID_FIELD: ID_FIELD, time_field: TIME_FIELD})
        self.row_type = self.root.struct
        self.decoder = msgspec.json.Decoder(list[self.row_type])

    def _branch(self, tree: dict[str, Any], names: dict[str, str]) -> _Branch:
        fields: list[tuple[str, Any, Any]] = []
        rename: dict[str, str] = {}
        below: list[tuple[str, Kind | _Branch]] = []
        for key, sub in tree.items():
            attr = names.get(key) or f"f{next(self._counter)}"
            rename[attr] = key
            if isinstance(sub, dict):
                branch = self._branch(sub, {})
                # Anything else where an object should be (a string, a list) is taken by the union,
                # and the columns below get null, as a lookup in a missing object does.
                fields.append((attr, branch.struct | str | int | float | bool | list | None, None))
                below.append((key, branch))
            else:
                fields.append((attr, msgspec.Raw if sub is Kind.JSON else Any, None))
                below.append((key, sub))
        # gc=False: the structs hold no references back, so the collector needn't track them.
        struct = msgspec.defstruct(f"{self.name}_node", fields, rename=rename, gc=False)
        return _Branch(struct, tuple(below))

    def decode(self, raw: Sequence[bytes | msgspec.Raw]) -> list[Any]:
        """Nodes not decoded by the client yet (tests, tools)."""
        return self.decoder.decode(b"[" + b",".join(raw) + b"]")

    def leaves(self, rows: Sequence[Any]) -> dict[Path, tuple[Sequence[Any], np.ndarray | None]]:
        """Per leaf path, its values and the rows they belong to (None: every row, in order)."""
        found: dict[Path, tuple[Sequence[Any], np.ndarray | None]] = {}
        self._level(self.root, rows, None, (), found)
        return found

    def _level(
        self,
        branch: _Branch,
        structs: Sequence[Any],
        rows: np.ndarray | None,
        prefix: Path,
        found: dict[Path, tuple[Sequence[Any], np.ndarray | None]],
    ) -> None:
        fields = zip(*map(msgspec.structs.astuple, structs), strict=True) if structs else iter(tuple, None)
        for (key, sub), values in zip(branch.fields, fields, strict=False):
            path = (*prefix, key)
            if not isinstance(sub, _Branch):
                found[path] = (values, rows)
                continue
            present = _present(values, sub.struct)
            if present is None:
                self._level(sub, values, rows, path, found)
            else:
                index = np.flatnonzero(present)
                self._level(
                    sub,
                    list(itertools.compress(values, present)),
                    index if rows is None else rows[index],
                    path,
                    found,
                )


def _present(values: Sequence[Any], struct: type) -> np.ndarray | None:
    """Which of ``values`` are ``struct``s (None: all of them)."""
    kinds = set(map(type, values))
    if kinds <= {struct}:
        return None
    if kinds <= {struct, type(None)}:
        return not_none(values)
    return np.fromiter((type(v) is struct for v in values), bool, len(values))  # odd values: rare


def _float(value: Any) -> float | None:
    return float(value) if type(value) in (float, int) else None  # type(): a bool is no number


def _int(value: Any) -> int | None:
    return value if type(value) is int and -(2**63) <= value < 2**63 else None


def _bool(value: Any) -> bool | None:
    return value if type(value) is bool else None


# JSON scalars by column kind: the Arrow type, and the value or None of what msgspec decoded.
_SCALARS: dict[Kind, tuple[pa.DataType, Callable[[Any], Any]]] = {
    Kind.FLOAT: (pa.float64(), _float),
    Kind.INT: (pa.int64(), _int),
    Kind.BOOL: (pa.bool_(), _bool),
}


def column_array(column: Column, values: Sequence[Any], rows: np.ndarray | None, count: int) -> pa.Array:
    """The column of one of ``column``'s paths over ``count`` rows, from that path's leaf values
    (which go to ``rows``, or one to each row in order)."""
    if column.kind is Kind.TIME:
        micros, readable = parse_times(values)
        return numbers(MICROS_UTC, micros, readable, rows, count)
    if column.kind is Kind.JSON:
        return json_array(values, rows, count)
    if column.kind in _SCALARS:
        arrow_type, convert = _SCALARS[column.kind]
        # A value of another type (a number as text, a flag as 0/1) is null; `raw` keeps it.
        array = pa.array([convert(v) for v in values], arrow_type)
        return array if rows is None else spread(array, rows, count)
    array = strings(values, rows, count)
    if array is None:  # a number, object or list where text was expected: kept as JSON (rare)
        array = pa.array([_text(v) for v in values], pa.string())
        return array if rows is None else spread(array, rows, count)
    return array


def json_array(
    values: Sequence[msgspec.Raw | None], rows: np.ndarray | None = None, count: int = 0
) -> pa.Array:
    """JSON text exactly as received (a JSON null, or no value at all, is null), in one join."""
    count = count if rows is not None else len(values)
    at, texts = placed(values, rows)
    lengths = np.fromiter(map(len, texts), np.int64, len(texts))
    # `null` is the only JSON value of four bytes that starts with n; few are four bytes long.
    nulls = [i for i in np.flatnonzero(lengths == 4).tolist() if bytes(texts[i]) == b"null"]
    if nulls:
        kept = np.ones(len(texts), bool)
        kept[nulls] = False
        texts, lengths = list(itertools.compress(texts, kept)), lengths[kept]
        at = np.flatnonzero(kept) if at is None else at[kept]
    array = string_array(lengths, b"".join(texts), at, count)
    array.validate(full=True)  # UTF-8, as converting the bytes to text always checked
    return array


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return msgspec.json.encode(value).decode()
