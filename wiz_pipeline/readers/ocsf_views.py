"""DuckDB views over the OCSF datasets (WIZ_OCSF): ``ocsf_<class>`` per class, and ``ocsf_findings``.

Found under WIZ_OCSF_URI (default ``{WIZ_OUTPUT_URI}/ocsf``) in either layout: ``<class>/source=*/
date=*/`` (hive columns ``source`` and ``date``) or Security Lake's ``ext/wiz_<class>/.../eventDay=*/``
(``region``, ``accountId``, ``eventDay``). ``ocsf_findings`` is every finding of the three finding
classes (Detection: issues and detections; Vulnerability; Compliance) in one shape, for questions asked
across them, such as every finding on one resource.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import duckdb

from wiz_pipeline.landing.outputs import parse_output_uri
from wiz_pipeline.ocsf import CLASSES
from wiz_pipeline.ocsf.layout import OcsfLayout, default_uri, table_name

FINDING_CLASSES = ("detection_finding", "vulnerability_finding", "compliance_finding")
# The columns every finding class has, as ocsf_findings shows them.
FINDING_COLUMNS = """
    class_uid, class_name, metadata.log_name AS source, metadata.uid AS uid, time,
    make_timestamp(time * 1000) AS event_time, activity_name, severity_id, severity, status_id, status,
    finding_info.uid AS finding_uid, finding_info.title AS title, resources
"""


# A class's view is named as its Iceberg table is.
view_name = table_name


# The views connect() can make, as its ``datasets`` name them.
DATASETS = tuple(view_name(c) for c in CLASSES)
FINDING_DATASETS = tuple(view_name(c) for c in FINDING_CLASSES)


def ocsf_uri(root: str, uri: str | Path | None = None) -> str:
    """``uri``, else WIZ_OCSF_URI, else ``{root}/ocsf`` (root: the native datasets' WIZ_OUTPUT_URI)."""
    if uri is not None:
        return parse_output_uri("ocsf_uri", str(uri))
    if os.environ.get("WIZ_OCSF_URI"):
        return parse_output_uri("WIZ_OCSF_URI", os.environ["WIZ_OCSF_URI"])
    return default_uri(root)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def register(con: duckdb.DuckDBPyConnection, root: str, datasets: Sequence[str] = DATASETS) -> list[str]:
    """Create a view per OCSF class of ``datasets`` with files under ``root`` (WIZ_OCSF_URI), and
    ``ocsf_findings`` over the finding classes present; the views created."""
    created = []
    for class_name in (c for c in CLASSES if view_name(c) in datasets):
        if root.startswith("s3://"):
            made = _register_s3(con, root, class_name)
        else:
            made = _register_local(con, Path(root), class_name)
        if made:
            created.append(view_name(class_name))
    return add_findings(con, created)


def add_findings(con: duckdb.DuckDBPyConnection, created: list[str]) -> list[str]:
    """``ocsf_findings`` over the finding classes' views among ``created``; the views there now."""
    findings = [view_name(c) for c in FINDING_CLASSES if view_name(c) in created]
    if findings:
        union = " UNION ALL BY NAME ".join(f"SELECT {FINDING_COLUMNS} FROM {v}" for v in findings)
        con.execute(f"CREATE VIEW ocsf_findings AS {union}")
        created = [*created, "ocsf_findings"]
    return created


def _register_local(con: duckdb.DuckDBPyConnection, root: Path, class_name: str) -> bool:
    for layout in (OcsfLayout(), OcsfLayout("security_lake")):
        folder = root / layout.dataset(class_name)
        pattern = "source=*/date=*/*.parquet" if layout.kind == "hive" else "**/eventDay=*/*.parquet"
        if next(folder.glob(pattern), None) is None:
            continue
        types = (
            "{'date': 'DATE'}" if layout.kind == "hive" else "{'eventDay': 'VARCHAR', 'accountId': 'VARCHAR'}"
        )
        # union_by_name: a later release's extra attributes read alongside older files.
        con.execute(
            f"CREATE VIEW {view_name(class_name)} AS SELECT * FROM read_parquet("
            f"{_quote(str(folder / pattern))}, hive_partitioning = true, hive_types = {types}, "
            "union_by_name = true)"
        )
        return True
    return False


def _register_s3(con: duckdb.DuckDBPyConnection, root: str, class_name: str) -> bool:
    import pyarrow.dataset as ds
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    from wiz_pipeline.landing.outputs import S3Output

    fs = PyFileSystem(FSSpecHandler(S3Output(root).fs))
    base = root.removeprefix("s3://")
    for layout in (OcsfLayout(), OcsfLayout("security_lake")):
        try:
            dataset = ds.dataset(
                f"{base}/{layout.dataset(class_name)}", filesystem=fs, format="parquet", partitioning="hive"
            )
        except FileNotFoundError:
            continue
        if dataset.files:
            con.register(view_name(class_name), dataset)
            return True
    return False
