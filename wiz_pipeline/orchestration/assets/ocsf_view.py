"""A data type's OCSF view (WIZ_OCSF): the asset wiz/ocsf/<data type>, a second spec of its window asset.

Same partitions as its source and the same step: each window's OCSF files are written from its native
file right after it, before either materialization is recorded (``window_asset``), so a window and
its OCSF rows are collected, rerun and backfilled together, and a window that fails writes neither.
Materializing the view alone (a backfill of wiz/ocsf/<data type> only, e.g. after an upgrade changed
the mapping, or after turning WIZ_OCSF on over windows collected before) rebuilds it from the native
files already written, with no API read.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from wiz_pipeline.collect.ocsf_views import OcsfWindow
from wiz_pipeline.core.times import format_time
from wiz_pipeline.ocsf import CLASSES, OCSF_VERSION, SOURCES
from wiz_pipeline.orchestration.checkpoints import Collection

VALID = "ocsf_valid"
ONE_ROW_PER_RECORD = "ocsf_one_row_per_record"
CHECKS = {
    VALID: "Every OCSF row of the window validates against the OCSF 1.5.0 schema: required attributes, "
    "enum values, types, the schema's at-least-one and just-one constraints, no attribute the class "
    "does not define. A failure is a mapping bug: the rows are written, the run fails.",
    ONE_ROW_PER_RECORD: "The window's OCSF files hold exactly one row per record of its native file.",
}


def ocsf_spec(collection: Collection) -> dg.AssetSpec:
    assert collection.ocsf_key is not None
    layout = collection.ocsf_layout
    classes = SOURCES[collection.data_type]
    where = ", ".join(
        f"{CLASSES[c].caption} ({CLASSES[c].class_uid}) under {{WIZ_OCSF_URI}}/{layout.dataset(c)}/"
        for c in classes
    )
    return dg.AssetSpec(
        collection.ocsf_key,
        group_name="wiz_ocsf",
        deps=[collection.asset_key],
        description=(
            f"The {collection.data_type} windows as OCSF {OCSF_VERSION} events: {where}; one Parquet file "
            "per class and window, nested columns named as OCSF's attributes, raw_data as Wiz sent it. "
            f"Derived from wiz/{collection.data_type}'s files (no second API read) in the same step, "
            "so each window of both is written together; materialize this asset alone to rebuild the "
            "view of windows already collected. Each window's checks validate its rows against the "
            "OCSF schema."
        ),
        kinds={"parquet"},
        metadata={"ocsf_version": OCSF_VERSION, "ocsf_classes": ", ".join(classes), "layout": layout.kind},
    )


def ocsf_check_specs(collection: Collection) -> list[dg.AssetCheckSpec]:
    assert collection.ocsf_key is not None
    return [
        dg.AssetCheckSpec(
            name, asset=collection.ocsf_key, description=description, partitions_def=collection.partitions_def
        )
        for name, description in CHECKS.items()
    ]


def materialization(collection: Collection, written: OcsfWindow, run_id: str) -> dg.AssetMaterialization:
    assert collection.ocsf_key is not None
    rows = {f.class_name: f.rows for f in written.files}
    first = written.files[0]
    return dg.AssetMaterialization(
        asset_key=collection.ocsf_key,
        partition=written.window.key,
        metadata={
            "dagster/row_count": written.rows,
            "summary": dg.MetadataValue.md(
                "| OCSF class | rows | file |\n|---|---:|---|\n"
                + "\n".join(f"| {f.class_name} | {f.rows} | {f.location} |" for f in written.files)
            ),
            "dagster/uri": first.location,
            "rows_by_class": dg.MetadataValue.json(rows),
            "files": dg.MetadataValue.json({f.class_name: f.location for f in written.files}),
            "sha256": dg.MetadataValue.json({f.class_name: f.sha256 for f in written.files}),
            "file_bytes": sum(f.bytes for f in written.files),
            "source_rows": written.source_rows,
            "invalid_rows": written.invalid,
            "ocsf_version": OCSF_VERSION,
            "window_start": format_time(written.window.start),
            "window_end": format_time(written.window.end),
            "run_id": run_id,
            # WIZ_ICEBERG: each class table's snapshot that holds this window's file.
            **(
                {
                    "iceberg_snapshot_ids": dg.MetadataValue.json(
                        {f.class_name: str(f.snapshot_id) for f in written.files}
                    )
                }
                if any(f.snapshot_id is not None for f in written.files)
                else {}
            ),
        },
    )


def check_evaluations(
    collection: Collection, written: OcsfWindow, target: Any
) -> list[tuple[dg.AssetCheckEvaluation, str | None]]:
    """Each check's result, with what a failure means for the run's error (None: passed)."""
    assert collection.ocsf_key is not None
    examples = [m for f in written.files for m in f.examples][:5]
    outcomes = [
        (
            VALID,
            written.invalid == 0,
            f"{written.invalid} of {written.rows} rows do not validate against OCSF {OCSF_VERSION}"
            if written.invalid
            else f"all {written.rows} rows validate against OCSF {OCSF_VERSION}",
            {"invalid_rows": written.invalid, "examples": dg.MetadataValue.json(examples)},
        ),
        (
            ONE_ROW_PER_RECORD,
            written.rows == written.source_rows,
            f"{written.rows} OCSF rows for {written.source_rows} records",
            {"ocsf_rows": written.rows, "source_rows": written.source_rows},
        ),
    ]
    return [
        (
            dg.AssetCheckEvaluation(
                target_materialization_data=target,
                asset_key=collection.ocsf_key,
                check_name=name,
                passed=passed,
                severity=dg.AssetCheckSeverity.ERROR,
                description=text,
                metadata=metadata,
                partition=written.window.key,
            ),
            None if passed else f"{written.window.key}: {name} ({text})",
        )
        for name, passed, text, metadata in outcomes
    ]
