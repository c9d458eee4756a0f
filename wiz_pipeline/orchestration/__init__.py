"""Dagster: the definitions, the window assets and their checks, schedules, re-reads, checkpoints,
partitions, the resources and the ledger's instance side. The only package that imports Dagster; it
builds on ``collect`` (which fetches and lands windows), ``landing``, ``settings`` and ``core``."""

from wiz_pipeline.data_types import DATA_TYPES
from wiz_pipeline.orchestration.assets.current import current_job_name
from wiz_pipeline.orchestration.assets.window_asset import POOL
from wiz_pipeline.orchestration.checkpoints import Collection, checkpoint, collections_for, progress
from wiz_pipeline.orchestration.definitions import build_definitions

# The job of each data type's current-state table, by data type (present when the data type is enabled).
CURRENT_JOBS = {name: current_job_name(dt) for name, dt in DATA_TYPES.items() if dt.current}
ISSUES_CURRENT_JOB = CURRENT_JOBS["issues"]

__all__ = [
    "CURRENT_JOBS",
    "ISSUES_CURRENT_JOB",
    "POOL",
    "Collection",
    "build_definitions",
    "checkpoint",
    "collections_for",
    "current_job_name",
    "progress",
]
