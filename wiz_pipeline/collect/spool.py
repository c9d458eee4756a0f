"""Rows of a current-state build waiting on local disk, and which of them is each id's latest version.

A build streams its sources (a full read, or the previous build's file; then window files) into a
``Spool``: an unlinked temporary Parquet file, with only each row's id fingerprint and version times
in memory (16 + 8 bytes per version column a row), so memory doesn't grow with the rows' size.
``latest`` then picks one row per id, and ``batches`` streams those back a row group at a time.

Dagster-free, like ``collect``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from wiz_pipeline.collect.idset import fingerprints
from wiz_pipeline.landing.files import ROW_GROUP_BYTES, ROW_GROUP_ROWS
from wiz_pipeline.landing.tables import Table

EARLIEST = np.iinfo(np.int64).min


class Spool:
    """Rows waiting on local disk (an unlinked temporary Parquet file, mode 0600, gone with the
    process however it ends), with each row's id fingerprint and version times in memory.

    ``version_columns`` say which of two versions of an id is later, compared in order (a missing
    time counts as earliest)."""

    def __init__(self, table: Table, version_columns: Sequence[str]) -> None:
        self.table = table
        self.version_columns = tuple(version_columns)
        self.file = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        # lz4: the spool is read back once, soon; speed matters more than size.
        self.writer: pq.ParquetWriter | None = pq.ParquetWriter(self.file, table.schema, compression="lz4")
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = self._pending_bytes = 0
        self._fp: list[np.ndarray] = []
        self._versions: list[list[np.ndarray]] = [[] for _ in self.version_columns]
        self.rows = 0
        self.without_id = 0

    def __enter__(self) -> Spool:
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
        self._fp.append(fingerprints_of(batch.column("id").to_pylist()))
        for held, name in zip(self._versions, self.version_columns, strict=True):
            held.append(micros(batch.column(name)))
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

    def _version_arrays(self) -> list[np.ndarray]:
        return [np.concatenate(held) if held else np.empty(0, np.int64) for held in self._versions]

    def newest(self, rows: int) -> int | None:
        """The latest first version time (micros) among the first ``rows`` rows; None if none has one."""
        versions = self._version_arrays()[0][:rows]
        known = versions[versions != EARLIEST]
        return int(known.max()) if len(known) else None

    def latest(self, base_rows: int, *, base_wins_ties: bool) -> np.ndarray:
        """Per row, whether it is its id's latest version. The first ``base_rows`` rows are the
        base (a full read, or the previous build); on a tie of every version column the base wins
        if ``base_wins_ties`` (a read is the API's own view), else the row added last wins."""
        fp = self.fingerprints()
        seq = np.arange(self.rows)
        tie = (seq, seq < base_rows) if base_wins_ties else (seq,)
        # lexsort's last key is its first: by id, then version, then the tie-breaks.
        order = np.lexsort((*tie, *reversed(self._version_arrays()), fp[:, 1], fp[:, 0]))
        ordered = fp[order]
        last = np.ones(self.rows, bool)
        last[:-1] = (ordered[1:] != ordered[:-1]).any(axis=1)
        keep = np.zeros(self.rows, bool)
        keep[order[last]] = True
        return keep

    def older_than_base(self, keep: np.ndarray, base_rows: int) -> int:
        """How many kept rows are older (by the version columns, in order) than the latest version
        of their id among the base's rows (the first ``base_rows``); 0 unless ``latest`` is wrong.
        Computed apart from ``latest``, by another route, so that it can catch it."""
        if not self.rows:
            return 0
        versions = self._version_arrays()
        _, group = np.unique(as_keys(self.fingerprints()), return_inverse=True)
        group = group.ravel()
        # Per id, the base's latest version: the greatest first column, then among the rows at it
        # the greatest second, and so on.
        candidates = np.arange(base_rows)
        best = []
        for values in versions:
            top = np.full(group.max() + 1, EARLIEST, np.int64)
            np.maximum.at(top, group[candidates], values[candidates])
            candidates = candidates[values[candidates] == top[group[candidates]]]
            best.append(top)
        kept = np.flatnonzero(keep)
        g = group[kept]
        older = np.zeros(len(kept), bool)
        equal = np.ones(len(kept), bool)
        for values, top in zip(versions, best, strict=True):
            older |= equal & (values[kept] < top[g])
            equal &= values[kept] == top[g]
        return int(np.count_nonzero(older))

    def duplicates_in(self, rows: int) -> int:
        """How many of the first ``rows`` rows repeat an id seen before them."""
        return rows - len(np.unique(as_keys(self.fingerprints()[:rows])))

    def batches(self, keep: np.ndarray) -> Iterator[pa.RecordBatch]:
        """The rows where ``keep`` is true, in spool order, a row group at a time."""
        self._flush()
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self.file.seek(0)
        offset = 0
        for batch in row_groups(self.file):
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


def row_groups(source: Any, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """A Parquet file's rows, one row group in memory at a time (``iter_batches`` reads ahead by as
    many row groups as it likes: memory that grew with the file)."""
    file = pq.ParquetFile(source)
    for index in range(file.num_row_groups):
        yield from file.read_row_group(index, columns=columns).to_batches()


def conform(batch: pa.RecordBatch, table: Table) -> pa.RecordBatch:
    """A batch with exactly the table's columns (a file written by an older release may lack a
    column added since: it is null)."""
    columns = [
        batch.column(f.name).cast(f.type) if f.name in batch.schema.names else pa.nulls(len(batch), f.type)
        for f in table.schema
    ]
    return pa.RecordBatch.from_arrays(columns, schema=table.schema)


def micros(column: pa.Array) -> np.ndarray:
    return pc.cast(column, pa.int64()).fill_null(EARLIEST).to_numpy()


def fingerprints_of(ids: list[str]) -> np.ndarray:
    return np.array(fingerprints(ids), np.int64).reshape(-1, 2)


def as_keys(fp: np.ndarray) -> np.ndarray:
    """Fingerprints as one 16-byte value each, which ``np.isin`` and ``np.unique`` compare whole."""
    return np.ascontiguousarray(fp).view(np.dtype((np.void, 16))).ravel()
