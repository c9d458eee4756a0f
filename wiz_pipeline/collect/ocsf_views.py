"""A window's OCSF rows, derived from its native file (never a second API read) and written whole.

The native file's ``raw`` column (each node as the API sent it) is read row group by row group,
mapped (``wiz_pipeline.ocsf``), validated against the OCSF 1.5.0 schema, and streamed into one file
per class the data type feeds (``ocsf.layout``). Nothing is visible until every class's file is
complete: then the data files and their manifests are published in one call, each replacing the
window's previous file in one step. A failure before that leaves the window's previous OCSF files as
they were; the caller records neither asset's materialization, so the window counts as not written
and is collected again.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from wiz_pipeline.core.errors import WizConfigError
from wiz_pipeline.core.times import format_time
from wiz_pipeline.core.windows import Window
from wiz_pipeline.landing.files import (
    COMPRESSION,
    HashingFile,
    manifest_bytes,
    unique_key,
    window_file,
    window_key,
    with_window,
    write_manifest,
)
from wiz_pipeline.landing.iceberg import PendingCommits
from wiz_pipeline.landing.outputs import Output, Upload
from wiz_pipeline.landing.tables import WINDOW_FIELD
from wiz_pipeline.ocsf import OCSF_VERSION, SOURCES, arrow_schema, map_records
from wiz_pipeline.ocsf.layout import OcsfLayout, table_name
from wiz_pipeline.ocsf.mapping import Failures
from wiz_pipeline.ocsf.validate import invalid_rows

# Rows mapped at a time: a native row group (10,000 rows at most) is read whole, and mapped in slices
# so that its OCSF rows (larger than the native ones: nested structs) never all wait in memory.
BATCH_ROWS = 2_000
# Messages kept per class for the validity check's metadata.
EXAMPLES = 5


class NativeFileMissingError(WizConfigError):
    """An OCSF view was asked for a window whose native file is not there."""


@dataclass
class ClassFile:
    class_name: str
    key: str
    manifest: str  # its manifest's key (by the window's own name, with WIZ_ICEBERG too)
    rows: int = 0
    invalid: int = 0
    examples: list[str] = field(default_factory=list)
    bytes: int = 0
    sha256: str = ""
    location: str = ""
    snapshot_id: int | None = None  # WIZ_ICEBERG: the class table's snapshot holding the file


@dataclass(frozen=True)
class OcsfWindow:
    """What a window's OCSF write produced: its files by class and the native rows they came from."""

    data_type: str
    window: Window
    source_rows: int
    files: tuple[ClassFile, ...]

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def invalid(self) -> int:
        return sum(f.invalid for f in self.files)


class _Writing:
    def __init__(self, output: Output, class_file: ClassFile, hive: bool, window_start: datetime) -> None:
        self.output, self.file = output, class_file
        self.upload: Upload = output.open(class_file.key)
        self.sink = HashingFile(self.upload.file)
        schema = arrow_schema(class_file.class_name)
        # The hive layout's files also carry their window's start as a column (constant per file):
        # an Iceberg table takes each file's partition from it (their source is in every row already,
        # metadata.log_name). Security Lake's files hold nothing but OCSF.
        self.window_start = window_start if hive else None
        if hive:
            schema = schema.append(WINDOW_FIELD)
        self.schema = schema
        # raw_data and unmapped are per-record blobs: their statistics help no reader.
        stats = [f.name for f in schema if f.name not in ("raw_data", "unmapped")]
        try:
            self.writer = pq.ParquetWriter(self.sink, schema, compression=COMPRESSION, write_statistics=stats)
        except BaseException:
            self.upload.abort()
            raise

    def write(self, table: pa.Table) -> None:
        if self.window_start is not None:
            table = with_window(table, self.window_start)
        self.writer.write_table(table)

    def finish(self) -> None:
        self.writer.close()
        size = self.upload.finish()
        if size != self.sink.size:
            raise OSError(f"{self.file.key}: {size} bytes stored but {self.sink.size} hashed")
        self.file.bytes, self.file.sha256 = size, self.sink.sha256()
        self.file.location = self.output.location(self.file.key)


def write_ocsf_window(
    native: Output,
    ocsf: Output,
    layout: OcsfLayout,
    data_type: str,
    window: Window,
    *,
    run_id: str,
    pending: PendingCommits | None = None,
    source_key: str | None = None,
) -> OcsfWindow:
    """Write ``window``'s OCSF files from its native file in ``native`` (at ``source_key``, default
    the file its manifest names); see the module's docstring.

    ``pending`` (WIZ_ICEBERG, hive layout): each class file is named for its write and published; its
    manifest waits for ``pending.flush()`` to commit it to its class's table (``ocsf_<class>``,
    dropping the window's previous file of this data type). Security Lake keeps its own tables."""
    if source_key is None:
        source_key = window_file(native, window_key(data_type, window.boundary))
    data = native.read(source_key)
    if data is None:
        raise NativeFileMissingError(
            f"{data_type} window {window.key} has no file at {native.location(source_key)}: its OCSF rows "
            f"are derived from it. Materialize wiz/{data_type} for the window (its OCSF rows are written "
            "with it)."
        )
    hive = layout.kind == "hive"
    if not hive:
        pending = None  # Security Lake keeps its own tables (see docs/iceberg.md)
    files = []
    for name in SOURCES[data_type]:
        key = layout.file_key(name, data_type, window.boundary)
        # With WIZ_ICEBERG, named for the write: older snapshots still reference the file it replaces.
        files.append(
            ClassFile(name, unique_key(key) if pending is not None else key, layout.manifest_key(key))
        )
    writing: list[_Writing] = []
    source_rows = 0
    try:
        for f in files:  # one by one: each opened is aborted if a later one can't be
            writing.append(_Writing(ocsf, f, hive, window.boundary))
        by_class = {w.file.class_name: w for w in writing}
        with data:
            source = pq.ParquetFile(data)
            for batch in source.iter_batches(batch_size=BATCH_ROWS, columns=["raw"]):
                raw = batch.column(0).cast(pa.binary()).to_pylist()
                source_rows += len(raw)
                # A node the mapping fails on still has a row, which can't validate: the check counts
                # it, and names why first.
                failures: Failures = []
                mapped = map_records(data_type, raw, window.start, failures)
                for class_name, index, message in failures:
                    examples = by_class[class_name].file.examples
                    if len(examples) < EXAMPLES:
                        number = source_rows - len(raw) + index
                        examples.append(f"native row {number}: the mapping failed on {message}")
                for class_name, table in mapped.items():
                    if not table.num_rows:
                        continue
                    target = by_class[class_name]
                    count, messages = invalid_rows(
                        class_name, table, limit=EXAMPLES, first_row=target.file.rows
                    )
                    target.file.invalid += count
                    target.file.examples += messages[: EXAMPLES - len(target.file.examples)]
                    target.write(table)
                    target.file.rows += table.num_rows
        for w in writing:
            w.finish()
        result = OcsfWindow(data_type, window, source_rows, tuple(files))
        beside = ocsf if layout.manifests_beside else native
        manifests: list[Upload] = []
        if pending is not None:
            # In place under names no table references yet; the manifests once they are in the tables.
            ocsf.publish([w.upload for w in writing])
            for w in writing:
                _pend(pending, ocsf, layout, w, result, native.location(source_key), run_id)
            return result
        try:
            for f in files:
                upload = beside.open(f.manifest)
                manifests.append(upload)
                upload.file.write(manifest_bytes(_manifest(result, f, native.location(source_key), run_id)))
                upload.finish()
            # Data files first, then manifests: a manifest never names bytes that aren't in place.
            ocsf.publish([w.upload for w in writing])
            beside.publish(manifests)
        except BaseException:
            for upload in manifests:
                upload.abort()
            raise
    except BaseException:
        for w in writing:
            with contextlib.suppress(Exception):  # the upload is dropped either way
                w.writer.close()
            w.upload.abort()
        raise
    return result


def _pend(
    pending: PendingCommits,
    ocsf: Output,
    layout: OcsfLayout,
    w: _Writing,
    result: OcsfWindow,
    source: str,
    run_id: str,
) -> None:
    f = w.file

    def after(fields: dict[str, Any]) -> None:
        write_manifest(ocsf, f.manifest, {**_manifest(result, f, source, run_id), **fields})
        f.snapshot_id = fields["iceberg_snapshot_id"]

    pending.add(
        table_name(f.class_name),
        ocsf.location(layout.dataset(f.class_name)),
        result.window.boundary,
        [ocsf.location(f.key)],
        w.schema,
        source=result.data_type,
        after=after,
    )


def _manifest(result: OcsfWindow, f: ClassFile, source: str, run_id: str) -> dict[str, Any]:
    return {
        "ocsf_version": OCSF_VERSION,
        "class": f.class_name,
        "data_type": result.data_type,
        "partition_key": result.window.key,
        "window_start": format_time(result.window.start),
        "window_end": format_time(result.window.end),
        "file": f.location,
        "source_file": source,
        "source_rows": result.source_rows,
        "rows": f.rows,
        "invalid_rows": f.invalid,
        "bytes": f.bytes,
        "sha256": f.sha256,
        "run_id": run_id,
        "written_at": format_time(datetime.now(UTC).replace(microsecond=0)),
    }
