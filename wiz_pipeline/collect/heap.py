"""The garbage collector kept out of the way while pages stream in."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

# Young objects a collection waits for (Python's default is 700). A page makes thousands of
# short-lived containers (its rows' tuples and lists), which reference counting frees; at 700 the
# collector ran a couple of times per page over whatever page was in hand, more than a microsecond a
# record. The objects a page makes hold no cycles, so collecting rarely lets no garbage pile up.
YOUNG_THRESHOLD = 100_000


@contextlib.contextmanager
def collecting_rarely() -> Iterator[None]:
    """Everything that exists now is left out of collections (``gc.freeze``: each full one would
    walk the whole heap, Dagster's included, again), and young objects are collected rarely."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(thresholds[0], YOUNG_THRESHOLD), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
