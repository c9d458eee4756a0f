"""The first questions asked of the collected data, answered as pandas frames through DuckDB.

Each function opens the datasets under ``WIZ_OUTPUT_URI`` (or ``uri``) in an in-memory DuckDB
connection, runs one query and returns a sorted frame with readable column names. Times are
timezone-aware UTC; a range is half-open, ``[start, end)``, and either end may be left open.
``connect()`` gives the same connection for questions of your own.

Where the data comes from:

- ``audit_logs`` and ``issues`` are the window files (``{uri}/<dataset>/date=YYYY-MM-DD/*.parquet``,
  the hive ``date`` column is the window's UTC day, used to skip whole days outside a range).
  ``issues`` is a change log by ``statusChangedAt``: an issue is in the window of each status change
  the pipeline saw (a change superseded before its window was collected isn't seen).
- ``issues_current`` (``{uri}/issues_current/issues_current.parquet``) is one row per issue, its
  current state: the open-issue and time-to-resolve questions read it. Without it they raise
  ``AnalyticsError`` saying how to build it, or, with ``from_windows=True``, use each issue's latest
  version in the issue windows instead (which misses issues whose status last changed before
  ``ISSUES_SINCE_TIME`` and edits that left the status alone).
- ``vulnerability_findings``, ``configuration_findings`` and ``detections`` are state, not events: each
  change moves a record's ``updatedAt`` and the API returns only its current version, so their windows
  (by ``updatedAt``) are a change log, a record in one window per change seen, and counting their rows
  counts changes. ``<name>_latest`` is each id's latest version in the windows. The findings' current
  tables (``vulnerability_findings_current``, ``configuration_findings_current``) hold the state, and
  their questions read them, or with ``from_windows=True`` the ``_latest`` views (which also keep
  findings since deleted). Detections have no current table: their question reads ``detections_latest``.
  A type that isn't collected (they are off by default) has no view, and its questions raise
  ``AnalyticsError`` naming the setting that turns it on.

Local output is read by DuckDB itself (``read_parquet`` with ``hive_partitioning``). For
``s3://bucket/prefix`` DuckDB would need its ``httpfs`` extension, which isn't in the duckdb wheel:
DuckDB downloads it from its own extension site on first use, which fails without internet access
(and PyPI's repackagings of it are each tied to one older DuckDB release). So S3 datasets are opened
as pyarrow datasets over s3fs, the filesystem the pipeline writes with, configured by the same
``AWS_*`` variables (endpoint, region, keys or a role), and registered in DuckDB, which pushes
column selection and filters into their scan.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from wiz_pipeline.core.times import parse_time
from wiz_pipeline.data_types import DATA_TYPES
from wiz_pipeline.data_types.issues import CURRENT_DATASET as CURRENT
from wiz_pipeline.landing.files import window_file
from wiz_pipeline.landing.iceberg import DEFAULT_NAMESPACE, Tables, catalog_properties
from wiz_pipeline.landing.outputs import DEFAULT_OUTPUT_URI, open_output, parse_output_uri
from wiz_pipeline.readers import iceberg_views, ocsf_views

__all__ = [
    "AnalyticsError",
    "api_calls_by_service_account",
    "audit_activity",
    "connect",
    "detections_by_day",
    "failed_logins",
    "failing_controls",
    "findings_on_resource",
    "mean_time_to_remediate",
    "mean_time_to_resolve",
    "open_issues",
    "open_vulnerabilities",
    "status_changes",
    "top_cves",
]

WINDOW_DATASETS = tuple(DATA_TYPES)
CURRENT_DATASETS = tuple(dt.current.dataset for dt in DATA_TYPES.values() if dt.current)
DATASETS = (*WINDOW_DATASETS, *CURRENT_DATASETS, *ocsf_views.DATASETS)
# A view per change log of state (findings, detections): each id's latest version in its windows.
LATEST = {
    name: f"{name}_latest" for name in ("vulnerability_findings", "configuration_findings", "detections")
}
OPEN_STATUSES = ("OPEN", "IN_PROGRESS")
SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL")  # most severe first
# Vulnerability and configuration findings say NONE where issues and detections say INFORMATIONAL.
RANKED_SEVERITIES = (*SEVERITIES, "NONE")


class AnalyticsError(Exception):
    """A dataset the question needs isn't there, or an argument is unusable."""


def output_uri(uri: str | Path | None = None) -> str:
    """``uri``, or ``WIZ_OUTPUT_URI`` (default ``data``), normalised as the pipeline does."""
    if uri is None:
        return parse_output_uri("WIZ_OUTPUT_URI", os.environ.get("WIZ_OUTPUT_URI") or DEFAULT_OUTPUT_URI)
    return parse_output_uri("uri", str(uri))


def connect(
    uri: str | Path | None = None,
    datasets: Sequence[str] = DATASETS,
    *,
    ocsf_uri: str | Path | None = None,
    iceberg: bool | None = None,
    tables: Tables | None = None,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with a view per dataset found under ``uri`` (default
    ``WIZ_OUTPUT_URI``), or only ``datasets``: one per data type's windows (``audit_logs``,
    ``issues``, ``vulnerability_findings``, ``configuration_findings``, ``detections``, with the hive
    ``date`` column), one per current table (``issues_current``, ``vulnerability_findings_current``,
    ``configuration_findings_current``), and ``<name>_latest`` for the findings and detections: each
    id's latest version in its windows; WIZ_OCSF's datasets (under ``ocsf_uri``, default WIZ_OCSF_URI or
    ``{uri}/ocsf``): ``ocsf_authentication``, ``ocsf_api_activity``, ``ocsf_detection_finding``,
    ``ocsf_vulnerability_finding``, ``ocsf_compliance_finding``, and ``ocsf_findings``, the three
    finding classes in one shape. A dataset with no file yet (a type not
    collected) has no view. The session's time zone is UTC.

    ``iceberg`` (default: WIZ_ICEBERG): each view is its Iceberg table's current snapshot instead of
    the files under ``uri`` (``iceberg_views``; the catalog from WIZ_ICEBERG_CATALOG_* and
    WIZ_ICEBERG_NAMESPACE, or ``tables``)."""
    root = output_uri(uri)
    if tables is None and (_iceberg_from_env() if iceberg is None else iceberg):
        namespace = os.environ.get("WIZ_ICEBERG_NAMESPACE") or DEFAULT_NAMESPACE
        tables = Tables(catalog_properties(os.environ, root), namespace)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # A query larger than memory spills to temp_directory, by default `.tmp` in the working directory,
    # created under the umask: rows of security data would land where others may read them.
    con.execute(f"SET temp_directory = {_quote(_spill_directory())}")
    if tables is not None:
        native = [d for d in datasets if d in WINDOW_DATASETS or d in CURRENT_DATASETS]
        iceberg_views.register(con, tables, native)
    elif root.startswith("s3://"):
        _register_s3(con, root, datasets)
    else:
        _register_local(con, Path(root), datasets)
    present = _views(con)
    for name, latest in LATEST.items():
        if name in present:
            # A window is cut by updated_at, so two versions of an id never share one.
            con.execute(
                f"CREATE VIEW {latest} AS SELECT * FROM {name} "
                "QUALIFY row_number() OVER (PARTITION BY id ORDER BY updated_at DESC NULLS LAST, "
                "date DESC) = 1"
            )
    wanted = [d for d in datasets if d in ocsf_views.DATASETS]
    if wanted and tables is not None:
        ocsf_views.add_findings(con, iceberg_views.register(con, tables, wanted))
    elif wanted:  # each question names its datasets: those of no OCSF class look for no OCSF file
        ocsf_views.register(con, ocsf_views.ocsf_uri(root, ocsf_uri), wanted)
    return con


def _iceberg_from_env() -> bool:
    return os.environ.get("WIZ_ICEBERG", "").strip().lower() in ("1", "true", "yes", "on")


@functools.cache
def _spill_directory() -> str:
    path = tempfile.mkdtemp(prefix="wiz-analytics-")  # 0700, whatever the umask
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def _quote(path: str) -> str:
    return "'" + path.replace("'", "''") + "'"


def _register_local(con: duckdb.DuckDBPyConnection, root: Path, datasets: Sequence[str]) -> None:
    for name in WINDOW_DATASETS:
        if name not in datasets or next((root / name).glob("date=*/*.parquet"), None) is None:
            continue
        # union_by_name: files written by a later release with more columns read alongside older ones.
        files = _quote(str(root / name / "date=*/*.parquet"))
        con.execute(
            f"CREATE VIEW {name} AS SELECT * FROM read_parquet({files}, hive_partitioning = true, "
            "hive_types = {'date': 'DATE'}, union_by_name = true)"
        )
    for name in CURRENT_DATASETS:
        # The file the dataset's manifest names (with WIZ_ICEBERG its name carries a write id).
        current = root / window_file(open_output(str(root)), f"{name}/{name}.parquet")
        if name in datasets and current.is_file():
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet({_quote(str(current))})")


def _register_s3(con: duckdb.DuckDBPyConnection, root: str, datasets: Sequence[str]) -> None:
    import pyarrow as pa
    import pyarrow.dataset as ds
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    from wiz_pipeline.landing.outputs import S3Output

    fs = PyFileSystem(FSSpecHandler(S3Output(root).fs))
    base = root.removeprefix("s3://")
    hive = ds.partitioning(pa.schema([("date", pa.date32())]), flavor="hive")
    for name in (n for n in WINDOW_DATASETS if n in datasets):
        # Manifests (_*.json) are skipped by pyarrow's default ignore_prefixes, like hidden files.
        try:
            dataset = ds.dataset(f"{base}/{name}", filesystem=fs, format="parquet", partitioning=hive)
        except FileNotFoundError:
            continue
        if dataset.files:
            con.register(name, dataset)
    output = S3Output(root)
    for name in (n for n in CURRENT_DATASETS if n in datasets):
        key = window_file(output, f"{name}/{name}.parquet")  # as the manifest names it
        try:
            current = ds.dataset(f"{base}/{key}", filesystem=fs, format="parquet")
        except FileNotFoundError:
            continue
        con.register(name, current)


def _views(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}


def _require(con: duckdb.DuckDBPyConnection, name: str, root: str) -> None:
    if name not in _views(con):
        data_type = DATA_TYPES.get(name)
        turn_on = ""
        if data_type is not None and data_type.enabled_by and not data_type.enabled_by_default:
            turn_on = f"; it is off unless {data_type.enabled_by}=true, and needs {data_type.permission}"
        raise AnalyticsError(
            f"No {name} data under {root}/{name}: collect it first (scripts/demo, or the pipeline's "
            f"collect_{name} job{turn_on}), or point uri / WIZ_OUTPUT_URI at the pipeline's output."
        )


def _time(name: str, value: datetime | str | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        parsed = value
    else:
        parsed = parse_time(value)
        if parsed is None:
            raise AnalyticsError(f"{name}={value!r} is not an ISO 8601 time (2025-09-12T21:00:00Z).")
    if parsed is not None and parsed.tzinfo is None:
        raise AnalyticsError(f"{name}={parsed!r} has no time zone: pass a timezone-aware UTC datetime.")
    return parsed


def _range(
    column: str, start: datetime | str | None, end: datetime | str | None, *, by_date: bool
) -> tuple[str, dict[str, Any]]:
    """A WHERE clause for ``start <= column < end`` and its parameters; with ``by_date``, also on the
    hive ``date`` column (a window's UTC day is its records' day), so that DuckDB skips whole days."""
    start, end = _time("start", start), _time("end", end)
    if start is not None and end is not None and not start < end:
        raise AnalyticsError(f"start {start.isoformat()} is not before end {end.isoformat()}.")
    terms, params = ["TRUE"], {}
    if start is not None:
        terms.append(f"{column} >= $start")
        params["start"] = start
        if by_date:
            terms.append("date >= CAST(timezone('UTC', $start) AS DATE)")
    if end is not None:
        terms.append(f"{column} < $end")
        params["end"] = end
        if by_date:
            terms.append("date <= CAST(timezone('UTC', $end) AS DATE)")
    return " AND ".join(terms), params


def _limit(top: int | None) -> str:
    if top is None:
        return ""
    if not isinstance(top, int) or top < 1:
        raise AnalyticsError(f"top={top!r}: pass a positive whole number, or None for every row.")
    return f"LIMIT {top}"


def _frame(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> pd.DataFrame:
    with con:
        return con.execute(sql, params).df()


def audit_activity(
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    *,
    uri: str | Path | None = None,
    top: int | None = None,
) -> pd.DataFrame:
    """Who did what from which IP, day by day: audit entries counted by UTC day, user, service
    account, action and source IP (``failed``: how many of them failed), with the first and last
    time seen. Sorted by day, then busiest first; ``top`` keeps each day's ``top`` busiest rows.
    An entry made by a user through a service account's token has both; one made by Wiz itself
    neither. Columns: day, user, service_account, action, source_ip, entries, failed, first_at,
    last_at."""
    root = output_uri(uri)
    where, params = _range("timestamp", start, end, by_date=True)
    # Every grouped column in the order, nulls placed explicitly: ties of `entries` are broken the
    # same way by every reader (a QUALIFY over the aggregate ranked ties differently from one scan
    # of the same files to the next).
    order = (
        "entries DESC, user NULLS LAST, service_account NULLS LAST, action NULLS LAST, source_ip NULLS LAST"
    )
    keep = f"WHERE rank <= {top}" if _limit(top) else ""  # _limit checks top
    sql = f"""
        WITH counted AS (
            SELECT CAST(timestamp AS DATE) AS day, user_name AS user,
                   service_account_name AS service_account, action, source_ip, count(*) AS entries,
                   count(*) FILTER (status = 'FAILED') AS failed, min(timestamp) AS first_at,
                   max(timestamp) AS last_at
            FROM audit_logs WHERE {where}
            GROUP BY 1, 2, 3, 4, 5
        ), ranked AS (
            SELECT *, row_number() OVER (PARTITION BY day ORDER BY {order}) AS rank FROM counted
        )
        SELECT * EXCLUDE (rank) FROM ranked {keep}
        ORDER BY day, {order}
    """
    con = connect(root, ["audit_logs"])
    _require(con, "audit_logs", root)
    return _frame(con, sql, params)


# Wiz names a login `Login` (some entries pad it: ` user Login`); `Logout` and longer names don't match.
LOGIN_ACTION = r"(?i)\blogin\b"


def failed_logins(
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    *,
    uri: str | Path | None = None,
    top: int | None = None,
) -> pd.DataFrame:
    """Who failed to log in, from where, and how often: audit entries whose action is a login and
    whose status is FAILED, counted by user and source IP. Most failures first (``top`` keeps that
    many rows). Columns: user, user_id, source_ip, failures, first_at, last_at, user_agents (the
    distinct user agents, sorted)."""
    root = output_uri(uri)
    where, params = _range("timestamp", start, end, by_date=True)
    sql = f"""
        SELECT user_name AS user, user_id, source_ip, count(*) AS failures,
               min(timestamp) AS first_at, max(timestamp) AS last_at,
               list_sort(list_distinct(list(user_agent))) AS user_agents
        FROM audit_logs
        WHERE {where} AND status = 'FAILED' AND regexp_matches(action, '{LOGIN_ACTION}')
        GROUP BY ALL
        ORDER BY failures DESC, last_at DESC, user, user_id, source_ip
        {_limit(top)}
    """
    con = connect(root, ["audit_logs"])
    _require(con, "audit_logs", root)
    return _frame(con, sql, params)


def api_calls_by_service_account(
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    *,
    uri: str | Path | None = None,
    top: int | None = None,
) -> pd.DataFrame:
    """Which service accounts call the API, how much, and from where: audit entries made with a
    service account's credentials, by account. Busiest first (``top`` keeps that many). Columns:
    service_account, service_account_id, calls, failed, actions (distinct), source_ips (distinct),
    top_action (its most frequent), first_at, last_at."""
    root = output_uri(uri)
    where, params = _range("timestamp", start, end, by_date=True)
    sql = f"""
        WITH calls AS (
            SELECT *, count(*) OVER (PARTITION BY service_account_id, service_account_name, action) AS n
            FROM audit_logs
            WHERE {where} AND service_account_id IS NOT NULL
        )
        SELECT service_account_name AS service_account, service_account_id, count(*) AS calls,
               count(*) FILTER (status = 'FAILED') AS failed, count(DISTINCT action) AS actions,
               count(DISTINCT source_ip) AS source_ips, first(action ORDER BY n DESC, action) AS top_action,
               min(timestamp) AS first_at, max(timestamp) AS last_at
        FROM calls
        GROUP BY ALL
        ORDER BY calls DESC, service_account, service_account_id
        {_limit(top)}
    """
    con = connect(root, ["audit_logs"])
    _require(con, "audit_logs", root)
    return _frame(con, sql, params)


def _current(con: duckdb.DuckDBPyConnection, root: str, from_windows: bool, name: str = "issues") -> str:
    """The relation holding the current state of each record of data type ``name``."""
    current = DATA_TYPES[name].current
    assert current is not None, name  # only data types with a current table get here
    if current.dataset in _views(con):
        return current.dataset
    if not from_windows:
        what = f"each {current.noun.removesuffix('s')}'s latest version in the {name} windows"
        raise AnalyticsError(
            f"No {current.dataset} under {root}/{current.dataset}: materialize the wiz/{current.dataset} "
            f"asset (job collect_{current.dataset}), or pass from_windows=True to use {what} "
            f"({current.noun} whose last change came before {DATA_TYPES[name].checkpoint_variable} "
            "are missed)."
        )
    _require(con, name, root)
    if name in LATEST:
        return LATEST[name]
    return """(
        SELECT * FROM issues QUALIFY row_number() OVER (
            PARTITION BY id ORDER BY status_changed_at DESC NULLS LAST, updated_at DESC NULLS LAST) = 1
    )"""


def _severity_order(column: str = "severity") -> str:
    """An ORDER BY term putting the most severe first, unknown severities last."""
    ranks = ", ".join(f"'{s}': {i}" for i, s in enumerate(RANKED_SEVERITIES))
    return f"coalesce(MAP {{{ranks}}}[{column}], {len(RANKED_SEVERITIES)})"


def _severities(severities: Sequence[str], known: Sequence[str] = SEVERITIES) -> list[str]:
    if isinstance(severities, str):
        severities = [severities]
    chosen = [s.upper() for s in severities]
    unknown = [s for s in chosen if s not in known]
    if unknown or not chosen:
        raise AnalyticsError(f"severities={list(severities)!r}: choose among {', '.join(known)}.")
    return sorted(set(chosen), key=list(known).index)


def open_issues(
    *,
    uri: str | Path | None = None,
    severities: Sequence[str] = ("CRITICAL", "HIGH"),
    top: int | None = None,
    from_windows: bool = False,
) -> pd.DataFrame:
    """Where the open critical and high issues are: issues now OPEN or IN_PROGRESS, of the given
    ``severities``, counted by cloud (the affected resource's platform) and project. An issue in two
    projects counts in each; ``(none)`` stands for no resource or no project. One column per
    severity (lower case), then ``open``, ``in_progress`` and ``total``; sorted from the most severe
    counts down (``top`` keeps that many rows). From ``issues_current`` (see the module's notes on
    ``from_windows``)."""
    root = output_uri(uri)
    chosen = _severities(severities)
    con = connect(root, [CURRENT, "issues"] if from_windows else [CURRENT])
    current = _current(con, root, from_windows)
    counts = ", ".join(f"count(*) FILTER (severity = '{s}') AS {s.lower()}" for s in chosen)
    order = ", ".join(f"{s.lower()} DESC" for s in chosen)
    sql = f"""
        WITH chosen AS (
            SELECT status, severity, coalesce(entity_cloud_platform, '(none)') AS cloud,
                   from_json(projects, '["json"]') AS project_list
            FROM {current}
            WHERE status IN {OPEN_STATUSES} AND severity IN (SELECT unnest($severities))
        )
        SELECT cloud, coalesce(project, '(none)') AS project, {counts},
               count(*) FILTER (status = 'OPEN') AS open,
               count(*) FILTER (status = 'IN_PROGRESS') AS in_progress, count(*) AS total
        FROM (
            SELECT status, severity, cloud, project ->> 'name' AS project
            FROM chosen, unnest(CASE WHEN len(coalesce(project_list, [])) = 0 THEN [NULL::JSON]
                                     ELSE project_list END) AS t(project)
        )
        GROUP BY ALL
        ORDER BY {order}, total DESC, cloud, project
        {_limit(top)}
    """
    return _frame(con, sql, {"severities": chosen})


def mean_time_to_resolve(
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    *,
    uri: str | Path | None = None,
    from_windows: bool = False,
) -> pd.DataFrame:
    """How long issues take to resolve, by severity: issues now RESOLVED whose ``resolved_at`` is in
    the range, from creation to resolution (REJECTED issues don't count; neither do reopened ones,
    which are no longer resolved). Most severe first. Columns: severity, resolved, mean_hours,
    median_hours, max_hours. From ``issues_current`` (see the module's notes on ``from_windows``)."""
    root = output_uri(uri)
    where, params = _range("resolved_at", start, end, by_date=False)
    con = connect(root, [CURRENT, "issues"] if from_windows else [CURRENT])
    current = _current(con, root, from_windows)
    ranks = ", ".join(f"'{s}': {i}" for i, s in enumerate(SEVERITIES))
    sql = f"""
        SELECT severity, count(*) AS resolved,
               avg(hours) AS mean_hours, median(hours) AS median_hours, max(hours) AS max_hours
        FROM (
            SELECT severity, epoch(resolved_at - created_at) / 3600 AS hours
            FROM {current}
            WHERE status = 'RESOLVED' AND resolved_at IS NOT NULL AND created_at IS NOT NULL AND {where}
        )
        GROUP BY severity
        ORDER BY coalesce(MAP {{{ranks}}}[severity], {len(SEVERITIES)}), severity
    """
    return _frame(con, sql, params)


def status_changes(
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    *,
    uri: str | Path | None = None,
    statuses: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Which issues changed status in the range, and from what: the issue windows' versions whose
    ``status_changed_at`` is in ``[start, end)`` (only ``statuses``, e.g. ``["RESOLVED"]``, if
    given), oldest first. ``previous_status`` is the status of the issue's version before it in the
    windows, which hold the changes the pipeline saw (a change superseded before its window was
    collected is in none): empty for a new issue, or one whose earlier changes weren't collected
    (before ``ISSUES_SINCE_TIME``). Columns: status_changed_at, id, previous_status, status,
    severity, type, rule, resource, cloud, created_at."""
    root = output_uri(uri)
    where, params = _range("status_changed_at", start, end, by_date=False)
    if statuses is not None:
        params["statuses"] = [s.upper() for s in ([statuses] if isinstance(statuses, str) else statuses)]
        where += " AND status IN (SELECT unnest($statuses))"
    con = connect(root, ["issues"])
    _require(con, "issues", root)
    # The previous status needs the versions before the range too, so the range applies after lag().
    sql = f"""
        SELECT status_changed_at, id, previous_status, status, severity, type,
               source_rule_name AS rule, entity_name AS resource, entity_cloud_platform AS cloud, created_at
        FROM (
            SELECT *, lag(status) OVER (PARTITION BY id ORDER BY status_changed_at) AS previous_status
            FROM issues WHERE status_changed_at IS NOT NULL
        )
        WHERE {where}
        ORDER BY status_changed_at, id
    """
    return _frame(con, sql, params)


VULNERABILITIES = "vulnerability_findings"
CONFIGURATION = "configuration_findings"
DETECTIONS = "detections"


def _known_exploit(known_exploit: bool) -> str:
    return "AND (has_exploit OR has_cisa_kev_exploit)" if known_exploit else ""


def open_vulnerabilities(
    *,
    uri: str | Path | None = None,
    severities: Sequence[str] = ("CRITICAL", "HIGH"),
    known_exploit: bool = False,
    top: int | None = None,
    from_windows: bool = False,
) -> pd.DataFrame:
    """Which assets carry the open vulnerabilities: vulnerability findings now OPEN or IN_PROGRESS,
    of the given CVSS ``severities`` (``NONE`` too), by asset and its cloud account. One column per
    severity (lower case), then ``with_exploit`` (a known exploit), ``in_kev`` (in CISA's Known
    Exploited Vulnerabilities), ``fixable`` (a fixed version exists), ``findings`` and ``cves``
    (the distinct CVE or advisory ids, sorted). ``known_exploit=True`` keeps only findings with an
    exploit or in KEV. Sorted from the most severe counts down (``top`` keeps that many rows). Columns:
    asset_id, asset, asset_type, cloud, subscription_external_id, subscription, then the counts and
    cves. From ``vulnerability_findings_current`` (``from_windows=True``: each finding's latest version
    in the windows, as for issues)."""
    root = output_uri(uri)
    chosen = _severities(severities, RANKED_SEVERITIES)
    con = connect(root, [f"{VULNERABILITIES}_current", VULNERABILITIES])
    current = _current(con, root, from_windows, VULNERABILITIES)
    counts = ", ".join(f"count(*) FILTER (severity = '{s}') AS {s.lower()}" for s in chosen)
    order = ", ".join(f"{s.lower()} DESC" for s in chosen)
    sql = f"""
        SELECT asset_id, asset_name AS asset, asset_type, asset_cloud_platform AS cloud,
               subscription_external_id, subscription_name AS subscription, {counts},
               count(*) FILTER (has_exploit) AS with_exploit,
               count(*) FILTER (has_cisa_kev_exploit) AS in_kev,
               count(*) FILTER (fixed_version IS NOT NULL) AS fixable, count(*) AS findings,
               list_sort(list_distinct(list(name))) AS cves
        FROM {current}
        WHERE status IN {OPEN_STATUSES} AND severity IN (SELECT unnest($severities))
              {_known_exploit(known_exploit)}
        GROUP BY ALL
        ORDER BY {order}, in_kev DESC, with_exploit DESC, findings DESC, asset, asset_id
        {_limit(top)}
    """
    return _frame(con, sql, {"severities": chosen})


def top_cves(
    *,
    uri: str | Path | None = None,
    severities: Sequence[str] | None = None,
    known_exploit: bool = False,
    top: int | None = 10,
    from_windows: bool = False,
) -> pd.DataFrame:
    """The CVEs (or advisories) affecting the most assets: open vulnerability findings (OPEN or
    IN_PROGRESS) by ``name``, of ``severities`` if given (``known_exploit=True``: with an exploit or in
    KEV only), with the distinct assets and cloud accounts they are on. Most assets first, then the
    most severe; ``top`` rows (default 10; None for all). Columns: cve, severity (the most severe seen),
    assets, findings, accounts, has_exploit, has_cisa_kev_exploit (either on any of its findings),
    fixable (findings with a fixed version), first_detected_at. From ``vulnerability_findings_current``
    (see ``open_vulnerabilities`` for ``from_windows``)."""
    root = output_uri(uri)
    chosen = list(RANKED_SEVERITIES) if severities is None else _severities(severities, RANKED_SEVERITIES)
    con = connect(root, [f"{VULNERABILITIES}_current", VULNERABILITIES])
    current = _current(con, root, from_windows, VULNERABILITIES)
    sql = f"""
        SELECT * FROM (
        SELECT name AS cve, arg_min(severity, {_severity_order()}) AS severity,
               count(DISTINCT asset_id) AS assets, count(*) AS findings,
               count(DISTINCT subscription_external_id) AS accounts,
               coalesce(bool_or(has_exploit), false) AS has_exploit,
               coalesce(bool_or(has_cisa_kev_exploit), false) AS has_cisa_kev_exploit,
               count(*) FILTER (fixed_version IS NOT NULL) AS fixable,
               min(first_detected_at) AS first_detected_at
        FROM {current}
        WHERE status IN {OPEN_STATUSES} AND severity IN (SELECT unnest($severities))
              {_known_exploit(known_exploit)}
        GROUP BY name
        )
        ORDER BY assets DESC, {_severity_order()}, findings DESC, cve
        {_limit(top)}
    """
    return _frame(con, sql, {"severities": chosen})


def mean_time_to_remediate(
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    *,
    uri: str | Path | None = None,
    from_windows: bool = False,
) -> pd.DataFrame:
    """How long vulnerabilities take to fix, by CVSS severity: vulnerability findings now RESOLVED
    whose ``resolved_at`` is in the range, from ``first_detected_at`` to ``resolved_at`` (REJECTED
    findings, accepted rather than fixed, don't count). Most severe first. Columns: severity,
    resolved, mean_days, median_days, max_days. From ``vulnerability_findings_current`` (see
    ``open_vulnerabilities`` for ``from_windows``)."""
    root = output_uri(uri)
    where, params = _range("resolved_at", start, end, by_date=False)
    con = connect(root, [f"{VULNERABILITIES}_current", VULNERABILITIES])
    current = _current(con, root, from_windows, VULNERABILITIES)
    sql = f"""
        SELECT severity, count(*) AS resolved,
               avg(days) AS mean_days, median(days) AS median_days, max(days) AS max_days
        FROM (
            SELECT severity, epoch(resolved_at - first_detected_at) / 86400 AS days
            FROM {current}
            WHERE status = 'RESOLVED' AND resolved_at IS NOT NULL AND first_detected_at IS NOT NULL
                  AND {where}
        )
        GROUP BY severity
        ORDER BY {_severity_order()}, severity
    """
    return _frame(con, sql, params)


# The shape of `security_sub_categories`, for from_json: the controls of frameworks a rule maps to.
SUB_CATEGORIES = (
    '[{"id": "VARCHAR", "title": "VARCHAR", "category": {"id": "VARCHAR", "name": "VARCHAR", '
    '"framework": {"id": "VARCHAR", "name": "VARCHAR"}}}]'
)


def failing_controls(
    *,
    uri: str | Path | None = None,
    frameworks: Sequence[str] | None = None,
    top: int | None = None,
    from_windows: bool = False,
) -> pd.DataFrame:
    """Which compliance controls fail, by framework and cloud account: configuration findings whose
    result is FAIL and whose status is OPEN or IN_PROGRESS (resolved and rejected ones no longer count),
    unnested over the framework sub-categories (controls) their rule maps to; a finding mapped to
    none counts under framework ``(none)``. Only ``frameworks`` (names) if given. Most failing
    findings first (``top`` keeps that many rows). Columns: framework, subscription_external_id,
    subscription, controls (distinct sub-categories failing), findings (distinct), resources,
    rules, critical, high (findings of that severity). From ``configuration_findings_current``
    (``from_windows=True``: each finding's latest version in the windows)."""
    root = output_uri(uri)
    con = connect(root, [f"{CONFIGURATION}_current", CONFIGURATION])
    current = _current(con, root, from_windows, CONFIGURATION)
    params: dict[str, Any] = {}
    chosen = ""
    if frameworks is not None:
        params["frameworks"] = [frameworks] if isinstance(frameworks, str) else list(frameworks)
        chosen = "WHERE framework IN (SELECT unnest($frameworks))"
    sql = f"""
        WITH failing AS (
            SELECT id, severity, resource_id, rule_id, subscription_external_id, subscription_name,
                   from_json(security_sub_categories, '{SUB_CATEGORIES}') AS controls
            FROM {current}
            WHERE result = 'FAIL' AND status IN {OPEN_STATUSES}
        ), by_control AS (
            SELECT *, coalesce(control.category.framework.name, '(none)') AS framework,
                   control.id AS control_id
            FROM failing, unnest(CASE WHEN len(coalesce(controls, [])) = 0 THEN [NULL]
                                      ELSE controls END) AS t(control)
        )
        SELECT framework, subscription_external_id, subscription_name AS subscription,
               count(DISTINCT control_id) AS controls, count(DISTINCT id) AS findings,
               count(DISTINCT resource_id) AS resources, count(DISTINCT rule_id) AS rules,
               count(DISTINCT id) FILTER (severity = 'CRITICAL') AS critical,
               count(DISTINCT id) FILTER (severity = 'HIGH') AS high
        FROM by_control {chosen}
        GROUP BY ALL
        ORDER BY findings DESC, framework, subscription_external_id, subscription
        {_limit(top)}
    """
    return _frame(con, sql, params)


def detections_by_day(
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    *,
    uri: str | Path | None = None,
    severities: Sequence[str] | None = None,
) -> pd.DataFrame:
    """What Wiz Defend detected, day by day: detections by the UTC day of their ``created_at`` (in
    the range), severity and rule, each detection once in its latest version (a detection updated
    later is in several windows). Only ``severities`` if given. Sorted by day, then most severe,
    then most detections. Columns: day, severity, rule, rule_id, detections, threats (of type
    GENERATED_THREAT), resources (distinct primary resources), first_at, last_at."""
    root = output_uri(uri)
    where, params = _range("created_at", start, end, by_date=False)
    if severities is not None:
        params["severities"] = _severities(severities)
        where += " AND severity IN (SELECT unnest($severities))"
    con = connect(root, [DETECTIONS])
    _require(con, DETECTIONS, root)
    sql = f"""
        SELECT CAST(created_at AS DATE) AS day, severity, rule_name AS rule, rule_id,
               count(*) AS detections, count(*) FILTER (type = 'GENERATED_THREAT') AS threats,
               count(DISTINCT resource_id) AS resources,
               min(created_at) AS first_at, max(created_at) AS last_at
        FROM {LATEST[DETECTIONS]}
        WHERE {where}
        GROUP BY day, severity, rule, rule_id
        ORDER BY day, {_severity_order()}, detections DESC, rule, rule_id
    """
    return _frame(con, sql, params)


def findings_on_resource(
    resource: str, *, uri: str | Path | None = None, ocsf_uri: str | Path | None = None
) -> pd.DataFrame:
    """Every finding on one resource, across the OCSF finding classes (issues and detections as
    Detection Findings, vulnerability findings, configuration findings as Compliance Findings): each
    record version whose ``resources`` has ``resource`` as its ``uid`` (the cloud provider's id),
    ``uid_alt`` (Wiz's) or ``name``. Needs WIZ_OCSF. Newest first. Columns: event_time, class_name,
    source, finding_uid, title, severity, status, activity_name, uid."""
    root = output_uri(uri)
    con = connect(root, ocsf_views.FINDING_DATASETS, ocsf_uri=ocsf_uri)
    if "ocsf_findings" not in _views(con):
        raise AnalyticsError(
            f"No OCSF findings under {ocsf_views.ocsf_uri(root, ocsf_uri)}: set WIZ_OCSF=true and collect "
            "issues, detections or findings (or materialize their wiz/ocsf/<data type> assets)."
        )
    sql = """
        SELECT event_time, class_name, source, finding_uid, title, severity, status, activity_name, uid
        FROM ocsf_findings
        WHERE len(list_filter(resources, lambda r: $resource IN (r.uid, r.uid_alt, r.name))) > 0
        ORDER BY time DESC, class_name, finding_uid
    """
    return _frame(con, sql, {"resource": resource})
