"""Collecting: a span of windows fetched from the client and landed as files (``windows``), one window
fetched exactly (``fetch``), windows past the API's result cap split (``split``), and the current state
of a data type (``current``: issues, findings). Imports ``wiz``, ``data_types``, ``landing`` and
``core``; never Dagster."""

from wiz_pipeline.collect.current import CurrentBuild, build_current
from wiz_pipeline.collect.fetch import WindowFetch, WindowStats
from wiz_pipeline.collect.windows import WindowResult, collect_windows, windows_per_query_for

__all__ = [
    "CurrentBuild",
    "WindowFetch",
    "WindowResult",
    "WindowStats",
    "build_current",
    "collect_windows",
    "windows_per_query_for",
]
