"""Wiz records as OCSF 1.5.0 events (docs: /work/shared/ocsf.md): pure functions, no I/O.

``map_records`` turns one window's raw nodes of a data type into one Arrow table per OCSF class it
feeds (``SOURCES``), with exactly ``arrow_schema(class)``: nested struct and list columns named as
the OCSF attributes, as AWS Security Lake, Athena and Spark read them. ``to_events`` turns rows back
into OCSF JSON objects; ``validate.invalid_rows`` checks them against the bundled schema.

Imports ``core`` and the OCSF schema only (same layer as ``landing``).
"""

from __future__ import annotations

from wiz_pipeline.ocsf.classes import CLASSES, SOURCES, OcsfClass
from wiz_pipeline.ocsf.columns import arrow_schema
from wiz_pipeline.ocsf.mapping import map_records, to_events
from wiz_pipeline.ocsf.schema import VERSION as OCSF_VERSION

__all__ = ["CLASSES", "OCSF_VERSION", "SOURCES", "OcsfClass", "arrow_schema", "map_records", "to_events"]
