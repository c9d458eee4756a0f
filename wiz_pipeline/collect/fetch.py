"""Fetching exactly one half-open time window of a data type (defined in ``wiz_pipeline.data_types``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from wiz_pipeline.collect.idset import IdSet, fingerprint_columns, fingerprints
from wiz_pipeline.core.records import Nodes
from wiz_pipeline.core.times import format_time, from_micros, to_micros
from wiz_pipeline.data_types import DataType
from wiz_pipeline.landing.tables import table_for
from wiz_pipeline.landing.times import parse_times
from wiz_pipeline.wiz.client import Page, RequestStats, WizClient
from wiz_pipeline.wiz.errors import WizPaginationError, WizPermissionError, WizQueryError, WizResultCapError

log = logging.getLogger(__name__)

# A server that keeps saying hasNextPage while handing back only empty pages or nodes already
# seen would be paged for ever; this many such pages in a row end the window with an error.
STALLED_PAGES_LIMIT = 10
# Passes over one window, at most, for data whose records can leave it while it is paged (below).
MAX_PASSES = 3


@dataclass
class WindowStats:
    """Per-window figures, for logs now and run metadata later."""

    start: datetime
    end: datetime
    requests: RequestStats = field(default_factory=RequestStats)
    nodes_received: int = 0  # everything the API sent, padding included
    nodes_in_window: int = 0  # passed on
    nodes_outside_window: int = 0  # in the padding: they belong to a neighbouring window
    nodes_without_time: int = 0  # passed on too (see WindowFetch)
    duplicates_dropped: int = 0  # same id again within one pass (pages shifting under us)
    passes: int = 0  # reads of the whole window (see WindowFetch)
    found_on_reread: int = 0  # nodes that only a second or third pass brought
    min_time: datetime | None = None
    max_time: datetime | None = None
    duration_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "window_start": format_time(self.start),
            "window_end": format_time(self.end),
            **self.requests.as_dict(),
            "nodes_received": self.nodes_received,
            "nodes_in_window": self.nodes_in_window,
            "nodes_outside_window": self.nodes_outside_window,
            "nodes_without_time": self.nodes_without_time,
            "duplicates_dropped": self.duplicates_dropped,
            "passes": self.passes,
            "found_on_reread": self.found_on_reread,
            "min_time": format_time(self.min_time) if self.min_time else None,
            "max_time": format_time(self.max_time) if self.max_time else None,
            "duration_seconds": round(self.duration_seconds, 3),
        }


def refusals_named(dt: DataType, pages: Iterator[Page]) -> Iterator[Page]:
    """``pages``, with a refused query (a missing permission, a field the API doesn't know) saying
    which data type's query it was: the operator's fix is per data type (grant, or turn it off)."""
    try:
        yield from pages
    except (WizPermissionError, WizQueryError) as exc:
        raise type(exc)(f"{dt.name}: {exc}") from None


class WindowFetch:
    """Iterating yields, page by page, the nodes of ``data_type`` whose time is in ``[start, end)``.

    Nodes are passed on exactly as received, each ``id`` once: when records arrive while we page
    (newest-first lists shift), a node can come back on the next page, and the repeat is dropped
    and counted. A node whose time field is missing or unreadable can't be placed by time; since
    the API's own filter put it in this range, it is kept here (``nodes_without_time``).

    Where records can leave a window while it is paged (issues), a window that took more than one
    page is read again, and again, until two passes see the same ids (at most ``MAX_PASSES``);
    nodes that only a later pass brings are passed on too. One page is one answer, so a window
    that fits in one page is read once.

    A window is all or nothing: pages are yielded as they arrive so that a writer can stream them,
    but an exception can still end the iteration after some pages (retries exhausted, the result
    cap). A consumer must then discard what it received for this window. Iterating again fetches
    the window afresh.
    """

    def __init__(
        self,
        client: WizClient,
        data_type: DataType,
        start: datetime,
        end: datetime,
        *,
        open_ended: bool = False,
    ) -> None:
        """``open_ended``: the range ends after now on purpose (a current table's full read by time),
        so there is nothing to warn about."""
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("window bounds must be timezone-aware UTC datetimes")
        if not start < end:
            raise ValueError(f"empty window: start {start} is not before end {end}")
        self.client = client
        self.data_type = data_type
        self.table = table_for(data_type)
        self.stats = WindowStats(start=start, end=end)
        self._seen_ids = IdSet()
        self.open_ended = open_ended

    def __iter__(self) -> Iterator[Nodes]:
        # Each iteration starts afresh (figures and ids), so a window that failed can be fetched
        # again with the same object without its first try's nodes counting as seen.
        self.stats = stats = WindowStats(start=self.stats.start, end=self.stats.end)
        self._seen_ids = IdSet()
        dt = self.data_type
        if stats.end > datetime.now(UTC) and not self.open_ended:
            log.warning(
                "%s: the window %s .. %s has not closed yet; records that arrive later will be missing "
                "from this fetch.",
                dt.name,
                format_time(stats.start),
                format_time(stats.end),
            )
        started = time.monotonic()
        previous: IdSet | None = None
        try:
            while True:
                stats.passes += 1
                # The first pass has seen exactly what the window has: one set serves for both.
                pass_ids = self._seen_ids if stats.passes == 1 else IdSet()
                pages = yield from self._one_pass(pass_ids)
                if not dt.records_can_leave or pages <= 1 or pass_ids == previous:
                    break
                if stats.passes >= MAX_PASSES:
                    log.warning(
                        "%s: window %s still changed between passes %d and %d (records are changing "
                        "while it is read); keeping every node any pass saw.",
                        dt.name,
                        format_time(stats.start),
                        stats.passes - 1,
                        stats.passes,
                    )
                    break
                previous = pass_ids.copy()
        finally:
            stats.duration_seconds = time.monotonic() - started
        if stats.nodes_without_time:
            log.warning(
                "%s: %d node(s) had no readable %s; kept in window %s.",
                dt.name,
                stats.nodes_without_time,
                dt.time_field,
                format_time(stats.start),
            )

    def _one_pass(self, pass_ids: IdSet) -> Generator[Nodes, None, int]:
        """Page through the window once; return the number of pages."""
        dt, stats = self.data_type, self.stats
        received = pages = stalled = 0
        pages_read = self.client.paginate(
            dt.query,
            dt.variables(stats.start, stats.end),
            operation=dt.operation,
            connection=dt.connection,
            time_field=dt.time_field,
            # Decoded once into the structs the table builds its columns from.
            node_type=self.table.row_type,
            permission=dt.permission_hint,
            stats=stats.requests,
        )
        for page in refusals_named(dt, pages_read):
            pages += 1
            received += len(page.nodes)
            stats.nodes_received += len(page.nodes)
            kept, fresh = self._sort_page(page, pass_ids)
            stats.nodes_in_window += len(kept)
            # Checked before anything else: a capped query may go on saying hasNextPage with empty
            # pages or a repeated cursor, and the operator must hear "shorter windows", not "retry".
            if dt.result_cap and received >= dt.result_cap:
                raise WizResultCapError(
                    f"{dt.operation}: the window {format_time(stats.start)} .. {format_time(stats.end)} "
                    f"returned {received} nodes, the API's cap for one query, so it may be "
                    "incomplete; the window is failed rather than written short. Use shorter windows "
                    "(WIZ_POLL_INTERVAL_SECONDS in the pipeline)."
                )
            stalled = 0 if fresh or not page.has_next_page else stalled + 1
            if stalled >= STALLED_PAGES_LIMIT:
                raise WizPaginationError(
                    f"{dt.operation}: {stalled} pages in a row brought nothing new while the API kept "
                    "saying hasNextPage; stopping rather than paging for ever. This is a server-side "
                    "fault; retry the window later."
                )
            if kept:
                yield kept
        return pages

    def _sort_page(self, page: Page, pass_ids: IdSet) -> tuple[Nodes, int]:
        """The page's nodes to pass on, and how many of all its nodes this pass had not seen yet."""
        stats = self.stats
        ids = page.ids
        if set(map(type, ids)) <= {str} and "" not in ids:
            first, second = fingerprint_columns(ids)
            # Distinct first hashes mean distinct ids (the reverse fails one time in 2^64: then the
            # page takes the slow path below, which is exact).
            if len(set(first)) == len(first) and self._seen_ids.isdisjoint_columns(first, second):
                # The usual page: every id one this window has not seen (the window's set holds
                # this pass's too); no per-node bookkeeping.
                self._seen_ids.update_columns(first, second)
                if pass_ids is not self._seen_ids:
                    pass_ids.update_columns(first, second)
                return self._by_time(page, np.arange(len(ids)), len(ids))
        candidates = []
        fresh = 0
        for i, node_id in enumerate(ids):
            if isinstance(node_id, str) and node_id:
                (fp,) = fingerprints([node_id])
                new_in_pass = fp not in pass_ids
                new = fp not in self._seen_ids
                self._seen_ids.add(fp)
                pass_ids.add(fp)
            else:
                # Can't tell; passed on, as everything the API sends is, but in the first pass only.
                new_in_pass = True
                new = stats.passes == 1
            fresh += new_in_pass
            if new:
                candidates.append(i)
            elif not new_in_pass:
                stats.duplicates_dropped += 1
            # else: seen in an earlier pass
        return self._by_time(page, np.array(candidates, dtype=np.intp), fresh)

    def _by_time(self, page: Page, index: np.ndarray, fresh: int) -> tuple[Nodes, int]:
        """Of the nodes at ``index``, those in the window or without a readable time; and ``fresh``."""
        stats = self.stats
        micros, readable = parse_times(page.times)
        when, known = micros[index], readable[index]
        inside = known & (when >= to_micros(stats.start)) & (when < to_micros(stats.end))
        stats.nodes_outside_window += int(np.count_nonzero(known & ~inside))
        stats.nodes_without_time += int(np.count_nonzero(~known))
        if inside.any():
            low, high = from_micros(when[inside].min()), from_micros(when[inside].max())
            stats.min_time = low if stats.min_time is None else min(stats.min_time, low)
            stats.max_time = high if stats.max_time is None else max(stats.max_time, high)
        keep = index[inside | ~known]
        if stats.passes > 1:
            stats.found_on_reread += len(keep)
        nodes = Nodes(page.nodes, micros, readable, page.rows)
        return (nodes if len(keep) == len(page.nodes) else nodes.take(keep)), fresh
