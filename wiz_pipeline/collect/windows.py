"""Collecting a run of consecutive windows with as few queries as the API allows, one file per window.

A run's windows are fetched in spans: one paginated query over ``[first start, last end)`` of each,
each node routed by its time into its window's file as pages arrive. A span is the whole run, or as
many windows as the caller expects to fit under the API's result cap. If a span reaches the cap, what
was written for it is dropped and it is fetched again in smaller spans, cut at window boundaries and
sized from how much time the capped answer covered (so a dense day costs one wasted query, not a
cascade of halvings; the run's later spans are cut to that size too), down to single windows. A
single window that reaches the cap is fetched again in sub-queries by time inside it (``split``),
into its one file; one that holds more than the cap within a second fails alone.
A span is all or nothing: when its fetch fails, none of its windows is written; windows of spans that
finished before stay written. Within a span, a window's file is closed (not yet published) as soon as
the newest-first query has passed it, so that memory doesn't grow with the windows a span covers; a
record the API sends for it after all (its order isn't guaranteed) reopens it (``WindowWriter``).

What a run learns is reused: once a window needed sub-queries, the run's later windows are fetched one
per query, and a window is split up front when the window written before it (or, for the run's first,
its recent neighbours) held more than a query returns, instead of each wasting a capped query first.

Dagster-free, like the rest of ``collect``: the asset turns each ``WindowResult`` into a materialization.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from wiz_pipeline.collect.fetch import WindowFetch, WindowStats
from wiz_pipeline.collect.heap import collecting_rarely
from wiz_pipeline.collect.prefetch import prefetched
from wiz_pipeline.collect.split import TARGET_SHARE_OF_CAP, SplitFetch, cut, plan, step_for
from wiz_pipeline.core.records import Nodes
from wiz_pipeline.core.times import format_time, from_micros, to_micros
from wiz_pipeline.core.windows import Window
from wiz_pipeline.data_types import DataType
from wiz_pipeline.landing.files import FIRST_READ, WindowWriter, WrittenFile
from wiz_pipeline.landing.iceberg import PendingCommits
from wiz_pipeline.landing.outputs import Output, open_output
from wiz_pipeline.landing.quality import Outcome, WindowQuality
from wiz_pipeline.landing.tables import Table, file_schema, table_for
from wiz_pipeline.wiz import WizClient, WizResultCapError

log = logging.getLogger(__name__)

# Bytes of rows held in memory across all of a span's unfinished files before the biggest buffers are
# written out as row groups; this bounds memory however many records or windows a run covers. Arrow's
# builders reserve up to twice what a batch reports, so the memory this costs is up to twice this.
MAX_BUFFERED_BYTES = 8 * 2**20


@dataclass(frozen=True)
class WindowResult:
    window: Window
    file: WrittenFile
    manifest: dict[str, Any]
    checks: list[Outcome]  # what the window's rows say about themselves (see quality)
    summary: str  # a Markdown table of the window's most frequent values


# The manifest's re-read fields for a window nobody had written before.


@dataclass(frozen=True)
class _Collected:
    """A window fetched whole into its writer, not yet committed."""

    window: Window
    writer: WindowWriter
    figures: _WindowFigures
    quality: WindowQuality
    query: dict[str, Any]  # the figures of the query (or sub-queries) it came from
    span_windows: int  # how many windows that query covered
    queries: int  # queries whose records are in the file: more than 1 when split
    capped_queries: int  # queries covering it thrown away because they reached the cap


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
    rows_per_window: int = 0,
    replacing: Collection[str] = (),
    rereads: Collection[str] = (),
    requested_at: datetime | None = None,
    seed: datetime | None = None,
    pending: PendingCommits | None = None,
) -> Iterator[WindowResult]:
    """Yield each window once its file is in place, oldest span first.

    ``windows`` are in time order, not necessarily adjacent: a query never covers a gap between
    them (a run asked to re-read one window and collect a later one skips those in between).
    ``windows_per_query`` (from ``windows_per_query_for``) cuts the run into spans of that many
    windows up front, so that a long run doesn't spend a whole capped query finding out it is too
    long; without it, the first query covers every window. ``rows_per_window``, what recent windows
    held, lets the run's first window be split up front when that is more than a query returns.

    ``replacing`` are the windows known to be written already: their file in place is compared with
    the new one (``reads``, ``late_records``, ``gone_records`` in the manifest) before it is replaced.
    ``rereads`` are the windows asked for as re-reads (``reread`` in the manifest). ``read_at`` in the
    manifest is when the window's query began, or ``requested_at`` (the schedule tick that asked for
    the run) if earlier: never later than the read, so that a re-read is never skipped because a run
    waited in the queue.

    Each result carries the window's checks (``quality``), against ``seed`` among others.

    ``pending`` (WIZ_ICEBERG): each window's file is named for its write and yielded once in place but
    before its manifest, which ``pending.flush()`` writes after committing it to the data type's
    table (the caller flushes, records nothing of a window before, and its ``manifest`` then carries
    the snapshot).

    Raises after yielding every window it could write: at once when a span's fetch fails (the next
    span would most likely fail the same way), at the end when a window held more than the cap
    within one second.
    """
    if not windows:
        return
    root = open_output(root)
    root.sweep(data_type.name)  # what dead runs left: temporary files, incomplete uploads
    spans = _cut(_adjacent(windows), windows_per_query or len(windows))
    window_seconds = max((w.end - w.start).total_seconds() for w in windows)
    # Records per second of the window written last (at first, of the recent ones).
    density = rows_per_window / window_seconds
    capped: Counter[str] = Counter()  # capped queries that covered each window
    failed: list[WizResultCapError] = []
    while spans:
        span = spans.pop(0)
        read_at = datetime.now(UTC).replace(microsecond=0)
        if requested_at is not None:
            read_at = min(read_at, requested_at)
        try:
            collected = _fetch(
                client, data_type, span, root, density, capped, seed, replacing, pending is not None
            )
        except _SpanCapped as exc:
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
        except WizResultCapError as exc:  # a single window past the cap within one second
            log.error("%s: window %s is not written: %s", data_type.name, span[0].key, exc)
            failed.append(exc)
            continue
        if any(c.queries > 1 for c in collected):
            # A window needed sub-queries: any span holding one like it would reach the cap.
            spans = _cut(spans, 1)
        last = collected[-1]
        density = last.figures.rows / (last.window.end - last.window.start).total_seconds()
        committed = 0
        try:
            for c in collected:
                manifest = {
                    **_manifest(data_type, c, run_id),
                    "read_at": format_time(read_at),
                    "reread": c.window.key in rereads,
                    **(c.writer.replaced() if c.window.key in replacing else FIRST_READ),
                }
                written = c.writer.commit(manifest, manifest_later=pending is not None)
                if pending is not None:
                    _pend(pending, table_for(data_type), root, c.window, written, c.writer, manifest)
                checks = c.quality.outcomes(c.writer.file_schema)
                committed += 1
                yield WindowResult(c.window, written, manifest, checks, c.quality.markdown())
        finally:
            # A failed commit (disk full) or a consumer that stops early (the run is terminated) must
            # not leave the remaining windows' temporary files behind.
            for c in collected[committed:]:
                c.writer.abort()
    if failed:
        raise failed[0]


def _fetch(
    client: WizClient,
    data_type: DataType,
    span: list[Window],
    root: Output,
    density: float,
    capped: Counter[str],
    seed: datetime | None,
    replacing: Collection[str],
    unique: bool,
) -> list[_Collected]:
    """Fetch a span whole; a single window that reaches the cap (or that ``density`` says would)
    in sub-queries. Raises ``_SpanCapped`` for a span of several windows that reached the cap."""
    cap = data_type.result_cap
    if len(span) == 1 and cap and density > 0:
        window = span[0]
        step = step_for(density, cap)
        if step < window.end - window.start:
            ranges = cut(window.start, window.end, step)
            return [
                _fetch_split(
                    client, data_type, window, root, ranges, capped[window.key], None, seed, replacing, unique
                )
            ]
    try:
        return _fetch_span(client, data_type, span, root, seed, replacing, unique)
    except _SpanCapped as exc:
        for window in span:
            capped[window.key] += 1
        if len(span) > 1 or not cap:
            raise
        window = span[0]
        ranges = plan(window.start, window.end, exc.micros, cap)
        return [
            _fetch_split(
                client,
                data_type,
                window,
                root,
                ranges,
                capped[window.key],
                exc.stats,
                seed,
                replacing,
                unique,
            )
        ]


def _fetch_split(
    client: WizClient,
    data_type: DataType,
    window: Window,
    root: Output,
    ranges: list[tuple[datetime, datetime]],
    capped_before: int,
    thrown_away: WindowStats | None,
    seed: datetime | None,
    replacing: Collection[str],
    unique: bool,
) -> _Collected:
    writer = WindowWriter(
        root, table_for(data_type), window, replacing=window.key in replacing, unique=unique
    )
    figures = _WindowFigures()
    quality = _quality(data_type, window, seed, writer)
    split = SplitFetch(client, data_type, window.start, window.end, ranges, thrown_away)
    try:
        with collecting_rarely():
            for nodes in split:
                figures.note(nodes)
                _add(writer, quality, nodes, None)
    except BaseException:
        writer.abort()
        raise
    return _Collected(
        window, writer, figures, quality, split.figures(), 1, split.queries, capped_before + split.capped
    )


def _fetch_span(
    client: WizClient,
    data_type: DataType,
    span: list[Window],
    root: Output,
    seed: datetime | None,
    replacing: Collection[str],
    unique: bool,
) -> list[_Collected]:
    table = table_for(data_type)
    writers = {w.key: WindowWriter(root, table, w, replacing=w.key in replacing, unique=unique) for w in span}
    live = dict(writers)  # those not finished: only they hold buffers
    figures = {w.key: _WindowFigures() for w in span}
    quality = {w.key: _quality(data_type, w, seed, writers[w.key]) for w in span}
    starts = np.array([to_micros(w.start) for w in span], dtype=np.int64)
    # Windows from this index on are finished or were reopened (see below); the last is never
    # finished early, as the nodes without a readable time go there.
    passed = len(span) - 1
    fetch = WindowFetch(client, data_type, span[0].start, span[-1].end)
    seen: list[np.ndarray] = []  # the times of what came, to size a split if the query is capped
    try:
        with collecting_rarely():
            # Pages are fetched (and sorted by WindowFetch) in a thread while the previous ones are
            # turned into row groups here, so the wall time approaches the time the API takes.
            for nodes in prefetched(fetch):
                known = nodes.micros[nodes.readable]
                if data_type.result_cap:
                    seen.append(known)
                index = np.searchsorted(starts, nodes.micros, side="right") - 1
                # A node without a readable time can't be placed; the query returned it for this
                # span, so it is kept in the span's last window (and counted in the manifest).
                index[~nodes.readable] = len(span) - 1
                present, counts = np.unique(index, return_counts=True)
                if len(present) == 1:
                    parts = [(int(present[0]), nodes, None)]
                else:
                    # A page spread over several windows (an API order other than newest first)
                    # becomes one batch, cut by window: one conversion of every column per page,
                    # not one per window's share of it.
                    order = np.argsort(index, kind="stable")
                    batch = table.to_batch(nodes).take(pa.array(order))
                    ends = np.cumsum(counts)
                    parts = [
                        (int(i), nodes.take(order[end - n : end]), batch.slice(end - n, n))
                        for i, n, end in zip(present.tolist(), counts.tolist(), ends.tolist(), strict=True)
                    ]
                for i, part, rows in parts:
                    key = span[i].key
                    figures[key].note(part)
                    live[key] = writers[key]  # a finished window that gets rows is reopened
                    _add(writers[key], quality[key], part, rows)
                if len(known):
                    # Newest first, a page older than a window's start means it gets nothing more: its
                    # file is closed now. If the API's order says otherwise after all, the rows that
                    # still come reopen it (WindowWriter), so a record is never lost or doubled.
                    newest = int(np.searchsorted(starts, known.max(), side="right"))
                    for i in range(newest, passed):
                        live.pop(span[i].key).finish()
                    passed = min(passed, newest)
                _bound_memory(live)
    except BaseException as exc:
        for writer in writers.values():
            writer.abort()
        if isinstance(exc, WizResultCapError):
            times = [t for f in figures.values() for t in (f.min_time, f.max_time) if t is not None]
            micros = np.concatenate(seen or [np.empty(0, np.int64)])
            low, high = min(times, default=None), max(times, default=None)
            raise _SpanCapped(exc, low, high, micros, fetch.stats) from None
        raise
    reopened = sum(w.reopened for w in writers.values())
    if reopened:
        log.info(
            "%s: the API sent records for %d window(s) after the query had passed them; their files were "
            "written again with them.",
            data_type.name,
            reopened,
        )
    query = fetch.stats.as_dict()
    return [
        _Collected(w, writers[w.key], figures[w.key], quality[w.key], query, len(span), 1, 0) for w in span
    ]


def _quality(
    data_type: DataType, window: Window, seed: datetime | None, writer: WindowWriter
) -> WindowQuality:
    return WindowQuality(
        table_for(data_type), window.start, window.end, seed, data_type.summary_columns, ids=writer.ids
    )


def _add(writer: WindowWriter, quality: WindowQuality, nodes: Nodes, rows: pa.RecordBatch | None) -> None:
    batch = writer.add(nodes, rows)
    if batch is not None:
        quality.note(nodes, batch)


class _SpanCapped(Exception):
    """A span's query reached the cap; ``seen_from``/``seen_to`` bound the times of what it returned,
    ``micros`` are those times, ``stats`` what the query cost."""

    def __init__(
        self,
        error: WizResultCapError,
        seen_from: datetime | None,
        seen_to: datetime | None,
        micros: np.ndarray,
        stats: WindowStats,
    ) -> None:
        super().__init__(str(error))
        self.error, self.seen_from, self.seen_to = error, seen_from, seen_to
        self.micros, self.stats = micros, stats


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


def _pend(
    pending: PendingCommits,
    table: Table,
    output: Output,
    window: Window,
    written: WrittenFile,
    writer: WindowWriter,
    manifest: dict[str, Any],
) -> None:
    def after(fields: dict[str, Any]) -> None:
        writer.publish_manifest(fields)
        manifest.update(fields)

    pending.add(
        table.name,
        output.location(table.name),
        window.boundary,
        [written.path],
        file_schema(table),
        after=after,
    )


def windows_per_query_for(data_type: DataType, max_rows_per_window: int) -> int | None:
    """How many windows one query may cover without reaching the API's result cap, given the most
    rows a window recently held (None: no cap, or nothing known)."""
    if not data_type.result_cap or max_rows_per_window <= 0:
        return None
    return max(1, int(data_type.result_cap * TARGET_SHARE_OF_CAP / max_rows_per_window))


def _bound_memory(writers: dict[str, WindowWriter]) -> None:
    while sum(w.pending_bytes for w in writers.values()) > MAX_BUFFERED_BYTES:
        max(writers.values(), key=lambda w: w.pending_bytes).flush()


def _manifest(data_type: DataType, c: _Collected, run_id: str) -> dict[str, Any]:
    window, figures = c.window, c.figures
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
        # The query this window was fetched with; it may have covered several windows, or (when
        # split) be the sum of the window's sub-queries, the capped ones included.
        "query": {**c.query, "windows": c.span_windows},
        # Queries whose records are in the file (more than 1: split inside the window), and capped
        # queries covering the window that were thrown away (a capped span counts in each window).
        "queries": c.queries,
        "capped_queries": c.capped_queries,
    }
