"""Landing rows: Parquet tables from a data type's columns (``tables``), a window's file and manifest
written whole or not at all (``files``), the checks of what was written (``quality``), and local or S3
outputs (``outputs``). Knows rows, not HTTP: imports ``data_types`` and ``core``; no client, no Dagster."""

from wiz_pipeline.landing.files import FIRST_READ, WindowWriter, WrittenFile, manifest_key, window_key
from wiz_pipeline.landing.outputs import Output, open_output, parse_output_uri
from wiz_pipeline.landing.quality import CHECKS, Outcome, WindowQuality
from wiz_pipeline.landing.tables import Table, table_for

__all__ = [
    "CHECKS",
    "FIRST_READ",
    "Outcome",
    "Output",
    "Table",
    "WindowQuality",
    "WindowWriter",
    "WrittenFile",
    "manifest_key",
    "open_output",
    "parse_output_uri",
    "table_for",
    "window_key",
]
