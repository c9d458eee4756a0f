"""Collection windows: half-open UTC time ranges on whole-interval boundaries, and their partition keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

# Partition keys name a window's start; minutes are kept for daily windows too, so that keys (and
# file names) read the same whatever the interval.
KEY_FORMAT = "%Y-%m-%d-%H:%M"


def floor_to_window(when: datetime, interval_seconds: int) -> datetime:
    """The start of the window holding ``when``. Windows divide a UTC day, so they line up with the epoch."""
    seconds = int(when.timestamp())
    return datetime.fromtimestamp(seconds - seconds % interval_seconds, tz=UTC)


@dataclass(frozen=True)
class Window:
    """One partition's half-open time range as collected: the first one starts at the seed.

    ``boundary`` is the partition's own start, which names its file even when ``start`` is the seed.
    """

    key: str
    start: datetime
    end: datetime
    boundary: datetime
