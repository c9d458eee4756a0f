"""Timestamps as Wiz sends them (ISO 8601, fractions of any length) and as we send them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def parse_time(value: object) -> datetime | None:
    """A timezone-aware UTC datetime, or None if ``value`` is missing or not a timestamp.

    Fractions beyond microseconds are truncated, which never moves a time across a window
    boundary (boundaries are whole seconds). A timestamp without an offset is taken as UTC.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_time(value: datetime) -> str:
    """``2025-09-12T21:00:09Z`` (with microseconds only when there are any)."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: pass timezone-aware UTC times")
    text = value.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)
MICROS_UTC = pa.timestamp("us", tz="UTC")
_NANOS_UTC = pa.timestamp("ns", tz="UTC")


def to_micros(value: datetime) -> int:
    """Microseconds since the epoch, the unit of parsed time columns."""
    return (value - EPOCH) // _ONE_MICROSECOND


def from_micros(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(value))


def parse_times(values: Sequence[object]) -> tuple[np.ndarray, np.ndarray]:
    """Many values at once, as ``parse_time`` reads one: (microseconds since the epoch, readable).

    Arrow's ISO-8601 parser reads a whole batch in one call (any fraction length up to
    nanoseconds, ``Z`` or an offset); it rejects the whole batch if one value is odd (no offset,
    surrounding spaces, not a time, out of its range), and only then is each value read with
    ``parse_time``. Unreadable values are 0 and not readable.
    """
    try:
        strings = pa.array(values, pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid):  # a number or an object among them
        strings = pa.array([v if type(v) is str else None for v in values], pa.string())
    try:
        # Truncating nanoseconds to microseconds, as parse_time does with longer fractions.
        parsed = pc.cast(strings, _NANOS_UTC).cast(MICROS_UTC, safe=False)
    except pa.ArrowException:
        parsed = pa.array([parse_time(v) for v in values], MICROS_UTC)
    readable = parsed.is_valid().to_numpy(zero_copy_only=False)
    micros = pc.fill_null(parsed.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
    return micros, readable
