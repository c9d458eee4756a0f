"""What changed between two builds of a current-state table, from a few bytes per row of each.

Per row a build keeps its id's fingerprint, whether it is closed (resolved or rejected) and a hash
of its node (``raw``, which any edit changes): 25 bytes, whatever the row's size.

Dagster-free, like ``collect``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from wiz_pipeline.collect.spool import fingerprints_of

# Issues and findings share their statuses: OPEN, IN_PROGRESS, RESOLVED, REJECTED.
CLOSED = frozenset({"RESOLVED", "REJECTED"})


@dataclass
class Changes:
    """What changed since the previous build (``previous_rows`` None: there was none)."""

    new: int = 0
    resolved: int = 0  # open (or in progress) then, resolved or rejected now
    reopened: int = 0  # resolved or rejected then, open or in progress now
    edited: int = 0  # any other change of the node: notes, tickets, severity, open -> in progress...
    gone: int = 0  # in the previous build, no longer returned by the API
    unchanged: int = 0
    previous_rows: int | None = None

    def as_dict(self) -> dict[str, int | None]:
        return dict(self.__dict__)

    def markdown(self, noun: str = "issues") -> str:
        if self.previous_rows is None:
            return f"First build: {self.new} {noun}, nothing to compare with."
        rows = [
            ("new", self.new),
            ("resolved", self.resolved),
            ("reopened", self.reopened),
            ("other edits", self.edited),
            ("gone", self.gone),
            ("unchanged", self.unchanged),
        ]
        lines = [
            f"Since the previous build ({self.previous_rows} {noun}):",
            "",
            f"| change | {noun} |",
            "|---|---:|",
        ]
        return "\n".join(lines + [f"| {name} | {count} |" for name, count in rows])


@dataclass
class Keys:
    """Per row of a build: its id's fingerprint (two int64 columns), whether it is resolved or
    rejected, and a hash of its node (``raw``), which any edit changes."""

    fp: np.ndarray = field(default_factory=lambda: np.empty((0, 2), np.int64))
    closed: np.ndarray = field(default_factory=lambda: np.empty(0, bool))
    raw_hash: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))


class KeysBuilder:
    """``Keys`` gathered a batch at a time."""

    def __init__(self, status_column: str) -> None:
        self.status_column = status_column
        self._fp: list[np.ndarray] = []
        self._closed: list[np.ndarray] = []
        self._hashes: list[np.ndarray] = []

    def add(self, batch: pa.RecordBatch) -> None:
        self._fp.append(fingerprints_of(batch.column("id").to_pylist()))
        statuses = batch.column(self.status_column).to_pylist()
        self._closed.append(np.array([s in CLOSED for s in statuses], bool))
        self._hashes.append(np.array([hash(r) for r in batch.column("raw").to_pylist()], np.int64))

    def keys(self) -> Keys:
        if not self._fp:
            return Keys()
        return Keys(np.concatenate(self._fp), np.concatenate(self._closed), np.concatenate(self._hashes))


def compare(previous: Keys | None, current: Keys) -> Changes:
    if previous is None:
        return Changes(new=len(current.fp))
    i, j = _pairs(previous.fp, current.fp)
    was, now = previous.closed[i], current.closed[j]
    resolved = int(np.count_nonzero(~was & now))
    reopened = int(np.count_nonzero(was & ~now))
    differs = previous.raw_hash[i] != current.raw_hash[j]
    edited = int(np.count_nonzero(differs & (was == now)))
    return Changes(
        new=len(current.fp) - len(i),
        resolved=resolved,
        reopened=reopened,
        edited=edited,
        gone=len(previous.fp) - len(i),
        unchanged=len(i) - resolved - reopened - edited,
        previous_rows=len(previous.fp),
    )


def _pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For fingerprints ``a`` and ``b`` (each without repeats), the indices ``i, j`` with a[i] == b[j]."""
    keys = np.concatenate([a, b]).reshape(-1, 2)
    side = np.concatenate([np.zeros(len(a), np.int8), np.ones(len(b), np.int8)])
    index = np.concatenate([np.arange(len(a)), np.arange(len(b))])
    order = np.lexsort((side, keys[:, 1], keys[:, 0]))
    k, s, i = keys[order], side[order], index[order]
    same = (k[1:] == k[:-1]).all(axis=1) & (s[:-1] == 0) & (s[1:] == 1)
    at = np.flatnonzero(same)
    return i[at], i[at + 1]
