"""Every dataset an Apache Iceberg table (WIZ_ICEBERG), over the very Parquet files the pipeline writes.

One table per dataset in the namespace (``wiz``): the native windows (``audit_logs``, ...), the current
tables (``issues_current``, ...) and the OCSF classes (``ocsf_authentication``, ...). Format v2,
located at the dataset's own folder (metadata under ``<folder>/_iceberg_metadata/``); window tables are
partitioned by ``day(window_start)``, a column every window file carries, constant per file, so the
partition comes from the file's footer.

**A window's write** (``replace_windows``): its file is already in place under a name unique to the
write (``landing.files``), so nothing the table references is ever overwritten. One transaction then
drops the table's files of that window (``window_start`` equal to its start; for an OCSF class, of the
window's data type only) and adds the new one: a single OVERWRITE snapshot, so every snapshot holds
each window exactly once (a delete snapshot followed by an append would leave one without it). A run
commits its windows in batches (``PendingCommits``: up to a day of them per snapshot), so that a
backfill of a year doesn't leave 17,520 snapshots, each rewriting a metadata file that lists them
all. pyiceberg retries a commit that lost a race with another writer (other windows), re-checking
that nothing it drops or adds conflicts; a failure after that fails the batch's windows, whose files
are then orphans for ``maintain``. A file whose partition would come out null (no ``window_start``
statistics) is refused before the commit: no window filter would see it, and no later write would
replace it. An empty window adds no file (it has no statistics); its commit only drops what the
window held.

**Schema evolution**: a file with a column the table lacks widens the table first, in the same
transaction (``union_by_name``); the table's name mapping follows, so older files read the new column
as null.

**A current table** (``replace_all``) is replaced whole: every file out, the new one in, one snapshot.

**Maintenance** is ``landing.iceberg_maintenance``. Manifests are kept merged by month at every
commit (``_MergingOverwrite``), not by a rewrite afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.conversions import from_bytes
from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchTableError, TableAlreadyExistsError
from pyiceberg.expressions import AlwaysTrue, BooleanExpression, In
from pyiceberg.io.pyarrow import parquet_file_to_data_file
from pyiceberg.manifest import DataFile, ManifestContent
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table, TableProperties
from pyiceberg.table.snapshots import Operation
from pyiceberg.table.update.snapshot import _ManifestMergeManager, _OverwriteFiles
from pyiceberg.transforms import DayTransform
from pyiceberg.types import DateType, TimestamptzType

from wiz_pipeline.core.errors import WizConfigError
from wiz_pipeline.landing.outputs.local import DIR_MODE, FILE_MODE, make_private_dirs
from wiz_pipeline.landing.tables import WINDOW_COLUMN

log = logging.getLogger(__name__)

METADATA_FOLDER = "_iceberg_metadata"  # under each table's location
PREFIX = "WIZ_ICEBERG_CATALOG_"
DEFAULT_NAMESPACE = "wiz"
# Under WIZ_OUTPUT_URI: the default SQLite catalog (a leading _ hides it from dataset readers).
CATALOG_FOLDER = "_iceberg"
CATALOG_FILE = "catalog.db"
# Properties whose value can hold a secret: never logged, shown or put in Dagster config.
SECRET_PROPERTIES = ("uri", "credential", "token", "s3.secret-access-key", "client.secret-access-key")
TABLE_PROPERTIES = {
    "format-version": "2",
    # Other engines' appends merge small manifests too (ours merge each month's: _MergingOverwrite).
    TableProperties.MANIFEST_MERGE_ENABLED: "true",
    # The last 100 metadata files are kept (time travel by file); older ones are deleted at commit.
    TableProperties.METADATA_DELETE_AFTER_COMMIT_ENABLED: "true",
    TableProperties.METADATA_PREVIOUS_VERSIONS_MAX: "100",
    # Concurrent writers of other windows: a lost race is retried, with the predicate re-checked.
    TableProperties.COMMIT_NUM_RETRIES: "10",
}


# Columns of whole records (a node as received; an OCSF event's raw data and unmapped fields), which
# the files carry no statistics for: bounds of them would help no filter.
NO_STATISTICS = ("raw", "raw_data", "unmapped")


class IcebergError(WizConfigError):
    """The catalog or a table can't be used; names the setting or what to do, never a secret."""


def catalog_properties(env: Mapping[str, str], output_uri: str) -> dict[str, str]:
    """The properties given to pyiceberg's ``load_catalog``: every ``WIZ_ICEBERG_CATALOG_<NAME>``,
    lower-cased, ``__`` read as ``.`` and ``_`` as ``-`` (pyiceberg's own convention for its
    ``PYICEBERG_CATALOG__*`` variables): ``WIZ_ICEBERG_CATALOG_S3__ENDPOINT`` is ``s3.endpoint``.
    Without ``WIZ_ICEBERG_CATALOG_TYPE``/``_URI``, a SQLite catalog at
    ``{WIZ_OUTPUT_URI}/_iceberg/catalog.db`` (local outputs only)."""
    props = {
        name[len(PREFIX) :].lower().replace("__", ".").replace("_", "-"): value
        for name, value in env.items()
        if name.startswith(PREFIX) and value != ""
    }
    local = not output_uri.startswith("s3://")
    if "uri" in props:
        # pyiceberg would guess the type from the URI, and say the URI (a password) when it can't.
        props.setdefault("type", "sql")
    if "type" not in props and "uri" not in props:
        if not local:
            raise IcebergError(
                "WIZ_ICEBERG=true with an s3:// WIZ_OUTPUT_URI needs a catalog that is not a local file: set "
                "WIZ_ICEBERG_CATALOG_TYPE (glue, rest, or sql with WIZ_ICEBERG_CATALOG_URI on PostgreSQL)."
            )
        props |= {"type": "sql", "uri": f"sqlite:///{Path(output_uri) / CATALOG_FOLDER / CATALOG_FILE}"}
    if props.get("type", "sql") == "sql":
        uri = props.get("uri", "")
        if not uri:
            raise IcebergError(
                "WIZ_ICEBERG_CATALOG_TYPE=sql needs WIZ_ICEBERG_CATALOG_URI (a SQLAlchemy URL)."
            )
        if uri.startswith("sqlite") and not local:
            raise IcebergError(
                "WIZ_ICEBERG_CATALOG_URI is a SQLite file, but WIZ_OUTPUT_URI is on S3: a catalog on one "
                "machine's disk would lose the tables with it, and no other reader could find them. Use "
                "PostgreSQL (postgresql+psycopg2://...), glue or rest."
            )
    if not local:
        # pyiceberg's S3 file IO reads its own properties; the AWS SDK's variables set them here.
        for prop, variable in (("s3.endpoint", "AWS_ENDPOINT_URL"), ("s3.region", "AWS_REGION")):
            if env.get(variable) and prop not in props:
                props[prop] = env[variable]
    props.setdefault("py-io-impl", "wiz_pipeline.landing.iceberg_io.PrivateFileIO")
    return props


def describe(props: Mapping[str, str]) -> str:
    """The catalog, as logs may show it (no secret)."""
    kind = props.get("type", "sql")
    uri = props.get("uri", "")
    if kind == "sql" and uri.startswith("sqlite"):
        return f"sql catalog {uri}"
    shown = urlparse(uri)
    where = f" at {shown.hostname}" if shown.hostname else ""
    return f"{kind} catalog{where}"


@dataclass(frozen=True)
class Committed:
    """What a commit left: the snapshot holding the window (when there was nothing to commit, the
    current one; None for a table without any), how many files it dropped and added, and how long
    the commit took."""

    snapshot_id: int | None
    removed: int
    added: int
    seconds: float


def manifest_fields(tables: Tables, dataset: str, committed: Committed) -> dict[str, Any]:
    """What a manifest records of the commit that registered its file."""
    return {
        "iceberg_table": ".".join(tables.identifier(dataset)),
        "iceberg_snapshot_id": committed.snapshot_id,
        "iceberg_commit_seconds": round(committed.seconds, 3),
    }


@dataclass
class _Pending:
    location: str
    window_start: datetime
    files: list[str]
    schema: pa.Schema
    source: str | None
    after: Callable[[dict[str, Any]], None]


class PendingCommits:
    """Windows whose files are in place but not yet in their tables: ``flush`` commits them, one
    snapshot per table (so a backfill of a year is some hundreds of snapshots, not 17,520), then
    calls each window's ``after`` with what its manifest records of the commit."""

    def __init__(self, tables: Tables, summary: Mapping[str, str] | None = None) -> None:
        self.tables = tables
        self.summary = dict(summary or {})
        self._by_dataset: dict[tuple[str, str | None], list[_Pending]] = {}
        self.windows: set[datetime] = set()

    def add(
        self,
        dataset: str,
        location: str,
        window_start: datetime,
        files: list[str],
        schema: pa.Schema,
        *,
        after: Callable[[dict[str, Any]], None],
        source: str | None = None,
    ) -> None:
        entry = _Pending(location, window_start, files, schema, source, after)
        self._by_dataset.setdefault((dataset, source), []).append(entry)
        self.windows.add(window_start)

    def __len__(self) -> int:
        return len(self.windows)

    def keep_only(self, windows: set[datetime]) -> None:
        """Forget the windows not in ``windows`` (ones that failed after their native file was
        pending): they must not be committed without being recorded."""
        for key, entries in list(self._by_dataset.items()):
            kept = [e for e in entries if e.window_start in windows]
            if kept:
                self._by_dataset[key] = kept
            else:
                del self._by_dataset[key]
        self.windows &= windows

    def flush(self) -> None:
        """Commit every table's windows, then (only once all are in) write their manifests."""
        pending, self._by_dataset, self.windows = self._by_dataset, {}, set()
        done: list[tuple[list[_Pending], dict[str, Any]]] = []
        for (dataset, source), entries in pending.items():
            schema = pa.unify_schemas([e.schema for e in entries], promote_options="permissive")
            committed = self.tables.replace_windows(
                dataset,
                entries[0].location,
                [(e.window_start, e.files) for e in entries],
                schema,
                source=source,
                summary={**self.summary, "wiz.windows": str(len(entries))},
            )
            done.append((entries, manifest_fields(self.tables, dataset, committed)))
        for entries, fields in done:
            for entry in entries:
                entry.after(fields)


class Tables:
    """The catalog and namespace every dataset's table lives in; tables are created on first use."""

    def __init__(self, properties: Mapping[str, str], namespace: str = DEFAULT_NAMESPACE) -> None:
        self.properties = dict(properties)
        self.namespace = namespace

    @cached_property
    def catalog(self) -> Catalog:
        uri = self.properties.get("uri", "")
        if uri.startswith("sqlite:///"):
            _private_sqlite(Path(uri.removeprefix("sqlite:///")))
        try:
            catalog = load_catalog("wiz", **self.properties)
            with contextlib.suppress(NamespaceAlreadyExistsError):  # another run created it in between
                catalog.create_namespace_if_not_exists(self.namespace)
        except IcebergError:
            raise
        except Exception as exc:
            raise IcebergError(
                f"The Iceberg {describe(self.properties)} can't be used ({type(exc).__name__}: "
                f"{_scrubbed(_first_line(exc), self.properties)}): check the WIZ_ICEBERG_CATALOG_* "
                "settings (docs/iceberg.md)."
            ) from None
        return catalog

    def identifier(self, dataset: str) -> tuple[str, str]:
        return (self.namespace, dataset)

    def load(self, dataset: str) -> Table | None:
        try:
            return self.catalog.load_table(self.identifier(dataset))
        except NoSuchTableError:
            return None

    def table(self, dataset: str, location: str, schema: pa.Schema, *, windows: bool) -> Table:
        """The dataset's table, created at ``location`` from ``schema`` if it doesn't exist yet."""
        table = self.load(dataset)
        if table is not None:
            if table.location().rstrip("/") != location.rstrip("/"):
                raise IcebergError(
                    f"The Iceberg table {'.'.join(self.identifier(dataset))} is located at "
                    f"{table.location()}, not at {location} where its files are written: another output "
                    "shares this catalog and namespace. Give each output its own WIZ_ICEBERG_NAMESPACE."
                )
            return table
        iceberg = Catalog._convert_schema_if_needed(schema)
        spec = PartitionSpec()
        if windows:
            source = iceberg.find_field(WINDOW_COLUMN)
            spec = PartitionSpec(
                PartitionField(source.field_id, 1000, DayTransform(), f"{WINDOW_COLUMN}_day")
            )
        # The metadata beside the data but in a folder every file reader skips (a leading _): hive
        # readers of the dataset's folder (pyarrow, Spark, Athena) would otherwise trip on its
        # .avro and .json files.
        properties = {
            **TABLE_PROPERTIES,
            # Whole records, written without statistics (landing.files, collect.ocsf_views): none expected.
            **{f"write.metadata.metrics.column.{c}": "none" for c in NO_STATISTICS if c in schema.names},
            TableProperties.WRITE_METADATA_PATH: f"{location.rstrip('/')}/{METADATA_FOLDER}",
        }
        try:
            return self.catalog.create_table(
                self.identifier(dataset),
                iceberg,
                location=location,
                partition_spec=spec,
                properties=properties,
            )
        except TableAlreadyExistsError:  # another writer created it meanwhile
            table = self.load(dataset)
            assert table is not None
            return table

    def replace_window(
        self,
        dataset: str,
        location: str,
        window_start: datetime,
        files: list[str],
        schema: pa.Schema,
        *,
        source: str | None = None,
        summary: Mapping[str, str] | None = None,
    ) -> Committed:
        """Drop the window's files from the table (of ``source`` only, for an OCSF class) and add
        ``files`` (those with rows), in one snapshot."""
        return self.replace_windows(
            dataset, location, [(window_start, files)], schema, source=source, summary=summary
        )

    def replace_windows(
        self,
        dataset: str,
        location: str,
        windows: list[tuple[datetime, list[str]]],
        schema: pa.Schema,
        *,
        source: str | None = None,
        summary: Mapping[str, str] | None = None,
    ) -> Committed:
        """``replace_window`` for several windows, in one snapshot (a backfill's batch)."""
        starts = {start.astimezone(UTC) for start, _ in windows}
        predicate: BooleanExpression = In(WINDOW_COLUMN, {s.isoformat() for s in starts})
        table = self.table(dataset, location, schema, windows=True)
        only = _source_folder(source)
        files = [f for _, paths in windows for f in paths]
        return _replace(table, predicate, files, schema, summary or {}, starts=starts, only=only)

    def replace_all(
        self,
        dataset: str,
        location: str,
        file: str,
        schema: pa.Schema,
        summary: Mapping[str, str] | None = None,
    ) -> Committed:
        """Every file of the table out, ``file`` in, in one snapshot."""
        table = self.table(dataset, location, schema, windows=False)
        return _replace(table, AlwaysTrue(), [file], schema, summary or {}, starts=None)

    def window_files(self, dataset: str, source: str | None = None) -> dict[datetime, set[str]]:
        """The names of the current snapshot's files by window start (of one OCSF ``source``);
        empty when there is no such table yet."""
        only = _source_folder(source)
        table = self.load(dataset)
        if table is None:
            return {}
        schema = table.schema()
        window_id = schema.find_field(WINDOW_COLUMN).field_id
        by_window: dict[datetime, set[str]] = {}
        for task in table.scan().plan_files():
            if only is not None and only not in task.file.file_path:
                continue
            bound = task.file.lower_bounds.get(window_id)
            if bound is not None:
                name = task.file.file_path.rpartition("/")[2]
                by_window.setdefault(bound_time(bound), set()).add(name)
        return by_window

    def datasets(self) -> list[str]:
        return sorted(name for _, name in self.catalog.list_tables(self.namespace))


# A month's manifests are merged into one once there are this many: commits then read and rewrite
# only the month of their windows, however long the table's history.
MERGE_AT = 8


class _MergingOverwrite(_OverwriteFiles):
    """An overwrite that keeps each month's manifests merged (pyiceberg's overwrite merges none).

    Not pyiceberg's merge-append policy: it packs manifests by size whatever they hold, so merged
    manifests span the whole table, every commit must read them all to find its window's files, and
    a bin is rewritten at nearly every commit (a year of windows: seconds and megabytes per commit).
    Merged by month instead, a manifest's partition range prunes it from every other month's commits.
    """

    def _process_manifests(self, manifests: list[Any]) -> list[Any]:
        # A manifest left holding only an older snapshot's deletions lists no file of this one: every
        # later commit and scan would still open it (pyiceberg's overwrite keeps them).
        manifests = [
            m
            for m in manifests
            if m.has_added_files() or m.has_existing_files() or m.added_snapshot_id == self._snapshot_id
        ]
        data = [m for m in manifests if m.content == ManifestContent.DATA]
        others = [m for m in manifests if m.content != ManifestContent.DATA]
        if self._transaction.table_metadata.spec().is_unpartitioned():
            return manifests  # a current table: one file, replaced whole
        groups: dict[tuple[int, tuple[int, int] | None], list[Any]] = {}
        for manifest in data:
            groups.setdefault((manifest.partition_spec_id, _month(manifest)), []).append(manifest)
        merger = _ManifestMergeManager(
            target_size_bytes=0, min_count_to_merge=MERGE_AT, merge_enabled=True, snapshot_producer=self
        )
        merged = []
        for (spec_id, _), group in groups.items():
            if len(group) >= MERGE_AT:
                merged.append(merger._create_manifest(spec_id, group))
            else:
                merged.extend(group)
        return merged + others


def _month(manifest: Any) -> tuple[int, int] | None:
    """The month of a manifest's first window day (its partition summary's lower bound)."""
    summaries = manifest.partitions or []
    if not summaries or summaries[0].lower_bound is None:
        return None
    day = date(1970, 1, 1) + timedelta(days=from_bytes(DateType(), summaries[0].lower_bound))
    return (day.year, day.month)


def _replace(
    table: Table,
    predicate: BooleanExpression,
    files: list[str],
    schema: pa.Schema,
    summary: Mapping[str, str],
    *,
    starts: set[datetime] | None,
    only: str | None = None,
) -> Committed:
    """One snapshot that drops the files of ``predicate`` (of the window ``starts``, under ``only``;
    every file when ``starts`` is None) and adds ``files``."""
    clock = time.monotonic()
    tx = table.transaction()
    # Each read of tx.table_metadata replays the transaction's updates onto a deep copy of the whole
    # metadata (every snapshot kept): read once per step, never per file.
    metadata = tx.table_metadata
    if metadata.name_mapping() is None:
        # Our files carry no Iceberg field ids: columns are found by name (as add_files sets it up).
        tx.set_properties(**{TableProperties.DEFAULT_NAME_MAPPING: _mapping(metadata.schema())})
    known = {f.name for f in metadata.schema().fields}
    if any(name not in known for name in schema.names):
        with tx.update_schema() as update:
            update.union_by_name(schema)
    metadata = tx.table_metadata
    added = [parquet_file_to_data_file(table.io, metadata, path) for path in files]
    added = [f for f in added if f.record_count > 0]
    if starts is not None:
        for data_file in added:
            _check_partition(data_file)
    removed = [task.file for task in table.scan(row_filter=predicate).plan_files()]
    if starts is not None:
        window_id = metadata.schema().find_field(WINDOW_COLUMN).field_id
        removed = [f for f in removed if _start_of(f, window_id) in starts]
    if only is not None:
        removed = [f for f in removed if only in f.file_path]
    if not added and not removed:  # the table already holds the window as it is (empty)
        current = table.current_snapshot()
        return Committed(current.snapshot_id if current else None, 0, 0, time.monotonic() - clock)
    # OVERWRITE once the table has a snapshot (as pyiceberg's own overwrite() decides), APPEND before.
    first = metadata.current_snapshot() is None
    producer = _MergingOverwrite(
        operation=Operation.APPEND if first else Operation.OVERWRITE,
        transaction=tx,
        io=table.io,
        snapshot_properties={k: str(v) for k, v in summary.items()},
    )
    with producer as overwrite:
        overwrite.delete_by_predicate(predicate)
        for data_file in removed:
            overwrite.delete_data_file(data_file)
        for data_file in added:
            overwrite.append_data_file(data_file)
    snapshot_id = producer._snapshot_id
    tx.commit_transaction()
    return Committed(snapshot_id, len(removed), len(added), time.monotonic() - clock)


def _source_folder(source: str | None) -> str | None:
    """An OCSF class fed by two data types holds each one's files of a window under its own
    source=<data type>/ folder (its rows say it in metadata.log_name): what a path of ``source`` has."""
    return None if source is None else f"/source={source}/"


def _check_partition(data_file: DataFile) -> None:
    if any(value is None for value in data_file.partition):
        raise IcebergError(
            f"{data_file.file_path} has no {WINDOW_COLUMN} statistics in its footer, so its partition would "
            "be null: no window filter would find its rows and no rerun would replace them. It is not "
            "added; the window is not written."
        )


def _start_of(data_file: DataFile, window_id: int) -> datetime | None:
    lower, upper = data_file.lower_bounds.get(window_id), data_file.upper_bounds.get(window_id)
    if lower is None or lower != upper:
        return None  # not one window's file: never dropped as one
    return bound_time(lower)


def bound_time(value: bytes) -> datetime:
    """A ``window_start`` bound of a file's statistics, as a time."""
    micros = from_bytes(TimestamptzType(), value)
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)


def _mapping(schema: Schema) -> str:
    return schema.name_mapping.model_dump_json()


def _private_sqlite(path: Path) -> None:
    """The SQLite catalog's folder and file, created private (SQLite gives its journal the file's mode)."""
    make_private_dirs(path.parent)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, FILE_MODE)
        os.close(fd)
        os.chmod(path, FILE_MODE)
    os.chmod(path.parent, DIR_MODE)


def _scrubbed(text: str, properties: Mapping[str, str]) -> str:
    """``text`` without any secret property's value (nor a URI's password)."""
    for name in SECRET_PROPERTIES:
        value = properties.get(name, "")
        if value:
            text = text.replace(value, "***")
            password = urlparse(value).password if "://" in value else None
            if password:
                text = text.replace(password, "***")
    return text


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""
