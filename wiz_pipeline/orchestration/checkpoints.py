"""Checkpoints derived from materialized partitions, one per data type (its ``checkpoint_variable``:
``AUDIT_SINCE_TIME``, ``ISSUES_SINCE_TIME``).

Nothing is stored by hand: a data type's checkpoint is the end of the longest run of materialized
windows that starts at its seed. A failed or missing window holds it back even when later windows
succeeded, so the checkpoint always means "everything before this time is written".
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import dagster as dg

# The asset status cache is what get_status_by_partition reads; read directly, its failed and in-progress
# sets come as time ranges instead of a lookup per key (see _keys_of).
from dagster._core.storage.partition_status_cache import (
    AssetStatusCacheValue,
    get_and_update_asset_status_cache_value,
)

from wiz_pipeline.core.times import format_time, parse_time
from wiz_pipeline.core.windows import WindowGrid
from wiz_pipeline.data_types import DATA_TYPES, DataType
from wiz_pipeline.ocsf.layout import OcsfLayout
from wiz_pipeline.orchestration.partitions import window_partitions
from wiz_pipeline.settings import Settings

# Bringing the status cache up to date costs Dagster a parse and a check per window it hasn't seen: after
# a year of windows was written at once (a backfill, a fresh instance), several seconds at 30-minute
# windows and minutes at one-minute ones, past the schedule's 60 s timeout (and a tick that times out
# never stores the cache it built). With more unseen windows than this, the failed and in-progress
# windows are read from the event log instead (one query), and the cache is left to the UI.
STATUS_CACHE_CATCH_UP_LIMIT = 2000
_FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


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
    # WIZ_REREAD_AFTER_SECONDS for a data type whose records can appear late (audit logs); 0 for the
    # others: issues are a change log, never re-read (rereads.py).
    reread_after_seconds: int = 0
    # The declaration as the settings fill it in (a choice filter's values); None: DATA_TYPES's.
    definition: DataType | None = None
    # WIZ_OCSF on: the OCSF view's asset (wiz/ocsf/<data type>), written with each window; None when
    # off. Its files' layout under WIZ_OCSF_URI.
    ocsf_key: dg.AssetKey | None = None
    ocsf_layout: OcsfLayout = field(default_factory=OcsfLayout)

    @property
    def grid(self) -> WindowGrid:
        """The windows of today's partitions, numbered from the seed's."""
        return WindowGrid(self.partitions_def.start.astimezone(UTC), self.interval_seconds)


@dataclass(frozen=True)
class Progress:
    checkpoint: datetime
    closed_windows: int  # windows closed (lag included) up to now
    materialized: int  # of which written at least once
    missing: list[str]  # closed windows never written, oldest first
    in_progress: set[str]  # of the missing, those a queued or running run is writing
    failed: set[str]  # of the missing, those whose latest run failed
    # Filled only when ``progress`` is asked for every window (re-reads need them):
    written: set[str] = field(default_factory=set)  # materialized windows, less partial ones
    busy: set[str] = field(default_factory=set)  # every window a queued or running run is writing
    failed_any: set[str] = field(default_factory=set)  # every window whose latest run failed


def window_keys(collection: Collection, until: datetime) -> list[str]:
    """Keys of the windows that end at or before ``until``, oldest first (worked out by the grid:
    asking Dagster for half a million one-minute keys takes long enough to time a schedule tick out)."""
    grid = collection.grid
    return grid.keys(range(grid.count_until(until)))


def _written_prefix(keys: list[str], written: set[str], done: int = 0) -> int:
    """How many of ``keys``, from the first, are written (counting on from ``done`` known ones)."""
    while done < len(keys) and keys[done] in written:
        done += 1
    return done


def _checkpoint(collection: Collection, keys: list[str], written: set[str]) -> datetime:
    return _end_of(collection, _written_prefix(keys, written))


def _end_of(collection: Collection, windows: int) -> datetime:
    """The checkpoint once the first ``windows`` windows are written."""
    return collection.grid.start_of(windows) if windows else collection.seed


def partial_windows(instance: dg.DagsterInstance, collection: Collection, written: set[str]) -> set[str]:
    """Written windows collected from a later seed than today's, so missing the stretch before it.

    The seed's window is collected from the seed. When the seed moves earlier, the old seed's window
    no longer covers its whole window: it must count as unwritten until it is written again. It is
    the earliest window written until an earlier one is; so each run and tick checks the earliest,
    and every materialization carries the list of partial windows known when its run began
    (``partial_windows`` metadata), so that one found once is never forgotten.
    """
    if not written:
        return set()
    candidates = {min(written)}  # keys sort by time
    listed = _latest_metadata(instance, collection, "partial_windows") or ""
    candidates |= {k for k in str(listed).split(",") if k in written}
    partial = set()
    for key in sorted(candidates):
        began = parse_time(_latest_metadata(instance, collection, "window_start", partition=key))
        boundary = collection.partitions_def.time_window_for_partition_key(key).start.astimezone(UTC)
        if began is None or began > max(boundary, collection.seed):
            partial.add(key)
    return partial


def _latest_metadata(
    instance: dg.DagsterInstance, collection: Collection, name: str, partition: str | None = None
) -> object:
    """A metadata value of the asset's latest materialization (of one partition, if given)."""
    records_filter = dg.AssetRecordsFilter(
        asset_key=collection.asset_key, asset_partitions=[partition] if partition else None
    )
    records = instance.fetch_materializations(records_filter, limit=1).records
    materialization = records[0].asset_materialization if records else None
    return getattr(materialization.metadata.get(name), "value", None) if materialization else None


def recent_max_rows(instance: dg.DagsterInstance, collection: Collection, limit: int = 200) -> int:
    """The most rows any of the asset's latest ``limit`` materializations held (0 if none)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=collection.asset_key), limit=limit
    ).records
    counts = [
        getattr(r.asset_materialization.metadata.get("dagster/row_count"), "value", None)
        for r in records
        if r.asset_materialization
    ]
    return max((c for c in counts if isinstance(c, int)), default=0)


def _materialized(instance: dg.DagsterInstance, collection: Collection) -> set[str]:
    """Materialized windows of today's partitions (not those before a seed that has moved later)."""
    first = collection.grid.key_of(0)
    return {k for k in instance.get_materialized_partitions(collection.asset_key) if k >= first}


def written_windows(instance: dg.DagsterInstance, collection: Collection) -> set[str]:
    """Materialized windows of today's partitions, less partial ones (see ``partial_windows``)."""
    written = _materialized(instance, collection)
    return written - partial_windows(instance, collection, written)


def _keys_of(subset: object, collection: Collection) -> set[str]:
    """The keys of a time-window partitions subset, worked out from its time ranges (asking Dagster
    key by key costs milliseconds each, minutes per tick at one-minute windows)."""
    ranges = getattr(subset, "included_time_windows", None)
    if ranges is None:
        return set(subset.get_partition_keys())  # type: ignore[attr-defined]
    grid = collection.grid
    keys: set[str] = set()
    for window in ranges:
        keys.update(grid.keys(grid.overlapping(_datetime(window.start), _datetime(window.end))))
    return keys


def _datetime(value: object) -> datetime:
    stamp = value.timestamp  # type: ignore[attr-defined]  # a datetime or Dagster's TimestampWithTimezone
    return datetime.fromtimestamp(stamp() if callable(stamp) else stamp, tz=UTC)


def failed_and_in_progress(
    instance: dg.DagsterInstance, collection: Collection, materialized: int
) -> tuple[set[str], set[str]]:
    """Windows whose latest run failed, and windows a queued or running run is writing (``materialized``
    is how many windows are materialized)."""
    record = next(iter(instance.get_asset_records([collection.asset_key])), None)
    stored = record.asset_entry.cached_status if record else None
    if isinstance(stored, AssetStatusCacheValue) and stored.partitions_def_id == _partitions_id(collection):
        unseen = len(
            instance.get_materialized_partitions(collection.asset_key, after_cursor=stored.latest_storage_id)
        )
    else:
        unseen = materialized  # Dagster would build the cache from scratch
    if unseen > STATUS_CACHE_CATCH_UP_LIMIT:
        return _failed_and_in_progress_from_event_log(instance, collection)
    cached = get_and_update_asset_status_cache_value(
        instance, collection.asset_key, collection.partitions_def
    )
    if not isinstance(cached, AssetStatusCacheValue):
        return set(), set()
    failed = cached.deserialize_failed_partition_subsets(collection.partitions_def)
    in_progress = cached.deserialize_in_progress_partition_subsets(collection.partitions_def)
    return _keys_of(failed, collection), _keys_of(in_progress, collection)


def _partitions_id(collection: Collection) -> str:
    return collection.partitions_def.get_serializable_unique_identifier()


def _failed_and_in_progress_from_event_log(
    instance: dg.DagsterInstance, collection: Collection
) -> tuple[set[str], set[str]]:
    """What the status cache would say, read from the event log: each window's latest attempt that no
    materialization followed, and its run's status (one query for the attempts, one per 100 runs)."""
    storage = instance.event_log_storage
    attempts = storage.get_latest_asset_partition_materialization_attempts_without_materializations(
        collection.asset_key
    )
    run_ids = sorted({run_id for run_id, _ in attempts.values()})
    status: dict[str, dg.DagsterRunStatus] = {}
    for i in range(0, len(run_ids), 100):
        for run in instance.get_runs(dg.RunsFilter(run_ids=run_ids[i : i + 100])):
            status[run.run_id] = run.status
    failed, in_progress = set(), set()
    for key, (run_id, _) in attempts.items():
        if status.get(run_id) == dg.DagsterRunStatus.FAILURE:
            failed.add(key)
        elif run_id in status and status[run_id] not in _FINISHED:
            in_progress.add(key)
    return failed, in_progress


def progress(
    instance: dg.DagsterInstance,
    collection: Collection,
    now: datetime,
    lag: timedelta = timedelta(0),
    *,
    every_window: bool = False,
) -> Progress:
    """Where collection stands at ``now``, counting windows closed at least ``lag`` ago.

    ``every_window`` also gives the written windows and the failed and in-progress ones among them.
    A run that fails over a written window (a re-read) marks it failed in Dagster's status (whose
    materialized set keeps it too): it stays written, and the checkpoint never moves back for it.
    """
    keys = window_keys(collection, now - lag)
    materialized = _materialized(instance, collection)
    written = materialized - partial_windows(instance, collection, materialized)
    missing = [k for k in keys if k not in written]
    failed, in_progress = (
        failed_and_in_progress(instance, collection, len(materialized))
        if missing or every_window
        else (set(), set())
    )
    missing_set = set(missing)
    return Progress(
        _checkpoint(collection, keys, written),
        len(keys),
        len(keys) - len(missing),
        missing,
        in_progress & missing_set,
        failed & missing_set - in_progress,
        written if every_window else set(),
        in_progress if every_window else set(),
        failed - in_progress if every_window else set(),
    )


def checkpoint(instance: dg.DagsterInstance, collection: Collection, now: datetime | None = None) -> datetime:
    keys = window_keys(collection, now or datetime.now(UTC))
    return _checkpoint(collection, keys, written_windows(instance, collection))


class CheckpointTracker:
    """Follows the checkpoint while a run writes windows, reading the instance only once."""

    def __init__(self, instance: dg.DagsterInstance, collection: Collection) -> None:
        self.collection = collection
        self.keys = window_keys(collection, datetime.now(UTC))
        materialized = _materialized(instance, collection)
        self.partial = partial_windows(instance, collection, materialized)
        self.written = materialized - self.partial
        self.done = _written_prefix(self.keys, self.written)  # the first `done` windows are written

    def write(self, key: str) -> datetime:
        """The checkpoint once ``key`` is written."""
        self.written.add(key)
        self.partial.discard(key)
        self.done = _written_prefix(self.keys, self.written, self.done)
        return self.checkpoint

    @property
    def checkpoint(self) -> datetime:
        return _end_of(self.collection, self.done)


def interval_change(instance: dg.DagsterInstance, collection: Collection) -> str | None:
    """What to tell the operator if windows were written with another polling interval.

    Partition keys name a window's start only, so after WIZ_POLL_INTERVAL_SECONDS changes, a key written
    as a 30-minute window would count as a written 60-minute window, and the half hour it never covered
    would never be collected. The schedule, the asset and the checkpoint command all stop and say so.
    """
    value = _latest_metadata(instance, collection, "interval_seconds")
    if not isinstance(value, int) or value == collection.interval_seconds or 86400 % value:
        return None
    old = replace(
        collection, partitions_def=window_partitions(collection.seed, value), interval_seconds=value
    )
    safe = format_time(checkpoint(instance, old))
    return (
        f"{collection.data_type} windows were written with WIZ_POLL_INTERVAL_SECONDS={value}, but it is now "
        f"{collection.interval_seconds}: windows written under the old interval would count as written "
        f"under the new one, and records in the difference would never be collected. Either set it back "
        f"to {value}, or set {collection.checkpoint_name}={safe} (the checkpoint under the old interval) "
        f"and wipe the asset's materializations (UI: Assets -> {'/'.join(collection.asset_key.path)} -> "
        "Wipe materializations) before collecting with the new interval."
    )


def collections_for(settings: Settings) -> list[Collection]:
    """Every data type of ``DATA_TYPES`` that its setting leaves on (audit logs always)."""
    return [
        _collection(data_type, settings)
        for data_type in DATA_TYPES.values()
        if settings.enabled[data_type.name]
    ]


def _collection(data_type: DataType, settings: Settings) -> Collection:
    seed = settings.seeds[data_type.name]
    return Collection(
        data_type=data_type.name,
        checkpoint_name=data_type.checkpoint_variable,
        asset_key=dg.AssetKey(list(data_type.asset_key_path)),
        partitions_def=window_partitions(seed, settings.poll_interval_seconds),
        seed=seed,
        job_name=data_type.job_name,
        schedule_name=data_type.schedule_name,
        interval_seconds=settings.poll_interval_seconds,
        reread_after_seconds=_reread_after(data_type, settings),
        definition=settings.data_types[data_type.name],
        ocsf_key=dg.AssetKey(["wiz", "ocsf", data_type.name]) if settings.ocsf else None,
        ocsf_layout=ocsf_layout(settings),
    )


def ocsf_layout(settings: Settings) -> OcsfLayout:
    return OcsfLayout(
        settings.ocsf_layout, settings.ocsf_region, settings.ocsf_account_id, settings.ocsf_source_version
    )


def _reread_after(data_type: DataType, settings: Settings) -> int:
    """WIZ_REREAD_AFTER_SECONDS for a data type published late; 0 (off) for the others, and when it
    doesn't exceed the lag (the first read already comes after it; settings reject that when the
    variable is set, and let a default under a longer lag mean off)."""
    after = settings.reread_after_seconds
    return after if data_type.published_late and after > settings.window_lag_seconds else 0
