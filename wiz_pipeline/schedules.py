"""The collection schedule: each tick requests every closed window not yet written.

One schedule per data type ticks ``WIZ_WINDOW_LAG_SECONDS`` (rounded up to a minute) after each
window closes. A tick does not just ask for the window that closed: it asks for every closed window
that was never written and is not being written now (after a daemon outage, a failed window, a fresh
seed), in runs of consecutive windows, at most ``WIZ_MAX_WINDOWS_PER_RUN`` each. A window already in
a queued or running run is left to it, so no window is ever in two runs at once. Each tick logs the
checkpoint, and each run it requests carries it as a tag, so both show in the UI.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, timedelta

import dagster as dg
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from wiz_pipeline.checkpoints import Collection, interval_change, progress, window_keys
from wiz_pipeline.partitions import cron_for
from wiz_pipeline.times import format_time

# With run monitoring on (deploy/dagster.yaml), a run still going after this long is failed: a hung or
# orphaned run must not hold its windows, and the wiz_api pool's only slot, for ever.
RUN_TAGS = {"dagster/max_runtime": str(4 * 3600)}
# Runs go through the wiz_api pool one at a time, so queueing more than this gains nothing; after a
# long outage the next ticks request the rest (the in-progress check keeps them from overlapping).
MAX_RUNS_PER_TICK = 200


def runs_of_missing_windows(
    all_keys: list[str], wanted: list[str], max_windows: int, failed: Mapping[str, int] | None = None
) -> list[list[str]]:
    """``wanted`` (a subset of ``all_keys``) grouped into runs of adjacent windows, at most
    ``max_windows`` each.

    ``failed`` maps windows whose last run failed to that run's size (0 if unknown). They are grouped
    apart, in runs half that size: a window that keeps failing (a page the API can't serve, a query
    that times out) is isolated within a few ticks, each retry smaller than the last, instead of
    failing its healthy neighbours for ever; an outage that failed everything costs twice the runs.
    """
    failed = failed or {}
    position = {key: i for i, key in enumerate(all_keys)}

    def size_for(key: str) -> int:
        if key not in failed:
            return max_windows
        return max(1, min(max_windows, failed[key] or max_windows) // 2)

    runs: list[list[str]] = []
    for key in wanted:
        joins = (
            runs
            and size_for(key) == size_for(runs[-1][-1])
            and (key in failed) == (runs[-1][-1] in failed)
            and position[key] == position[runs[-1][-1]] + 1
            and len(runs[-1]) < size_for(key)
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


def run_request(keys: list[str], tags: dict[str, str], tick: str) -> dg.RunRequest:
    # Dagster wants a run key when a tick asks for several runs. It is unique per tick on purpose:
    # a window whose run failed must be asked for again by the next tick.
    run_key = f"{keys[0]}..{keys[-1]}@{tick}"
    if len(keys) == 1:
        return dg.RunRequest(run_key=run_key, partition_key=keys[0], tags=tags)
    return dg.RunRequest(
        run_key=run_key,
        tags={**tags, ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]},
    )


def catch_up_schedule(
    collection: Collection,
    job: dg.UnresolvedAssetJobDefinition,
    interval_seconds: int,
    lag_seconds: int,
    max_windows_per_run: int,
) -> dg.ScheduleDefinition:
    lag = timedelta(seconds=lag_seconds)

    @dg.schedule(
        name=collection.schedule_name,
        job=job,
        cron_schedule=cron_for(interval_seconds, lag_seconds),
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=(
            f"Every {interval_seconds} s, {lag_seconds} s after a window closes: collects every closed "
            f"{collection.data_type} window not yet written, in runs of at most {max_windows_per_run}."
        ),
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest] | dg.SkipReason:
        now = (context.scheduled_execution_time or dg.get_current_datetime()).astimezone(UTC)
        changed = interval_change(context.instance, collection)
        if changed:
            context.log.error(changed)
            return dg.SkipReason(changed)
        state = progress(context.instance, collection, now, lag)
        todo = [key for key in state.missing if key not in state.in_progress]
        since = format_time(state.checkpoint)
        summary = (
            f"{collection.checkpoint_name}={since}; {state.materialized} of {state.closed_windows} closed "
            f"windows written, {len(state.missing)} missing ({len(state.failed)} after a failed run), "
            f"{len(state.in_progress)} in progress"
        )
        if state.in_progress:
            summary += f" ({_runs_in_progress(context.instance, collection)})"
        if not todo:
            context.log.info(summary)
            return dg.SkipReason(f"{summary}: nothing to request.")
        keys = window_keys(collection, now - lag)
        sizes = failed_run_sizes(context.instance, collection, keys, state.failed)
        runs = runs_of_missing_windows(keys, todo, max_windows_per_run, failed=sizes)
        later = len(runs) - MAX_RUNS_PER_TICK
        if later > 0:
            runs = runs[:MAX_RUNS_PER_TICK]
            summary += f"; {later} more run(s) wait for the next ticks"
        context.log.info(
            f"{summary}; requesting {len(runs)} run(s) for {sum(map(len, runs))} window(s): "
            + ", ".join(f"{r[0]}..{r[-1]}" if len(r) > 1 else r[0] for r in runs)
        )
        tags = {"wiz/data_type": collection.data_type, "wiz/since_time": since, **RUN_TAGS}
        return [run_request(r, tags, format_time(now)) for r in runs]

    return _schedule
