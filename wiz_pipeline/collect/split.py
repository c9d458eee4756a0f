"""Fetching one window in sub-queries by time, when one query over it reaches the API's result cap.

A capped query's answer is the API's first ``cap`` nodes in an order we can't rely on, so none of it
may reach the window's file. Each sub-query's nodes are held here until it completes below the cap
(so at most a cap's worth, ~10-20 MB, however big the window), then handed on; a capped sub-query's
nodes are dropped and its range is fetched again in shorter sub-queries, planned from where that
answer's nodes lie and how dense they are (``plan``; recursively, down to one second). Sub-ranges
are half-open and disjoint, and each query is cut exactly to its range (``WindowFetch``), so a
record with a time lands in exactly one.

The alternative, streaming each sub-query into the file and restarting the whole window on a cap,
would write no faster and throw away every finished sub-query's pages with the capped one.

Dagster-free, like the rest of ``collect``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import msgspec
import numpy as np

from wiz_pipeline.collect.fetch import WindowFetch, WindowStats
from wiz_pipeline.collect.idset import IdSet, fingerprints
from wiz_pipeline.collect.prefetch import prefetched
from wiz_pipeline.core.records import Nodes
from wiz_pipeline.core.times import format_time, from_micros, to_micros
from wiz_pipeline.data_types import FILTER_PADDING, DataType
from wiz_pipeline.wiz import WizClient, WizResultCapError

# A query is sized to be expected to return this share of the cap, so that one estimate usually
# suffices and a denser stretch still fits.
TARGET_SHARE_OF_CAP = 0.7
# No sub-query spans less: a second that alone reaches the cap can't be collected.
MIN_SPAN = timedelta(seconds=1)


def density_of(micros: np.ndarray, start: datetime, end: datetime, cap: int) -> float:
    """Records per second that a capped query over ``[start, end)`` showed, ``micros`` being the
    times of the nodes it returned inside the range.

    At least the cap over the padded range (it held that many); more where its nodes bunch up: 90%
    of them between their 5th and 95th percentile times, so that a few sparse records around a
    burst don't dilute the burst's density.
    """
    density = cap / (end - start + 2 * FILTER_PADDING).total_seconds()
    if len(micros) >= 20:
        low, high = np.percentile(micros, [5, 95])
        density = max(density, 0.9 * len(micros) / max((high - low) / 1e6, 1.0))
    return density


def step_for(density: float, cap: int) -> timedelta:
    """The longest sub-range, in whole seconds and at least ``MIN_SPAN``, expected to return
    ``TARGET_SHARE_OF_CAP`` of the cap at ``density``: the API is asked for ``FILTER_PADDING`` more
    on each side, so a one-second sub-range costs three seconds' records."""
    seconds = TARGET_SHARE_OF_CAP * cap / density - 2 * FILTER_PADDING.total_seconds()
    return max(MIN_SPAN, timedelta(seconds=int(seconds)))


def cut(start: datetime, end: datetime, step: timedelta) -> list[tuple[datetime, datetime]]:
    """``[start, end)`` as consecutive half-open ranges of ``step`` (the last one may be shorter)."""
    ranges = []
    while start < end:
        ranges.append((start, min(start + step, end)))
        start += step
    return ranges


_SECOND = 1_000_000  # in microseconds


def plan(start: datetime, end: datetime, micros: np.ndarray, cap: int) -> list[tuple[datetime, datetime]]:
    """The sub-ranges to fetch ``[start, end)`` in after a query over it reached the cap, ``micros``
    being the times of the nodes it returned inside the range.

    Between the first and the last of those nodes, sub-ranges are cut so that each, padding
    included, holds at most ``TARGET_SHARE_OF_CAP`` of the cap of them: exact when the API returned
    that stretch whole (as a newest-first list does), too long otherwise (then they reach the cap
    and are planned again). On either side the answer says nothing; there sub-ranges grow away from
    it, from the length its density suggests, doubling after the second: a burst that goes on is
    met with short ones, a quiet rest with a few long ones (not hundreds of empty ones).
    Boundaries fall on whole seconds from ``start``; no sub-range is the whole range.
    """
    held = np.sort(micros)
    first, last = to_micros(start), to_micros(end)
    if not len(held):  # all of it was padding, or had no time: no clue but to halve
        return _halves(start, end)
    step = int(step_for(density_of(held, start, end, cap), cap).total_seconds()) * _SECOND
    low = first + (int(held[0]) - first) // _SECOND * _SECOND
    high = min(last, low + -(-(int(held[-1]) + 1 - low) // _SECOND) * _SECOND)
    ranges = [
        *reversed([(b, a) for a, b in _growing(low, first, -step)]),
        *_by_count(held, low, high, int(TARGET_SHARE_OF_CAP * cap)),
        *_growing(high, last, step),
    ]
    if len(ranges) == 1:
        return _halves(start, end)
    return [(from_micros(a), from_micros(b)) for a, b in ranges]


def _growing(at: int, until: int, step: int) -> list[tuple[int, int]]:
    """From ``at`` towards ``until`` (either way: ``step`` has its sign), ranges of ``step``, ``step``,
    then twice as long each time."""
    ranges = []
    while (until - at) * step > 0:
        end = at + step if abs(step) < abs(until - at) else until
        ranges.append((at, end))
        at = end
        if len(ranges) >= 2:
            step *= 2
    return ranges


def _by_count(held: np.ndarray, at: int, until: int, target: int) -> list[tuple[int, int]]:
    """``[at, until)`` cut so that each range, with a second of padding on either side, holds at
    most ``target`` of the ``held`` times (sorted); at least a second each."""
    ranges = []
    while at < until:
        allowed = int(np.searchsorted(held, at - _SECOND)) + target
        if allowed < len(held):  # the first time the padded range may not reach
            end = at + max(_SECOND, (int(held[allowed]) - _SECOND - at) // _SECOND * _SECOND)
        else:
            end = until
        ranges.append((at, min(end, until)))
        at = min(end, until)
    return ranges


def _halves(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    half = max(MIN_SPAN, timedelta(seconds=int((end - start).total_seconds() / 2)))
    return cut(start, end, half)


class SplitFetch:
    """Iterating yields the nodes of ``[start, end)``, one completed sub-query at a time, each id once.

    ``ranges`` are the first sub-queries (from ``plan``, or ``cut`` by ``step_for``); ``thrown_away``
    the figures of a capped query over the whole window that led here, counted in ``figures``.
    Afterwards ``queries`` counts the sub-queries whose nodes were yielded, ``capped`` those thrown
    away. Raises ``WizResultCapError`` naming the second when a one-second sub-query reaches the cap;
    the consumer must then discard what it received (the window is all or nothing, as with
    ``WindowFetch``).
    """

    def __init__(
        self,
        client: WizClient,
        data_type: DataType,
        start: datetime,
        end: datetime,
        ranges: list[tuple[datetime, datetime]],
        thrown_away: WindowStats | None = None,
        *,
        open_ended: bool = False,
    ) -> None:
        if not data_type.result_cap:
            raise ValueError(f"{data_type.name} has no result cap to split for")
        self.client, self.data_type, self.start, self.end = client, data_type, start, end
        self.ranges = ranges
        self.open_ended = open_ended  # ends after now on purpose: no "not closed yet" warning
        self.queries = self.capped = 0
        self._before = [(thrown_away, False)] if thrown_away else []
        self._stats: list[tuple[WindowStats, bool]] = []  # each sub-query's, and whether it was kept

    def __iter__(self) -> Iterator[Nodes]:
        dt, cap = self.data_type, self.data_type.result_cap
        assert cap
        self.queries = self.capped = 0
        self._stats = list(self._before)
        timeless = IdSet()
        todo = list(self.ranges)
        while todo:
            start, end = todo.pop(0)
            fetch = WindowFetch(self.client, dt, start, end, open_ended=self.open_ended)
            held: list[Nodes] = []
            try:
                for nodes in prefetched(fetch):
                    held.append(nodes)
            except WizResultCapError:
                self.capped += 1
                self._stats.append((fetch.stats, False))
                if end - start <= MIN_SPAN:
                    raise WizResultCapError(self._second_capped(start, end)) from None
                micros = np.concatenate([n.micros[n.readable] for n in held] or [np.empty(0, np.int64)])
                del held
                todo[:0] = plan(start, end, micros, cap)
                continue
            self.queries += 1
            self._stats.append((fetch.stats, True))
            for nodes in held:
                yield _once(nodes, timeless)

    def _second_capped(self, start: datetime, end: datetime) -> str:
        dt = self.data_type
        return (
            f"{dt.name}: window {format_time(self.start)} .. {format_time(self.end)} can't be collected: "
            f"the query for the second {format_time(start)} .. {format_time(end)} (asked as "
            f"{format_time(start - FILTER_PADDING)} .. {format_time(end + FILTER_PADDING)}, since every "
            f"query is padded by {FILTER_PADDING.total_seconds():g} s each side) still returned "
            f"{dt.result_cap} nodes, the API's cap for one query, and no shorter query is possible. "
            "The window is not written and its checkpoint does not move past it; later windows are still "
            "collected. That many records in one second usually means a runaway automation: ask Wiz "
            "for those records by other means, and rerun the window once the API returns fewer."
        )

    def figures(self) -> dict[str, Any]:
        """The window's query figures: what was requested summed over every sub-query (the capped
        ones included), what was kept over those whose nodes were handed on."""
        total = WindowStats(start=self.start, end=self.end)
        for s, kept in self._stats:
            for name, value in s.requests.as_dict().items():
                setattr(total.requests, name, getattr(total.requests, name) + value)
            total.duration_seconds += s.duration_seconds
            if not kept:
                continue
            for name in ("nodes_received", "nodes_in_window", "nodes_outside_window", "nodes_without_time"):
                setattr(total, name, getattr(total, name) + getattr(s, name))
            total.duplicates_dropped += s.duplicates_dropped
            total.passes = max(total.passes, s.passes)
            for bound, pick in (("min_time", min), ("max_time", max)):
                mine, theirs = getattr(total, bound), getattr(s, bound)
                if theirs is not None:
                    setattr(total, bound, theirs if mine is None else pick(mine, theirs))
        return total.as_dict()


def _once(nodes: Nodes, timeless: IdSet) -> Nodes:
    """``nodes`` less those without a readable time already handed on: the API's filter may return
    such a node to every sub-query, and each is kept in the window (``WindowFetch``), once."""
    if nodes.readable.all():
        return nodes
    keep = []
    for i in range(len(nodes)):
        if not nodes.readable[i]:
            node = msgspec.json.decode(nodes.raw[i])
            node_id = node.get("id") if isinstance(node, dict) else None
            if isinstance(node_id, str) and node_id:
                (fp,) = fingerprints([node_id])
                if fp in timeless:
                    continue
                timeless.add(fp)
        keep.append(i)
    return nodes if len(keep) == len(nodes) else nodes.take(np.array(keep, dtype=np.intp))
