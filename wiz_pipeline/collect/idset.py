"""The ids a window has seen, in 16 bytes each, so that a window of millions of records stays small."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

Fingerprint = tuple[int, int]


def fingerprints(ids: Iterable[str]) -> list[Fingerprint]:
    """Two 64-bit hashes of each id (Python's keyed string hash, of the id and of the id behind a
    prefix): distinct ids share both with probability 2^-128 a pair, ~10^-26 for ten million ids."""
    return list(zip(*fingerprint_columns(list(ids)), strict=True))


def fingerprint_columns(ids: list[str]) -> tuple[list[int], list[int]]:
    """The two hashes of ``fingerprints``, as two lists: no tuple per id on the usual path."""
    return list(map(hash, ids)), list(map(hash, map("\x1f".__add__, ids)))


class IdSet:
    """A set of fingerprints: sorted numpy arrays plus the recent additions in a dict.

    A set of Python strings costs ~130 bytes an id (the string, its slot); this costs 16, plus the
    recent ones until ``MERGE_AT`` of them are merged into the arrays (in O(n), by insertion). The
    recent ones are held first hash to second (a fingerprint whose first hash another one already
    has, a 2^-64 chance, waits in ``_clashes``), so that a page's worth is checked and added with
    set operations on plain integers.
    """

    MERGE_AT = 1 << 16

    def __init__(self) -> None:
        self._first = np.empty(0, np.int64)  # sorted
        self._second = np.empty(0, np.int64)  # the second hash of each, in the same order
        self._recent: dict[int, int] = {}
        self._clashes: set[Fingerprint] = set()

    def __len__(self) -> int:
        return len(self._first) + len(self._recent) + len(self._clashes)

    def __contains__(self, fp: Fingerprint) -> bool:
        return self._recent.get(fp[0]) == fp[1] or fp in self._clashes or self._in_arrays(fp)

    def isdisjoint(self, fps: list[Fingerprint]) -> bool:
        return self.isdisjoint_columns([f for f, _ in fps], [s for _, s in fps])

    def isdisjoint_columns(self, first: list[int], second: list[int]) -> bool:
        """Whether none of the fingerprints ``zip(first, second)`` is held."""
        shared = self._recent.keys() & first
        if (shared or self._clashes) and any(
            fp in self for fp in zip(first, second, strict=True) if fp[0] in shared or self._clashes
        ):
            return False
        if not len(self._first) or not first:
            return True
        wanted = np.fromiter(first, np.int64, len(first))
        at = np.searchsorted(self._first, wanted).clip(max=len(self._first) - 1)
        hits = np.flatnonzero(self._first[at] == wanted)
        return not any(self._in_arrays((first[i], second[i])) for i in hits.tolist())

    def add(self, fp: Fingerprint) -> None:
        if fp in self:  # held once, so that len() and == stay true
            return
        first, second = fp
        if first in self._recent:
            self._clashes.add(fp)
        else:
            self._recent[first] = second
            if len(self._recent) >= self.MERGE_AT:
                self._merge()

    def update(self, fps: Iterable[Fingerprint]) -> None:
        """Add fingerprints known not to be held yet (``isdisjoint`` said so)."""
        for fp in fps:
            self.add(fp)

    def update_columns(self, first: list[int], second: list[int]) -> None:
        """Add fingerprints known not to be held yet and to have distinct first hashes."""
        if not self._recent.keys().isdisjoint(first):  # a first hash held with another second one
            self.update(zip(first, second, strict=True))
            return
        self._recent.update(zip(first, second, strict=True))
        if len(self._recent) >= self.MERGE_AT:
            self._merge()

    def copy(self) -> IdSet:
        copied = IdSet()
        copied._first, copied._second = self._first, self._second
        copied._recent, copied._clashes = dict(self._recent), set(self._clashes)
        return copied  # the arrays are replaced, never changed in place, so they can be shared

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IdSet):
            return NotImplemented
        return len(self) == len(other) and self._all() == other._all()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def _all(self) -> set[Fingerprint]:
        held = set(zip(self._first.tolist(), self._second.tolist(), strict=True))
        return held | set(self._recent.items()) | self._clashes

    def _in_arrays(self, fp: Fingerprint) -> bool:
        first, second = fp
        i = int(np.searchsorted(self._first, first))
        while i < len(self._first) and self._first[i] == first:
            if self._second[i] == second:
                return True
            i += 1
        return False

    def _merge(self) -> None:
        count = len(self._recent)
        first = np.fromiter(self._recent.keys(), np.int64, count)
        second = np.fromiter(self._recent.values(), np.int64, count)
        order = np.argsort(first, kind="stable")
        first, second = first[order], second[order]
        at = np.searchsorted(self._first, first)
        self._first = np.insert(self._first, at, first)
        self._second = np.insert(self._second, at, second)
        self._recent = {}
