"""When and how long to wait before trying a failed request again."""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from wiz_pipeline.wiz.errors import WizRateLimitError, WizRetriesExhaustedError, WizRetryableError

log = logging.getLogger(__name__)

T = TypeVar("T")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date. None if absent/bad."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        log.warning("Ignoring unparseable Retry-After header %r; backing off instead.", value)
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass
class RetryPolicy:
    """Retries ``WizRetryableError``: transient failures up to ``max_retries`` with exponential
    backoff and jitter; 429s after the server's ``Retry-After`` (or the same backoff) up to
    ``max_rate_limit_retries``, counted apart so that a busy tenant doesn't use up the budget meant
    for real failures. Anything else propagates at once.
    """

    max_retries: int = 5
    max_rate_limit_retries: int = 10
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    max_retry_after_seconds: float = 600.0
    # Called before each wait with the failure and the delay; the client counts retries with it.
    on_rate_limited: Callable[[float], None] | None = None
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.max_rate_limit_retries < 0:
            raise ValueError("retry limits must be >= 0")

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with "equal jitter": half fixed, half random, so waits never collapse to 0."""
        ceiling = min(self.backoff_max_seconds, self.backoff_base_seconds * 2 ** (attempt - 1))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)

    def run(
        self,
        attempt: Callable[[], T],
        *,
        what: str,
        on_retry: Callable[[WizRetryableError, float], None] | None = None,
    ) -> T:
        failures = 0
        rate_limited = 0
        while True:
            try:
                return attempt()
            except WizRateLimitError as exc:
                failure: WizRetryableError = exc
                rate_limited += 1
                if rate_limited > self.max_rate_limit_retries:
                    raise WizRetriesExhaustedError(
                        f"{what}: still rate limited after {self.max_rate_limit_retries} retries ({exc}). "
                        "Lower WIZ_MAX_REQUESTS_PER_SECOND, or check for other integrations sharing "
                        "this service account's rate budget.",
                        status=exc.status,
                    ) from None
                delay = exc.retry_after if exc.retry_after is not None else self.backoff(rate_limited)
                if delay > self.max_retry_after_seconds:
                    raise WizRetriesExhaustedError(
                        f"{what}: rate limited and told to wait {delay:.0f} s, longer than the "
                        f"{self.max_retry_after_seconds:.0f} s this client waits; try again later.",
                        status=exc.status,
                    ) from None
                log.warning(
                    "Rate limited by Wiz (429) on %s; waiting %.2f s (%s), retry %d of at most %d.",
                    what,
                    delay,
                    "Retry-After" if exc.retry_after is not None else "backoff",
                    rate_limited,
                    self.max_rate_limit_retries,
                )
                if self.on_rate_limited is not None:
                    self.on_rate_limited(delay)
            except WizRetryableError as exc:
                failure = exc
                failures += 1
                if failures > self.max_retries:
                    raise WizRetriesExhaustedError(
                        f"{what} failed after {self.max_retries} retries; last error: {exc}",
                        status=exc.status,
                    ) from None
                delay = self.backoff(failures)
                if exc.retry_after is not None and exc.retry_after <= self.max_retry_after_seconds:
                    delay = max(delay, exc.retry_after)  # a 503 with Retry-After: the server knows best
                log.warning(
                    "%s failed (%s); retry %d of %d in %.2f s.", what, exc, failures, self.max_retries, delay
                )
            if on_retry is not None:
                on_retry(failure, delay)
            self.sleep(delay)
