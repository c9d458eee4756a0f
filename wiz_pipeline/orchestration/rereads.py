"""Re-reads of audit log windows: which are due, and what a run is asked to (re)collect.

The API may show an audit entry some time after its timestamp, later than ``WIZ_WINDOW_LAG_SECONDS``
after its window closed, so after the window was collected. So each audit window is collected a
second time once it has been closed ``WIZ_REREAD_AFTER_SECONDS`` (R), replacing its file.

Whether a window needs it is derived from what Dagster recorded, never kept by hand: a written window
whose end is at least R ago is due when its latest materialization's ``read_at`` (when its query
began, see ``collect.collect_windows``) is before ``end + R``. A window first collected after that
(a backfill, a catch-up after an outage) is never due; after its re-read it never is again.

The schedule asks for re-reads in the same runs as the windows that just closed: one ranged run from
the oldest due window to the newest missing one, tagged with the windows it is to write
(``WINDOWS_TAG``) and which of them are re-reads (``REREADS_TAG``); the asset skips the others in
its range, which are written and not due. A run without these tags (a UI backfill, a run launched
by hand) writes every window it names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

import dagster as dg

from wiz_pipeline.core.times import format_time, parse_time
from wiz_pipeline.orchestration.checkpoints import Collection

WINDOWS_TAG = "wiz/windows"
REREADS_TAG = "wiz/rereads"
REQUESTED_AT_TAG = "wiz/requested_at"

# How far back a tick looks for windows due for a re-read: a re-read missed while the daemon was down
# is made when it comes back, if the window fell due no more than this long before (and among the
# last LOOKBACK_WINDOWS windows). Each tick reads the latest materialization of every written window
# in that stretch (about a millisecond each on SQLite, see benchmarks/reread_tick.py), so it is
# bounded: a week, or 1,440 windows (a week of 30-minute windows, five days of 5-minute ones, a day of
# one-minute ones). A window missed for longer keeps reads=1 in the ledger; rerun it from the UI.
LOOKBACK_SECONDS = 7 * 86400
LOOKBACK_WINDOWS = 1440
# Partitions per query (SQLite allows a few hundred parameters in older builds).
_CHUNK = 400


def due(instance: dg.DagsterInstance, collection: Collection, now: datetime, written: set[str]) -> list[str]:
    """The written windows due for a re-read at ``now``, oldest first (none if re-reads are off)."""
    after = collection.reread_after_seconds
    if not after:
        return []
    grid = collection.grid
    # Windows 0 .. fallen-1 ended at least R ago.
    fallen = grid.count_until(now - timedelta(seconds=after))
    looked_at = range(max(0, fallen - min(LOOKBACK_WINDOWS, LOOKBACK_SECONDS // grid.seconds)), fallen)
    ends = {key: grid.start_of(i + 1) for i, key in zip(looked_at, grid.keys(looked_at), strict=True)}
    candidates = [key for key in ends if key in written]
    read_at = latest_read_at(instance, collection, candidates)
    return [
        key for key in candidates if key in read_at and read_at[key] < ends[key] + timedelta(seconds=after)
    ]


def latest_read_at(
    instance: dg.DagsterInstance, collection: Collection, keys: list[str]
) -> dict[str, datetime]:
    """When each window's latest materialization read it: its ``read_at`` metadata, or for one
    written before re-reads existed, when it was recorded. Only the latest materialization of each
    is read (one query for their storage ids, then the records themselves by id)."""
    storage = instance.event_log_storage
    found: dict[str, datetime] = {}
    for i in range(0, len(keys), _CHUNK):
        latest = storage.get_latest_storage_id_by_partition(
            collection.asset_key, dg.DagsterEventType.ASSET_MATERIALIZATION, set(keys[i : i + _CHUNK])
        )
        if not latest:
            continue
        records_filter = dg.AssetRecordsFilter(
            asset_key=collection.asset_key, storage_ids=sorted(latest.values())
        )
        for record in instance.fetch_materializations(records_filter, limit=len(latest)).records:
            key = record.partition_key
            if key is None:
                continue
            value = record.asset_materialization.metadata.get("read_at")  # type: ignore[union-attr]
            when = parse_time(getattr(value, "value", None))
            found[key] = when or datetime.fromtimestamp(record.timestamp, tz=UTC)
    return found


def encode(keys: Iterable[str], run_keys: list[str]) -> str:
    """``keys`` (a subset of the run's ``run_keys``) as ranges: ``first..last,key,...``."""
    position = {key: i for i, key in enumerate(run_keys)}
    spans: list[list[int]] = []
    for i in sorted(position[key] for key in keys):
        if spans and spans[-1][1] == i - 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    return ",".join(run_keys[a] if a == b else f"{run_keys[a]}..{run_keys[b]}" for a, b in spans)


def decode(text: str, run_keys: list[str]) -> list[str]:
    position = {key: i for i, key in enumerate(run_keys)}
    chosen: set[int] = set()
    for part in filter(None, text.split(",")):
        first, _, last = part.partition("..")
        if first not in position or (last or first) not in position:
            raise ValueError(f"{part!r} is not a window of this run ({run_keys[0]}..{run_keys[-1]})")
        chosen.update(range(position[first], position[last or first] + 1))
    return [run_keys[i] for i in sorted(chosen)]


def run_tags(windows: list[str], rereads: Iterable[str], run_keys: list[str]) -> dict[str, str]:
    """The tags telling a run which of its ``run_keys`` to write and which are re-reads (none when it
    writes them all and re-reads none, as before re-reads existed)."""
    rereads = [key for key in windows if key in set(rereads)]
    tags = {}
    if windows != run_keys:
        tags[WINDOWS_TAG] = encode(windows, run_keys)
    if rereads:
        tags[REREADS_TAG] = encode(rereads, run_keys)
    return tags


def windows_to_write(tags: Mapping[str, str], run_keys: list[str]) -> tuple[list[str], set[str]]:
    """The run's windows to write, and which of them are re-reads, from its tags."""
    windows = decode(tags[WINDOWS_TAG], run_keys) if WINDOWS_TAG in tags else list(run_keys)
    rereads = set(decode(tags[REREADS_TAG], run_keys)) if REREADS_TAG in tags else set()
    return windows, rereads & set(windows)


def requested_at(tags: Mapping[str, str]) -> datetime | None:
    return parse_time(tags.get(REQUESTED_AT_TAG))


def requested_at_tag(now: datetime) -> dict[str, str]:
    return {REQUESTED_AT_TAG: format_time(now)}
