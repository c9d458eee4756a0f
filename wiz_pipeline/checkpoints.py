"""Checkpoints (``AUDIT_SINCE_TIME``, ``ISSUES_SINCE_TIME``) derived from materialized partitions.

Nothing is stored by hand: a data type's checkpoint is the end of the longest run of materialized
windows that starts at its seed. A failed or missing window holds it back even when later windows
succeeded, so the checkpoint always means "everything before this time is written".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg

from wiz_pipeline.partitions import closed_keys, window_partitions
from wiz_pipeline.settings import Settings


@dataclass(frozen=True)
class Collection:
    """What the pipeline collects for one data type: its asset, windows and seed."""

    data_type: str  # audit_logs / issues
    checkpoint_name: str  # AUDIT_SINCE_TIME / ISSUES_SINCE_TIME
    asset_key: dg.AssetKey
    partitions_def: dg.TimeWindowPartitionsDefinition
    seed: datetime
    job_name: str
    schedule_name: str
    interval_seconds: int


@dataclass(frozen=True)
class Progress:
    checkpoint: datetime
    closed_windows: int  # windows closed (lag included) up to now
    materialized: int  # of which written at least once
    missing: list[str]  # closed windows never written, oldest first
    in_progress: set[str]


def _checkpoint(collection: Collection, keys: list[str], written: set[str] | frozenset[str]) -> datetime:
    checkpoint = collection.seed
    for key in keys:
        if key not in written:
            break
        checkpoint = collection.partitions_def.time_window_for_partition_key(key).end.astimezone(UTC)
    return checkpoint


def progress(
    instance: dg.DagsterInstance, collection: Collection, now: datetime, lag: timedelta = timedelta(0)
) -> Progress:
    """Where collection stands at ``now``, counting windows closed at least ``lag`` ago."""
    keys = closed_keys(collection.partitions_def, now, lag)
    materialized = instance.get_materialized_partitions(collection.asset_key)
    missing = [k for k in keys if k not in materialized]
    in_progress: set[str] = set()
    if missing:
        statuses = instance.get_status_by_partition(collection.asset_key, missing, collection.partitions_def)
        in_progress = {k for k, s in (statuses or {}).items() if s == dg.AssetPartitionStatus.IN_PROGRESS}
    return Progress(
        _checkpoint(collection, keys, materialized), len(keys), len(keys) - len(missing), missing, in_progress
    )


def checkpoint(instance: dg.DagsterInstance, collection: Collection, now: datetime | None = None) -> datetime:
    keys = closed_keys(collection.partitions_def, now or datetime.now(UTC), timedelta(0))
    return _checkpoint(collection, keys, instance.get_materialized_partitions(collection.asset_key))


class CheckpointTracker:
    """Follows the checkpoint while a run writes windows, reading the instance only once."""

    def __init__(self, instance: dg.DagsterInstance, collection: Collection) -> None:
        self.collection = collection
        self.keys = closed_keys(collection.partitions_def, datetime.now(UTC), timedelta(0))
        self.written = set(instance.get_materialized_partitions(collection.asset_key))

    def write(self, key: str) -> datetime:
        """The checkpoint once ``key`` is written."""
        self.written.add(key)
        return self.checkpoint

    @property
    def checkpoint(self) -> datetime:
        return _checkpoint(self.collection, self.keys, self.written)


def interval_change(instance: dg.DagsterInstance, collection: Collection) -> str | None:
    """What to tell the operator if the latest window was written with another polling interval.

    Partition keys name a window's start only, so after WIZ_POLL_INTERVAL_SECONDS changes, a key written
    as a 30-minute window would count as a written 60-minute window, and the half hour it never covered
    would never be collected. Catch-up stops until the operator decides.
    """
    records = instance.fetch_materializations(collection.asset_key, limit=1).records
    if not records or records[0].asset_materialization is None:
        return None
    written = records[0].asset_materialization.metadata.get("interval_seconds")
    value = getattr(written, "value", None)
    if value is None or value == collection.interval_seconds:
        return None
    return (
        f"{collection.data_type} windows were written with WIZ_POLL_INTERVAL_SECONDS={value}, but it is now "
        f"{collection.interval_seconds}: windows written under the old interval would count as written "
        f"under the new one, and records in the difference would never be collected. Either set it back "
        f"to {value}, or set {collection.checkpoint_name} to the current checkpoint and wipe the asset's "
        f"materializations (UI: Assets -> {'/'.join(collection.asset_key.path)} -> Wipe materializations) "
        "before collecting with the new interval."
    )


def collections_for(settings: Settings) -> list[Collection]:
    """Audit logs always; issues when WIZ_COLLECT_ISSUES is on."""
    found = [_collection("audit_logs", "AUDIT_SINCE_TIME", settings.audit_since_time, settings)]
    if settings.collect_issues:
        found.append(_collection("issues", "ISSUES_SINCE_TIME", settings.issues_since_time, settings))
    return found


def _collection(name: str, checkpoint_name: str, seed: datetime, settings: Settings) -> Collection:
    return Collection(
        data_type=name,
        checkpoint_name=checkpoint_name,
        asset_key=dg.AssetKey(["wiz", name]),
        partitions_def=window_partitions(seed, settings.poll_interval_seconds),
        seed=seed,
        job_name=f"collect_{name}",
        schedule_name=f"collect_{name}_schedule",
        interval_seconds=settings.poll_interval_seconds,
    )
