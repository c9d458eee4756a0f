"""Writing one window's Parquet file, whole or not at all, and its JSON manifest beside it.

Layout, per data type: ``{WIZ_OUTPUT_URI}/{name}/date=YYYY-MM-DD/{name}_YYYYMMDDTHHMMSSZ.parquet``, by
the window's UTC start, so a hive-aware reader (pyarrow, DuckDB, Spark, Athena) sees a ``date`` column.
Every file also carries that start as a ``window_start`` column (the same value in each row: nothing
once compressed), from which an Iceberg table takes each file's partition (``landing.iceberg``).

With WIZ_ICEBERG, a window's file is named for the write as well
(``{name}_YYYYMMDDTHHMMSSZ-<write id>.parquet``): a table's older snapshots keep referencing the file
a rerun replaces, so a rerun never overwrites it; maintenance deletes it once no snapshot needs it.
The manifest keeps the window's own name and says which file is the window's now (``window_file``).
Rows are written as row groups while pages arrive, to an upload that nobody sees until the window is
complete (``outputs``: a hidden temporary file renamed into place locally; a multipart upload
completed in one step on S3): readers see the old file or the new one, never half of one, and a rerun
of the window replaces exactly its file. The manifest is ``_<file stem>.json``, written the same way
after the data file; pyarrow and Spark skip names starting with ``_`` or ``.``.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from wiz_pipeline.core.records import Nodes
from wiz_pipeline.core.windows import Window
from wiz_pipeline.landing.ids import IdFigures, WindowIds
from wiz_pipeline.landing.outputs import Output, Upload
from wiz_pipeline.landing.tables import WINDOW_FIELD, Table, arrow_type, file_schema

log = logging.getLogger(__name__)

# A row group is written once this many rows, or this many bytes of them, are waiting: big enough
# for good compression and column statistics, small enough that a window is never held whole.
ROW_GROUP_ROWS = 10_000
ROW_GROUP_BYTES = 16 * 2**20
COMPRESSION = "zstd"
# An open writer keeps buffers the size of its data pages for each column until it is closed, and a
# span keeps one writer open per window it hasn't finished (all of them when the API's order is
# random): 1 MiB pages (Arrow's default) cost ~3 MiB per open window.
DATA_PAGE_BYTES = 64 * 2**10


# Columns whose values hardly repeat (ids, times, whole nodes): a dictionary only costs hashing until
# Parquet gives up on it. Min/max statistics of whole nodes help no reader.
UNIQUE_COLUMNS = frozenset({"id", "request_id", "raw"})


def writer_options(table: Table) -> dict[str, Any]:
    # window_start's statistics give an Iceberg table each file's partition (landing.iceberg).
    names = [*table.schema.names, WINDOW_FIELD.name]
    return {
        "compression": COMPRESSION,
        "data_page_size": DATA_PAGE_BYTES,
        "use_dictionary": [
            c.name for c in table.columns if c.name not in UNIQUE_COLUMNS and arrow_type(c) == pa.string()
        ],
        "write_statistics": [n for n in names if n != "raw"],
    }


def window_key(table_name: str, window_start: datetime) -> str:
    """The window's file, relative to WIZ_OUTPUT_URI (with WIZ_ICEBERG: see ``unique_key``)."""
    return f"{table_name}/date={window_start:%Y-%m-%d}/{table_name}_{window_start:%Y%m%dT%H%M%SZ}.parquet"


def unique_key(key: str) -> str:
    """``key`` with a write id: a name no earlier write used."""
    return f"{key.removesuffix('.parquet')}-{uuid.uuid4().hex[:12]}.parquet"


def own_key(key: str) -> str:
    """A window's own name, from its file's (which may carry a write id)."""
    folder, _, name = key.rpartition("/")
    return f"{folder}/{_WRITE_ID.sub('', name.removesuffix('.parquet'))}.parquet"


def manifest_key(data_key: str) -> str:
    """The manifest of the file at ``data_key`` (the window's own name, with or without write id)."""
    folder, _, name = data_key.rpartition("/")
    return f"{folder}/_{_WRITE_ID.sub('', name.removesuffix('.parquet'))}.json"


_WRITE_ID = re.compile(r"-[0-9a-f]{12}$")


def with_window(rows: Any, window_start: datetime) -> Any:
    """``rows`` (an Arrow record batch or table) with ``window_start`` appended, the same in each row."""
    return rows.append_column(WINDOW_FIELD, pa.repeat(pa.scalar(window_start, WINDOW_FIELD.type), len(rows)))


def window_file(output: Output, key: str) -> str:
    """The key of the file that is the window's now, given its own name ``key``: the file its
    manifest names (with WIZ_ICEBERG the name carries a write id), else ``key``."""
    manifest = _read_manifest(output, manifest_key(key))
    named = manifest.get("file")
    if isinstance(named, str) and named:
        folder = key.rpartition("/")[0]
        return f"{folder}/{named.rpartition('/')[2]}"
    return key


class HashingFile(io.RawIOBase):
    """Passes the writer's bytes on to an upload, hashing them on their way: the file's SHA-256 as
    written, with no read back (which on S3 would be a second download of every window)."""

    def __init__(self, target: BinaryIO) -> None:
        self.target = target
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.digest.update(data)
        self.size += memoryview(data).nbytes
        return self.target.write(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.target.flush()

    def sha256(self) -> str:
        return self.digest.hexdigest()


# What a window's first write records (no earlier file was replaced).
FIRST_READ: dict[str, Any] = {"reads": 1, "late_records": None, "gone_records": None}


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    """A manifest as every manifest file holds it."""
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()


def write_manifest(output: Output, key: str, manifest: dict[str, Any]) -> None:
    """A manifest at ``key``, visible in one step."""
    upload = output.open(key)
    try:
        upload.file.write(manifest_bytes(manifest))
        upload.finish()
        output.publish([upload])
    except BaseException:
        upload.abort()
        raise


def publish_with_manifest(output: Output, upload: Upload, key: str, manifest: dict[str, Any]) -> None:
    """A finished data upload, then its manifest at ``key``, each made visible in one step (the
    manifest is written before either is: a full disk leaves the window's files as they were)."""
    manifest_upload = output.open(key)
    try:
        manifest_upload.file.write(manifest_bytes(manifest))
        manifest_upload.finish()
        output.publish([upload, manifest_upload])
    except BaseException:
        manifest_upload.abort()
        raise


@dataclass(frozen=True)
class WrittenFile:
    path: str  # a local path, or the s3:// URI
    uri: str  # file:// or s3://
    manifest: str
    rows: int
    bytes: int
    row_groups: int
    sha256: str  # of the bytes as written
    key: str = ""  # relative to the output


class WindowWriter:
    """Streams one window's rows into an upload; ``commit`` puts it in place, ``abort`` drops it.

    The file is named by the window's boundary (even when the first window is collected from a
    later seed), so each partition always maps to the same file.

    ``finish`` closes the file early, once the query has passed the window, so that a run holds an
    open Parquet writer (and its buffers, most of a megabyte) only for the windows still being
    written, however many it covers; the upload still waits, unseen, for ``commit``. Rows for a
    finished window, which an API that doesn't list newest first can send, reopen it: its file is
    read back and written again with them, and it then stays open until ``commit``.

    ``replacing``: a file is in place that ``replaced`` will be asked about; the comparison is made
    when the window is finished, before its ids are dropped.
    """

    def __init__(
        self, output: Output, table: Table, window: Window, *, replacing: bool = False, unique: bool = False
    ) -> None:
        self.table = table
        self.schema = file_schema(table)
        self.window_start = window.boundary
        self.output = output
        self.own_key = window_key(table.name, window.boundary)  # the window's name; its manifest's
        self.key = unique_key(self.own_key) if unique else self.own_key
        self.replacing = replacing
        self._later: dict[str, Any] | None = None  # a manifest waiting for its file's commit
        self._upload: Upload | None = None
        self._sink: HashingFile | None = None
        self._writer: pq.ParquetWriter | None = None
        self._pending: list[pa.RecordBatch] = []
        self.pending_rows = 0
        self.pending_bytes = 0
        self.rows = 0
        self.row_groups = 0
        self.file_schema: pa.Schema | None = None  # set when the file is closed
        self.finished = False
        self.reopened = 0  # times rows came for it once finished
        # The window's ids as written, for the checks (``WindowQuality``) and for ``replaced``.
        self.ids = WindowIds()
        self._comparison: tuple[bool, IdFigures | None] | None = None  # see _compare

    def add(self, nodes: Nodes, batch: pa.RecordBatch | None = None) -> pa.RecordBatch | None:
        """Buffer ``nodes`` as rows (``batch``: they already are, in order); the batch they became
        (None if there were none)."""
        if not len(nodes):
            return None
        if self.finished:
            self._reopen()
        if batch is None:
            batch = self.table.to_batch(nodes)
        self.ids.add(batch.column("id"))
        self._pending.append(with_window(batch, self.window_start))
        self.pending_rows += batch.num_rows
        self.pending_bytes += batch.nbytes
        if self.pending_rows >= ROW_GROUP_ROWS or self.pending_bytes >= ROW_GROUP_BYTES:
            self.flush()
        return batch

    def flush(self) -> None:
        if not self._pending:
            return
        self._open().write_table(pa.Table.from_batches(self._pending, schema=self.schema))
        self.rows += self.pending_rows
        self.row_groups += 1
        self._pending, self.pending_rows, self.pending_bytes = [], 0, 0

    def _open(self) -> pq.ParquetWriter:
        if self._writer is None:
            self._upload = self.output.open(self.key)
            self._sink = HashingFile(self._upload.file)
            self._writer = pq.ParquetWriter(self._sink, self.schema, **writer_options(self.table))
        return self._writer

    def _close(self) -> None:
        """Write the file's footer (an empty window gets a file with no rows)."""
        writer = self._open()
        writer.close()
        # The schema in the file's footer, as a reader will see it (not the schema the writer was
        # given, which is the declared one by construction): what the columns_as_declared check reads.
        self.file_schema = writer.writer.metadata.schema.to_arrow_schema()

    def finish(self) -> None:
        """No more rows are expected: write the last ones, close the file (not yet published) and
        drop the ids, keeping their figures."""
        if self.finished:
            return
        self.flush()
        if self._writer is not None:  # a window without rows so far gets its file at commit
            self._close()
        self._seal()
        self.finished = True

    def _seal(self) -> None:
        if self.replacing and self._comparison is None:
            self._comparison = self._compare(seal=True)
        else:
            self.ids.seal()

    def _reopen(self) -> None:
        """Rows for a finished window (rare): its file so far is copied, row group by row group,
        into a new upload, which the rows then follow; the first upload is dropped."""
        self.finished, self.reopened = False, self.reopened + 1
        self.ids.reset()
        self._comparison = None
        if self._upload is None:  # nothing was written
            return
        old = self._upload
        self._writer = self._upload = self._sink = None
        self.rows = self.row_groups = 0
        try:
            with old.read_back() as data:
                written = pq.ParquetFile(data)
                for index in range(written.num_row_groups):
                    group = written.read_row_group(index).cast(self.schema)
                    self._open().write_table(group)
                    self.ids.add(group.column("id").combine_chunks())
                    self.rows += group.num_rows
                    self.row_groups += 1
        finally:
            old.abort()

    def commit(self, manifest: dict[str, Any], *, manifest_later: bool = False) -> WrittenFile:
        """Finish the file and publish it (then its manifest) in place; an empty window gets a file
        with no rows, so that a rerun that now finds nothing still replaces what was there.

        ``manifest_later`` (WIZ_ICEBERG): only the data file is published (under its write's own
        name, so nothing changes for any reader); ``publish_manifest`` writes the manifest once the
        file is in its table."""
        if not self.finished:
            self.flush()
            self._close()
            self._seal()
            self.finished = True
        elif self._writer is None:  # finished before any row came
            self._close()
        assert self._upload is not None and self._sink is not None
        size = self._upload.finish()
        if size != self._sink.size:  # bytes reached the file some other way: the digest would be wrong
            raise OSError(f"{self.key}: {size} bytes stored but {self._sink.size} hashed")
        digest = self._sink.sha256()
        manifest = {
            **manifest,
            "file": self.output.location(self.key),
            "rows": self.rows,
            "bytes": size,
            "row_groups": self.row_groups,
            "sha256": digest,
        }
        if manifest_later:
            self.output.publish([self._upload])
            self._later = manifest
        else:
            publish_with_manifest(self.output, self._upload, manifest_key(self.key), manifest)
        self._writer = self._upload = self._sink = None
        return WrittenFile(
            self.output.location(self.key),
            self.output.uri_of(self.key),
            self.output.location(manifest_key(self.key)),
            self.rows,
            size,
            self.row_groups,
            digest,
            self.key,
        )

    def publish_manifest(self, extra: dict[str, Any]) -> None:
        """The manifest of a file committed with ``manifest_later``, with ``extra`` (its snapshot)."""
        assert self._later is not None, "publish_manifest() after commit(manifest_later=True) only"
        write_manifest(self.output, manifest_key(self.key), {**self._later, **extra})
        self._later = None

    def replaced(self) -> dict[str, Any]:
        """What this window's file replaces: ``reads`` (the previous manifest's plus one),
        ``late_records`` (ids this file has that the one in place has not) and ``gone_records`` (the
        reverse); both None when no file is in place. Call before ``commit``: it reads the file in
        place (its ``id`` column only) and its manifest; one window's ids are held at a time."""
        previous = _read_manifest(self.output, manifest_key(self.own_key))
        if self._comparison is None:
            if self.finished:
                raise RuntimeError(f"{self.key}: replaced() on a window finished without replacing=True")
            self._comparison = self._compare(seal=False)
        in_place, figures = self._comparison
        if not in_place:
            return dict(FIRST_READ)
        if figures is None:
            return {"reads": _reads(previous) + 1, "late_records": None, "gone_records": None}
        return {"reads": _reads(previous) + 1, "late_records": figures.late, "gone_records": figures.gone}

    def _compare(self, *, seal: bool) -> tuple[bool, IdFigures | None]:
        """Whether a file is in place, and the ids' figures against it (None if it can't be read)."""
        figures = self.ids.seal if seal else self.ids.figures
        data = self.output.read(window_file(self.output, self.own_key))
        if data is None:
            figures()
            return False, None
        try:
            with data:
                old = pq.read_table(data, columns=["id"]).column("id")
        except Exception as exc:  # unreadable (or on S3 no s3:GetObject): the window is still written
            log.warning(
                "Could not read the ids of %s, which this window replaces (%s): late_records and "
                "gone_records are left empty.",
                self.output.location(window_file(self.output, self.own_key)),
                type(exc).__name__,
            )
            figures()
            return True, None
        return True, figures(old)

    def abort(self) -> None:
        """Drop everything written so far; the window's existing file, if any, is left as it was."""
        try:
            if self._writer is not None and not self.finished:
                self._writer.close()
        finally:
            if self._upload is not None:
                self._upload.abort()
            self._writer = self._upload = self._sink = None
            self._pending, self.pending_rows, self.pending_bytes = [], 0, 0
            self.ids.reset()
            self.rows = self.row_groups = 0


def _read_manifest(output: Output, key: str) -> dict[str, Any]:
    """The manifest at ``key`` ({} if none, or unreadable: older files may lack one)."""
    try:
        manifest = output.read(key)
        if manifest is None:
            return {}
        with manifest:
            value = json.loads(manifest.read())
        return value if isinstance(value, dict) else {}
    except Exception:
        return {}


def _reads(manifest: dict[str, Any]) -> int:
    """How many times the file in place had been read (manifests before re-reads existed: once)."""
    reads = manifest.get("reads")
    return reads if isinstance(reads, int) and reads > 0 else 1
