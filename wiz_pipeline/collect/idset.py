"""The ids a window has seen, in 16 bytes each, so that a window of millions of records stays small."""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterable

import numpy as np

Fingerprint = tuple[int, int]


def fingerprints(ids: Iterable[str]) -> list[Fingerprint]:
    """Two 64-bit hashes of each id (Python's keyed string hash, of the id and of the id behind a
    prefix): distinct ids share both with probability 2^-128 a pair, ~10^-26 for ten million ids."""
    ids = list(ids)
    return list(zip(map(hash, ids), map(hash, map("\x1f".__add__, ids)), strict=True))


class IdSet:
    """A set of fingerprints: sorted numpy arrays plus a small Python set of recent additions.

    A set of Python strings costs ~130 bytes an id (the string, its slot); this costs 16, plus the
    recent ones until ``MERGE_AT`` of them are merged into the arrays (in O(n), by insertion).
    """

    MERGE_AT = 1 << 16

    def __init__(self) -> None:
        self._first = np.empty(0, np.int64)  # sorted
        self._second = np.empty(0, np.int64)  # the second hash of each, in the same order
        self._recent: set[Fingerprint] = set()

    def __len__(self) -> int:
        return len(self._first) + len(self._recent)

    def __contains__(self, fp: Fingerprint) -> bool:
        return fp in self._recent or self._in_arrays(fp)

    def isdisjoint(self, fps: list[Fingerprint]) -> bool:
        if not self._recent.isdisjoint(fps):
            return False
        if not len(self._first) or not fps:
            return True
        first = np.fromiter(map(operator.itemgetter(0), fps), np.int64, len(fps))
        at = np.searchsorted(self._first, first).clip(max=len(self._first) - 1)
        hits = np.flatnonzero(self._first[at] == first)
        return not any(self._in_arrays(fps[i]) for i in hits.tolist())

    def add(self, fp: Fingerprint) -> None:
        if self._in_arrays(fp):  # held once, so that len() and == stay true
            return
        self._recent.add(fp)
        if len(self._recent) >= self.MERGE_AT:
            self._merge()

    def update(self, fps: Iterable[Fingerprint]) -> None:
        """Add fingerprints known not to be in the arrays yet (``isdisjoint`` said so)."""
        self._recent.update(fps)
        if len(self._recent) >= self.MERGE_AT:
            self._merge()

    def copy(self) -> IdSet:
        copied = IdSet()
        copied._first, copied._second, copied._recent = self._first, self._second, set(self._recent)
        return copied  # the arrays are replaced, never changed in place, so they can be shared

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IdSet):
            return NotImplemented
        return len(self) == len(other) and self._all() == other._all()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def _all(self) -> set[Fingerprint]:
        return set(zip(self._first.tolist(), self._second.tolist(), strict=True)) | self._recent

    def _in_arrays(self, fp: Fingerprint) -> bool:
        first, second = fp
        i = int(np.searchsorted(self._first, first))
        while i < len(self._first) and self._first[i] == first:
            if self._second[i] == second:
                return True
            i += 1
        return False

    def _merge(self) -> None:
        flat = itertools.chain.from_iterable(self._recent)
        recent = np.fromiter(flat, np.int64, 2 * len(self._recent)).reshape(-1, 2)
        recent = recent[np.argsort(recent[:, 0], kind="stable")]
        at = np.searchsorted(self._first, recent[:, 0])
        self._first = np.insert(self._first, at, recent[:, 0])
        self._second = np.insert(self._second, at, recent[:, 1])
        self._recent = set()
