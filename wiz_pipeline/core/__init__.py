"""The neutral ground every layer stands on: times, collection windows, the records a page carries
(ids, times, raw bytes) and the base errors. Imports nothing of the project's and no heavy library
(no Dagster, httpx or Arrow), so the client, the simulator and the writers can all use it."""

from wiz_pipeline.core.errors import WizConfigError, WizError
from wiz_pipeline.core.records import Nodes
from wiz_pipeline.core.times import format_time, from_micros, parse_time, to_micros
from wiz_pipeline.core.urls import check_url, is_loopback_host
from wiz_pipeline.core.windows import KEY_FORMAT, Window, WindowGrid, floor_to_window

__all__ = [
    "KEY_FORMAT",
    "Nodes",
    "Window",
    "WindowGrid",
    "WizConfigError",
    "WizError",
    "check_url",
    "floor_to_window",
    "format_time",
    "from_micros",
    "is_loopback_host",
    "parse_time",
    "to_micros",
]
