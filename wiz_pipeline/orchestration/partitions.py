"""Polling interval -> Dagster time windows, and where the first window starts.

A ``TimeWindowPartitionsDefinition`` whose start is not on a window boundary silently begins at the
next boundary; with a seed of 21:00:09 and 30-minute windows, everything from 21:00:09 to 21:30 would
never be collected. So the partitions start at the boundary at or before the seed, and the first
window is collected from the seed itself: ``[seed, first boundary)``. Nothing before the seed is
fetched or written.
"""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from wiz_pipeline.core.times import format_time
from wiz_pipeline.core.windows import KEY_FORMAT, Window, floor_to_window


def cron_for(interval_seconds: int, offset_seconds: int = 0) -> str:
    """A cron expression ticking every ``interval_seconds``, ``offset_seconds`` (rounded up to whole
    minutes) after each window boundary."""
    if interval_seconds % 60 or 86400 % interval_seconds:
        raise ValueError(f"{interval_seconds} s does not divide a day into whole minutes")
    offset = -(-offset_seconds // 60) % (interval_seconds // 60)  # minutes after each boundary
    if interval_seconds <= 3600:
        step = interval_seconds // 60
        minutes = ",".join(str(m) for m in range(offset % step, 60, step))
        return f"{minutes} * * * *"
    step_hours = interval_seconds // 3600
    hours = ",".join(str(h) for h in range(offset // 60, 24, step_hours))
    return f"{offset % 60} {hours} * * *"


def window_partitions(seed: datetime, interval_seconds: int) -> dg.TimeWindowPartitionsDefinition:
    return dg.TimeWindowPartitionsDefinition(
        start=floor_to_window(seed, interval_seconds),
        cron_schedule=cron_for(interval_seconds),
        fmt=KEY_FORMAT,
        timezone="UTC",
    )


def windows_for(
    partitions_def: dg.TimeWindowPartitionsDefinition, keys: list[str], seed: datetime
) -> list[Window]:
    windows = []
    for key in keys:
        tw = partitions_def.time_window_for_partition_key(key)
        start, end = tw.start.astimezone(UTC), tw.end.astimezone(UTC)
        if end <= seed:
            raise ValueError(f"window {key} ends before the seed {format_time(seed)}")
        windows.append(Window(key=key, start=max(start, seed), end=end, boundary=start))
    return windows
