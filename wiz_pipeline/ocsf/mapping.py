"""Raw Wiz nodes -> one Arrow table per OCSF class, and rows back to OCSF JSON objects.

Each node is decoded once (msgspec), mapped to a plain dict in its class's shape and the rows become
a table with ``pa.Table.from_pylist`` against the class's schema: no pydantic at map time (that is
``validate``'s job, off the hot path).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import msgspec
import pyarrow as pa

from wiz_pipeline.core.times import EPOCH
from wiz_pipeline.ocsf import audit, common, findings
from wiz_pipeline.ocsf.classes import SOURCES
from wiz_pipeline.ocsf.columns import arrow_schema

_decode = msgspec.json.Decoder().decode
_MILLISECOND = timedelta(milliseconds=1)

Mapper = Callable[[dict[str, Any], str, int], dict[str, Any]]
_FINDING_MAPPERS: dict[str, tuple[str, Mapper]] = {
    "issues": ("detection_finding", findings.map_issue),
    "detections": ("detection_finding", findings.map_detection),
    "vulnerability_findings": ("vulnerability_finding", findings.map_vulnerability),
    "configuration_findings": ("compliance_finding", findings.map_configuration),
}


def _window_ms(window_start: datetime) -> int:
    if window_start.tzinfo is None:
        raise ValueError(f"naive window_start {window_start!r}: pass a timezone-aware UTC time")
    return (window_start - EPOCH) // _MILLISECOND


def _node(data_type: str, index: int, raw: Any) -> tuple[dict[str, Any], str]:
    data = raw if isinstance(raw, bytes) else bytes(raw)
    try:
        node = _decode(data)
        text = data.decode("utf-8")
    except (msgspec.DecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{data_type} node {index} is not JSON ({error}): {data[:80]!r}") from None
    if not isinstance(node, dict):
        raise ValueError(f"{data_type} node {index} is not a JSON object: {data[:80]!r}")
    return node, text


# (class name, the node's index in ``raw``, what went wrong) for each node the mapping could not
# take as it is: see map_events.
Failures = list[tuple[str, int, str]]


def map_events(
    data_type: str, raw: Iterable[bytes], window_start: datetime, failures: Failures | None = None
) -> dict[str, list[dict[str, Any]]]:
    """The events of ``map_records`` as plain dicts, before they become tables."""
    if data_type not in SOURCES:
        raise KeyError(f"no OCSF mapping for data type {data_type!r}: one of {', '.join(SOURCES)}")
    window_ms = _window_ms(window_start)
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in SOURCES[data_type]}
    for index, item in enumerate(raw):
        node, text = _node(data_type, index, item)
        try:
            if data_type == "audit_logs":
                class_name, event = audit.map_audit(node, text, window_ms)
            else:
                class_name, mapper = _FINDING_MAPPERS[data_type]
                event = mapper(node, text, window_ms)
        except Exception as error:
            # A node of a shape the mapping didn't foresee still gets its row (its class, its id, the
            # window's time, raw_data), and the failure is reported: the view keeps one row per
            # record, and the window's check names the node instead of the window never being
            # written.
            class_name = _fallback_class(data_type, node)
            event = _fallback(class_name, data_type, node, text, window_ms, error)
            if failures is not None:
                what = f"{event['metadata'].get('uid')}: {event['unmapped']['mapping_error']}"
                failures.append((class_name, index, what))
        rows[class_name].append(event)
    return rows


def _fallback_class(data_type: str, node: dict[str, Any]) -> str:
    if data_type == "audit_logs":
        return "authentication" if audit.is_login(node) else "api_activity"
    return _FINDING_MAPPERS[data_type][0]


def _fallback(
    class_name: str, data_type: str, node: dict[str, Any], text: str, window_ms: int, error: Exception
) -> dict[str, Any]:
    uid = node.get("id")
    event = common.event(
        common.CLASSIFICATIONS[class_name],
        99,
        (0, None),
        window_ms,
        uid if isinstance(uid, str) else None,
        data_type,
        None,
        text,
    )
    event["unmapped"] = {"mapping_error": f"{type(error).__name__}: {error}"[:500]}
    return event


def map_records(
    data_type: str, raw: Iterable[bytes], window_start: datetime, failures: Failures | None = None
) -> dict[str, pa.Table]:
    """One table per class ``data_type`` feeds (every one, maybe empty), each node one row of one.

    ``raw`` are the nodes' JSON bytes as received; ``window_start`` (aware) the start of the window
    they were collected in, which tells a new finding (Create) from a changed one. A node that isn't
    a JSON object raises ValueError naming it. A node the mapping fails on still has its row, with
    only what every event has and ``unmapped.mapping_error``; each such node is added to ``failures``.
    """
    events = map_events(data_type, raw, window_start, failures)
    return {name: pa.Table.from_pylist(rows, schema=arrow_schema(name)) for name, rows in events.items()}


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def to_events(table: pa.Table) -> list[dict[str, Any]]:
    """The rows as OCSF JSON objects: nulls dropped, ``map`` columns as dicts."""
    maps = [f.name for f in table.schema if pa.types.is_map(f.type)]
    events = []
    for row in table.to_pylist():
        for name in maps:
            if row.get(name) is not None:
                row[name] = dict(row[name])
        events.append(_clean(row))
    return events
