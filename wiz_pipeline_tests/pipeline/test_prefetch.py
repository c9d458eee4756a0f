"""Fetching ahead in a thread: same items, same order, errors where they happened, no stray work."""

from __future__ import annotations

import threading

import pytest

from wiz_pipeline.collect.prefetch import prefetched


def test_items_come_in_order_and_the_producers_error_after_them():
    def produce():
        yield from range(5)
        raise ValueError("page 6 failed")

    got = []
    with pytest.raises(ValueError, match="page 6 failed"):
        for item in prefetched(produce()):
            got.append(item)
    assert got == [0, 1, 2, 3, 4]


def test_a_consumer_that_stops_stops_the_producer_and_closes_its_iterator():
    produced = []
    closed = threading.Event()

    def produce():
        try:
            for i in range(1000):
                produced.append(i)
                yield i
        finally:
            closed.set()

    items = prefetched(produce(), depth=2)
    assert next(items) == 0
    items.close()  # what a failing consumer's `for` does
    assert closed.is_set()  # closed, in the producer's thread, before close() returned
    assert len(produced) <= 4  # the one consumed, two queued, one waiting to be queued
    assert not any(t.name == "wiz-prefetch" and t.is_alive() for t in threading.enumerate())
