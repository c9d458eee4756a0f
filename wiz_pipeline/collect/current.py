"""The current state of every issue: one Parquet file, one row per issue id, its latest version.

Issue windows are a change log by ``statusChangedAt``: they hold new issues and status changes, but
not edits that leave the status alone (notes, tickets, severity, due date), nor issues whose last
status change came before the seed. So this reads every issue the API returns (``issuesV2`` with no
filter) and writes ``{WIZ_OUTPUT_URI}/issues_current/issues_current.parquet`` (with the columns of
``issues``), replacing the previous file whole: a new file renamed over it locally, one completed
upload on S3; a build that fails leaves the previous file as it was.

Why the result holds each id once, in its latest version:

- **Paging a changing list by offset cursors can repeat an id or skip one.** The read is ordered by
  ``createdAt`` ascending, so an issue created during the read is appended at the end (it shifts
  nothing already read) and a status change or an edit doesn't move an issue. Only an issue that
  disappears moves the later ones up one place, and the next page then skips one of them. A repeat
  is dropped below (the later of two versions is kept). A skip is caught by comparing with the
  previous build: an id that build had and this read lacks is either gone or skipped, so when there
  are such ids the whole list is read a second time and what it finds of them is kept (a second
  skip of the same issue would need another deletion just before it, during the second pass).
- **An issue that changes after its page was read** is in the file in its older version. Issue
  windows written since the read began (by file time, less ``CLOCK_SKEW``) are read too, and each
  id keeps its latest version across the read and those windows. With the ``wiz_api`` pool (one
  Wiz step at a time) no window is written while this runs, so this matters where the pool's limit
  is higher, and for windows written just before the read that the API's own view hadn't caught up
  with; a change still not in any window is in the next build's read.
- **Which version is later:** the one with the later ``statusChangedAt``; on a tie, the later
  ``updatedAt`` (an edit moves only that); on a tie of both, the read's (the same version), and
  within the read the one read last. A missing time counts as earliest. ``updatedAt`` alone can't
  order versions: the API shows it earlier than ``statusChangedAt`` now and then.

Memory stays bounded however many issues there are: pages go to a spool (an unlinked temporary
Parquet file under ``TMPDIR``) as they arrive; in memory are only each row's id fingerprint and
version times (32 bytes a row) and the previous build's fingerprints. The spool's latest versions
are then copied, a row group at a time, into the new file.

Dagster-free, like ``collect``: the asset turns a ``CurrentBuild`` into a materialization.
"""

from __future__ import annotations

import collections
import itertools
import logging
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from wiz_pipeline.collect.idset import fingerprints
from wiz_pipeline.core.times import format_time
from wiz_pipeline.data_types.issues import CURRENT_DATASET, ISSUES
from wiz_pipeline.landing.files import ROW_GROUP_BYTES, ROW_GROUP_ROWS, publish_with_manifest, writer_options
from wiz_pipeline.landing.outputs import Output, Upload
from wiz_pipeline.landing.quality import Outcome
from wiz_pipeline.landing.tables import Table, table_for
from wiz_pipeline.wiz import RequestStats, WizClient

log = logging.getLogger(__name__)

DATASET = CURRENT_DATASET
DATA_KEY = f"{DATASET}/{DATASET}.parquet"
MANIFEST_KEY = f"{DATASET}/_{DATASET}.json"
# Window files last written this long before the read began are merged too: S3's LastModified
# comes from S3's clock, not this host's.
CLOCK_SKEW = timedelta(minutes=5)
# New issues land at the end, and nothing but a deletion moves an issue (see the module's docstring).
READ_ORDER = {"field": "CREATED_AT", "direction": "ASC"}
CLOSED = frozenset({"RESOLVED", "REJECTED"})
_EARLIEST = np.iinfo(np.int64).min


@dataclass
class Changes:
    """What changed since the previous build (``previous_rows`` None: there was none)."""

    new: int = 0
    resolved: int = 0  # open (or in progress) then, resolved or rejected now
    reopened: int = 0  # resolved or rejected then, open or in progress now
    edited: int = 0  # any other change of the node: notes, tickets, severity, open -> in progress...
    gone: int = 0  # in the previous build, no longer returned by the API
    unchanged: int = 0
    previous_rows: int | None = None

    def as_dict(self) -> dict[str, int | None]:
        return dict(self.__dict__)

    def markdown(self) -> str:
        if self.previous_rows is None:
            return f"First build: {self.new} issues, nothing to compare with."
        rows = [
            ("new", self.new),
            ("resolved", self.resolved),
            ("reopened", self.reopened),
            ("other edits", self.edited),
            ("gone", self.gone),
            ("unchanged", self.unchanged),
        ]
        lines = [
            f"Since the previous build ({self.previous_rows} issues):",
            "",
            "| change | issues |",
            "|---|---:|",
        ]
        return "\n".join(lines + [f"| {name} | {count} |" for name, count in rows])


@dataclass
class CurrentBuild:
    path: str
    uri: str
    manifest_path: str
    rows: int
    bytes: int
    row_groups: int
    by_status: dict[str, int]
    by_severity: dict[str, int]
    changes: Changes
    manifest: dict[str, Any]
    checks: list[Outcome]


# Per check of the built file: its description in the UI, and whether a failure is an error (a bug).
CHECKS: dict[str, tuple[str, bool]] = {
    "one_row_per_id": (
        "Every issue id is in the file once. A failure is a bug in the merge: counts of issues are "
        "inflated. Deduplicate on `id` (latest `status_changed_at`) when reading, and report it.",
        True,
    ),
    "not_older_than_read": (
        "No issue is in the file in a version older than the one the build's read of the API saw "
        "(by `status_changed_at`, then `updated_at`). A failure is a bug in the merge: some rows "
        "show a stale status. Report it; the next build reads everything again.",
        True,
    ),
}


@dataclass
class _Keys:
    """Per issue of a build: its id's fingerprint (two int64 columns), whether it is resolved or
    rejected, and a hash of its node (``raw``), which any edit changes."""

    fp: np.ndarray = field(default_factory=lambda: np.empty((0, 2), np.int64))
    closed: np.ndarray = field(default_factory=lambda: np.empty(0, bool))
    raw_hash: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))


def build_current(client: WizClient, output: Output, *, run_id: str) -> CurrentBuild:
    """Read every issue, merge newer window versions, replace the file; see the module's docstring.

    ``output.check()`` must have passed (the caller does it before any Wiz request)."""
    table = table_for(ISSUES)
    started = datetime.now(UTC)
    clock = time.monotonic()
    stats = RequestStats()
    output.sweep(DATASET)  # what a killed build left (a hidden file; an incomplete upload)
    previous = _previous(output)
    with _Spool(table) as spool:
        pages = _read_all(client, spool, stats)
        read_rows = spool.rows
        passes, recovered = 1, 0
        missing = _missing(previous.fp, spool.fingerprints()) if previous is not None else None
        if missing is not None and len(missing) and pages > 1:
            # Gone, or skipped because an issue before them disappeared mid-read: read once more.
            log.info(
                "%d issue(s) of the previous build are missing from the read; reading again.", len(missing)
            )
            passes = 2
            _read_all(client, spool, stats, only=missing)
            recovered = spool.rows - read_rows
        first_window_row = spool.rows
        merged = _merge_windows(output, spool, started - CLOCK_SKEW)
        latest = spool.latest(first_window_row)
        duplicates = read_rows - len(np.unique(_as_keys(spool.fingerprints()[:read_rows])))
        from_windows = int(np.count_nonzero(latest[first_window_row:]))
        stale = spool.older_than_read(latest, read_rows)
        written = _write(output, table, spool, latest)
        without_id = spool.without_id
    try:
        changes = _compare(previous, written.keys)
        manifest = {
            "data_type": DATASET,
            "run_id": run_id,
            "read_started": format_time(started.replace(microsecond=0)),
            "written_at": format_time(datetime.now(UTC).replace(microsecond=0)),
            "file": output.location(DATA_KEY),
            "rows": written.rows,
            "bytes": written.bytes,
            "row_groups": written.row_groups,
            "by_status": written.by_status,
            "by_severity": written.by_severity,
            "changes": changes.as_dict(),
            "read": {
                **stats.as_dict(),
                "passes": passes,
                "nodes_received": read_rows,
                "duplicates_dropped": duplicates,
                "recovered_on_second_pass": recovered,
                "nodes_without_id": without_id,
                "duration_seconds": round(time.monotonic() - clock, 3),
            },
            "windows_merged": len(merged),
            "versions_from_windows": from_windows,
        }
        _publish(output, written.upload, manifest)
    except BaseException:
        written.upload.abort()
        raise
    return CurrentBuild(
        path=output.location(DATA_KEY),
        uri=output.uri_of(DATA_KEY),
        manifest_path=output.location(MANIFEST_KEY),
        rows=written.rows,
        bytes=written.bytes,
        row_groups=written.row_groups,
        by_status=written.by_status,
        by_severity=written.by_severity,
        changes=changes,
        manifest=manifest,
        checks=_checks(written, without_id, stale),
    )


def _checks(written: _Written, without_id: int, stale: int) -> list[Outcome]:
    repeated = written.rows - len(np.unique(_as_keys(written.keys.fp)))
    return [
        Outcome(
            "one_row_per_id",
            repeated == 0,
            CHECKS["one_row_per_id"][1],
            f"{repeated} id(s) repeated in {written.rows} rows "
            f"({without_id} node(s) read without an id left out)",
            {"rows": written.rows, "repeated_ids": repeated, "nodes_without_id": without_id},
        ),
        Outcome(
            "not_older_than_read",
            stale == 0,
            CHECKS["not_older_than_read"][1],
            f"{stale} issue(s) in a version older than the read's",
            {"older_than_read": stale},
        ),
    ]


class _Spool:
    """Rows waiting on local disk (an unlinked temporary Parquet file, mode 0600, gone with the
    process however it ends), with each row's id fingerprint and version times in memory."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.file = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        # lz4: the spool is read back once, soon; speed matters more than size.
        self.writer: pq.ParquetWriter | None = pq.ParquetWriter(self.file, table.schema, compression="lz4")
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = self._pending_bytes = 0
        self._fp: list[np.ndarray] = []
        self._changed: list[np.ndarray] = []
        self._updated: list[np.ndarray] = []
        self.rows = 0
        self.without_id = 0

    def __enter__(self) -> _Spool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def add(self, batch: pa.RecordBatch) -> None:
        if not len(batch):
            return
        has_id = pc.fill_null(pc.not_equal(batch.column("id"), ""), False).to_numpy(zero_copy_only=False)
        if not has_id.all():
            # One row per id can't hold these; never seen from Wiz, but not silently dropped.
            self.without_id += int(np.count_nonzero(~has_id))
            batch = batch.filter(pa.array(has_id))
            if not len(batch):
                return
        ids = batch.column("id")
        self._fp.append(_fingerprints(ids.to_pylist()))
        self._changed.append(_micros(batch.column("status_changed_at")))
        self._updated.append(_micros(batch.column("updated_at")))
        self.rows += len(batch)
        self._pending.append(batch)
        self._pending_rows += len(batch)
        self._pending_bytes += batch.nbytes
        if self._pending_rows >= ROW_GROUP_ROWS or self._pending_bytes >= ROW_GROUP_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self._pending and self.writer is not None:
            self.writer.write_table(pa.Table.from_batches(self._pending, schema=self.table.schema))
        self._pending, self._pending_rows, self._pending_bytes = [], 0, 0

    def fingerprints(self) -> np.ndarray:
        if len(self._fp) > 1:
            self._fp = [np.concatenate(self._fp)]
        return self._fp[0] if self._fp else np.empty((0, 2), np.int64)

    def latest(self, read_rows: int) -> np.ndarray:
        """Per row, whether it is its id's latest version (see the module's docstring); the first
        ``read_rows`` rows are the read's, which win a tie with a window's."""
        fp = self.fingerprints()
        changed = np.concatenate(self._changed) if self._changed else np.empty(0, np.int64)
        updated = np.concatenate(self._updated) if self._updated else np.empty(0, np.int64)
        seq = np.arange(self.rows)
        order = np.lexsort((seq, seq < read_rows, updated, changed, fp[:, 1], fp[:, 0]))
        ordered = fp[order]
        last = np.ones(self.rows, bool)
        last[:-1] = (ordered[1:] != ordered[:-1]).any(axis=1)
        keep = np.zeros(self.rows, bool)
        keep[order[last]] = True
        return keep

    def older_than_read(self, keep: np.ndarray, read_rows: int) -> int:
        """How many kept rows are older (``statusChangedAt``, then ``updatedAt``) than the latest
        version of their id among the read's rows (the first ``read_rows``); 0 unless ``latest`` is
        wrong. Computed apart from ``latest``, by another route, so that it can catch it."""
        fp = self.fingerprints()
        if not self.rows:
            return 0
        changed = np.concatenate(self._changed)
        updated = np.concatenate(self._updated)
        _, group = np.unique(_as_keys(fp), return_inverse=True)
        group = group.ravel()
        read_changed = np.full(group.max() + 1, _EARLIEST, np.int64)
        read_updated = read_changed.copy()
        r = np.arange(read_rows)
        np.maximum.at(read_changed, group[r], changed[r])
        at_latest = r[changed[r] == read_changed[group[r]]]
        np.maximum.at(read_updated, group[at_latest], updated[at_latest])
        kept = np.flatnonzero(keep)
        c, u, g = changed[kept], updated[kept], group[kept]
        older = (c < read_changed[g]) | ((c == read_changed[g]) & (u < read_updated[g]))
        return int(np.count_nonzero(older))

    def batches(self, keep: np.ndarray) -> Iterator[pa.RecordBatch]:
        """The rows where ``keep`` is true, in spool order, a row group at a time."""
        self._flush()
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self.file.seek(0)
        offset = 0
        for batch in _row_groups(self.file):
            mask = keep[offset : offset + len(batch)]
            offset += len(batch)
            if mask.any():
                yield batch if mask.all() else batch.filter(pa.array(mask))

    def close(self) -> None:
        try:
            if self.writer is not None:
                self.writer.close()
        finally:
            self.writer = None
            self.file.close()


def _row_groups(source: Any, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """A Parquet file's rows, one row group in memory at a time (``iter_batches`` reads ahead by as
    many row groups as it likes: memory that grew with the file)."""
    file = pq.ParquetFile(source)
    for index in range(file.num_row_groups):
        yield from file.read_row_group(index, columns=columns).to_batches()


def _micros(column: pa.Array) -> np.ndarray:
    return pc.cast(column, pa.int64()).fill_null(_EARLIEST).to_numpy()


def _read_all(client: WizClient, spool: _Spool, stats: RequestStats, only: np.ndarray | None = None) -> int:
    """Page through every issue into ``spool`` (only the ids in ``only``, if given); the page count."""
    pages = 0
    for page in client.paginate(
        ISSUES.query,
        {"orderBy": READ_ORDER},
        operation=ISSUES.operation,
        connection=ISSUES.connection,
        time_field=ISSUES.time_field,
        node_type=spool.table.row_type,  # decoded once, into the structs the columns are built from
        permission=ISSUES.permission,
        stats=stats,
    ):
        pages += 1
        if not page.nodes:
            continue
        batch = spool.table.rows_to_batch(page.nodes, rows=page.rows)
        if only is not None:
            ids = [i or "" for i in batch.column("id").to_pylist()]
            batch = batch.filter(pa.array(np.isin(_as_keys(_fingerprints(ids)), only)))
        spool.add(batch)
    return pages


def _missing(previous: np.ndarray, found: np.ndarray) -> np.ndarray:
    """The fingerprints (as ``_as_keys``) in ``previous`` that ``found`` lacks."""
    wanted = _as_keys(previous)
    return wanted[~np.isin(wanted, _as_keys(found))]


def _fingerprints(ids: list[str]) -> np.ndarray:
    return np.array(fingerprints(ids), np.int64).reshape(-1, 2)


def _as_keys(fp: np.ndarray) -> np.ndarray:
    """Fingerprints as one 16-byte value each, which ``np.isin`` and ``np.unique`` compare whole."""
    return np.ascontiguousarray(fp).view(np.dtype((np.void, 16))).ravel()


def _pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For fingerprints ``a`` and ``b`` (each without repeats), the indices ``i, j`` with a[i] == b[j]."""
    keys = np.concatenate([a, b]).reshape(-1, 2)
    side = np.concatenate([np.zeros(len(a), np.int8), np.ones(len(b), np.int8)])
    index = np.concatenate([np.arange(len(a)), np.arange(len(b))])
    order = np.lexsort((side, keys[:, 1], keys[:, 0]))
    k, s, i = keys[order], side[order], index[order]
    same = (k[1:] == k[:-1]).all(axis=1) & (s[:-1] == 0) & (s[1:] == 1)
    at = np.flatnonzero(same)
    return i[at], i[at + 1]


def _merge_windows(output: Output, spool: _Spool, since: datetime) -> list[str]:
    """Add the rows of every issue window file written since ``since`` to the spool; their keys."""
    merged = []
    for key, listed in sorted(output.files([f"{ISSUES.name}/"]).items()):
        name = key.rpartition("/")[2]
        window_file = key.startswith(f"{ISSUES.name}/date=") and name.endswith(".parquet")
        if listed.modified < since or not window_file or name.startswith(("_", ".")):
            continue
        source = output.read(key)
        if source is None:  # replaced meanwhile: the new one is newer than `since` too, and listed
            continue
        with source:
            for batch in _row_groups(source):
                spool.add(_conform(batch, spool.table))
        merged.append(key)
    return merged


def _conform(batch: pa.RecordBatch, table: Table) -> pa.RecordBatch:
    """A window's batch with exactly the table's columns (a file written by an older release may
    lack a column added since: it is null)."""
    columns = [
        batch.column(f.name).cast(f.type) if f.name in batch.schema.names else pa.nulls(len(batch), f.type)
        for f in table.schema
    ]
    return pa.RecordBatch.from_arrays(columns, schema=table.schema)


@dataclass
class _Written:
    upload: Upload
    rows: int
    bytes: int
    row_groups: int
    by_status: dict[str, int]
    by_severity: dict[str, int]
    keys: _Keys


def _write(output: Output, table: Table, spool: _Spool, keep: np.ndarray) -> _Written:
    """Copy the kept rows into a new file (finished, not yet visible)."""
    upload = output.open(DATA_KEY)
    writer = pq.ParquetWriter(upload.file, table.schema, **writer_options(table))
    status: collections.Counter[str] = collections.Counter()
    severity: collections.Counter[str] = collections.Counter()
    fps, closed, hashes = [], [], []
    rows = row_groups = 0
    pending: list[pa.RecordBatch] = []
    try:
        for batch in itertools.chain(spool.batches(keep), [None]):
            if batch is not None:
                pending.append(batch)
                statuses = batch.column("status").to_pylist()
                status.update(s or "(none)" for s in statuses)
                severity.update(s or "(none)" for s in batch.column("severity").to_pylist())
                fps.append(_fingerprints(batch.column("id").to_pylist()))
                closed.append(np.array([s in CLOSED for s in statuses], bool))
                hashes.append(np.array([hash(r) for r in batch.column("raw").to_pylist()], np.int64))
            waiting = sum(len(b) for b in pending)
            full = waiting >= ROW_GROUP_ROWS or sum(b.nbytes for b in pending) >= ROW_GROUP_BYTES
            if waiting and (batch is None or full):
                writer.write_table(pa.Table.from_batches(pending, schema=table.schema))
                rows, row_groups, pending = rows + waiting, row_groups + 1, []
        writer.close()
        size = upload.finish()
    except BaseException:
        writer.close()
        upload.abort()
        raise
    keys = _Keys(
        np.concatenate(fps) if fps else np.empty((0, 2), np.int64),
        np.concatenate(closed) if closed else np.empty(0, bool),
        np.concatenate(hashes) if hashes else np.empty(0, np.int64),
    )
    return _Written(
        upload, rows, size, row_groups, dict(sorted(status.items())), dict(sorted(severity.items())), keys
    )


def _publish(output: Output, upload: Upload, manifest: dict[str, Any]) -> None:
    """The file, then its manifest, each in one step."""
    publish_with_manifest(output, upload, MANIFEST_KEY, manifest)


def _previous(output: Output) -> _Keys | None:
    """The previous build's ids, statuses and node hashes; None if there is none (or it can't be
    read, which the new build then replaces)."""
    source = output.read(DATA_KEY)
    if source is None:
        return None
    fps, closed, hashes = [], [], []
    try:
        with source:
            for batch in _row_groups(source, columns=["id", "status", "raw"]):
                fps.append(_fingerprints(batch.column("id").to_pylist()))
                closed.append(np.array([s in CLOSED for s in batch.column("status").to_pylist()], bool))
                hashes.append(np.array([hash(r) for r in batch.column("raw").to_pylist()], np.int64))
    except (OSError, pa.ArrowException) as exc:
        log.warning("The previous %s can't be read (%s); this build replaces it.", DATA_KEY, exc)
        return None
    if not fps:
        return _Keys()
    return _Keys(np.concatenate(fps), np.concatenate(closed), np.concatenate(hashes))


def _compare(previous: _Keys | None, current: _Keys) -> Changes:
    if previous is None:
        return Changes(new=len(current.fp))
    i, j = _pairs(previous.fp, current.fp)
    was, now = previous.closed[i], current.closed[j]
    resolved = int(np.count_nonzero(~was & now))
    reopened = int(np.count_nonzero(was & ~now))
    differs = previous.raw_hash[i] != current.raw_hash[j]
    edited = int(np.count_nonzero(differs & (was == now)))
    return Changes(
        new=len(current.fp) - len(i),
        resolved=resolved,
        reopened=reopened,
        edited=edited,
        gone=len(previous.fp) - len(i),
        unchanged=len(i) - resolved - reopened - edited,
        previous_rows=len(previous.fp),
    )
