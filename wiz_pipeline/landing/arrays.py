"""Arrow arrays made from their buffers: strings joined in one step, numbers from numpy.

Two reasons not to hand Python values to ``pa.array``: it converts them one at a time (tens of
nanoseconds each, the most expensive step of a batch after decoding), and its first call in a
process imports pandas (half a second, for nothing: a collection needs no pandas).
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa


def strings(values: Sequence[Any], rows: np.ndarray | None = None, count: int = 0) -> pa.Array | None:
    """``values`` (strings and None) as a string array; None if one of them is something else.
    With ``rows``, the array has ``count`` rows and the values go to those (null elsewhere)."""
    at, texts = placed(values, rows)
    try:
        joined = "".join(texts)
        data = joined.encode()
    except (TypeError, UnicodeEncodeError):  # not a string; a lone surrogate (no UTF-8 for it)
        return None
    # Characters are bytes when every text is ASCII, the usual case; else each is measured.
    sized = texts if len(data) == len(joined) else map(str.encode, texts)
    lengths = np.fromiter(map(len, sized), np.int64, len(texts))
    return string_array(lengths, data, at, count if rows is not None else len(values))


def joined(texts: Sequence[bytes | msgspec.Raw]) -> pa.Array:
    """One string per bytes-like (UTF-8 not checked), in one join: no Python object per value."""
    return string_array(np.fromiter(map(len, texts), np.int64, len(texts)), b"".join(texts))


def string_array(lengths: np.ndarray, data: bytes, at: np.ndarray | None = None, count: int = 0) -> pa.Array:
    """The strings of ``lengths`` one after the other in ``data``; with ``at``, placed at those of
    ``count`` rows, null elsewhere (which costs no copy: a null is a zero length)."""
    bitmap = None
    if at is not None:
        placed = np.zeros(count, np.int64)
        placed[at] = lengths
        lengths, bitmap = placed, _bitmap(_mask(at, count))
    offsets = np.zeros(len(lengths) + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.Array.from_buffers(
        pa.string(), len(lengths), [bitmap, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def placed(values: Sequence[Any], rows: np.ndarray | None) -> tuple[np.ndarray | None, Sequence[Any]]:
    """The values that are not None, and the rows they go to (None: each to its own, in order)."""
    given = not_none(values)
    if given is None:
        return rows, values
    at = np.flatnonzero(given)
    return (at if rows is None else rows[at]), list(itertools.compress(values, given))


def _mask(at: np.ndarray, count: int) -> np.ndarray:
    mask = np.zeros(count, bool)
    mask[at] = True
    return mask


def numbers(
    arrow_type: pa.DataType,
    values: np.ndarray,
    valid: np.ndarray | None = None,
    rows: np.ndarray | None = None,
    count: int = 0,
) -> pa.Array:
    """A fixed-width array (integers, timestamps) over ``values``, null where ``valid`` is False;
    with ``rows``, of ``count`` rows with the values at those (null elsewhere)."""
    if rows is not None:
        placed = np.zeros(count, values.dtype)
        placed[rows] = values
        values, valid = placed, _mask(rows if valid is None else rows[valid], count)
    bitmap = None if valid is None or valid.all() else _bitmap(valid)
    return pa.Array.from_buffers(
        arrow_type, len(values), [bitmap, pa.py_buffer(np.ascontiguousarray(values))]
    )


def _bitmap(values: np.ndarray) -> pa.Buffer:
    return pa.py_buffer(np.packbits(values, bitorder="little"))


def spread(array: pa.Array, rows: np.ndarray, count: int) -> pa.Array:
    """``array``'s values placed at ``rows`` (ascending) of ``count`` rows, null elsewhere."""
    index = np.full(count, -1, np.int64)
    index[rows] = np.arange(len(rows))
    # Take writes nothing for a null, so no bytes are left behind one.
    return array.take(numbers(pa.int64(), index, index >= 0))


def int64s(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """An int64 array's values (0 where null) and which are valid, read from its buffers
    (``to_numpy`` of a boolean array is what would import pandas)."""
    count, offset = len(array), array.offset
    validity, data = array.buffers()
    values = np.frombuffer(data, np.int64, count, offset * 8)
    if validity is None:
        return values, np.ones(count, bool)
    bits = np.unpackbits(np.frombuffer(validity, np.uint8), bitorder="little")
    valid = bits[offset : offset + count].astype(bool)
    return np.where(valid, values, 0), valid


def not_none(values: Sequence[Any]) -> np.ndarray | None:
    """Which of ``values`` are not None (None: all of them)."""
    given = np.fromiter(map(operator.is_not, values, itertools.repeat(None)), bool, len(values))
    return None if given.all() else given
