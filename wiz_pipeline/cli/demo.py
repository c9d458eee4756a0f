"""The demo and the dev sandbox: the pipeline, through Dagster, against the built-in simulator."""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.dataset as ds

from wiz_pipeline.core.times import format_time
from wiz_pipeline.data_types import DATA_TYPES
from wiz_pipeline.orchestration import CURRENT_JOBS, POOL, collections_for, progress
from wiz_pipeline.settings import Settings, load_settings
from wiz_pipeline.simulator import WizSimulator

# Both the demo and `wiz-pipeline dev` write this into a DAGSTER_HOME that has no dagster.yaml yet.
# One step at a time may hold the `wiz_api` pool, so all runs share the tenant's rate budget.
INSTANCE_YAML = """\
# Written by wiz-pipeline. Every Wiz asset is in the wiz_api pool, counted per step in the instance's
# storage: each step claims the pool's one slot before it starts, whether the daemon's run queue, a
# backfill, `dagster asset materialize` or execute_in_process started its run. One step at a time
# talks to Wiz, so together they stay within WIZ_MAX_REQUESTS_PER_SECOND. The run queue launches a
# run only when the slot is free (no run buffer), so queued runs wait in the queue, where the
# 4-hour limit below doesn't count, rather than started and blocked.
concurrency:
  pools:
    granularity: op
    default_limit: 1
    op_granularity_run_buffer: 0
# The run queue is checked every second (Dagster's default is 5 s): with runs one at a time, each
# run would otherwise wait up to 5 s for its turn after the previous one ended (a year's backfill
# is dozens of runs, the schedule's catch-up after an outage up to 200).
run_queue:
  dequeue_interval_seconds: 1
# A run that never starts, or goes on for more than 4 hours (a hung request, or a worker that died:
# the default run launcher can't tell a dead worker from a busy one), is marked failed instead of
# holding its windows for ever; a minute after a run ends, a slot it still holds (its worker was
# killed) is freed.
run_monitoring:
  enabled: true
  start_timeout_seconds: 300
  max_runtime_seconds: 14400
  max_resume_run_attempts: 0
  poll_interval_seconds: 60
  free_slots_after_run_end_seconds: 60
telemetry:
  enabled: false
# The \"Join the Dagster community\" pop-up would cover the first page a user sees.
nux:
  enabled: false
"""
MARKER = ".wiz-pipeline-demo"
# An issue being worked on is still open: only RESOLVED and REJECTED close it.
OPEN_STATUSES = ("OPEN", "IN_PROGRESS")


def prepare_home(home: Path) -> None:
    """A DAGSTER_HOME with the instance settings above and the wiz_api pool's limit in place."""
    home.mkdir(parents=True, exist_ok=True)
    # Dagster creates its storage under the umask; its events name windows, runs and log lines of
    # security data, so the home itself is closed to other users (0750 hides everything below).
    home.chmod(0o750)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(INSTANCE_YAML)
        config.chmod(0o640)
    # Same as `dagster instance concurrency set wiz_api 1`. The budget doesn't need it (a step's claim
    # creates the pool with the default limit), but without it Dagster 1.13's run queue creates the
    # limit only after its first pass, which launches every queued run to wait for the slot in its run.
    with patched_environ({"DAGSTER_HOME": str(home)}), dg.DagsterInstance.get() as instance:
        if POOL not in instance.event_log_storage.get_concurrency_keys():
            instance.event_log_storage.set_concurrency_slots(POOL, 1)


SEEDS = tuple(dt.checkpoint_variable for dt in DATA_TYPES.values())
# The demo shows every data type, those off by default included: the simulator needs no permission.
DEMO_ENABLED = tuple(dt.enabled_by for dt in DATA_TYPES.values() if dt.enabled_by)


def simulator_env(sim: WizSimulator, seed: datetime, output: Path, home: Path) -> dict[str, str]:
    return {
        "WIZ_API_URL": sim.graphql_url,
        "WIZ_TOKEN_URL": sim.token_url,
        "WIZ_CLIENT_ID": sim.client_id,
        "WIZ_CLIENT_SECRET": sim.client_secret,
        **dict.fromkeys(SEEDS, format_time(seed)),
        "WIZ_OUTPUT_URI": str(output),
        "DAGSTER_HOME": str(home),
    }


# The variables the demo and the sandbox set to the simulator, whatever the environment says.
SIMULATOR_VARIABLES = (
    "WIZ_API_URL",
    "WIZ_TOKEN_URL",
    "WIZ_CLIENT_ID",
    "WIZ_CLIENT_SECRET",
    *SEEDS,
    "WIZ_OUTPUT_URI",
)


def ignored_variables_notice(command: str, environ: Mapping[str, str] | None = None) -> str | None:
    """One line when the environment sets what the demo or sandbox replaces (a user pointing
    ``scripts/demo`` at a real tenant): said, not refused, since the demo exists to need no tenant."""
    environ = os.environ if environ is None else environ
    names = [name for name in SIMULATOR_VARIABLES if environ.get(name)]
    if not names:
        return None
    return (
        f"{command}: ignoring {', '.join(names)} from the environment: it always uses its own simulator "
        '(to collect from a Wiz tenant, see README, "Running it against a Wiz tenant").'
    )


@contextmanager
def patched_environ(values: Mapping[str, str]) -> Iterator[None]:
    """Dagster reads the credentials (EnvVar) from the process environment when a run starts."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_demo(sim: WizSimulator, directory: Path, days: float, *, iceberg: bool = False) -> int:
    """Collect every closed window since a seed ``days`` back, as the schedule would, and report."""
    notice = ignored_variables_notice("wiz-pipeline demo")
    if notice:
        print(notice, file=sys.stderr)
    directory = directory.absolute()
    if directory.exists() and any(directory.iterdir()) and not (directory / MARKER).exists():
        print(f"{directory} exists and was not made by the demo; pass another --dir.", file=sys.stderr)
        return 2
    for sub in ("dagster_home", "data"):
        shutil.rmtree(directory / sub, ignore_errors=True)  # each demo starts from nothing
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o750)
    (directory / MARKER).touch()
    home, output = directory / "dagster_home", directory / "data"
    prepare_home(home)
    now = datetime.now(UTC).replace(microsecond=0)
    # Deliberately not on a window boundary: the first window runs from the seed to the next one.
    seed = now - timedelta(days=days) + timedelta(seconds=9)
    # Every data type, and their OCSF views (docs/ocsf.md), in the same runs; with --iceberg each
    # dataset also an Iceberg table in the default SQLite catalog (docs/iceberg.md).
    env = {
        **simulator_env(sim, seed, output, home),
        **dict.fromkeys(DEMO_ENABLED, "true"),
        "WIZ_OCSF": "true",
        "WIZ_ICEBERG": "true" if iceberg else "false",
        # Never a catalog of the environment's: the demo's tables go to its own SQLite catalog.
        **{name: "" for name in os.environ if name.startswith("WIZ_ICEBERG_CATALOG_")},
    }
    started = time.monotonic()
    with patched_environ(env):
        # Imported here: importing the module builds `defs` from the environment, and the demo's
        # settings must be in place first.
        from wiz_pipeline.orchestration import build_definitions

        defs = build_definitions()
        settings = load_settings()
        instance = dg.DagsterInstance.get()
        print(f"Simulated Wiz tenant at {sim.graphql_url}; Dagster instance in {home}")
        print(
            f"Seeds {format_time(seed)}; {settings.poll_interval_seconds // 60}-minute windows; "
            f"{settings.max_requests_per_second:g} requests/s.\n"
        )
        for collection in collections_for(settings):
            schedule = defs.resolve_schedule_def(collection.schedule_name)
            job = defs.resolve_job_def(collection.job_name)
            tick = schedule.evaluate_tick(
                dg.build_schedule_context(
                    instance=instance, scheduled_execution_time=now, repository_def=defs.get_repository_def()
                )
            )
            for request in tick.run_requests or []:
                tags = dict(request.tags)
                first = tags.get("dagster/asset_partition_range_start", request.partition_key)
                last = tags.get("dagster/asset_partition_range_end", request.partition_key)
                result, windows, rows, status = _execute(
                    job, instance, partition_key=request.partition_key, tags=tags
                )
                print(
                    f"{collection.data_type:<22} run {result.run_id[:8]} {first} .. {last}: {windows} "
                    f"windows, {rows} rows, {status}"
                )
        for name, job_name in CURRENT_JOBS.items():
            if settings.enabled[name]:
                _build_current(defs, instance, name, job_name)
        print()
        for collection in collections_for(settings):
            state = progress(instance, collection, now, timedelta(seconds=settings.window_lag_seconds))
            path = output / collection.data_type
            files = sorted(path.rglob("*.parquet"))
            rows = ds.dataset(path, partitioning="hive").count_rows() if files else 0
            print(
                f"{collection.checkpoint_name}={format_time(state.checkpoint)}  "
                f"{collection.data_type}: {state.materialized}/{state.closed_windows} windows, "
                f"{len(files)} files, {rows} rows under {path}"
            )
        if iceberg:
            _report_iceberg(settings)
        _report_ocsf(output, settings.ocsf_output_uri)
        _report(output)
    print(
        f"\nDone in {time.monotonic() - started:.1f} s. Simulator: {sim.counters.graphql_requests} GraphQL "
        f"requests, {sim.counters.tokens_issued} token(s), {sim.counters.rate_limited} rate-limited."
    )
    print("Browse the same pipeline in the Dagster UI: scripts/dev  (then http://127.0.0.1:3000)")
    return 0


def _build_current(defs: dg.Definitions, instance: dg.DagsterInstance, name: str, job_name: str) -> None:
    """The current state of every record of a data type, after its windows (as its daily schedule
    would): what wiz_pipeline.analytics reads for what is open now and the times to resolve."""
    dataset = DATA_TYPES[name].current.dataset  # type: ignore[union-attr]  (CURRENT_JOBS: those with one)
    result, _, rows, status = _execute(defs.resolve_job_def(job_name), instance)
    print(f"{dataset:<22} run {result.run_id[:8]} (the current state of each): {rows} rows, {status}")


def _execute(
    job: dg.JobDefinition, instance: dg.DagsterInstance, **kwargs: Any
) -> tuple[dg.ExecuteInProcessResult, int, int, str]:
    """Run a job in this process, quietly: its result, materializations, rows and "ok"/"FAILED"."""
    result = job.execute_in_process(
        instance=instance,
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        **kwargs,
    )
    events = result.get_asset_materialization_events()
    rows = sum(e.materialization.metadata["dagster/row_count"].value for e in events)
    return result, len(events), rows, "ok" if result.success else "FAILED"


def _report(output: Path) -> None:
    audit = ds.dataset(output / "audit_logs", partitioning="hive").to_table(columns=["action"]).to_pandas()
    print("\nTop audit actions:")
    for action, count in audit["action"].value_counts().head(5).items():
        print(f"  {count:>6}  {action}")
    if (output / "issues").exists():
        issues = ds.dataset(output / "issues", partitioning="hive").to_table(
            columns=["id", "status", "severity", "status_changed_at"]
        )
        frame = issues.to_pandas().sort_values("status_changed_at").drop_duplicates("id", keep="last")
        open_issues = frame[frame["status"].isin(OPEN_STATUSES)]["severity"].value_counts()
        print(f"Open issues by severity ({' or '.join(OPEN_STATUSES)}; latest state of each issue):")
        for severity in ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL"):
            print(f"  {int(open_issues.get(severity, 0)):>6}  {severity}")
    _report_findings(output)


def _report_iceberg(settings: Settings) -> None:
    """Each Iceberg table: its current snapshot, rows and files (what every engine reads)."""
    from wiz_pipeline.landing.iceberg import describe
    from wiz_pipeline.settings import open_tables

    tables = open_tables(settings)
    print(f"\nIceberg tables in namespace {tables.namespace} ({describe(tables.properties)}):")
    for name in tables.datasets():
        table = tables.load(name)
        snapshot = table.current_snapshot() if table is not None else None
        if table is None or snapshot is None:
            continue
        summary = snapshot.summary
        print(
            f"  {name:<31} snapshot {snapshot.snapshot_id:<20} {summary['total-records']:>7} rows in "
            f"{summary['total-data-files']:>4} files, {len(table.metadata.snapshots)} snapshot(s)"
        )


def _report_ocsf(output: Path, root: str) -> None:
    """The OCSF datasets (under ``root``) rows by class, and one question asked across the finding
    classes."""
    from wiz_pipeline.readers import analytics, ocsf_views

    con = analytics.connect(output, ocsf_views.DATASETS, ocsf_uri=root)
    views = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    counts = [
        f"{name.removeprefix('ocsf_')} {con.execute(f'SELECT count(*) FROM {name}').fetchone()[0]}"  # noqa: S608
        for name in sorted(views)
        if name != "ocsf_findings"
    ]
    print(f"OCSF 1.5.0 rows by class under {root}: {', '.join(counts) or '(none)'}")
    if "ocsf_findings" not in views:
        return
    busiest = con.execute(
        # The resource found in the most classes, then with the most findings.
        "SELECT r.uid, count(DISTINCT class_name), count(*) FROM "
        "(SELECT class_name, unnest(resources) AS r FROM ocsf_findings) "
        "WHERE r.uid IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 3 DESC, 1 LIMIT 1"
    ).fetchone()
    if busiest:
        found = analytics.findings_on_resource(busiest[0], uri=output, ocsf_uri=root)
        classes = ", ".join(f"{n} {c}" for n, c in found["class_name"].value_counts().items())
        print(f"  the resource with the most findings, across classes: {busiest[0]} ({classes})")


def _report_findings(output: Path) -> None:
    """What the findings and detections are collected for, through wiz_pipeline.analytics: each
    question reads the current tables where they were built, else each id's latest version."""
    from wiz_pipeline.readers import analytics

    views = analytics.connect(output).execute("SELECT table_name FROM information_schema.tables")
    present = {row[0] for row in views.fetchall()}
    if "vulnerability_findings" in present:
        critical = dict(uri=output, severities=["CRITICAL"], known_exploit=True, from_windows=True)
        assets = analytics.open_vulnerabilities(**critical)
        cves = {cve for listed in assets["cves"] for cve in listed}
        print(
            "Open critical vulnerabilities with a known exploit (or in CISA's KEV): "
            f"{int(assets['findings'].sum())} findings of {len(cves)} CVEs on {len(assets)} assets"
        )
        widespread = [
            f"{row.cve} ({row.assets} asset{'' if row.assets == 1 else 's'}"
            f"{', in KEV' if row.has_cisa_kev_exploit else ''})"
            for row in analytics.top_cves(**critical, top=3).itertuples()
        ]
        print(f"  most widespread: {', '.join(widespread) or '(none)'}")
        exposed = [f"{row.asset} ({row.findings})" for row in assets.head(3).itertuples()]
        print(f"  most exposed assets: {', '.join(exposed) or '(none)'}")
    if "configuration_findings" in present:
        failing = analytics.failing_controls(uri=output, from_windows=True)
        by_framework = failing.groupby("framework", sort=False)["findings"].sum().sort_values(ascending=False)
        print("Failing controls (open configuration findings with result FAIL), findings by framework:")
        for framework, findings in by_framework.head(5).items():
            print(f"  {int(findings):>6}  {framework}")
    if "detections" in present:
        detections = analytics.detections_by_day(uri=output)
        by_severity = detections.groupby("severity")["detections"].sum()
        print("Detections by severity (each detection once):")
        for severity in analytics.SEVERITIES:
            print(f"  {int(by_severity.get(severity, 0)):>6}  {severity}")
