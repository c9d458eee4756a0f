"""The current state of a data type: one Parquet file, one row per id, its latest version.

For every data type whose declaration has ``current`` (``CurrentState``): issues, vulnerability
findings, configuration findings. Each build writes ``{WIZ_OUTPUT_URI}/<dataset>/<dataset>.parquet``
(with the columns of the data type's windows), replacing the previous file whole: a new file renamed
over it locally, one completed upload on S3; a build that fails leaves the previous file as it was.

**Issues: a full read at every build.** Issue windows are a change log by ``statusChangedAt``: they
hold new issues and status changes, but not edits that leave the status alone (notes, tickets,
severity, due date), nor issues whose last status change came before the seed. So each build reads
every issue the API returns (``issuesV2`` with no filter, ordered by ``createdAt``).

**Findings: the last full read plus every window written since, latest version per id.** A big
tenant holds tens of millions of vulnerability findings, and a full read of 10 million takes some two
hours of the API's budget; but every update of a finding moves its ``updatedAt``, so its windows hold
every version since the seed. A build therefore streams the previous build's file and the finding
windows written since that build's read began (file time, less ``CLOCK_SKEW``) and keeps each id's
latest version: by ``version_columns`` (``updated_at``); on a tie the later source wins (a window
over the previous build, a later window over an earlier one). Such a build makes no API request. It
reads the API in full (``{"filterBy": <the data type's filters>}``: the status list, the chosen
results; for a data type with a result cap, in sub-queries by time each below it) only at the first
build, when the previous file or manifest can't be read, when the filters changed since, when the
last full read is older than ``WIZ_<TYPE>_FULL_READ_DAYS`` days (0: at every build), or when the run
asks (``full_read``). Only a full read sees a finding deleted (no window holds a deletion) or a
change a window missed. A configuration finding whose result left the collected ones (FAIL to PASS:
its windows ask for FAIL only) is in no window either: a build between full reads asks for those
updated since the previous build (``leavers_query``, a small read) and drops them. The
manifest records whether the build read in full, why (``full_read_reason``), when the last full read
was (``last_full_read``, carried forward by the builds between) and the windows merged (``windows``).
Re-merging a window is harmless: the latest version wins either way.

Why a full read holds each id once, in its latest version:

- **Paging a changing list by offset cursors can repeat an id or skip one.** Issues are read in
  ``createdAt`` order, so an issue created during the read is appended at the end (it shifts nothing
  already read) and a status change or an edit doesn't move an issue. Only a record that disappears
  moves the later ones up one place, and the next page then skips one of them. A repeat is dropped
  below (the later of two versions is kept). A skip is caught by comparing with the previous build:
  an id that build had and this read lacks is either gone or skipped, so when there are such ids the
  whole list is read a second time and what it finds of them is kept (a second skip of the same
  record would need another deletion just before it, during the second pass).
- **A record that changes after its page was read** is in the file in its older version. Windows
  written since the read began (by file time, less ``CLOCK_SKEW``) are read too, and each id keeps
  its latest version across the read and those windows. With the ``wiz_api`` pool (one Wiz step at a
  time) no window is written while this runs, so this matters where the pool's limit is higher, and
  for windows written just before the read that the API's own view hadn't caught up with; a change
  still not in any window is in the next build's read (findings: in the window that holds it).
- **Which version is later:** the one with the later first version column (issues:
  ``statusChangedAt``; on a tie, ``updatedAt``, which an edit moves alone); on a tie of every column
  the read's (the same version), and within the read the one read last. A missing time counts as
  earliest. An issue's ``updatedAt`` alone can't order its versions: the API shows it earlier than
  ``statusChangedAt`` now and then.

Memory stays bounded however many records there are: pages, the previous file and windows go to a
spool (``spool.py``: an unlinked temporary Parquet file under ``TMPDIR``) as they arrive; in memory
are only each row's id fingerprint and version times, and the previous build's fingerprints
(``changes.py``). The spool's latest versions are then copied, a row group at a time, into the new file.

Dagster-free, like ``collect``: the asset turns a ``CurrentBuild`` into a materialization.
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from wiz_pipeline.collect.changes import Changes, Keys, KeysBuilder, compare
from wiz_pipeline.collect.fetch import WindowFetch, refusals_named
from wiz_pipeline.collect.split import SplitFetch
from wiz_pipeline.collect.spool import Spool, as_keys, conform, fingerprints_of, row_groups
from wiz_pipeline.core.times import format_time, from_micros, parse_time
from wiz_pipeline.data_types import CurrentState, DataType
from wiz_pipeline.data_types.issues import ISSUES
from wiz_pipeline.landing.files import (
    ROW_GROUP_BYTES,
    ROW_GROUP_ROWS,
    own_key,
    publish_with_manifest,
    unique_key,
    window_file,
    write_manifest,
    writer_options,
)
from wiz_pipeline.landing.iceberg import Tables, manifest_fields
from wiz_pipeline.landing.outputs import Output, Upload
from wiz_pipeline.landing.quality import Outcome
from wiz_pipeline.landing.tables import Table, table_for
from wiz_pipeline.wiz import RequestStats, WizClient

log = logging.getLogger(__name__)

# Window files last written this long before the read began are merged too: S3's LastModified
# comes from S3's clock, not this host's.
CLOCK_SKEW = timedelta(minutes=5)
# A full read is due this much before its days are up, so that a daily schedule's run starting a
# few seconds earlier than the last full read's doesn't put the next one off by a day.
FULL_READ_LEEWAY = timedelta(hours=1)
# A capped data type's full read asks for every time from long before any Wiz record to a day after
# the read began (a record updated during the read moves into a later sub-range, not out of all).
FULL_READ_FROM = datetime(2000, 1, 1, tzinfo=UTC)
FULL_READ_PAST_START = timedelta(days=1)
# How far before the previous build's newest version the query for records that left the collected
# values starts (see leavers_query).
LEAVERS_MARGIN = timedelta(hours=1)


def state_of(data_type: DataType) -> CurrentState:
    if data_type.current is None:
        raise ValueError(f"{data_type.name} has no current-state table")
    return data_type.current


def data_key(data_type: DataType) -> str:
    dataset = state_of(data_type).dataset
    return f"{dataset}/{dataset}.parquet"


def manifest_key(data_type: DataType) -> str:
    dataset = state_of(data_type).dataset
    return f"{dataset}/_{dataset}.json"


def reads_in_full_at_every_build(data_type: DataType) -> bool:
    return state_of(data_type).full_read_days_setting is None


def check_descriptions(data_type: DataType) -> dict[str, tuple[str, bool]]:
    """Per check of the built file: its description in the UI, and whether a failure is an error (a bug)."""
    state = state_of(data_type)
    one = state.noun[:-1]
    by = ", then ".join(f"`{c}`" for c in state.version_columns)
    if reads_in_full_at_every_build(data_type):
        base, again = "the build's read of the API saw", "the next build reads everything again"
    else:
        base = "the build's read of the API saw (or, for a build without one, the previous build held)"
        again = "run the job with `full_read: true` to read everything again"
    return {
        "one_row_per_id": (
            f"Every {one} id is in the file once. A failure is a bug in the merge: counts of "
            f"{state.noun} are inflated. Deduplicate on `id` (latest `{state.version_columns[0]}`) when "
            "reading, and report it.",
            True,
        ),
        "not_older_than_read": (
            f"No {one} is in the file in a version older than the one {base} (by {by}). A failure "
            f"is a bug in the merge: some rows show a stale status. Report it; {again}.",
            True,
        ),
    }


CHECKS = check_descriptions(ISSUES)


@dataclass(frozen=True)
class Plan:
    """Whether a build reads the API in full, and why; otherwise the previous build it extends."""

    full_read: bool
    reason: str
    last_full_read: str | None = None  # an incremental build's: the previous manifest's
    windows_since: datetime | None = None  # an incremental build merges the windows written since


def plan_build(
    output: Output,
    data_type: DataType,
    *,
    full_read_days: int | None,
    force: bool = False,
    now: datetime | None = None,
) -> Plan:
    """``full_read_days``: the data type's WIZ_<TYPE>_FULL_READ_DAYS (None: a full read every build)."""
    state = state_of(data_type)
    if full_read_days is None:
        return Plan(True, "every build reads everything")
    if force:
        return Plan(True, "asked for by the run (full_read)")
    manifest = _previous_manifest(output, data_type)
    last = parse_time(manifest.get("last_full_read")) if manifest else None
    started = parse_time(manifest.get("read_started")) if manifest else None
    if manifest is None or last is None or started is None:
        return Plan(True, "no previous build to extend")
    if not _readable(output, window_file(output, data_key(data_type))):
        return Plan(True, f"the previous {data_key(data_type)} can't be read")
    if manifest.get("filters") != _jsonable(data_type.filters):
        return Plan(
            True, f"the filters changed since the previous build (now {_jsonable(data_type.filters)})"
        )
    setting = f"{state.full_read_days_setting}={full_read_days}"
    if full_read_days == 0:
        return Plan(True, f"{setting}: every build reads everything")
    age = (now or datetime.now(UTC)) - last
    if age >= timedelta(days=full_read_days) - FULL_READ_LEEWAY:
        return Plan(
            True, f"the last full read ({manifest['last_full_read']}) is {_days(age)} old ({setting})"
        )
    return Plan(
        False,
        f"the last full read ({manifest['last_full_read']}) is {_days(age)} old ({setting})",
        last_full_read=manifest["last_full_read"],
        windows_since=started - CLOCK_SKEW,
    )


def _days(age: timedelta) -> str:
    return f"{age.total_seconds() / 86400:.1f} days"


def _jsonable(filters: Any) -> Any:
    return json.loads(json.dumps(dict(filters)))


def _previous_manifest(output: Output, data_type: DataType) -> dict[str, Any] | None:
    source = output.read(manifest_key(data_type))
    if source is None:
        return None
    try:
        with source:
            manifest = json.loads(source.read())
    except (OSError, ValueError) as exc:
        log.warning("The previous %s can't be read (%s).", manifest_key(data_type), exc)
        return None
    return manifest if isinstance(manifest, dict) else None


def _readable(output: Output, key: str) -> bool:
    """Whether the file at ``key`` is there and its Parquet footer reads, with an id column."""
    source = output.read(key)
    if source is None:
        return False
    try:
        with source:
            return "id" in pq.ParquetFile(source).schema_arrow.names
    except (OSError, pa.ArrowException) as exc:
        log.warning("The previous %s can't be read (%s).", key, exc)
        return False


@dataclass
class CurrentBuild:
    path: str
    uri: str
    manifest_path: str
    rows: int
    bytes: int
    row_groups: int
    by_status: dict[str, int]
    by_severity: dict[str, int]
    changes: Changes
    manifest: dict[str, Any]
    checks: list[Outcome]
    plan: Plan
    last_full_read: str


def build_current(
    client: WizClient | None,
    output: Output,
    *,
    run_id: str,
    data_type: DataType = ISSUES,
    plan: Plan | None = None,
    tables: Tables | None = None,
) -> CurrentBuild:
    """Build ``data_type``'s current state as ``plan`` says (by default a full read); see the module's
    docstring. ``client`` may be None for a build that doesn't read in full.

    ``output.check()`` must have passed (the caller does it before any Wiz request). ``tables``
    (WIZ_ICEBERG): the new file replaces every file of the dataset's table in one commit, before the
    manifest (which records the snapshot) is written."""
    state = state_of(data_type)
    plan = plan or Plan(True, "every build reads everything")
    if plan.full_read and client is None:
        raise ValueError("a full read needs a client")
    table = table_for(data_type)
    # WIZ_ICEBERG: a name of its own, as a window's (older snapshots still reference the previous file).
    key = data_key(data_type) if tables is None else unique_key(data_key(data_type))
    started = datetime.now(UTC)
    clock = time.monotonic()
    stats = RequestStats()
    output.sweep(state.dataset)  # what a killed build left (a hidden file; an incomplete upload)
    with Spool(table, state.version_columns) as spool:
        passes = recovered = 0
        if plan.full_read:
            assert client is not None
            previous = _previous_keys(output, data_type)
            if data_type.result_cap:
                _read_by_time(client, data_type, spool, stats, started)
                pages = 1  # each sub-query was read until stable: no second pass
            else:
                pages = _read_all(client, data_type, spool, stats)
            read_rows = spool.rows
            passes = 1
            missing = _missing(previous.fp, spool.fingerprints()) if previous is not None else None
            if missing is not None and len(missing) and pages > 1:
                # Gone, or skipped because a record before them disappeared mid-read: read once more.
                log.info(
                    "%d %s of the previous build are missing from the read; reading again.",
                    len(missing),
                    state.noun,
                )
                passes = 2
                _read_all(client, data_type, spool, stats, only=missing)
                recovered = spool.rows - read_rows
            since = started - CLOCK_SKEW
        else:
            previous = _spool_previous(output, data_type, spool)
            read_rows = spool.rows
            assert plan.windows_since is not None
            since = plan.windows_since
        base_rows = spool.rows
        merged = _merge_windows(output, data_type, spool, since)
        latest = spool.latest(base_rows, base_wins_ties=plan.full_read)
        left = 0
        if not plan.full_read and leavers_query(data_type) is not None:
            assert client is not None and plan.windows_since is not None
            # By the API's clock: every version the previous build holds is older than what left
            # since (the margin only widens a read whose every answer is right to drop).
            newest = spool.newest(read_rows)
            start = plan.windows_since if newest is None else min(plan.windows_since, from_micros(newest))
            gone = _leavers(client, data_type, start - LEAVERS_MARGIN, started, stats)
            leaving = np.isin(as_keys(spool.fingerprints()), gone) & latest
            left = int(np.count_nonzero(leaving))
            latest &= ~leaving
        duplicates = spool.duplicates_in(read_rows)
        from_windows = int(np.count_nonzero(latest[base_rows:]))
        stale = spool.older_than_base(latest, read_rows)
        written = _write(output, data_type, table, spool, latest, key)
        without_id = spool.without_id
    read_started = format_time(started.replace(microsecond=0))
    last_full_read = read_started if plan.full_read else plan.last_full_read or ""
    try:
        changes = compare(previous, written.keys)
        manifest = {
            "data_type": state.dataset,
            "run_id": run_id,
            "read_started": read_started,
            "written_at": format_time(datetime.now(UTC).replace(microsecond=0)),
            "file": output.location(key),
            "rows": written.rows,
            "bytes": written.bytes,
            "row_groups": written.row_groups,
            "by_status": written.by_status,
            "by_severity": written.by_severity,
            "changes": changes.as_dict(),
            "read": {
                **stats.as_dict(),
                "passes": passes,
                "nodes_received": read_rows if plan.full_read else 0,
                "duplicates_dropped": duplicates,
                "recovered_on_second_pass": recovered,
                "nodes_without_id": without_id,
                "duration_seconds": round(time.monotonic() - clock, 3),
            },
            "windows_merged": len(merged),
            "versions_from_windows": from_windows,
        }
        if not reads_in_full_at_every_build(data_type):
            # Only where builds between full reads exist (issues_current's manifest keeps its keys).
            manifest |= {
                "full_read": plan.full_read,
                "full_read_reason": plan.reason,
                "last_full_read": last_full_read,
                "filters": _jsonable(data_type.filters),
                "windows": merged,
            }
        if leavers_query(data_type) is not None:
            manifest["left_results"] = left
        if tables is None:
            publish_with_manifest(output, written.upload, manifest_key(data_type), manifest)
        else:
            # In place under its own name, then the table's only file, then the manifest naming both.
            output.publish([written.upload])
            committed = tables.replace_all(
                state.dataset,
                output.location(state.dataset),
                output.location(key),
                table.schema,
                {"wiz.run-id": run_id},
            )
            manifest |= manifest_fields(tables, state.dataset, committed)
            write_manifest(output, manifest_key(data_type), manifest)
    except BaseException:
        written.upload.abort()
        raise
    return CurrentBuild(
        path=output.location(key),
        uri=output.uri_of(key),
        manifest_path=output.location(manifest_key(data_type)),
        rows=written.rows,
        bytes=written.bytes,
        row_groups=written.row_groups,
        by_status=written.by_status,
        by_severity=written.by_severity,
        changes=changes,
        manifest=manifest,
        checks=_checks(data_type, written, without_id, stale, plan.full_read),
        plan=plan,
        last_full_read=last_full_read,
    )


def _checks(data_type: DataType, written: _Written, without_id: int, stale: int, full: bool) -> list[Outcome]:
    one = state_of(data_type).noun[:-1]
    errors = {name: error for name, (_, error) in check_descriptions(data_type).items()}
    repeated = written.rows - len(np.unique(as_keys(written.keys.fp)))
    return [
        Outcome(
            "one_row_per_id",
            repeated == 0,
            errors["one_row_per_id"],
            f"{repeated} id(s) repeated in {written.rows} rows "
            f"({without_id} node(s) read without an id left out)",
            {"rows": written.rows, "repeated_ids": repeated, "nodes_without_id": without_id},
        ),
        Outcome(
            "not_older_than_read",
            stale == 0,
            errors["not_older_than_read"],
            f"{stale} {one}(s) in a version older than the {'read' if full else 'previous build'}'s",
            {"older_than_read": stale},
        ),
    ]


def _read_all(
    client: WizClient, data_type: DataType, spool: Spool, stats: RequestStats, only: np.ndarray | None = None
) -> int:
    """Page through every record into ``spool`` (only the ids in ``only``, if given); the page count."""
    state = state_of(data_type)
    variables: dict[str, Any] = {}
    if data_type.filters:
        variables["filterBy"] = dict(data_type.filters)
    if state.read_order:
        variables["orderBy"] = dict(state.read_order)
    pages = 0
    read = client.paginate(
        data_type.query,
        variables,
        operation=data_type.operation,
        connection=data_type.connection,
        time_field=data_type.time_field,
        node_type=spool.table.row_type,  # decoded once, into the structs the columns are built from
        permission=data_type.permission_hint,
        stats=stats,
    )
    for page in refusals_named(data_type, read):
        pages += 1
        if not page.nodes:
            continue
        batch = spool.table.rows_to_batch(page.nodes, rows=page.rows)
        if only is not None:
            ids = [i or "" for i in batch.column("id").to_pylist()]
            batch = batch.filter(pa.array(np.isin(as_keys(fingerprints_of(ids)), only)))
        spool.add(batch)
    return pages


def _read_by_time(
    client: WizClient, data_type: DataType, spool: Spool, stats: RequestStats, started: datetime
):
    """A full read of a data type whose queries stop silently at a result cap: in sub-queries by
    time (``SplitFetch``, as a window past the cap is), each below the cap and re-read until stable
    where records can leave it (``WindowFetch``), so no second pass is needed."""
    end = started + FULL_READ_PAST_START
    split = SplitFetch(client, data_type, FULL_READ_FROM, end, [(FULL_READ_FROM, end)], open_ended=True)
    for nodes in split:
        spool.add(spool.table.rows_to_batch(nodes.raw, rows=nodes.rows))
    figures = split.figures()
    for name, value in stats.as_dict().items():
        setattr(stats, name, value + figures.get(name, 0))


def leavers_query(data_type: DataType) -> DataType | None:
    """For a data type whose windows ask for some values only (configuration findings: the results
    in WIZ_CONFIGURATION_FINDING_RESULTS), the same query for the other values. A record whose value
    leaves the chosen ones (a failing control that now passes) is in no window, yet it must leave the
    current table before the next full read: a build between full reads asks this query for the
    records updated since the previous build, ids only in effect, and drops them. None: every value
    is collected, or the data type has no such choice."""
    choice = data_type.choice
    if choice is None or state_of(data_type).full_read_days_setting is None:
        return None
    chosen = set(data_type.filters.get(choice.key) or choice.default)
    others = [value for value in choice.choices if value not in chosen]
    if not others:
        return None
    return replace(data_type, filters={**data_type.filters, choice.key: others})


def _leavers(
    client: WizClient, data_type: DataType, since: datetime, started: datetime, stats: RequestStats
) -> np.ndarray:
    """The fingerprints (as ``as_keys``) of the records updated since ``since`` whose value left the
    chosen ones (see ``leavers_query``): a small read, the day's changes of result, not the list."""
    query = leavers_query(data_type)
    assert query is not None
    end = started + FULL_READ_PAST_START
    table = table_for(data_type)
    ids: list[str] = []
    if query.result_cap:
        pages = SplitFetch(client, query, since, end, [(since, end)], open_ended=True)
    else:
        pages = WindowFetch(client, query, since, end, open_ended=True)
    for nodes in pages:
        ids += [i or "" for i in table.rows_to_batch(nodes.raw, rows=nodes.rows).column("id").to_pylist()]
    figures = pages.figures() if isinstance(pages, SplitFetch) else pages.stats.requests.as_dict()
    for name, value in stats.as_dict().items():
        setattr(stats, name, value + figures.get(name, 0))
    return as_keys(fingerprints_of(ids))


def _missing(previous: np.ndarray, found: np.ndarray) -> np.ndarray:
    """The fingerprints (as ``as_keys``) in ``previous`` that ``found`` lacks."""
    wanted = as_keys(previous)
    return wanted[~np.isin(wanted, as_keys(found))]


def _merge_windows(output: Output, data_type: DataType, spool: Spool, since: datetime) -> list[str]:
    """Add the rows of every window file of ``data_type`` written since ``since`` to the spool, in
    window order (a later window's version wins a tie); their keys."""
    merged = []
    for key, listed in sorted(output.files([f"{data_type.name}/"]).items()):
        name = key.rpartition("/")[2]
        is_window = key.startswith(f"{data_type.name}/date=") and name.endswith(".parquet")
        if listed.modified < since or not is_window or name.startswith(("_", ".")):
            continue
        if own_key(key) != key and window_file(output, own_key(key)) != key:
            continue  # WIZ_ICEBERG: a file the window's rerun replaced (or a failed commit's)
        source = output.read(key)
        if source is None:  # replaced meanwhile: the new one is newer than `since` too, and listed
            continue
        with source:
            for batch in row_groups(source):
                spool.add(conform(batch, spool.table))
        merged.append(key)
    return merged


@dataclass
class _Written:
    upload: Upload
    rows: int
    bytes: int
    row_groups: int
    by_status: dict[str, int]
    by_severity: dict[str, int]
    keys: Keys


def _write(
    output: Output, data_type: DataType, table: Table, spool: Spool, keep: np.ndarray, key: str
) -> _Written:
    """Copy the kept rows into a new file at ``key`` (finished, not yet visible)."""
    state = state_of(data_type)
    upload = output.open(key)
    writer = pq.ParquetWriter(upload.file, table.schema, **writer_options(table))
    status: collections.Counter[str] = collections.Counter()
    severity: collections.Counter[str] = collections.Counter()
    keys = KeysBuilder(state.status_column)
    rows = row_groups = 0
    pending: list[pa.RecordBatch] = []
    try:
        for batch in itertools.chain(spool.batches(keep), [None]):
            if batch is not None:
                pending.append(batch)
                status.update(s or "(none)" for s in batch.column(state.status_column).to_pylist())
                severity.update(s or "(none)" for s in batch.column(state.severity_column).to_pylist())
                keys.add(batch)
            waiting = sum(len(b) for b in pending)
            full = waiting >= ROW_GROUP_ROWS or sum(b.nbytes for b in pending) >= ROW_GROUP_BYTES
            if waiting and (batch is None or full):
                writer.write_table(pa.Table.from_batches(pending, schema=table.schema))
                rows, row_groups, pending = rows + waiting, row_groups + 1, []
        writer.close()
        size = upload.finish()
    except BaseException:
        writer.close()
        upload.abort()
        raise
    return _Written(
        upload,
        rows,
        size,
        row_groups,
        dict(sorted(status.items())),
        dict(sorted(severity.items())),
        keys.keys(),
    )


def _previous_keys(output: Output, data_type: DataType) -> Keys | None:
    """The previous build's ids, statuses and node hashes; None if there is none (or it can't be
    read, which the new build then replaces)."""
    key, status = window_file(output, data_key(data_type)), state_of(data_type).status_column
    source = output.read(key)
    if source is None:
        return None
    keys = KeysBuilder(status)
    try:
        with source:
            for batch in row_groups(source, columns=["id", status, "raw"]):
                keys.add(batch)
    except (OSError, pa.ArrowException) as exc:
        log.warning("The previous %s can't be read (%s); this build replaces it.", key, exc)
        return None
    return keys.keys()


def _spool_previous(output: Output, data_type: DataType, spool: Spool) -> Keys:
    """Stream the previous build's file into the spool (the base of a build without a full read);
    its keys."""
    key = window_file(output, data_key(data_type))
    source = output.read(key)
    if source is None:
        raise FileNotFoundError(f"{key} went away since the build was planned; the next build reads in full")
    keys = KeysBuilder(state_of(data_type).status_column)
    with source:
        for batch in row_groups(source):
            batch = conform(batch, spool.table)
            keys.add(batch)
            spool.add(batch)
    return keys.keys()
