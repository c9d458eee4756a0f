"""The collection schedule: each tick requests every closed window not yet written.

One schedule per data type ticks ``WIZ_WINDOW_LAG_SECONDS`` (rounded up to a minute) after each
window closes. A tick does not just ask for the window that closed: it asks for every closed window
that was never written and is not being written now (after a daemon outage, a failed window, a fresh
seed), in runs of consecutive windows, at most ``WIZ_MAX_WINDOWS_PER_RUN`` each. A window already in
a queued or running run is left to it, so no window is ever in two runs at once. Each tick logs the
checkpoint, and each run it requests carries it as a tag, so both show in the UI.

For audit logs, the same ticks ask for the windows due for a re-read (``rereads``), in the same
runs as the windows that just closed.
"""

from __future__ import annotations

from collections.abc import Collection as AbstractCollection
from collections.abc import Mapping
from datetime import UTC, timedelta

import dagster as dg
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from wiz_pipeline.core.times import format_time
from wiz_pipeline.orchestration.checkpoints import Collection, interval_change, progress, window_keys
from wiz_pipeline.orchestration.partitions import cron_for
from wiz_pipeline.orchestration.rereads import due as due_rereads
from wiz_pipeline.orchestration.rereads import requested_at_tag
from wiz_pipeline.orchestration.rereads import run_tags as reread_tags

# With run monitoring on (deploy/dagster.yaml), a run still going after this long is failed: a hung or
# orphaned run must not hold its windows, and the wiz_api pool's only slot, for ever.
RUN_TAGS = {"dagster/max_runtime": str(4 * 3600)}
# Runs go through the wiz_api pool one at a time, so queueing more than this gains nothing; after a
# long outage the next ticks request the rest (the in-progress check keeps them from overlapping).
MAX_RUNS_PER_TICK = 200


def runs_of_missing_windows(
    all_keys: list[str],
    wanted: list[str],
    max_windows: int,
    failed: Mapping[str, int] | None = None,
    *,
    rereads: AbstractCollection[str] = (),
    busy: AbstractCollection[str] = (),
    max_range: int | None = None,
) -> list[list[str]]:
    """``wanted`` (a subset of ``all_keys``, in order) grouped into runs of at most ``max_windows``
    windows each, adjacent ones together.

    ``failed`` maps windows whose last run failed to that run's size (0 if unknown). They are grouped
    apart, in runs half that size: a window that keeps failing (a page the API can't serve, a query
    that times out) is isolated within a few ticks, each retry smaller than the last, instead of
    failing its healthy neighbours for ever; an outage that failed everything costs twice the runs.

    ``rereads`` (of ``wanted``) are written windows due for a re-read. The window due is usually not
    next to the one that just closed (with an hour's re-read delay and 30-minute windows, one written
    window lies between), so a run may join a re-read and the next wanted window (or a wanted window
    and the next re-read) across windows it then skips (see ``rereads``): a re-read then costs its
    pages, not a run of its own. Only across windows not in ``busy`` (no window is ever in two runs
    at once), and for a range of at most ``max_range`` windows (None: never across a gap).
    ``max_windows`` counts the windows a run writes, not those it skips.
    """
    failed = failed or {}
    position = {key: i for i, key in enumerate(all_keys)}

    def size_for(key: str) -> int:
        if key not in failed:
            return max_windows
        return max(1, min(max_windows, failed[key] or max_windows) // 2)

    def bridges(run: list[str], key: str) -> bool:
        last = run[-1]
        if max_range is None or key in failed or last in failed:
            return False
        if key not in rereads and last not in rereads:
            return False
        if position[key] - position[run[0]] >= max_range:
            return False
        return not any(all_keys[i] in busy for i in range(position[last] + 1, position[key]))

    runs: list[list[str]] = []
    for key in wanted:
        joins = (
            runs
            and size_for(key) == size_for(runs[-1][-1])
            and (key in failed) == (runs[-1][-1] in failed)
            and len(runs[-1]) < size_for(key)
            and (position[key] == position[runs[-1][-1]] + 1 or bridges(runs[-1], key))
        )
        if joins:
            runs[-1].append(key)
        else:
            runs.append([key])
    return runs


def failed_run_sizes(
    instance: dg.DagsterInstance, collection: Collection, keys: list[str], failed: set[str]
) -> dict[str, int]:
    """For each failed window, the size of the latest failed run that held it (0 if not found)."""
    sizes = dict.fromkeys(failed, 0)
    if not failed:
        return sizes
    position = {key: i for i, key in enumerate(keys)}
    records = instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]), limit=500)
    seen: set[str] = set()
    for record in records:  # newest first
        run = record.dagster_run
        if run.job_name != collection.job_name and collection.asset_key not in (run.asset_selection or ()):
            continue
        first = run.tags.get(ASSET_PARTITION_RANGE_START_TAG) or run.tags.get("dagster/partition")
        last = run.tags.get(ASSET_PARTITION_RANGE_END_TAG) or first
        if first not in position or last not in position:
            continue
        run_keys = keys[position[first] : position[last] + 1]
        for key in run_keys:
            if key in sizes and key not in seen:
                sizes[key] = len(run_keys)
                seen.add(key)
    return sizes


def _runs_in_progress(instance: dg.DagsterInstance, collection: Collection) -> str:
    """The ids of the queued or running runs of this asset, so that a stuck one can be found."""
    records = instance.get_run_records(dg.RunsFilter(statuses=list(IN_PROGRESS_RUN_STATUSES)), limit=50)
    ids = [
        r.dagster_run.run_id[:8]
        for r in records
        if r.dagster_run.job_name == collection.job_name
        or collection.asset_key in (r.dagster_run.asset_selection or ())
    ]
    return "runs " + ", ".join(ids) if ids else "runs not found"


def run_request(
    all_keys: list[str],
    position: Mapping[str, int],
    run: list[str],
    rereads: set[str],
    tags: dict[str, str],
    tick: str,
) -> dg.RunRequest:
    """A run over ``run``'s range of ``all_keys`` (``position``: each key's index), writing the
    windows in ``run``; its tags say which, when it skips some or re-reads some (see ``rereads``)."""
    span = all_keys[position[run[0]] : position[run[-1]] + 1]
    tags = {**tags, **reread_tags(run, rereads, span)}
    # Dagster wants a run key when a tick asks for several runs. It is unique per tick on purpose:
    # a window whose run failed must be asked for again by the next tick.
    run_key = f"{span[0]}..{span[-1]}@{tick}"
    if len(span) == 1:
        return dg.RunRequest(run_key=run_key, partition_key=span[0], tags=tags)
    return dg.RunRequest(
        run_key=run_key,
        tags={**tags, ASSET_PARTITION_RANGE_START_TAG: span[0], ASSET_PARTITION_RANGE_END_TAG: span[-1]},
    )


def catch_up_schedule(
    collection: Collection,
    job: dg.UnresolvedAssetJobDefinition,
    interval_seconds: int,
    lag_seconds: int,
    max_windows_per_run: int,
    max_windows_per_range: int | None = None,
) -> dg.ScheduleDefinition:
    """``max_windows_per_range``: the longest range a run may span to join a re-read with other
    windows (the windows it skips cost Dagster a planned event each, nothing else)."""
    lag = timedelta(seconds=lag_seconds)
    rereading = bool(collection.reread_after_seconds)
    description = (
        f"Every {interval_seconds} s, {lag_seconds} s after a window closes: collects every closed "
        f"{collection.data_type} window not yet written, in runs of at most {max_windows_per_run}."
        " Turning it off stops collection; turned on again, it catches up from the checkpoint. A "
        "tick that skips with an error needs an operator (the log says what changed)."
    )
    if rereading:
        description += (
            f" Windows closed {collection.reread_after_seconds} s ago are collected again, in the same runs."
        )

    @dg.schedule(
        name=collection.schedule_name,
        job=job,
        cron_schedule=cron_for(interval_seconds, lag_seconds),
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=description,
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest] | dg.SkipReason:
        now = (context.scheduled_execution_time or dg.get_current_datetime()).astimezone(UTC)
        changed = interval_change(context.instance, collection)
        if changed:
            context.log.error(changed)
            return dg.SkipReason(changed)
        state = progress(context.instance, collection, now, lag, every_window=rereading)
        todo = [key for key in state.missing if key not in state.in_progress]
        # Written windows due for a re-read, not already in a queued or running run. One whose
        # re-read failed is grouped apart like a failed window (it is in Dagster's failed set while
        # staying written: the checkpoint doesn't move back for it).
        due = due_rereads(context.instance, collection, now, state.written)
        # A failed run marks every window of its range failed in Dagster, the written ones it skipped
        # (see rereads) included: the UI shows them red and the ledger counts them as gaps, though
        # their files were never touched. Reading them again clears that at the cost of their pages.
        due = sorted({*due, *(state.failed_any & state.written)} - state.busy)
        failed = state.failed | (set(due) & state.failed_any)
        since = format_time(state.checkpoint)
        summary = (
            f"{collection.checkpoint_name}={since}; {state.materialized} of {state.closed_windows} closed "
            f"windows written, {len(state.missing)} missing ({len(state.failed)} after a failed run), "
            f"{len(state.in_progress)} in progress"
        )
        if rereading:
            summary += f", {len(due)} due for a re-read"
        if state.in_progress:
            summary += f" ({_runs_in_progress(context.instance, collection)})"
        if not todo and not due:
            context.log.info(summary)
            return dg.SkipReason(f"{summary}: nothing to request.")
        keys = window_keys(collection, now - lag)
        sizes = failed_run_sizes(context.instance, collection, keys, failed)
        runs = runs_of_missing_windows(
            keys,
            sorted({*todo, *due}),  # keys sort by time
            max_windows_per_run,
            failed=sizes,
            rereads=set(due),
            busy=state.busy,
            max_range=max_windows_per_range,
        )
        later = len(runs) - MAX_RUNS_PER_TICK
        if later > 0:
            runs = runs[:MAX_RUNS_PER_TICK]
            summary += f"; {later} more run(s) wait for the next ticks"
        rereading_now = [k for r in runs for k in r if k in due]
        context.log.info(
            f"{summary}; requesting {len(runs)} run(s) for {sum(map(len, runs))} window(s)"
            + (f", {len(rereading_now)} of them re-reads" if rereading_now else "")
            + ": "
            + ", ".join(f"{r[0]}..{r[-1]}" if len(r) > 1 else r[0] for r in runs)
        )
        tags = {
            "wiz/data_type": collection.data_type,
            "wiz/since_time": since,
            **requested_at_tag(now),
            **RUN_TAGS,
        }
        position = {key: i for i, key in enumerate(keys)}
        return [run_request(keys, position, r, set(due), tags, format_time(now)) for r in runs]

    return _schedule
