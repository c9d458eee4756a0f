"""Dagster: the definitions, the window assets and their checks, schedules, re-reads, checkpoints,
partitions, the resources and the ledger's instance side. The only package that imports Dagster; it
builds on ``collect`` (which fetches and lands windows), ``landing``, ``settings`` and ``core``."""

from wiz_pipeline.orchestration.assets.issues_current import JOB_NAME as ISSUES_CURRENT_JOB
from wiz_pipeline.orchestration.assets.window_asset import POOL
from wiz_pipeline.orchestration.checkpoints import Collection, checkpoint, collections_for, progress
from wiz_pipeline.orchestration.definitions import build_definitions

__all__ = [
    "ISSUES_CURRENT_JOB",
    "POOL",
    "Collection",
    "build_definitions",
    "checkpoint",
    "collections_for",
    "progress",
]
