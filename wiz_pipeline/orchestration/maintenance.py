"""WIZ_ICEBERG's table maintenance: a job and its schedule (``landing.iceberg.maintain`` per table).

The op claims the ``wiz_api`` pool's slot like every collection step, so it never runs while a window
is being written: a file published but not yet committed is never taken for an orphan, whatever the
retention.
"""

# No `from __future__ import annotations`: Dagster reads the op's annotations (its config class).
from datetime import timedelta

import dagster as dg

from wiz_pipeline.landing.iceberg_maintenance import Maintained, maintain
from wiz_pipeline.landing.outputs import Output
from wiz_pipeline.orchestration.assets.window_asset import POOL
from wiz_pipeline.orchestration.resources import ParquetDatasets
from wiz_pipeline.orchestration.schedules import RUN_TAGS
from wiz_pipeline.settings import Settings

JOB = "iceberg_maintenance"
SCHEDULE = "iceberg_maintenance_schedule"


class MaintenanceConfig(dg.Config):
    retention_days: int  # WIZ_ICEBERG_SNAPSHOT_RETENTION_DAYS when the definitions loaded


def maintenance_definitions(settings: Settings) -> tuple[dg.JobDefinition, dg.ScheduleDefinition]:
    @dg.op(name="maintain_iceberg_tables", pool=POOL)
    def _maintain(
        context: dg.OpExecutionContext, config: MaintenanceConfig, datasets: ParquetDatasets
    ) -> None:
        tables = datasets.tables()
        if tables is None:
            raise dg.Failure(description="WIZ_ICEBERG is off where this run started: there are no tables.")
        retention = timedelta(days=config.retention_days)
        done: list[Maintained] = []
        outputs = [datasets.output()]
        if datasets.ocsf_root:
            outputs.append(datasets.ocsf_output())
        for dataset in tables.datasets():
            table = tables.load(dataset)
            if table is None:
                continue
            place = _folder_of(table.location(), outputs)
            if place is None:
                context.log.warning(
                    f"{dataset}: located at {table.location()}, outside WIZ_OUTPUT_URI and WIZ_OCSF_URI; "
                    "its snapshots are expired but its files are left alone."
                )
            output, folder = place if place is not None else (None, "")
            result = maintain(tables, dataset, output, folder, retention=retention)
            if result is None:
                continue
            done.append(result)
            context.log.info(
                f"{dataset}: {result.snapshots_expired} snapshot(s) expired, {result.snapshots_kept} kept; "
                f"{result.files_deleted} unreferenced file(s) deleted ({result.bytes_deleted} bytes); "
                f"{result.manifests} manifest(s) in the current snapshot, metadata file "
                f"{result.metadata_bytes} bytes"
            )
        context.add_output_metadata(
            {
                "tables": len(done),
                "snapshots_expired": sum(r.snapshots_expired for r in done),
                "files_deleted": sum(r.files_deleted for r in done),
                "bytes_deleted": sum(r.bytes_deleted for r in done),
            }
        )

    @dg.job(
        name=JOB,
        description=(
            "Expires Iceberg snapshots older than WIZ_ICEBERG_SNAPSHOT_RETENTION_DAYS and deletes the "
            "files no snapshot references any more (windows replaced by reruns, writes whose commit "
            "failed). Takes the wiz_api slot, so it waits for a running collection."
        ),
        tags=RUN_TAGS,
        config={
            "ops": {
                "maintain_iceberg_tables": {
                    "config": {"retention_days": settings.iceberg_snapshot_retention_days}
                }
            }
        },
    )
    def _job() -> None:
        _maintain()

    schedule = dg.ScheduleDefinition(
        name=SCHEDULE,
        job=_job,
        cron_schedule=settings.iceberg_maintenance_cron,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=(
            f"Runs {JOB} at `{settings.iceberg_maintenance_cron}` UTC (WIZ_ICEBERG_MAINTENANCE_CRON)."
        ),
    )
    return _job, schedule


def _folder_of(location: str, outputs: list[Output]) -> tuple[Output, str] | None:
    """The output a table's location is in, and the folder there."""
    for output in outputs:
        base = output.location("").rstrip("/")
        if location.rstrip("/").startswith(base + "/"):
            return output, location.rstrip("/")[len(base) + 1 :]
    return None
