"""WIZ_ICEBERG's datasets as DuckDB views: each table's current snapshot, read through Arrow.

A view is the snapshot's own files (pyiceberg's scan plan: exactly the files the snapshot holds,
never a replaced one still on disk) as a pyarrow dataset with the table's schema (a column added by
schema evolution is null in older files), registered in DuckDB, which reads it lazily with its
filters and columns pushed down. ``pyiceberg``'s ``scan().to_duckdb()`` would read the whole table
into memory first: a year of audit logs. Window tables also get the ``date`` column their hive
folders give the file readers (the window's UTC day), and OCSF classes their ``source`` (the rows'
``metadata.log_name``), so every question reads either the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow.dataset as ds

from wiz_pipeline.landing.iceberg import WINDOW_COLUMN, Tables


def register(con: duckdb.DuckDBPyConnection, tables: Tables, names: Sequence[str]) -> list[str]:
    """A view per table of ``names`` that has a snapshot with rows; the views created."""
    created = []
    for name in names:
        table = tables.load(name)
        if table is None or table.current_snapshot() is None:
            continue
        locations = [task.file.file_path for task in table.scan().plan_files()]
        if not locations:
            continue
        scheme, netloc, _ = table.io.parse_location(locations[0])
        filesystem = table.io.fs_by_scheme(scheme, netloc)
        paths = [table.io.parse_location(location)[2] for location in locations]
        schema = table.schema().as_arrow()
        dataset = ds.dataset(paths, schema=schema, format="parquet", filesystem=filesystem)
        con.register(f"_{name}_snapshot", dataset)
        extra = f", CAST({WINDOW_COLUMN} AS DATE) AS date" if WINDOW_COLUMN in schema.names else ""
        if name.startswith("ocsf_"):  # the source= folder's column, from the rows' own attribute
            extra += ", metadata.log_name AS source"
        # Names are the datasets' own (a fixed list), never input.
        con.execute(f"CREATE VIEW {name} AS SELECT *{extra} FROM _{name}_snapshot")  # noqa: S608
        created.append(name)
    return created
