"""The gap report's instance side: what the Dagster instance says of a data type's windows, handed to
``readers.ledger``, which compares it with the output."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta

import dagster as dg

from wiz_pipeline.core.windows import KEY_FORMAT
from wiz_pipeline.landing.iceberg import Tables
from wiz_pipeline.landing.outputs import Output
from wiz_pipeline.ocsf import SOURCES
from wiz_pipeline.ocsf.layout import table_name
from wiz_pipeline.orchestration.checkpoints import Collection, failed_and_in_progress, partial_windows
from wiz_pipeline.readers import ledger as report
from wiz_pipeline.readers.ledger import InstanceState, WindowLine


def instance_state(instance: dg.DagsterInstance, collection: Collection) -> InstanceState:
    """A few queries whatever the number of windows (see ``checkpoints``)."""
    first = collection.grid.key_of(0)
    materialized = {k for k in instance.get_materialized_partitions(collection.asset_key) if k >= first}
    failed, in_progress = failed_and_in_progress(instance, collection, len(materialized))
    against = {
        k: "instance: collected from a later seed"
        for k in partial_windows(instance, collection, materialized)
    }
    against |= {k: "instance: latest run failed" for k in failed}
    # A window being rewritten still has its previous file; one being written for the first time hasn't.
    against |= {k: "instance: a run is writing it" for k in in_progress - materialized}
    return InstanceState(materialized, against)


def window_range(
    collection: Collection,
    now: datetime,
    lag: timedelta,
    start: datetime | None = None,
    end: datetime | None = None,
) -> range:
    """``readers.ledger.window_range`` over a collection's windows."""
    return report.window_range(collection.grid, now, lag, start, end)


def ledger(
    instance: dg.DagsterInstance,
    output: Output,
    collection: Collection,
    *,
    now: datetime,
    lag: timedelta,
    start: datetime | None = None,
    end: datetime | None = None,
    gaps_only: bool = False,
    name: str | None = None,
    files: report.FileNames | None = None,
    manifest_output: Output | None = None,
    tables: report.TableFiles | None = None,
) -> Iterator[WindowLine]:
    """Each closed window of the range, oldest first (see ``readers.ledger``; ``name``, ``files``,
    ``manifest_output`` and ``tables`` as there, for another asset of the collection's windows)."""
    wanted = window_range(collection, now, lag, start, end)
    state = instance_state(instance, collection) if wanted else InstanceState(set(), {})
    return report.ledger(
        state,
        output,
        name or collection.data_type,
        collection.grid,
        now=now,
        lag=lag,
        start=start,
        end=end,
        gaps_only=gaps_only,
        files=files,
        manifest_output=manifest_output,
        tables=tables,
    )


def ocsf_ledger(
    instance: dg.DagsterInstance,
    output: Output,
    collection: Collection,
    *,
    now: datetime,
    lag: timedelta,
    start: datetime | None = None,
    end: datetime | None = None,
    gaps_only: bool = False,
    manifest_output: Output | None = None,
    tables: Tables | None = None,
) -> Iterator[WindowLine]:
    """The same report for a data type's OCSF view (``output``: WIZ_OCSF_URI; ``manifest_output``:
    WIZ_OUTPUT_URI, where the Security Lake layout keeps the manifests): a window is written when
    wiz/ocsf/<data type> is materialized for it and each class's file and manifest are in place."""
    assert collection.ocsf_key is not None
    layout, classes = collection.ocsf_layout, SOURCES[collection.data_type]

    def files(windows: list[datetime]) -> list[tuple[str, list[tuple[str, str]]]]:
        named = []
        for w in windows:
            keys = [layout.file_key(c, collection.data_type, w) for c in classes]
            named.append((w.strftime(KEY_FORMAT), [(k, layout.manifest_key(k)) for k in keys]))
        return named

    return ledger(
        instance,
        output,
        replace(collection, asset_key=collection.ocsf_key),
        now=now,
        lag=lag,
        start=start,
        end=end,
        gaps_only=gaps_only,
        name=f"ocsf/{collection.data_type}",
        files=files,
        manifest_output=None if layout.manifests_beside else manifest_output,
        tables=None
        if tables is None or not layout.manifests_beside
        else [tables.window_files(table_name(c), collection.data_type) for c in classes],
    )
