"""The one ``Definitions`` object: assets, jobs, schedules and resources, one of each per data type
(``data_types.DATA_TYPES``).

Settings with defaults are read here, when the code location loads (they shape the partitions);
the Wiz endpoint and credentials are read by Dagster when a run starts (see ``settings.py``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import dagster as dg

from wiz_pipeline.orchestration.assets.current import current_definitions
from wiz_pipeline.orchestration.assets.window_asset import window_asset
from wiz_pipeline.orchestration.checkpoints import collections_for
from wiz_pipeline.orchestration.maintenance import maintenance_definitions
from wiz_pipeline.orchestration.resources import ParquetDatasets, WizResource
from wiz_pipeline.orchestration.schedules import RUN_TAGS, catch_up_schedule
from wiz_pipeline.settings import load_settings

# Dagster 1.13's own snapshot code (remote_representation/external_data.py) reads the deprecated
# ScheduleDefinition.environment_vars of every schedule each time a code server describes the
# definitions; we never set it, so there is nothing of ours to move, and the warning on every start
# would only teach users to ignore warnings. Only that one message is silenced.
warnings.filterwarnings(
    "ignore",
    message=r"Property `ScheduleDefinition\.environment_vars` is deprecated",
    category=DeprecationWarning,
)


def build_definitions(
    env: Mapping[str, str] | None = None, *, resources: Mapping[str, Any] | None = None
) -> dg.Definitions:
    """``env`` defaults to the process environment; ``resources`` replace the built ones by key
    (tests use it to shorten the client's backoff)."""
    settings = load_settings(env)
    assets, jobs, schedules = [], [], []
    for collection in collections_for(settings):
        assets.append(window_asset(collection, settings.max_windows_per_backfill_run))
        job = dg.define_asset_job(
            collection.job_name,
            # With WIZ_OCSF, the window's OCSF view is written in the same step.
            selection=[collection.asset_key, *([collection.ocsf_key] if collection.ocsf_key else [])],
            description=(
                f"Collects {collection.data_type} windows from Wiz into Parquet, one file per window, "
                f"and checks each. Launched by {collection.schedule_name}; run it by hand to "
                "backfill or redo windows (select them under the asset's Partitions). A failed run "
                "keeps the windows it wrote; its log says why the others failed."
            ),
            tags=RUN_TAGS,
        )
        jobs.append(job)
        schedules.append(
            catch_up_schedule(
                collection,
                job,
                settings.poll_interval_seconds,
                settings.window_lag_seconds,
                settings.max_windows_per_run,
                settings.max_windows_per_backfill_run,
            )
        )
    for name, data_type in settings.data_types.items():
        if data_type.current is None or not settings.enabled[name]:
            continue
        # The current state of every record, on its own schedule (its cron setting).
        asset, job, schedule = current_definitions(
            data_type, settings.current_crons[name], settings.full_read_days.get(name)
        )
        assets.append(asset)
        jobs.append(job)
        schedules.append(schedule)
    if settings.iceberg:
        # Expiry of old snapshots and removal of files none references, on its own schedule.
        job, schedule = maintenance_definitions(settings)
        jobs.append(job)
        schedules.append(schedule)
    return dg.Definitions(
        assets=assets,
        # A run is one step (one asset, its windows): a step process of its own would add a process
        # start to every run and run nothing in parallel. The step still claims the wiz_api slot.
        executor=dg.in_process_executor,
        jobs=jobs,
        schedules=schedules,
        resources={
            "wiz": WizResource.from_settings(settings),
            "datasets": ParquetDatasets(
                root=settings.output_uri,
                ocsf_root=settings.ocsf_output_uri if settings.ocsf else "",
                iceberg=settings.iceberg,
                iceberg_namespace=settings.iceberg_namespace,
            ),
            **(resources or {}),
        },
    )
