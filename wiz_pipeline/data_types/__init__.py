"""What the pipeline collects: one declaration per data type (query, time field, columns, checkpoint).

A data type's GraphQL query, the field that places a record in its window, its Parquet columns
(``columns``), the filters its query always sends, its checkpoint variable, its asset, job and
schedule names, its description and its current-state table (``CurrentState``) all live in its own
module (``audit_logs.py``, ``issues.py``, ``vulnerability_findings.py``, ``configuration_findings.py``,
``detections.py``); everything else (the window fetch, the tables,
the settings, the Dagster assets, jobs, schedules and checkpoints) is built from ``DATA_TYPES``. Adding
a data type is one module here, one line in ``DATA_TYPES``, and its tests.

Imports ``core`` only: the client, the writers and Dagster all read it, and it reads none of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from wiz_pipeline.core.times import format_time
from wiz_pipeline.data_types.columns import Column

# The API's filter bounds may be inclusive or exclusive (undocumented), so every query asks for a
# slightly wider range and the window is cut exactly on our side.
FILTER_PADDING = timedelta(seconds=1)


@dataclass(frozen=True)
class ChoiceFilter:
    """A filter whose values the operator chooses with a setting: a comma list of ``choices``."""

    setting: str
    key: str  # the filterBy field
    choices: tuple[str, ...]
    default: tuple[str, ...]
    help: str


@dataclass(frozen=True)
class CurrentState:
    """A table of the latest version of every record, rebuilt whole on its own schedule
    (``collect.current``): its dataset (and asset) name, cron setting and what orders versions."""

    dataset: str
    noun: str  # what a row is, in logs and descriptions ("issues", "vulnerability findings")
    cron_setting: str
    cron_default: str
    # The columns that say which of two versions of a record is later, compared in order.
    version_columns: tuple[str, ...]
    # The order of a full read (None: the API's own): an order new records are appended in, so that
    # offset cursors over a list that grows don't skip.
    read_order: Mapping[str, str] | None = field(default=None, compare=False)
    # A setting: every how many days a build reads the whole list; between, a build is the previous
    # one plus the windows written since (None: every build reads everything, as issues do).
    full_read_days_setting: str | None = None
    full_read_days_default: int = 7
    status_column: str = "status"
    severity_column: str = "severity"


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
    # The enabled_by setting's default: the types added after audit logs and issues are off until
    # an operator turns them on (each needs its own permission).
    enabled_by_default: bool = True
    # Sent in every query's filterBy besides the time bounds (fixed by the declaration, or chosen
    # with ``choice`` and filled in by ``with_choice``): filters without which the API leaves records out.
    filters: Mapping[str, Any] = field(default_factory=dict, compare=False)
    choice: ChoiceFilter | None = None
    current: CurrentState | None = None

    @property
    def asset_key_path(self) -> tuple[str, ...]:
        return ("wiz", self.name)

    @property
    def job_name(self) -> str:
        return f"collect_{self.name}"

    @property
    def schedule_name(self) -> str:
        return f"collect_{self.name}_schedule"

    @property
    def permission_hint(self) -> str:
        """What an error about a missing permission says the operator can do."""
        off = f"; or set {self.enabled_by}=false to stop collecting {self.name}" if self.enabled_by else ""
        return f"{self.permission}{off}"

    def with_choice(self, values: tuple[str, ...]) -> DataType:
        """This data type with its ``choice`` filter set to ``values`` (the setting's, checked)."""
        if self.choice is None:
            raise ValueError(f"{self.name} has no choice filter")
        return replace(self, filters={**self.filters, self.choice.key: list(values)})

    def variables(self, start: datetime, end: datetime) -> dict[str, Any]:
        bounds = {"after": format_time(start - FILTER_PADDING), "before": format_time(end + FILTER_PADDING)}
        return {"filterBy": {**self.filters, self.time_field: bounds}}


def _registry() -> dict[str, DataType]:
    from wiz_pipeline.data_types.audit_logs import AUDIT_LOGS
    from wiz_pipeline.data_types.configuration_findings import CONFIGURATION_FINDINGS
    from wiz_pipeline.data_types.detections import DETECTIONS
    from wiz_pipeline.data_types.issues import ISSUES
    from wiz_pipeline.data_types.vulnerability_findings import VULNERABILITY_FINDINGS

    types = (AUDIT_LOGS, ISSUES, VULNERABILITY_FINDINGS, CONFIGURATION_FINDINGS, DETECTIONS)
    return {dt.name: dt for dt in types}


# Every data type, in the order the settings, definitions and commands list them.
DATA_TYPES: dict[str, DataType] = _registry()
