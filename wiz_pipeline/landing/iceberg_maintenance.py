"""WIZ_ICEBERG's upkeep of the tables ``landing.iceberg`` writes: expiry and orphan removal
(``maintain``, run by the iceberg_maintenance job), and a lost catalog registered again from the
tables' own metadata files (``register_tables``, ``wiz-pipeline iceberg register``)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote, urlparse

from pyiceberg.table import StaticTable, Table

from wiz_pipeline.landing.files import own_key, window_file
from wiz_pipeline.landing.iceberg import METADATA_FOLDER, Tables
from wiz_pipeline.landing.outputs import Output

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Maintained:
    dataset: str
    snapshots_expired: int
    snapshots_kept: int
    files_deleted: int
    bytes_deleted: int
    manifests: int  # in the current snapshot, after maintenance
    metadata_bytes: int  # of the current metadata file


def maintain(
    tables: Tables,
    dataset: str,
    output: Output | None,
    folder: str,
    *,
    retention: timedelta,
    now: datetime | None = None,
) -> Maintained | None:
    """Expire ``dataset``'s snapshots older than ``retention``, then delete the files under ``folder``
    (its table's location in ``output``) that none of the remaining snapshots references, no
    manifest names, and that were last written before the same cutoff (``output`` None: no file is
    deleted). None: no such table."""
    table = tables.load(dataset)
    if table is None:
        return None
    cutoff = (now or datetime.now(UTC)) - retention
    current = table.current_snapshot()
    old = [
        s.snapshot_id
        for s in table.metadata.snapshots
        if s.timestamp_ms < cutoff.timestamp() * 1000
        and (current is None or s.snapshot_id != current.snapshot_id)
    ]
    if old:
        table.maintenance.expire_snapshots().by_ids(old).commit()
        table = tables.load(dataset)
        assert table is not None
    referenced = _referenced(table)
    deleted = deleted_bytes = 0
    metadata_folder = f"{folder.strip('/')}/{METADATA_FOLDER}/"
    for key, listed in sorted(output.files([folder]).items()) if output is not None else ():
        if listed.mtime is None or listed.mtime >= cutoff.timestamp():
            continue  # a write in progress may not have committed yet
        if not (key.endswith(".parquet") or key.startswith(metadata_folder)):
            continue  # manifests, anything that isn't the table's
        assert output is not None
        uri = output.location(key)
        if _norm(uri) in referenced:
            continue
        if key.endswith(".parquet") and window_file(output, own_key(key)) == key:
            continue  # the window's file by its manifest (written before WIZ_ICEBERG was on, say)
        try:
            table.io.delete(uri)
        except FileNotFoundError:
            continue
        deleted, deleted_bytes = deleted + 1, deleted_bytes + max(listed.size, 0)
    snapshot = table.current_snapshot()
    return Maintained(
        dataset,
        len(old),
        len(table.metadata.snapshots),
        deleted,
        deleted_bytes,
        len(snapshot.manifests(table.io)) if snapshot else 0,
        len(table.io.new_input(table.metadata_location)),
    )


def register_tables(tables: Tables, datasets: list[tuple[str, Output, str]]) -> list[tuple[str, str]]:
    """Rebuild a lost catalog: each (table, output, folder) whose folder holds Iceberg metadata is
    registered from its newest metadata file (``register_table``); what was done, per table."""
    done = []
    for name, output, folder in datasets:
        listed = output.files([f"{folder}/{METADATA_FOLDER}"], stat=False)
        versions = [k for k in listed if k.endswith(".metadata.json")]
        if not versions:
            continue
        location = _newest_whole(output, sorted(versions, key=_version, reverse=True))
        if location is None:
            done.append((name, "no readable metadata file (each names a missing manifest list)"))
            continue
        existing = tables.load(name)
        if existing is not None:
            stale = _norm(existing.metadata_location) != _norm(location)
            note = f" (at {existing.metadata_location}, not the newest)" if stale else ""
            done.append((name, f"in the catalog{note}"))
            continue
        tables.catalog.register_table(tables.identifier(name), location)
        done.append((name, f"registered from {location}"))
    return done


def _newest_whole(output: Output, keys: list[str]) -> str | None:
    """The newest metadata file whose current snapshot's manifest list is there: a commit that lost
    its race leaves a metadata file of the next version whose manifest list was cleaned up."""
    for key in keys:
        location = output.location(key)
        try:
            static = StaticTable.from_metadata(location)
            snapshot = static.current_snapshot()
            if snapshot is not None:
                snapshot.manifests(static.io)
            return location
        except Exception as exc:  # unreadable, or its manifest list is gone: the next older one
            log.info(
                "%s is not a whole table version (%s); trying the one before.", location, type(exc).__name__
            )
    return None


def _version(key: str) -> int:
    """A metadata file's version, from its name (``00042-<uuid>.metadata.json``)."""
    head = key.rpartition("/")[2].partition("-")[0]
    return int(head) if head.isdigit() else -1


def _referenced(table: Table) -> set[str]:
    """Every file a snapshot or metadata file of ``table`` still needs."""
    files = {_norm(table.metadata_location)}
    files |= {_norm(entry.metadata_file) for entry in table.metadata.metadata_log}
    read: set[str] = set()
    for snapshot in table.metadata.snapshots:
        files.add(_norm(snapshot.manifest_list))
        for manifest in snapshot.manifests(table.io):
            if manifest.manifest_path in read:  # snapshots share most of their manifests
                continue
            read.add(manifest.manifest_path)
            files.add(_norm(manifest.manifest_path))
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
                files.add(_norm(entry.data_file.file_path))
    for statistics in table.metadata.statistics:
        files.add(_norm(statistics.statistics_path))
    return files


def _norm(uri: str) -> str:
    """A file's location as one string whichever way it was written (a path, file://, s3://)."""
    if uri.startswith("file://"):
        return unquote(urlparse(uri).path)
    if "://" not in uri:
        return os.path.abspath(uri)
    return uri
