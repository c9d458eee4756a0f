"""What the pipeline collects: one declaration per data type (query, time field, columns, checkpoint).

A data type's GraphQL query, the field that places a record in its window, its Parquet columns
(``columns``), its checkpoint variable, its asset, job and schedule names and its description all live
in its own module (``audit_logs.py``, ``issues.py``); everything else (the window fetch, the tables,
the settings, the Dagster assets, jobs, schedules and checkpoints) is built from ``DATA_TYPES``. Adding
a data type is one module here, one line in ``DATA_TYPES``, and its tests.

Imports ``core`` only: the client, the writers and Dagster all read it, and it reads none of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from wiz_pipeline.core.times import format_time
from wiz_pipeline.data_types.columns import Column

# The API's filter bounds may be inclusive or exclusive (undocumented), so every query asks for a
# slightly wider range and the window is cut exactly on our side.
FILTER_PADDING = timedelta(seconds=1)


@dataclass(frozen=True)
class DataType:
    name: str  # the dataset's directory, and the last part of its asset key
    description: str  # the asset's description in the UI
    operation: str
    query: str
    connection: str  # the field (or alias) under `data` holding the list
    time_field: str  # filtered on by the query, and places a node in its window
    permission: str  # what a 403 should name
    columns: tuple[Column, ...]  # the Parquet columns (``raw`` follows them)
    checkpoint_variable: str  # the seed setting, and the name the checkpoint goes by
    seed_help: str  # the seed setting's line in the settings table
    # A setting (default true) that turns the data type off; None: always collected.
    enabled_by: str | None = None
    enabled_help: str = ""
    result_cap: int | None = None  # nodes one query returns at most before silently stopping
    # Can a record leave a closed window while it is being paged? An issue can: a status change
    # moves its statusChangedAt to now. If the API's cursors are offsets, every record after it
    # then moves up one place and one is skipped between two pages. Such windows are read again
    # (see collect.fetch.WindowFetch) when they took more than one page.
    records_can_leave: bool = False
    # Can the API show a record some time after its time field, so after its window was collected?
    # Audit entries can (ingestion delay): such windows are collected again once they have been closed
    # WIZ_REREAD_AFTER_SECONDS (see rereads.py). Issues are a change log: an issue whose status changes
    # again belongs to the later window, so theirs are never re-read.
    published_late: bool = False
    # Columns whose most frequent values each window's metadata shows (a Markdown table).
    summary_columns: tuple[str, ...] = ()

    @property
    def asset_key_path(self) -> tuple[str, ...]:
        return ("wiz", self.name)

    @property
    def job_name(self) -> str:
        return f"collect_{self.name}"

    @property
    def schedule_name(self) -> str:
        return f"collect_{self.name}_schedule"

    def variables(self, start: datetime, end: datetime) -> dict[str, Any]:
        bounds = {"after": format_time(start - FILTER_PADDING), "before": format_time(end + FILTER_PADDING)}
        return {"filterBy": {self.time_field: bounds}}


def _registry() -> dict[str, DataType]:
    from wiz_pipeline.data_types.audit_logs import AUDIT_LOGS
    from wiz_pipeline.data_types.issues import ISSUES

    return {dt.name: dt for dt in (AUDIT_LOGS, ISSUES)}


# Every data type, in the order the settings, definitions and commands list them.
DATA_TYPES: dict[str, DataType] = _registry()
