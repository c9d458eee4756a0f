"""Timestamps as Wiz sends them (ISO 8601, fractions of any length) and as we send them, one at a time.

Pure Python, so that the client and the simulator can use it without loading Arrow; many at once is
``wiz_pipeline.landing.times.parse_times``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


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


def to_micros(value: datetime) -> int:
    """Microseconds since the epoch, the unit of parsed time columns."""
    return (value - EPOCH) // _ONE_MICROSECOND


def from_micros(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(value))
