"""WIZ_ICEBERG's datasets as DuckDB views: each table's current snapshot, read through Arrow.

A view is the snapshot's own files (pyiceberg's scan plan: exactly the files the snapshot holds,
never a replaced one still on disk) as a pyarrow dataset with the table's schema (a column added by
schema evolution is null in older files), registered in DuckDB, which reads it lazily with its
filters and columns pushed down. ``pyiceberg``'s ``scan().to_duckdb()`` would read the whole table
into memory first: a year of audit logs. Window tables also get the ``date`` column their hive
folders give the file readers (the window's UTC day), from each file's window in the table's
metadata, given to Arrow as the file's guarantee so that a filter on it (or on ``window_start``) opens
only its files; OCSF classes their ``source`` (the data type, from the file's ``source=`` folder, as
the rows' ``metadata.log_name`` says too). Every question reads either the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

from wiz_pipeline.landing.iceberg import Tables, bound_time
from wiz_pipeline.landing.tables import WINDOW_COLUMN


def register(con: duckdb.DuckDBPyConnection, tables: Tables, names: Sequence[str]) -> list[str]:
    """A view per table of ``names`` that has a snapshot with rows; the views created."""
    created = []
    for name in names:
        table = tables.load(name)
        if table is None or table.current_snapshot() is None:
            continue
        tasks = list(table.scan().plan_files())
        if not tasks:
            continue
        scheme, netloc, _ = table.io.parse_location(tasks[0].file.file_path)
        filesystem = table.io.fs_by_scheme(scheme, netloc)
        paths = [table.io.parse_location(task.file.file_path)[2] for task in tasks]
        schema = table.schema().as_arrow()
        fmt = ds.ParquetFileFormat()
        guarantees = [ds.scalar(True) for _ in tasks]
        if WINDOW_COLUMN in schema.names:
            # Each file's window, known from the table's metadata, as the file's guarantee: a filter on
            # date or window_start skips the other files unopened, as hive folders let a glob do.
            window_id = table.schema().find_field(WINDOW_COLUMN).field_id
            window_type = schema.field(WINDOW_COLUMN).type
            schema = schema.append(pa.field("date", pa.date32()))
            for i, task in enumerate(tasks):
                bound = task.file.lower_bounds.get(window_id)
                if bound is not None:
                    start = bound_time(bound)
                    guarantees[i] = (ds.field(WINDOW_COLUMN) == pa.scalar(start, window_type)) & (
                        ds.field("date") == pa.scalar(start.date(), pa.date32())
                    )
        if name.startswith("ocsf_"):  # the source= folder's column: each file is under its own
            schema = schema.append(pa.field("source", pa.string()))
            for i, task in enumerate(tasks):
                source = task.file.file_path.partition("/source=")[2].partition("/")[0]
                guarantees[i] = guarantees[i] & (ds.field("source") == source)
        dataset = ds.FileSystemDataset.from_paths(
            paths, schema=schema, format=fmt, filesystem=filesystem, partitions=guarantees
        )
        con.register(name, dataset)
        created.append(name)
    return created
