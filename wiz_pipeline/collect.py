"""Collecting a run of consecutive windows with as few queries as the API allows, one file per window.

A run's windows are fetched in spans: one paginated query over ``[first start, last end)`` of each,
each node routed by its time into its window's file as pages arrive. A span is the whole run, or as
many windows as the caller expects to fit under the API's result cap. If a span reaches the cap, what
was written for it is dropped and it is fetched again in smaller spans, cut at window boundaries and
sized from how much time the capped answer covered (so a dense day costs one wasted query, not a
cascade of halvings; the run's later spans are cut to that size too), down to single windows; a
single window that still reaches the cap fails (splitting inside a window comes in a later change).
A span is all or nothing: when its fetch fails, none of its windows is written; windows of spans that
finished before stay written.

Dagster-free, like ``wiz/``: the asset turns each ``WindowResult`` into a materialization.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from wiz_pipeline.data_types import DataType
from wiz_pipeline.outputs import Output, open_output
from wiz_pipeline.partitions import Window
from wiz_pipeline.prefetch import prefetched
from wiz_pipeline.storage import WindowWriter, WrittenFile, sweep_stale_temporaries
from wiz_pipeline.times import format_time, from_micros, to_micros
from wiz_pipeline.wiz import Nodes, WindowFetch, WizClient, WizResultCapError

log = logging.getLogger(__name__)

# Bytes of rows held in memory across all of a span's open files before the biggest buffers are
# written out as row groups; this bounds memory however many records or windows a run covers. Arrow's
# builders reserve up to twice what a batch reports, so the memory this costs is up to twice this.
MAX_BUFFERED_BYTES = 8 * 2**20


@dataclass(frozen=True)
class WindowResult:
    window: Window
    file: WrittenFile
    manifest: dict[str, Any]


# The manifest's re-read fields for a window nobody had written before.
FIRST_READ = {"reads": 1, "late_records": None, "gone_records": None}


@dataclass
class _WindowFigures:
    rows: int = 0
    without_time: int = 0
    min_time: datetime | None = None
    max_time: datetime | None = None

    def note(self, nodes: Nodes) -> None:
        self.rows += len(nodes)
        known = nodes.micros[nodes.readable]
        self.without_time += len(nodes) - len(known)
        if len(known):
            low, high = from_micros(known.min()), from_micros(known.max())
            self.min_time = low if self.min_time is None else min(self.min_time, low)
            self.max_time = high if self.max_time is None else max(self.max_time, high)


def collect_windows(
    client: WizClient,
    data_type: DataType,
    windows: list[Window],
    root: Output | Path | str,
    *,
    run_id: str,
    windows_per_query: int | None = None,
    replacing: Collection[str] = (),
    rereads: Collection[str] = (),
    requested_at: datetime | None = None,
) -> Iterator[WindowResult]:
    """Yield each window once its file is in place, oldest span first.

    ``windows`` are in time order, not necessarily adjacent: a query never covers a gap between
    them (a run asked to re-read one window and collect a later one skips those in between).
    ``windows_per_query`` (from ``windows_per_query_for``) cuts the run into spans of that many
    windows up front, so that a long run doesn't spend a whole capped query finding out it is too
    long; without it, the first query covers every window.

    ``replacing`` are the windows known to be written already: their file in place is compared with
    the new one (``reads``, ``late_records``, ``gone_records`` in the manifest) before it is replaced.
    ``rereads`` are the windows asked for as re-reads (``reread`` in the manifest). ``read_at`` in the
    manifest is when the window's query began, or ``requested_at`` (the schedule tick that asked for
    the run) if earlier: never later than the read, so that a re-read is never skipped because a run
    waited in the queue.

    Raises after yielding every window it could write: at once when a span's fetch fails (the next
    span would most likely fail the same way), at the end when single windows reached the cap.
    """
    if not windows:
        return
    root = open_output(root)
    sweep_stale_temporaries(root, data_type.name)
    spans = _cut(_adjacent(windows), windows_per_query or len(windows))
    capped: list[WizResultCapError] = []
    while spans:
        span = spans.pop(0)
        read_at = datetime.now(UTC).replace(microsecond=0)
        if requested_at is not None:
            read_at = min(read_at, requested_at)
        try:
            writers, figures, query = _fetch_span(client, data_type, span, root)
        except _SpanCapped as exc:
            if len(span) == 1:
                log.error(
                    "%s: window %s reached the result cap; it is not written.", data_type.name, span[0].key
                )
                capped.append(exc.error)
                continue
            size = _windows_per_query(span, exc.seen_from, exc.seen_to)
            log.info(
                "%s: %d windows from %s reached the API's result cap in one query; fetching them again "
                "%d windows per query.",
                data_type.name,
                len(span),
                span[0].key,
                size,
            )
            # The run's later spans are most likely as dense: cut them too, rather than let each
            # of them reach the cap (every capped query is up to 20 pages thrown away).
            spans = _cut([span, *spans], size)
            continue
        committed = 0
        try:
            for window in span:
                writer = writers[window.key]
                manifest = {
                    **_manifest(data_type, window, figures[window.key], query, len(span), run_id),
                    "read_at": format_time(read_at),
                    "reread": window.key in rereads,
                    **(writer.replaced() if window.key in replacing else FIRST_READ),
                }
                written = writer.commit(manifest)
                committed += 1
                yield WindowResult(window, written, manifest)
        finally:
            # A failed commit (disk full) or a consumer that stops early (the run is terminated) must
            # not leave the remaining windows' temporary files behind.
            for window in span[committed:]:
                writers[window.key].abort()
    if capped:
        raise capped[0]


def _fetch_span(
    client: WizClient,
    data_type: DataType,
    span: list[Window],
    root: Output,
) -> tuple[dict[str, WindowWriter], dict[str, _WindowFigures], dict[str, Any]]:
    table = data_type.table
    writers = {w.key: WindowWriter(root, table, w) for w in span}
    figures = {w.key: _WindowFigures() for w in span}
    starts = np.array([to_micros(w.start) for w in span], dtype=np.int64)
    fetch = WindowFetch(client, data_type, span[0].start, span[-1].end)
    # Every page allocates thousands of short-lived objects, and each full garbage collection
    # would walk the whole heap (Dagster's included) again; what exists now is left out of them.
    gc.freeze()
    try:
        # Pages are fetched (and sorted by WindowFetch) in a thread while the previous ones are
        # turned into row groups here, so the wall time approaches the time the API takes.
        for nodes in prefetched(fetch):
            index = np.searchsorted(starts, nodes.micros, side="right") - 1
            # A node without a readable time can't be placed; the query returned it for this
            # span, so it is kept in the span's last window (and counted in the manifest).
            index[~nodes.readable] = len(span) - 1
            present = np.unique(index)
            for i in present.tolist():
                part = nodes if len(present) == 1 else nodes.take(np.flatnonzero(index == i))
                key = span[i].key
                figures[key].note(part)
                writers[key].add(part)
            _bound_memory(writers)
    except BaseException as exc:
        for writer in writers.values():
            writer.abort()
        if isinstance(exc, WizResultCapError):
            times = [t for f in figures.values() for t in (f.min_time, f.max_time) if t is not None]
            raise _SpanCapped(exc, min(times, default=None), max(times, default=None)) from None
        raise
    finally:
        gc.unfreeze()
    return writers, figures, fetch.stats.as_dict()


class _SpanCapped(Exception):
    """A span's query reached the cap; ``seen_from``/``seen_to`` bound the times of what it returned."""

    def __init__(
        self, error: WizResultCapError, seen_from: datetime | None, seen_to: datetime | None
    ) -> None:
        super().__init__(str(error))
        self.error, self.seen_from, self.seen_to = error, seen_from, seen_to


# A capped span is fetched again in pieces expected to hold this share of the cap, so that one
# estimate usually suffices and a denser stretch still fits.
TARGET_SHARE_OF_CAP = 0.7


def _windows_per_query(span: list[Window], seen_from: datetime | None, seen_to: datetime | None) -> int:
    """How many windows per query, from how much time the capped answer covered: the cap's worth of
    records spread over that time gives the density. At most half the span, so every retry shrinks."""
    largest = max(1, len(span) // 2)
    if seen_from is None or seen_to is None:
        return largest
    window_seconds = (span[-1].end - span[0].start).total_seconds() / len(span)
    covered_windows = max((seen_to - seen_from).total_seconds(), window_seconds) / window_seconds
    return max(1, min(largest, int(covered_windows * TARGET_SHARE_OF_CAP)))


def _adjacent(windows: list[Window]) -> list[list[Window]]:
    """``windows`` cut where one doesn't start at the previous one's end."""
    groups: list[list[Window]] = []
    for window in windows:
        if groups and groups[-1][-1].end == window.start:
            groups[-1].append(window)
        else:
            groups.append([window])
    return groups


def _cut(spans: list[list[Window]], size: int) -> list[list[Window]]:
    return [span[i : i + size] for span in spans for i in range(0, len(span), size)]


def windows_per_query_for(data_type: DataType, max_rows_per_window: int) -> int | None:
    """How many windows one query may cover without reaching the API's result cap, given the most
    rows a window recently held (None: no cap, or nothing known)."""
    if not data_type.result_cap or max_rows_per_window <= 0:
        return None
    return max(1, int(data_type.result_cap * TARGET_SHARE_OF_CAP / max_rows_per_window))


def _bound_memory(writers: dict[str, WindowWriter]) -> None:
    while sum(w.pending_bytes for w in writers.values()) > MAX_BUFFERED_BYTES:
        max(writers.values(), key=lambda w: w.pending_bytes).flush()


def _manifest(
    data_type: DataType,
    window: Window,
    figures: _WindowFigures,
    query: dict[str, Any],
    span_windows: int,
    run_id: str,
) -> dict[str, Any]:
    return {
        "data_type": data_type.name,
        "partition_key": window.key,
        "window_start": format_time(window.start),
        "window_end": format_time(window.end),
        "time_field": data_type.time_field,
        "run_id": run_id,
        "written_at": format_time(datetime.now(UTC).replace(microsecond=0)),
        "min_time": format_time(figures.min_time) if figures.min_time else None,
        "max_time": format_time(figures.max_time) if figures.max_time else None,
        "rows_without_time": figures.without_time,
        # The query this window was fetched with; it may have covered several windows.
        "query": {**query, "windows": span_windows},
    }
