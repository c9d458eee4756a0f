"""Collection windows: half-open UTC time ranges on whole-interval boundaries, and their partition keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

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


@dataclass(frozen=True)
class WindowGrid:
    """Windows of ``seconds`` each, numbered from 0 at ``first`` (a partitions' start): window ``i`` is
    ``[start_of(i), start_of(i + 1))``, named ``key_of(i)``.

    Worked out arithmetically (a year of one-minute windows is 525,600 of them): asking Dagster for
    its partition keys takes long enough to time a schedule tick out.
    """

    first: datetime
    seconds: int

    @property
    def step(self) -> timedelta:
        return timedelta(seconds=self.seconds)

    def start_of(self, index: int) -> datetime:
        return self.first + index * self.step

    def key_of(self, index: int) -> str:
        return self.start_of(index).strftime(KEY_FORMAT)

    def index_of(self, when: datetime) -> int:
        """The window holding ``when`` (negative before the first window)."""
        return (when - self.first) // self.step

    def count_until(self, until: datetime) -> int:
        """How many windows end at or before ``until`` (0 before the first one ends): windows
        ``range(count_until(until))``."""
        return max(0, self.index_of(until))

    def overlapping(self, start: datetime, end: datetime) -> range:
        """The windows overlapping ``[start, end)``, none before the first (empty if there are none)."""
        after_end = -((self.first - end) // self.step)  # the first window starting at or after ``end``
        return range(max(0, self.index_of(start)), after_end)

    def starts(self, indices: range) -> list[datetime]:
        first, step = self.first, self.step
        return [first + i * step for i in indices]

    def keys(self, indices: range) -> list[str]:
        """``key_of(i)`` for each of ``indices``, as ``KEY_FORMAT`` reads, formatted a day at a time:
        strftime for each of a year of one-minute windows costs a second."""
        keys = []
        day, dash = None, ""
        at, gap = self.start_of(indices.start), self.step * indices.step
        for _ in indices:
            if at.date() != day:
                day = at.date()
                dash = f"{day:%Y-%m-%d}-"
            keys.append(f"{dash}{at.hour:02d}:{at.minute:02d}")
            at += gap
        return keys
