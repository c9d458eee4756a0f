"""A client-side request-rate limiter shared by everything that uses one client."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# Grants are spaced 1% further apart than 1/rate. Over a one-second window that leaves about
# 10 ms of slack at any rate, so a server that timestamps arrivals with its own scheduling jitter
# still counts at most `rate` requests in any second.
_SAFETY = 1.01


class RateLimiter:
    """Spaces request starts at least ``1/rate`` seconds apart (no bursts), across threads.

    Smooth spacing rather than a token bucket: the Wiz limit is per service account and shared
    by all queries, and a burst is exactly what trips a server-side sliding window.
    ``pause_until`` lets a 429 hold back every thread, not just the one that got it.
    """

    def __init__(
        self,
        requests_per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not requests_per_second > 0:
            raise ValueError(f"requests_per_second must be > 0, got {requests_per_second!r}")
        self.requests_per_second = requests_per_second
        self._interval = _SAFETY / requests_per_second
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_slot = 0.0
        self._paused_until = 0.0

    def acquire(self) -> float:
        """Block until this caller may start a request; return the seconds waited."""
        start = self._clock()
        while True:
            with self._lock:
                now = self._clock()
                slot = max(now, self._next_slot)
                self._next_slot = slot + self._interval
                paused_until = self._paused_until
            if slot - now > 0:
                self._sleep(slot - now)
            # A 429 that arrived while we slept moves every start after it, including slots that
            # were handed out before it: take a fresh slot behind the pause instead of going ahead.
            with self._lock:
                if self._paused_until <= paused_until or self._paused_until <= slot:
                    return max(self._clock() - start, 0.0)

    def pause_until_after(self, seconds: float) -> None:
        """No request may start in the next ``seconds`` (the server asked us to back off)."""
        with self._lock:
            until = self._clock() + seconds
            self._paused_until = max(self._paused_until, until)
            self._next_slot = max(self._next_slot, until)
