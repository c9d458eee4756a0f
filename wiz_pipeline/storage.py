"""Writing one window's Parquet file, whole or not at all, and its JSON manifest beside it.

Layout, per data type: ``{root}/{name}/date=YYYY-MM-DD/{name}_YYYYMMDDTHHMMSSZ.parquet``, by the
window's UTC start, so a hive-aware reader (pyarrow, DuckDB, Spark) sees a ``date`` column. Rows go
into a hidden temporary file (``.<file>.tmp-<random>``, which no reader picks up) as row groups while
pages arrive, and the finished file is renamed over the window's file in one step: readers see the
old file or the new one, never half of one, and a rerun of the window replaces exactly its file.
The manifest is ``_<file stem>.json``; pyarrow and Spark skip names starting with ``_`` or ``.``.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from wiz_pipeline.partitions import Window
from wiz_pipeline.tables import Table
from wiz_pipeline.wiz import Nodes

# A row group is written once this many rows, or this many bytes of them, are waiting: big enough
# for good compression and column statistics, small enough that a window is never held whole.
ROW_GROUP_ROWS = 10_000
ROW_GROUP_BYTES = 16 * 2**20
COMPRESSION = "zstd"
# An open writer keeps buffers the size of its data pages for each column until it is closed, and a
# span keeps one writer open per window: 1 MiB pages (Arrow's default) cost ~3 MiB per open window.
DATA_PAGE_BYTES = 64 * 2**10


# Columns whose values hardly repeat (ids, times, whole nodes): a dictionary only costs hashing until
# Parquet gives up on it. Min/max statistics of whole nodes help no reader.
UNIQUE_COLUMNS = frozenset({"id", "request_id", "raw"})


def writer_options(table: Table) -> dict[str, Any]:
    names = table.schema.names
    return {
        "compression": COMPRESSION,
        "data_page_size": DATA_PAGE_BYTES,
        "use_dictionary": [
            c.name for c in table.columns if c.name not in UNIQUE_COLUMNS and c.type == pa.string()
        ],
        "write_statistics": [n for n in names if n != "raw"],
    }


def window_path(root: Path, table_name: str, window_start: datetime) -> Path:
    return (
        root
        / table_name
        / f"date={window_start:%Y-%m-%d}"
        / f"{table_name}_{window_start:%Y%m%dT%H%M%SZ}.parquet"
    )


def manifest_path(data_file: Path) -> Path:
    return data_file.with_name(f"_{data_file.stem}.json")


# Temporary files this old were left by a run that died (killed, out of memory, a reboot): runs are
# failed after 4 hours (deploy/dagster.yaml), so no live writer owns one.
STALE_AFTER_SECONDS = 6 * 3600


def sweep_stale_temporaries(dataset: Path) -> None:
    """Delete the temporary files dead runs left anywhere under one data type's dataset."""
    if not dataset.is_dir():
        return
    cutoff = time.time() - STALE_AFTER_SECONDS
    for leftover in dataset.glob("date=*/.*.tmp-*"):
        with contextlib.suppress(OSError):
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class WrittenFile:
    path: Path
    manifest: Path
    rows: int
    bytes: int
    row_groups: int


class WindowWriter:
    """Streams one window's rows into a temporary file; ``commit`` puts it in place, ``abort`` drops it.

    The file is named by the window's boundary (even when the first window is collected from a
    later seed), so each partition always maps to the same file.
    """

    def __init__(self, root: Path, table: Table, window: Window) -> None:
        self.table = table
        self.path = window_path(root, table.name, window.boundary)
        self._tmp: Path | None = None
        self._file: Any = None
        self._writer: pq.ParquetWriter | None = None
        self._pending: list[pa.RecordBatch] = []
        self.pending_rows = 0
        self.pending_bytes = 0
        self.rows = 0
        self.row_groups = 0

    def add(self, nodes: Nodes) -> None:
        if not len(nodes):
            return
        batch = self.table.to_batch(nodes)
        self._pending.append(batch)
        self.pending_rows += batch.num_rows
        self.pending_bytes += batch.nbytes
        if self.pending_rows >= ROW_GROUP_ROWS or self.pending_bytes >= ROW_GROUP_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        self._open().write_table(pa.Table.from_batches(self._pending, schema=self.table.schema))
        self.rows += self.pending_rows
        self.row_groups += 1
        self._pending, self.pending_rows, self.pending_bytes = [], 0, 0

    def _open(self) -> pq.ParquetWriter:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._tmp = self.path.with_name(f".{self.path.name}.tmp-{uuid.uuid4().hex[:12]}")
            self._file = open(self._tmp, "wb")  # noqa: SIM115 - closed in commit/abort
            self._writer = pq.ParquetWriter(self._file, self.table.schema, **writer_options(self.table))
        return self._writer

    def commit(self, manifest: dict[str, Any]) -> WrittenFile:
        """Finish the file and rename it (then its manifest) into place; an empty window gets a file
        with no rows, so that a rerun that now finds nothing still replaces what was there."""
        self.flush()
        writer = self._open()
        writer.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        size = self._tmp.stat().st_size
        manifest = {
            **manifest,
            "file": str(self.path),
            "rows": self.rows,
            "bytes": size,
            "row_groups": self.row_groups,
        }
        manifest_file = manifest_path(self.path)
        manifest_tmp = manifest_file.with_name(f".{manifest_file.name}.tmp-{uuid.uuid4().hex[:12]}")
        with open(manifest_tmp, "w") as out:
            out.write(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(self._tmp, self.path)
        os.replace(manifest_tmp, manifest_file)
        _fsync_dir(self.path.parent)  # the renames themselves survive a crash
        self._writer = self._file = self._tmp = None
        return WrittenFile(self.path, manifest_file, self.rows, size, self.row_groups)

    def abort(self) -> None:
        """Drop everything written so far; the window's existing file, if any, is left as it was."""
        try:
            if self._writer is not None:
                self._writer.close()
            if self._file is not None:
                self._file.close()
        finally:
            if self._tmp is not None:
                self._tmp.unlink(missing_ok=True)
            self._writer = self._file = self._tmp = None
            self._pending, self.pending_rows, self.pending_bytes = [], 0, 0
            self.rows = self.row_groups = 0
