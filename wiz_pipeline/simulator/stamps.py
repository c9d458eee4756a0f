"""Helpers every part of the simulated tenant shares: Wiz-style timestamps and a cheap hash."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["mix", "wiz_time"]


def wiz_time(value: datetime, digits: int = 6) -> str:
    """Wiz-style timestamp: ``Z`` suffix, 0 to 6 fractional digits (the API's length varies)."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    text = value.isoformat(timespec="microseconds")  # isoformat: a few times faster than strftime
    frac = text[20 : 20 + digits].rstrip("0") if digits else ""
    return text[:19] + ("." + frac if frac else "") + "Z"


def mix(value: int) -> int:
    """splitmix64: a cheap, well-spread hash of an index."""
    value = (value + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return value ^ (value >> 31)
