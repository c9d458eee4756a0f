"""The gap report: for each closed window of a range, is it written, and what is in its file.

Reads the output, never Dagster: what the instance says arrives as an ``InstanceState``, which
``orchestration.ledger`` reads. A window counts as written only when both sides say so: the Dagster
instance (the window's partition is materialized, the last attempt at it did not fail, and it was not
collected from a later seed) and the output (its data file and manifest are both there, and the file
has the size its manifest records). When one side has it and the other doesn't, the report names the
side that is missing.

Built for a year of one-minute windows (525,600 per data type) without a request per window:

- the instance is read in a few queries per data type (the materialized partitions; the failed and
  in-progress ones, as ``checkpoints`` reads them);
- the output is listed once per day folder (a directory scan, or a paginated ListObjectsV2 of 1,000
  keys per request, 16 folders at a time), which proves both files present;
- manifests (rows, queries, re-reads, late records, SHA-256, run id) are read only for the windows
  printed: every window by default, in chunks of days, concurrently on S3; with ``gaps_only``, only
  those not written, so that proving a year complete costs listings, not 525,600 GETs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import msgspec

from wiz_pipeline.core.errors import WizConfigError
from wiz_pipeline.core.times import format_time, parse_time
from wiz_pipeline.core.windows import WindowGrid, floor_to_window
from wiz_pipeline.landing.files import own_key
from wiz_pipeline.landing.outputs import UNKNOWN, Output

# Days whose folders are listed and manifests read together: enough windows for S3's concurrency to
# pay (10,080 one-minute windows), few enough that memory stays small however long the range.
DAYS_PER_CHUNK = 7


class Manifest(msgspec.Struct):
    """The manifest keys the ledger shows. A key missing from an older manifest stays UNSET (printed
    as unknown); ``late_records`` is None when the write replaced no earlier file."""

    rows: int | msgspec.UnsetType = msgspec.UNSET
    bytes: int | msgspec.UnsetType = msgspec.UNSET
    queries: int | msgspec.UnsetType = msgspec.UNSET
    reads: int | msgspec.UnsetType = msgspec.UNSET
    late_records: int | msgspec.UnsetType | None = msgspec.UNSET
    sha256: str | msgspec.UnsetType = msgspec.UNSET
    run_id: str | msgspec.UnsetType = msgspec.UNSET
    file: str | msgspec.UnsetType = msgspec.UNSET
    iceberg_snapshot_id: int | msgspec.UnsetType | None = msgspec.UNSET


_DECODER = msgspec.json.Decoder(Manifest)


@dataclass(frozen=True)
class WindowLine:
    data_type: str
    key: str
    start: datetime
    end: datetime
    missing: tuple[str, ...]  # why it is not written, by side; empty when written
    manifest: Manifest | None  # None when not read (or not there)

    @property
    def written(self) -> bool:
        return not self.missing


@dataclass
class Gap:
    first: str
    last: str
    windows: int
    missing: tuple[str, ...]


@dataclass
class Summary:
    data_type: str
    first: str | None = None
    last: str | None = None
    closed_windows: int = 0
    written: int = 0
    gaps: list[Gap] = field(default_factory=list)

    def note(self, line: WindowLine) -> None:
        self.first = self.first or line.key
        before, self.last = self.last, line.key
        self.closed_windows += 1
        if line.written:
            self.written += 1
            return
        previous = self.gaps[-1] if self.gaps else None
        # Consecutive windows missing for the same reasons make one range.
        if previous and previous.last == before and previous.missing == line.missing:
            previous.last, previous.windows = line.key, previous.windows + 1
        else:
            self.gaps.append(Gap(line.key, line.key, 1, line.missing))


def window_range(
    grid: WindowGrid,
    now: datetime,
    lag: timedelta,
    start: datetime | None = None,
    end: datetime | None = None,
) -> range:
    """The closed windows (lag included) of ``grid`` that overlap ``[start, end)`` (default: from the
    seed's window, the grid's first, to the latest closed one)."""
    closed = grid.count_until(now - lag)
    wanted = grid.overlapping(grid.first if start is None else start, now - lag if end is None else end)
    return range(wanted.start, max(wanted.start, min(wanted.stop, closed)))


@dataclass(frozen=True)
class InstanceState:
    """What the instance says of one data type's windows."""

    materialized: set[str]
    against: dict[str, str]  # windows it holds against, even if materialized: {key: reason}

    def reason(self, key: str) -> str | None:
        """Why the instance doesn't count ``key`` as written (None: it does)."""
        if key in self.against:
            return self.against[key]
        return None if key in self.materialized else "instance: not materialized"


# What a window's files are named: (partition key, [(data file, manifest), ...]) for each window start.
FileNames = Callable[[list[datetime]], list[tuple[str, list[tuple[str, str]]]]]
# WIZ_ICEBERG: for each of a window's files (in the order FileNames gives them), the names of the files
# its table's current snapshot holds, by window start (``landing.iceberg.Tables.window_files``).
TableFiles = list[dict[datetime, set[str]]]


def ledger(
    state: InstanceState,
    output: Output,
    name: str,
    grid: WindowGrid,
    *,
    now: datetime,
    lag: timedelta,
    start: datetime | None = None,
    end: datetime | None = None,
    gaps_only: bool = False,
    files: FileNames | None = None,
    manifest_output: Output | None = None,
    tables: TableFiles | None = None,
) -> Iterator[WindowLine]:
    """Each closed window of the range, oldest first, as ``state`` (what the instance says: see
    ``orchestration.ledger``) and the output say; see the module's docstring. ``files``: a window's
    files other than a data type's one (an OCSF view has one per class it feeds); a window is written
    on the output's side when every one of them and its manifest are there, as big as it says.
    ``manifest_output``: where the manifests are, when not beside their files (Security Lake).

    ``tables`` (WIZ_ICEBERG): a window is also written only when its table's current snapshot holds
    exactly the file its manifest names (or, for an empty window, no file of it). The manifests are
    then read for every window, ``gaps_only`` or not: a listing can't tell an empty window from one
    the table lacks."""
    names_of = files or _native_files(name)
    in_range = window_range(grid, now, lag, start, end)
    step = grid.step
    done = in_range.start
    while done < in_range.stop:
        chunk_end_day = floor_to_window(grid.start_of(done), 86400) + timedelta(days=DAYS_PER_CHUNK)
        chunk = range(done, min(in_range.stop, grid.count_until(chunk_end_day)))
        windows = grid.starts(chunk)
        names = names_of(windows)
        folders = sorted({data.rpartition("/")[0] for _, pairs in names for data, _ in pairs})
        # Sizes are compared with manifests, so they are needed only where manifests are read.
        listed = output.files(folders, stat=not gaps_only or tables is not None)
        # With WIZ_ICEBERG a window's file carries a write id, and a replaced one stays until
        # maintenance deletes it: the window's own name stands for any of them here.
        by_window: dict[str, list[str]] = {}
        for listed_key in listed:
            own = own_key(listed_key) if listed_key.endswith(".parquet") else listed_key
            if own != listed_key:
                by_window.setdefault(own, []).append(listed_key)
        manifests_at = manifest_output or output
        if manifest_output is not None:
            where = sorted({m.rpartition("/")[0] for _, pairs in names for _, m in pairs})
            listed = {**listed, **manifest_output.files(where, stat=False)}
        pending: list[tuple[datetime, str, list[tuple[str, str]], list[str]]] = []
        for boundary, (key, pairs) in zip(windows, names, strict=True):
            side = state.reason(key)
            missing = [side] if side else []
            for data, manifest in pairs:
                has_data, has_manifest = data in listed or data in by_window, manifest in listed
                if not (has_data and has_manifest):
                    absent = [
                        what
                        for what, there in (("data file", has_data), ("manifest", has_manifest))
                        if not there
                    ]
                    where = f" ({data.rpartition('/')[2]})" if len(pairs) > 1 else ""
                    missing.append(f"output: no {' and no '.join(absent)}{where}")
            pending.append((boundary, key, pairs, missing))
        # With gaps_only, the manifests of windows both sides have are not read (see the docstring).
        wanted = [
            m
            for _, _, pairs, missing in pending
            for _, m in pairs
            if m in listed and (missing or not gaps_only or tables is not None)
        ]
        contents = manifests_at.read_many(wanted)
        for boundary, key, pairs, missing in pending:
            manifests: list[Manifest] = []
            for index, (data, manifest_name) in enumerate(pairs):
                manifest = _decode(contents.get(manifest_name))
                if isinstance(manifest, str):
                    missing.append(manifest)
                    continue
                if manifest is None:
                    continue
                if isinstance(manifest.file, str):  # the file it names (a write id, with WIZ_ICEBERG)
                    data = f"{data.rpartition('/')[0]}/{manifest.file.rpartition('/')[2]}"
                    if data not in listed:
                        missing.append(f"output: no {data.rpartition('/')[2]}, which its manifest names")
                        continue
                size = listed.get(data, UNKNOWN).size  # -1: not there, or listed without its size
                if tables is not None:
                    problem = _table_problem(tables[index].get(boundary, set()), data, manifest)
                    if problem:
                        missing.append(problem)
                if size >= 0 and manifest.bytes not in (msgspec.UNSET, size):
                    missing.append(f"output: data file has {size} bytes, its manifest says {manifest.bytes}")
                manifests.append(manifest)
            yield WindowLine(
                name, key, boundary, boundary + step, tuple(missing), _combined(manifests, len(pairs))
            )
        done = chunk.stop


def _table_problem(held: set[str], data: str, manifest: Manifest) -> str | None:
    """Why the table doesn't hold the window as its manifest says (None: it does)."""
    name = data.rpartition("/")[2]
    if manifest.rows == 0:
        return f"table: holds {len(held)} file(s) of a window now empty" if held else None
    if held == {name}:
        return None
    if not held:
        return f"table: holds no file of this window (not {name})"
    return f"table: holds {', '.join(sorted(held))}, not {name}"


def _native_files(name: str) -> FileNames:
    def names(windows: list[datetime]) -> list[tuple[str, list[tuple[str, str]]]]:
        return [(key, [(data, manifest)]) for key, data, manifest in window_names(name, windows)]

    return names


def _combined(manifests: list[Manifest], files: int) -> Manifest | None:
    """A window's manifest, or for a window of several files their rows summed (their other figures
    are each file's own: shown only for a window of one file)."""
    if not manifests:
        return None
    if files == 1:
        return manifests[0]
    counts = [m.rows for m in manifests if isinstance(m.rows, int)]
    # One file's rows unknown (an older manifest): so is the window's.
    rows = sum(counts) if len(counts) == files else msgspec.UNSET
    return Manifest(rows=rows, run_id=manifests[0].run_id)


def window_names(name: str, windows: list[datetime]) -> list[tuple[str, str, str]]:
    """(partition key, data file, manifest) of each window, as ``KEY_FORMAT``, ``files.window_key``
    and ``files.manifest_key`` name them, built a day at a time: formatting each window's time
    with strftime costs seconds over a year of one-minute windows."""
    names = []
    day = None
    for w in windows:
        if w.date() != day:
            day = w.date()
            dash = f"{day:%Y-%m-%d}"
            compact, folder = dash.replace("-", ""), f"{name}/date={dash}/"
        clock = f"{w.hour:02d}{w.minute:02d}{w.second:02d}"
        names.append(
            (
                f"{dash}-{w.hour:02d}:{w.minute:02d}",
                f"{folder}{name}_{compact}T{clock}Z.parquet",
                f"{folder}_{name}_{compact}T{clock}Z.json",
            )
        )
    return names


def _decode(data: bytes | None) -> Manifest | str | None:
    if data is None:
        return None
    try:
        return _DECODER.decode(data)
    except msgspec.DecodeError:
        return "output: manifest unreadable"


def parse_bound(flag: str, text: str | None) -> datetime | None:
    """``--from``/``--to``: an ISO 8601 time (UTC unless it has an offset)."""
    if text is None:
        return None
    parsed = parse_time(text)
    if parsed is None:
        raise WizConfigError(f"{flag} {text!r} is not an ISO 8601 time; write e.g. 2025-09-12T21:00:00Z")
    return parsed


# -- printing -------------------------------------------------------------------------------------

COLUMNS = ("type", "window", "written", "rows", "queries", "rereads", "late", "sha256", "run_id")
_TEXT = "{:<10} {:<16} {:<7} {:>7} {:>7} {:>7} {:>5} {:<64} {:<36}"


def _shown(value: Any) -> str:
    """UNSET (an older manifest lacks the key, or none was read): '?'; None: '-'."""
    if value is msgspec.UNSET:
        return "?"
    return "-" if value is None else str(value)


def text_line(line: WindowLine) -> str:
    m = line.manifest or Manifest()
    rereads = m.reads - 1 if isinstance(m.reads, int) else m.reads
    text = _TEXT.format(
        line.data_type,
        line.key,
        "yes" if line.written else "NO",
        _shown(m.rows),
        _shown(m.queries),
        _shown(rereads),
        _shown(m.late_records),
        _shown(m.sha256),
        _shown(m.run_id),
    )
    return f"{text}  {'; '.join(line.missing)}".rstrip() if line.missing else text.rstrip()


def text_header() -> str:
    return _TEXT.format(*COLUMNS).rstrip()


def json_line(line: WindowLine) -> str:
    record: dict[str, Any] = {
        "type": line.data_type,
        "window": line.key,
        "window_start": format_time(line.start),
        "window_end": format_time(line.end),
        "written": line.written,
        "missing": list(line.missing),
    }
    if line.manifest is not None:
        known = {k: v for k, v in msgspec.structs.asdict(line.manifest).items() if v is not msgspec.UNSET}
        known.pop("bytes", None)
        if "reads" in known:
            known["rereads"] = known["reads"] - 1
        record |= known
    return json.dumps(record)


def _ranges(gaps: list[Gap], limit: int | None = None) -> str:
    parts = [
        (g.first if g.windows == 1 else f"{g.first}..{g.last} ({g.windows} windows)")
        + f" [{'; '.join(g.missing)}]"
        for g in gaps[:limit]
    ]
    if limit is not None and len(gaps) > limit:
        parts.append(f"and {len(gaps) - limit} more ranges")
    return ", ".join(parts)


def text_summary(summary: Summary) -> str:
    name = summary.data_type
    if not summary.closed_windows:
        return f"{name}: no closed window in the range; nothing to check"
    span = f"{summary.closed_windows} closed windows from {summary.first} to {summary.last}"
    if not summary.gaps:
        return f"{name}: no gap: all {span} are written"
    missing = summary.closed_windows - summary.written
    return f"{name}: GAP: {missing} of {span} not written: {_ranges(summary.gaps, limit=20)}"


def json_summary(summary: Summary) -> str:
    return json.dumps(
        {
            "type": summary.data_type,
            "summary": True,
            "first": summary.first,
            "last": summary.last,
            "closed_windows": summary.closed_windows,
            "written": summary.written,
            "gap": bool(summary.gaps),
            "gaps": [
                {"first": g.first, "last": g.last, "windows": g.windows, "missing": list(g.missing)}
                for g in summary.gaps
            ],
        }
    )
