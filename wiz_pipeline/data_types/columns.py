"""How a data type declares its columns: a name, a kind and where in the node the value is.

Declarations only: ``landing.tables`` turns them into Arrow types and builds the columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Kind(Enum):
    TEXT = "text"  # a string; anything else as JSON text
    TIME = "time"  # an ISO-8601 timestamp, null when it doesn't parse
    JSON = "json"  # any JSON value, as JSON text
    FLOAT = "float"  # a JSON number, as a double; anything else null
    INT = "int"  # a JSON integer, as a 64-bit integer; anything else null
    BOOL = "bool"  # true or false; anything else null


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    path: tuple[str, ...]  # where the value is in the node; several alternatives are tried in order
    alternatives: tuple[tuple[str, ...], ...] = ()
    strip: bool = False  # surrounding whitespace removed
    doc: str = ""

    @property
    def paths(self) -> tuple[tuple[str, ...], ...]:
        return (self.path, *self.alternatives)


def text(name: str, *path: str, doc: str = "", alternatives: tuple[tuple[str, ...], ...] = ()) -> Column:
    return Column(name, Kind.TEXT, path, alternatives, doc=doc)


def when(name: str, *path: str, doc: str = "") -> Column:
    return Column(name, Kind.TIME, path, doc=doc)


def as_json(name: str, *path: str, doc: str = "") -> Column:
    return Column(name, Kind.JSON, path, doc=doc)


def number(name: str, *path: str, doc: str = "") -> Column:
    return Column(name, Kind.FLOAT, path, doc=doc)


def count(name: str, *path: str, doc: str = "") -> Column:
    return Column(name, Kind.INT, path, doc=doc)


def flag(name: str, *path: str, doc: str = "") -> Column:
    return Column(name, Kind.BOOL, path, doc=doc)


RAW_DOC = "the whole node, JSON, byte for byte as received"
