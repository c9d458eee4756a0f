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
from wiz_pipeline.data_types.issues import CURRENT_DATASET as CURRENT
from wiz_pipeline.landing.outputs import DEFAULT_OUTPUT_URI, parse_output_uri

__all__ = [
    "AnalyticsError",
    "api_calls_by_service_account",
    "audit_activity",
    "connect",
    "failed_logins",
    "mean_time_to_resolve",
    "open_issues",
    "status_changes",
]

WINDOW_DATASETS = ("audit_logs", "issues")
DATASETS = (*WINDOW_DATASETS, CURRENT)
OPEN_STATUSES = ("OPEN", "IN_PROGRESS")
SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL")  # most severe first


class AnalyticsError(Exception):
    """A dataset the question needs isn't there, or an argument is unusable."""


def output_uri(uri: str | Path | None = None) -> str:
    """``uri``, or ``WIZ_OUTPUT_URI`` (default ``data``), normalised as the pipeline does."""
    if uri is None:
        return parse_output_uri("WIZ_OUTPUT_URI", os.environ.get("WIZ_OUTPUT_URI") or DEFAULT_OUTPUT_URI)
    return parse_output_uri("uri", str(uri))


def connect(uri: str | Path | None = None, datasets: Sequence[str] = DATASETS) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with a view per dataset found under ``uri`` (default
    ``WIZ_OUTPUT_URI``): ``audit_logs``, ``issues`` (with the hive ``date`` column) and
    ``issues_current``, or only ``datasets``. A dataset with no file yet has no view. The
    session's time zone is UTC."""
    root = output_uri(uri)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # A query larger than memory spills to temp_directory, by default `.tmp` in the working directory,
    # created under the umask: rows of security data would land where others may read them.
    con.execute(f"SET temp_directory = {_quote(_spill_directory())}")
    if root.startswith("s3://"):
        _register_s3(con, root, datasets)
    else:
        _register_local(con, Path(root), datasets)
    return con


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
    current = root / CURRENT / f"{CURRENT}.parquet"
    if CURRENT in datasets and current.is_file():
        con.execute(f"CREATE VIEW {CURRENT} AS SELECT * FROM read_parquet({_quote(str(current))})")


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
    if CURRENT not in datasets:
        return
    try:
        current = ds.dataset(f"{base}/{CURRENT}/{CURRENT}.parquet", filesystem=fs, format="parquet")
    except FileNotFoundError:
        return
    con.register(CURRENT, current)


def _views(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}


def _require(con: duckdb.DuckDBPyConnection, name: str, root: str) -> None:
    if name not in _views(con):
        raise AnalyticsError(
            f"No {name} data under {root}/{name}: collect it first (scripts/demo, or the pipeline's "
            f"collect_{name} job), or point uri / WIZ_OUTPUT_URI at the pipeline's output."
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
    keep = ""
    if _limit(top):  # checks top
        keep = (
            "QUALIFY row_number() OVER (PARTITION BY day ORDER BY entries DESC, user, service_account, "
            f"action, source_ip) <= {top}"
        )
    sql = f"""
        SELECT CAST(timestamp AS DATE) AS day, user_name AS user, service_account_name AS service_account,
               action, source_ip, count(*) AS entries, count(*) FILTER (status = 'FAILED') AS failed,
               min(timestamp) AS first_at, max(timestamp) AS last_at
        FROM audit_logs WHERE {where}
        GROUP BY 1, 2, 3, 4, 5 {keep}
        ORDER BY day, entries DESC, user, service_account, action, source_ip
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


def _current(con: duckdb.DuckDBPyConnection, root: str, from_windows: bool) -> str:
    """The relation holding each issue's current state."""
    if CURRENT in _views(con):
        return CURRENT
    if not from_windows:
        raise AnalyticsError(
            f"No {CURRENT} under {root}/{CURRENT}: materialize the wiz/{CURRENT} asset (job "
            f"collect_{CURRENT}), or pass from_windows=True to use each issue's latest version in "
            "the issue windows (issues whose status last changed before ISSUES_SINCE_TIME are missed)."
        )
    _require(con, "issues", root)
    return """(
        SELECT * FROM issues QUALIFY row_number() OVER (
            PARTITION BY id ORDER BY status_changed_at DESC NULLS LAST, updated_at DESC NULLS LAST) = 1
    )"""


def _severities(severities: Sequence[str]) -> list[str]:
    if isinstance(severities, str):
        severities = [severities]
    chosen = [s.upper() for s in severities]
    unknown = [s for s in chosen if s not in SEVERITIES]
    if unknown or not chosen:
        raise AnalyticsError(f"severities={list(severities)!r}: choose among {', '.join(SEVERITIES)}.")
    return sorted(set(chosen), key=SEVERITIES.index)


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
