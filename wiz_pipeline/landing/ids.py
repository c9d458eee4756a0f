"""A window's ids as written, gathered once for the two that need them: the checks (rows without an
id, ids written twice) and a re-read's comparison with the file it replaces (late and gone records).

While the window is written its ids are held as the batches' own id arrays (no copy); once it is
finished (``seal``) they are reduced to the counts, so that a run's finished windows hold nothing
that grows with their rows however many windows the run covers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wiz_pipeline.landing.arrays import joined


@dataclass(frozen=True)
class IdFigures:
    rows: int
    without_id: int  # null or empty
    repeated: int  # rows whose id an earlier row has
    # Against the file in place, if compared: ids only this window has, and only that file has.
    late: int | None = None
    gone: int | None = None


class WindowIds:
    def __init__(self) -> None:
        self._chunks: list[pa.Array] = []
        self._sealed: IdFigures | None = None

    def add(self, ids: pa.Array) -> None:
        if self._sealed is not None:
            raise RuntimeError("ids added to a sealed window; reset() it first")
        self._chunks.append(ids)

    def reset(self) -> None:
        self._chunks, self._sealed = [], None

    def figures(self, previous: pa.Array | pa.ChunkedArray | None = None) -> IdFigures:
        """The counts; with ``previous`` (the ids of the file in place), also the late and gone
        records against it. Once sealed, what the seal computed."""
        if self._sealed is not None:
            return self._sealed
        ids = pa.chunked_array(self._chunks, pa.string()).combine_chunks() if self._chunks else joined([])
        new = pc.unique(pc.drop_null(ids))
        figures = IdFigures(len(ids), _without_id(ids), len(ids) - ids.null_count - len(new))
        if previous is None:
            return figures
        old = pc.unique(pc.drop_null(previous.cast(pa.string())))
        late, gone = len(new) - _count_in(new, old), len(old) - _count_in(old, new)
        return IdFigures(figures.rows, figures.without_id, figures.repeated, late, gone)

    def seal(self, previous: pa.Array | pa.ChunkedArray | None = None) -> IdFigures:
        """Reduce the ids to their figures (``figures``), dropping the ids themselves."""
        self._sealed = self.figures(previous)
        self._chunks = []
        return self._sealed


def _without_id(ids: pa.Array) -> int:
    """Rows whose id is null or empty, read from the array's offsets."""
    if not len(ids):
        return 0
    validity, offsets = ids.buffers()[:2]
    lengths = np.diff(np.frombuffer(offsets, np.int32, len(ids) + 1, ids.offset * 4))
    empty = lengths == 0
    if validity is not None:
        bits = np.unpackbits(np.frombuffer(validity, np.uint8), bitorder="little")
        empty &= bits[ids.offset : ids.offset + len(ids)].astype(bool)
    return ids.null_count + int(np.count_nonzero(empty))


def _count_in(values: pa.Array, others: pa.Array) -> int:
    return int(pc.sum(pc.is_in(values, value_set=others)).as_py() or 0)
