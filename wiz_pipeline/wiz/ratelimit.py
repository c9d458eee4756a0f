"""A client-side request-rate limiter shared by everything that uses one client."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

# Grants are spaced 5% further apart than 1/rate. Over a one-second window that leaves about 50 ms
# of slack at any rate, so that a request held up on its way (a busy worker, the server stamping
# arrivals with its own scheduling delay) and the next one sent on time are still counted in
# different seconds. 1% was too little: on 2 busy cores one request in ~30 arrived 30 ms late
# and drew a 429 from a server counting exactly WIZ_MAX_REQUESTS_PER_SECOND.
_SAFETY = 1.05
# After a 429 the rate drops to this share of what it was, never below _FLOOR of the setting, and
# climbs back by _RECOVERY after each _RECOVER_AFTER requests without one: a budget shared with
# other integrations is found by backing off, not by a 429 on every third request.
_SLOW_DOWN = 0.7
_FLOOR = 0.1
_RECOVERY = 1.1
_RECOVER_AFTER = 30
# A server stamps a request somewhere between our sending it and our reading its answer. So a start
# at least a second (and this much) after the answer to the request ``ceil(rate)`` places back can't
# be counted in the same second as it, however late that one was sent or stamped: a stall of 150 ms
# between the slot and the server (seen with several Dagster processes on 2 cores) would otherwise
# put four requests in 0.97 s at a budget of 3. Sequential paging pays nothing for it once answers
# take longer than about a third of a second.
_AFTER_ANSWER = 1.01
# 429s that follow one another within this long are one event: the server's window had not drained
# yet, and cutting the rate again for each of them would overshoot far below the budget.
_ONE_EVENT_SECONDS = 1.0


class RateLimiter:
    """Spaces request starts at least ``1/rate`` seconds apart (no bursts), across threads.

    Smooth spacing rather than a token bucket: the Wiz limit is per service account and shared
    by all queries, and a burst is exactly what trips a server-side sliding window. The first
    request also waits one interval, so that clients taking turns at one budget stay spaced.
    A start also waits until a second after the answer ``ceil(rate)`` requests back (see
    ``_AFTER_ANSWER``). ``rate_limited`` lets a 429 hold back every thread, not just the one that
    got it, and lowers the rate for a while. The rate never goes above ``requests_per_second``.
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
        self._rate = requests_per_second
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        # The first grant too waits one interval: the budget is shared with whoever held it last (the
        # step that had the wiz_api pool's slot before this run's), and its last request may have
        # started just now. A server counting over a sliding window would see the two as a burst.
        self._next_slot = clock() + _SAFETY / requests_per_second
        self._paused_until = 0.0
        self._granted_since_429 = 0
        self._last_cut = -_ONE_EVENT_SECONDS
        # When the answers to the last ceil(rate) requests arrived (a request's start until then).
        self._recent: deque[list[float]] = deque(maxlen=max(1, math.ceil(requests_per_second)))

    @property
    def current_rate(self) -> float:
        """Requests per second allowed now: the setting, or less for a while after a 429."""
        return self._rate

    @contextmanager
    def turn(self) -> Iterator[None]:
        """A request's turn: blocks until it may start, and notes its answer's arrival on exit (also
        when the request failed), so that later starts can be kept a second clear of it."""
        answered = self._take_slot()
        try:
            yield
        finally:
            with self._lock:
                answered[0] = self._clock()

    def _take_slot(self) -> list[float]:
        """Wait for a start; return the cell that holds when its answer arrived (its start until then)."""
        while True:
            with self._lock:
                now = self._clock()
                slot = max(now, self._next_slot, self._clear_of_recent())
                self._next_slot = slot + _SAFETY / self._rate
                paused_until = self._paused_until
            if slot - now > 0:
                self._sleep(slot - now)
            # A 429 that arrived while we slept moves every start after it, including slots that
            # were handed out before it: take a fresh slot behind the pause instead of going ahead.
            with self._lock:
                if self._paused_until <= paused_until or self._paused_until <= slot:
                    self._recover()
                    # A busy machine wakes a sleeper late: the next start is spaced from this one's
                    # real start, not from the slot it was meant to have.
                    woke = self._clock()
                    self._next_slot = max(self._next_slot, woke + _SAFETY / self._rate)
                    answered = [woke]
                    self._recent.append(answered)
                    return answered

    def _clear_of_recent(self) -> float:
        """The earliest start a second clear of the answer ``ceil(rate)`` requests back."""
        if len(self._recent) < self._recent.maxlen:
            return 0.0
        return self._recent[0][0] + _AFTER_ANSWER

    def rate_limited(self, seconds: float) -> None:
        """The server answered 429: no request may start in the next ``seconds``, and the rate drops."""
        with self._lock:
            now = self._clock()
            until = now + seconds
            self._paused_until = max(self._paused_until, until)
            self._next_slot = max(self._next_slot, until)
            self._granted_since_429 = 0
            if now - self._last_cut < _ONE_EVENT_SECONDS:
                return
            self._last_cut = now
            slower = max(self._rate * _SLOW_DOWN, self.requests_per_second * _FLOOR)
            if slower < self._rate:
                log.info(
                    "Lowering the request rate to %.2f/s after a 429 (setting: %g/s); it climbs back "
                    "while requests go through.",
                    slower,
                    self.requests_per_second,
                )
            self._rate = slower

    def _recover(self) -> None:
        self._granted_since_429 += 1
        if self._rate < self.requests_per_second and self._granted_since_429 >= _RECOVER_AFTER:
            self._rate = min(self.requests_per_second, self._rate * _RECOVERY)
            self._granted_since_429 = 0
