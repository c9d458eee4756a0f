"""What a page of a data type carries once its nodes are placed by time: the records every layer passes on."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np


@dataclass(frozen=True)
class Nodes:
    """Some nodes of one window, each as the bytes the API sent, with its time parsed once.

    ``micros`` is each node's time field in microseconds since the epoch, ``readable`` whether it
    had one. ``rows`` are the nodes as the client decoded them (its data type's structs of the
    fields its columns read), so that nobody decodes them again; None if they weren't. Iterating
    decodes the nodes into Python objects (for tests and debugging; the pipeline reads ``raw`` in
    bulk).
    """

    raw: list[msgspec.Raw]
    micros: np.ndarray
    readable: np.ndarray
    rows: list[Any] | None = None

    def __len__(self) -> int:
        return len(self.raw)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (msgspec.json.decode(node) for node in self.raw)

    def take(self, indices: np.ndarray) -> Nodes:
        at = indices.tolist()
        rows = None if self.rows is None else [self.rows[i] for i in at]
        return Nodes([self.raw[i] for i in at], self.micros[indices], self.readable[indices], rows)
