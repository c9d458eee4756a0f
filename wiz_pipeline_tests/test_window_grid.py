"""The window grid: indices, boundaries and keys worked out from the first window and the interval."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from wiz_pipeline.core.windows import KEY_FORMAT, WindowGrid, floor_to_window

SEED = datetime(2025, 9, 12, 21, 0, 9, tzinfo=UTC)  # inside the first window, not on its boundary
FIRST = floor_to_window(SEED, 1800)  # 21:00:00
GRID = WindowGrid(FIRST, 1800)
US = timedelta(microseconds=1)


def test_window_i_starts_i_intervals_after_the_first_and_is_named_by_its_start():
    assert GRID.step == timedelta(minutes=30)
    assert GRID.start_of(0) == FIRST
    assert GRID.start_of(3) == datetime(2025, 9, 12, 22, 30, tzinfo=UTC)
    assert GRID.start_of(-1) == datetime(2025, 9, 12, 20, 30, tzinfo=UTC)
    assert GRID.key_of(0) == "2025-09-12-21:00"
    assert GRID.key_of(6) == "2025-09-13-00:00"


def test_index_of_floors_and_a_boundary_belongs_to_the_window_it_starts():
    assert GRID.index_of(FIRST) == 0
    assert GRID.index_of(SEED) == 0  # a seed inside the first window
    assert GRID.index_of(FIRST + GRID.step - US) == 0
    assert GRID.index_of(FIRST + GRID.step) == 1
    assert GRID.index_of(FIRST - US) == -1  # before the first window
    assert GRID.index_of(FIRST - GRID.step) == -1
    assert GRID.index_of(FIRST - GRID.step - US) == -2


def test_count_until_counts_the_windows_ended_and_never_goes_below_zero():
    assert GRID.count_until(FIRST - timedelta(days=1)) == 0  # before the first window
    assert GRID.count_until(FIRST) == 0
    assert GRID.count_until(SEED) == 0  # the seed's window has not ended
    assert GRID.count_until(FIRST + GRID.step - US) == 0
    assert GRID.count_until(FIRST + GRID.step) == 1  # exactly on a boundary: that window has ended
    assert GRID.count_until(FIRST + 2 * GRID.step + timedelta(seconds=1)) == 2


def test_overlapping_is_every_window_meeting_a_half_open_range():
    at = GRID.start_of
    assert GRID.overlapping(at(2), at(4)) == range(2, 4)  # on boundaries: the end's window is out
    assert GRID.overlapping(at(2) + US, at(4) - US) == range(2, 4)
    assert GRID.overlapping(at(2) - US, at(4) + US) == range(1, 5)
    assert GRID.overlapping(at(2), at(2) + US) == range(2, 3)
    assert len(GRID.overlapping(at(2), at(2))) == 0
    assert GRID.overlapping(FIRST - timedelta(days=1), at(1)) == range(0, 1)  # none before the first
    assert GRID.overlapping(SEED, SEED + US) == range(0, 1)
    assert len(GRID.overlapping(FIRST - timedelta(days=1), FIRST)) == 0  # wholly before the first
    assert len(GRID.overlapping(FIRST - timedelta(days=1), FIRST - US)) == 0


@pytest.mark.parametrize("seconds", [60, 300, 900, 1800, 3600, 7200, 86400])
def test_starts_and_keys_are_start_of_and_key_of_across_days_months_and_years(seconds):
    grid = WindowGrid(floor_to_window(datetime(2024, 12, 30, 23, 7, tzinfo=UTC), seconds), seconds)
    indices = range(0, 3 * 86400 // seconds + 5)  # into the next year, and a day boundary or more
    assert grid.starts(indices) == [grid.start_of(i) for i in indices]
    assert grid.keys(indices) == [grid.key_of(i) for i in indices]
    assert grid.keys(indices) == [grid.start_of(i).strftime(KEY_FORMAT) for i in indices]
    stepped = range(7, len(indices), 13)
    assert grid.keys(stepped) == [grid.key_of(i) for i in stepped]
    assert grid.keys(range(5, 5)) == [] == grid.starts(range(5, 5))


def test_a_year_of_one_minute_windows_has_one_key_per_window():
    grid = WindowGrid(datetime(2024, 2, 28, tzinfo=UTC), 60)  # through a leap day
    keys = grid.keys(range(grid.count_until(grid.first + timedelta(days=366))))
    assert len(keys) == len(set(keys)) == 366 * 1440
    assert keys[1440] == "2024-02-29-00:00" and keys[-1] == "2025-02-27-23:59"
