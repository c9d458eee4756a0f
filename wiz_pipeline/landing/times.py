"""Many timestamps parsed at once with Arrow, as ``core.times.parse_time`` reads one."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wiz_pipeline.core.times import parse_time
from wiz_pipeline.landing.arrays import int64s, strings

MICROS_UTC = pa.timestamp("us", tz="UTC")
_NANOS_UTC = pa.timestamp("ns", tz="UTC")


def parse_times(values: Sequence[object]) -> tuple[np.ndarray, np.ndarray]:
    """Many values at once, as ``parse_time`` reads one: (microseconds since the epoch, readable).

    Arrow's ISO-8601 parser reads a whole batch in one call (any fraction length up to
    nanoseconds, ``Z`` or an offset); it rejects the whole batch if one value is odd (no offset,
    surrounding spaces, not a time, out of its range), and only then is each value read with
    ``parse_time``. Unreadable values are 0 and not readable.
    """
    texts = strings(values)
    if texts is None:  # a number or an object among them
        texts = strings([v if type(v) is str else None for v in values])
    try:
        # Truncating nanoseconds to microseconds, as parse_time does with longer fractions.
        parsed = pc.cast(texts, _NANOS_UTC).cast(MICROS_UTC, safe=False)
    except pa.ArrowException:
        parsed = pa.array([parse_time(v) for v in values], MICROS_UTC)
    return int64s(parsed.cast(pa.int64()))
