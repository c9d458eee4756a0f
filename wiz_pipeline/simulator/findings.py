"""Vulnerability findings, configuration findings and detections: state that changes, at any scale.

A kind's ``count`` generated findings are not stored as records. Each one's first version is made
from its index when the API reads it; its ``updatedAt`` comes from the index alone, ascending, so a
window's bounds are a bisect; the fields the API filters on sit in one byte per finding. Only the
findings that changed since (an update, a deletion) or were added by hand are records: a small
overlay. A million findings so take a few megabytes and a second or two to make.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import uuid
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, overload

from wiz_pipeline.core.times import parse_time
from wiz_pipeline.simulator.finding_nodes import MAKERS as _MAKERS
from wiz_pipeline.simulator.stamps import mix, wiz_time

KINDS = ("vulnerability_findings", "configuration_findings", "detections")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_M64 = (1 << 64) - 1
_LOW48 = (1 << 48) - 1


def _us(when: datetime) -> int:
    return (when - _EPOCH) // timedelta(microseconds=1)


def _at(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


@dataclass(frozen=True)
class _Coded:
    """A field the API filters on: ``filter`` in filterBy, ``field`` on the node, its values."""

    filter: str
    field: str
    values: tuple[str, ...]
    weights: tuple[int, ...]


STATUSES = ("OPEN", "IN_PROGRESS", "RESOLVED", "REJECTED")
CVSS_SEVERITIES = ("NONE", "LOW", "MEDIUM", "HIGH", "CRITICAL")
RESULTS = ("PASS", "FAIL", "ERROR", "NOT_ASSESSED")
DETECTION_TYPES = ("GENERATED_THREAT", "MATCH_ONLY")
DETECTION_SEVERITIES = ("INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL")

CODED: dict[str, tuple[_Coded, ...]] = {
    "vulnerability_findings": (
        _Coded("status", "status", STATUSES, (70, 8, 17, 5)),
        _Coded("severity", "CVSSSeverity", CVSS_SEVERITIES, (3, 22, 40, 25, 10)),
    ),
    "configuration_findings": (
        _Coded("result", "result", RESULTS, (55, 38, 4, 3)),
        _Coded("status", "status", STATUSES, (75, 5, 15, 5)),
        _Coded("severity", "severity", CVSS_SEVERITIES, (5, 30, 35, 22, 8)),
    ),
    "detections": (
        _Coded("type", "type", DETECTION_TYPES, (3, 2)),
        _Coded("severity", "severity", DETECTION_SEVERITIES, (15, 30, 30, 18, 7)),
    ),
}


@dataclass(slots=True)
class FindingRecord:
    """A finding with a history: its first version (``base``: a generated finding's index, or a node
    added by hand) at ``base_us``, then ``changes`` (time, fields), ascending, and maybe a deletion.
    Times are microseconds since the epoch."""

    base: int | dict[str, Any]
    base_us: int
    changes: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    deleted_us: int | None = None

    @property
    def last_us(self) -> int:
        times = [self.base_us] + [t for t, _ in self.changes]
        return max(times + ([self.deleted_us] if self.deleted_us is not None else []))

    def version_us(self, now_us: int) -> int | None:
        """``updatedAt`` of the version the API shows at ``now_us``; None while there is none."""
        if self.base_us > now_us or (self.deleted_us is not None and self.deleted_us <= now_us):
            return None
        latest = self.base_us
        for at, _ in self.changes:
            if at > now_us:
                break
            latest = at
        return latest

    def fields_at(self, now_us: int) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for at, fields in self.changes:
            if at > now_us:
                break
            merged.update(fields)
        return merged


class FindingStore:
    """One kind's findings: generated ones made when read, plus the overlay of records."""

    def __init__(self, kind: str, start: datetime, end: datetime, count: int, seed: int) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown finding kind {kind!r}: one of {', '.join(KINDS)}")
        self.kind, self.count = kind, count
        self.coded = {c.filter: c for c in CODED[kind]}
        self.seed = mix(seed * 1_000_003 + KINDS.index(kind) + 1)
        self.start_us, self.span_us = _us(start), max(1, _us(end) - _us(start))
        self.end_us = self.start_us + self.span_us
        rng = random.Random(self.seed)
        self.codes = {
            c.filter: bytes(rng.choices(range(len(c.values)), c.weights, k=count)) for c in CODED[kind]
        }
        self.untouched = bytearray(b"\x01") * count  # 0 once a generated finding has a record
        self.records: dict[str, FindingRecord] = {}
        self.added: list[str] = []  # ids of the records added by hand, in order
        self.revision = 0
        self.times = _BaseTimes(self)
        self._id_mask = mix(self.seed ^ 0x5A5A5A5A) & _LOW48
        self._events: tuple[int, list[int], list[FindingRecord]] | None = None
        self._latest: tuple[int, int] | None = None
        self._cache: dict[tuple[Any, ...], tuple[Sequence[int], list[FindingRecord]]] = {}
        # Many findings share an asset (one per CVE on it); few enough assets that they stay cached.
        self.assets = max(1, min(count // 12, 4000))

    # -- generated findings, from their index ----------------------------------------------------

    def base_us(self, index: int) -> int:
        jitter = (mix(self.seed ^ index) * self.span_us) >> 64  # in [0, span): order is kept
        return self.start_us + (index * self.span_us + jitter) // self.count

    def id_of(self, index: int) -> str:
        # The index rides in the id's last 48 bits (masked), so an id finds its finding in O(1).
        high = mix(self.seed + index)
        value = (high << 64) | ((mix(high) & 0xFFFF) << 48) | (index ^ self._id_mask)
        return str(uuid.UUID(int=value, version=4))

    def index_of(self, finding_id: str) -> int | None:
        try:
            index = (uuid.UUID(finding_id).int & _LOW48) ^ self._id_mask
        except ValueError:
            return None
        return index if index < self.count and self.id_of(index) == finding_id else None

    def base_node(self, index: int) -> dict[str, Any]:
        rng = random.Random(mix(self.seed ^ ((index * 0x9E3779B97F4A7C15) & _M64)))
        values = {c.field: c.values[self.codes[c.filter][index]] for c in self.coded.values()}
        return _MAKERS[self.kind](self, rng, index, _at(self.base_us(index)), values)

    # -- records ----------------------------------------------------------------------------------

    def record(self, finding_id: str, *, create: bool = True, index: int | None = None) -> FindingRecord:
        record = self.records.get(finding_id)
        if record is not None:
            return record
        index = self.index_of(finding_id) if index is None else index
        if index is None:
            raise KeyError(f"no {self.kind} finding {finding_id!r}")
        record = FindingRecord(index, self.base_us(index))
        if create:
            self.records[finding_id] = record
            self.untouched[index] = 0
        return record

    def add(self, node: dict[str, Any]) -> None:
        finding_id = node.get("id")
        when = parse_time(node.get("updatedAt"))
        if not isinstance(finding_id, str) or when is None:
            raise ValueError(f"a {self.kind} node needs an id and a readable updatedAt")
        if finding_id in self.records or self.index_of(finding_id) is not None:
            raise ValueError(f"{self.kind} {finding_id} exists already")
        self.records[finding_id] = FindingRecord(dict(node), _us(when))
        self.added.append(finding_id)
        self.revision += 1

    def update(
        self, finding_id: str, at: datetime, fields: dict[str, Any], *, index: int | None = None
    ) -> None:
        record = self.record(finding_id, index=index)
        at_us = _us(at)
        if at_us < record.base_us:
            raise ValueError(f"{self.kind} {finding_id}: an update at {at} precedes its first version")
        fields = dict(fields)
        if self.kind == "vulnerability_findings" and "status" in fields and "resolvedAt" not in fields:
            if fields["status"] == "RESOLVED":
                fields["resolvedAt"] = wiz_time(at)
            elif fields["status"] in ("OPEN", "IN_PROGRESS"):
                fields["resolvedAt"] = None  # reopened
        if self.kind == "configuration_findings":
            fields.setdefault("analyzedAt", wiz_time(at))  # the scan that saw the change
        record.changes.insert(bisect.bisect_right([t for t, _ in record.changes], at_us), (at_us, fields))
        self.revision += 1

    def delete(self, finding_id: str, at: datetime) -> None:
        self.record(finding_id).deleted_us = _us(at)
        self.revision += 1

    def node(self, record: FindingRecord, now_us: int) -> dict[str, Any] | None:
        version = record.version_us(now_us)
        if version is None:
            return None
        node = self.base_node(record.base) if isinstance(record.base, int) else dict(record.base)
        changed = record.fields_at(now_us)
        if changed:
            node.update(changed)
            node["updatedAt"] = wiz_time(_at(version))
        return node

    def versions(self, finding_id: str) -> list[dict[str, Any]]:
        record = self.record(finding_id, create=False)
        times = [record.base_us] + [t for t, _ in record.changes]
        return [node for t in times if (node := self.node(record, t)) is not None]

    def value(self, record: FindingRecord, coded: _Coded, changed: dict[str, Any]) -> Any:
        if coded.field in changed:
            return changed[coded.field]
        if isinstance(record.base, int):
            return coded.values[self.codes[coded.filter][record.base]]
        return record.base.get(coded.field)

    def update_random(self, share: float, start: datetime, end: datetime, seed: int) -> list[str]:
        """Updates ``share`` of the findings, each once at a random time in ``[start, end)`` after
        its first version: status changes and resolutions, a severity change for detections."""
        rng = random.Random(seed)
        ids = self.ids()
        start_us, end_us = _us(start), _us(end)
        changed = []
        for pick in sorted(rng.sample(range(len(ids)), round(share * len(ids)))):
            finding_id = ids[pick]
            record = self.records.get(finding_id)
            first_us = record.base_us if record is not None else self.base_us(pick)
            low = max(start_us, first_us + 1)
            if low >= end_us:
                continue
            index = pick if pick < self.count else None
            at = _at(rng.randrange(low, end_us))
            self.update(finding_id, at, _random_change(self.kind, rng), index=index)
            changed.append(finding_id)
        return changed

    def ids(self) -> Sequence[str]:
        return _Ids(self)

    # -- queries ----------------------------------------------------------------------------------

    def latest_us(self) -> int:
        """The last moment anything in this store changes; from then on every view of it is fixed."""
        if self._latest is None or self._latest[0] != self.revision:
            latest = max((r.last_us for r in self.records.values()), default=self.start_us)
            self._latest = (self.revision, max(latest, self.end_us))
        return self._latest[1]

    def _overlay_events(self) -> tuple[list[int], list[FindingRecord]]:
        if self._events is None or self._events[0] != self.revision:
            pairs = sorted(
                (
                    (t, record)
                    for record in self.records.values()
                    for t in [record.base_us, *(t for t, _ in record.changes), record.deleted_us]
                    if t is not None
                ),
                key=lambda pair: pair[0],
            )
            self._events = (self.revision, [t for t, _ in pairs], [r for _, r in pairs])
        return self._events[1], self._events[2]

    def select(
        self,
        now: datetime,
        after: datetime | None = None,
        before: datetime | None = None,
        allowed: dict[str, frozenset[str]] | None = None,
    ) -> Selection:
        """The findings visible at ``now`` whose current ``updatedAt`` is within ``[after, before]``
        (both inclusive) and whose filtered fields take an ``allowed`` value."""
        now_us = _us(now)
        top = now_us if before is None else min(_us(before), now_us)
        bottom = None if after is None else _us(after)
        allowed = {k: v for k, v in (allowed or {}).items() if not set(self.coded[k].values) <= v}
        # The view changes only when an event passes, so which events have passed keys the cache:
        # the pages of one query then cost a lookup, not a scan of the overlay.
        event_times, _ = self._overlay_events()
        view = (bisect.bisect_right(self.times, now_us), bisect.bisect_right(event_times, now_us))
        key = (
            bottom,
            top if before is not None else None,
            tuple(sorted(allowed.items())),
            self.revision,
            view,
        )
        cached = self._cache.get(key)
        if cached is None:
            cached = self._select(now_us, bottom, top, allowed)
            if len(self._cache) >= 32:  # a long-lived simulator sees endless distinct windows
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = cached
        return Selection(self, cached[0], cached[1], now_us)

    def _select(
        self, now_us: int, bottom: int | None, top: int, allowed: dict[str, frozenset[str]]
    ) -> tuple[Sequence[int], list[FindingRecord]]:
        lo = 0 if bottom is None else bisect.bisect_left(self.times, bottom)
        hi = max(lo, bisect.bisect_right(self.times, top))
        mask = bytes(self.untouched[lo:hi])
        for key, values in allowed.items():
            coded = self.coded[key]
            table = bytes(int(i < len(coded.values) and coded.values[i] in values) for i in range(256))
            wanted = self.codes[key][lo:hi].translate(table)
            mask = (int.from_bytes(mask, "little") & int.from_bytes(wanted, "little")).to_bytes(
                hi - lo, "little"
            )
        # The full read of an unchanged tenant is a range: it costs nothing.
        full = mask.count(0) == 0
        base: Sequence[int] = range(lo, hi) if full else array("q", itertools.compress(range(lo, hi), mask))
        if bottom is None:
            candidates: Iterator[FindingRecord] | list[FindingRecord] = list(self.records.values())
        else:
            times, records = self._overlay_events()
            found = records[bisect.bisect_left(times, bottom) : bisect.bisect_right(times, top)]
            candidates = list({id(r): r for r in found}.values())
        extra = []
        for record in candidates:
            version = record.version_us(now_us)
            if version is None or version > top or (bottom is not None and version < bottom):
                continue
            changed = record.fields_at(now_us) if allowed else {}
            if all(self.value(record, self.coded[k], changed) in v for k, v in allowed.items()):
                extra.append(record)
        extra.sort(key=lambda r: (0, r.base, "") if isinstance(r.base, int) else (1, 0, r.base["id"]))
        return base, extra


_NEXT_STATUS = ["RESOLVED"] * 6 + ["IN_PROGRESS"] * 2 + ["REJECTED", "OPEN"]


def _random_change(kind: str, rng: random.Random) -> dict[str, Any]:
    if kind == "vulnerability_findings":
        status = rng.choice(_NEXT_STATUS)
        fields: dict[str, Any] = {"status": status}
        if status == "RESOLVED":
            fields["resolutionReason"] = rng.choice(["Package upgraded", "Asset deleted"])
        return fields
    if kind == "configuration_findings":
        if rng.random() < 0.5:
            return {"result": "PASS", "status": "RESOLVED"}  # fixed
        return rng.choice(
            [
                {"result": "FAIL", "status": "OPEN"},
                {"status": "IN_PROGRESS"},
                {"severity": rng.choice(CVSS_SEVERITIES)},
            ]
        )
    return {"severity": rng.choice(DETECTION_SEVERITIES)}


class Selection(Sequence[dict[str, Any]]):
    """A query's matches, served in a stable order that is deliberately not time order (a fixed
    stride through them): clients must not rely on the API's order."""

    def __init__(self, store: FindingStore, base: Sequence[int], extra: list[FindingRecord], now_us: int):
        self.store, self.base, self.extra, self.now_us = store, base, extra, now_us
        self.total = len(base) + len(extra)
        stride = max(1, round(self.total * 0.618034)) | 1
        while self.total > 1 and math.gcd(stride, self.total) != 1:
            stride += 2
        self.stride, self.offset = stride, self.total // 3

    def __len__(self) -> int:
        return self.total

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...
    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.total))]
        if not 0 <= index < self.total:
            raise IndexError(index)
        position = (index * self.stride + self.offset) % self.total
        if position < len(self.base):
            return self.store.base_node(self.base[position])
        node = self.store.node(self.extra[position - len(self.base)], self.now_us)
        assert node is not None  # selected because visible at now_us
        return node


class _BaseTimes(Sequence[int]):
    def __init__(self, store: FindingStore) -> None:
        self.store = store

    def __len__(self) -> int:
        return self.store.count

    @overload
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> list[int]: ...
    def __getitem__(self, index: int | slice) -> int | list[int]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return self.store.base_us(index)


class _Ids(Sequence[str]):
    """Every id of a store (generated ones made when read), including findings not yet visible
    or deleted."""

    def __init__(self, store: FindingStore) -> None:
        self.store = store

    def __len__(self) -> int:
        return self.store.count + len(self.store.added)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        if index < self.store.count:
            return self.store.id_of(index)
        return self.store.added[index - self.store.count]

    def __contains__(self, value: object) -> bool:
        return isinstance(value, str) and (
            self.store.index_of(value) is not None or value in self.store.records
        )
