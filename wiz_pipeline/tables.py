"""The Parquet columns of each data type, and how a Wiz node becomes a row.

Every field in the shared API notes gets a typed snake_case column: times as UTC timestamps, nested
objects flattened where they hold scalars, and free-form values (action parameters, tags, projects,
tickets, notes) kept as JSON text. The ``raw`` column holds the whole node as received, so no field
the API adds later is lost. Values of an unexpected type never fail a window: a timestamp that does
not parse becomes null (``raw`` still has it), and a non-text value in a text column is kept as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from wiz_pipeline.wiz.times import parse_time

TIMESTAMP = pa.timestamp("us", tz="UTC")


def _dig(node: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _json(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return _json(value)


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    path: tuple[str, ...]  # where the value is in the node; several alternatives are tried in order
    alternatives: tuple[tuple[str, ...], ...] = ()
    convert: Callable[[Any], Any] = _text
    doc: str = ""

    def value(self, node: dict[str, Any]) -> Any:
        for path in (self.path, *self.alternatives):
            found = _dig(node, path)
            if found is not None:
                return self.convert(found)
        return None


def text(name: str, *path: str, doc: str = "", alternatives: tuple[tuple[str, ...], ...] = ()) -> Column:
    return Column(name, pa.string(), path, alternatives, _text, doc)


def when(name: str, *path: str, doc: str = "") -> Column:
    return Column(name, TIMESTAMP, path, (), parse_time, doc)


def as_json(name: str, *path: str, doc: str = "") -> Column:
    return Column(name, pa.string(), path, (), _json, doc)


AUDIT_LOG_COLUMNS = (
    text("id", "id"),
    when("timestamp", "timestamp", doc="places the entry in its window"),
    Column(
        "action",
        pa.string(),
        ("action",),
        (),
        lambda v: _text(v).strip() if isinstance(v, str) else _text(v),
        "surrounding spaces removed (Wiz pads some; `raw` keeps them)",
    ),
    text("status", "status"),
    text("request_id", "requestId"),
    text("source_ip", "sourceIP"),
    text("user_agent", "userAgent"),
    text("user_id", "user", "id"),
    text("user_name", "user", "name"),
    text("service_account_id", "serviceAccount", "id"),
    text("service_account_name", "serviceAccount", "name"),
    as_json("action_parameters", "actionParameters", doc="JSON text"),
)

ISSUE_COLUMNS = (
    text("id", "id"),
    when("status_changed_at", "statusChangedAt", doc="places the issue in its window"),
    text("status", "status"),
    text("severity", "severity"),
    text("type", "type"),
    when("created_at", "createdAt"),
    when("updated_at", "updatedAt"),
    when("due_at", "dueAt"),
    when("resolved_at", "resolvedAt"),
    text(
        "source_rule_type",
        "sourceRule",
        "__typename",
        doc="Control, CloudEventRule or CloudConfigurationRule",
    ),
    text("source_rule_id", "sourceRule", "id"),
    text("source_rule_name", "sourceRule", "name"),
    text(
        "source_rule_description",
        "sourceRule",
        "controlDescription",
        alternatives=(
            ("sourceRule", "cloudEventRuleDescription"),
            ("sourceRule", "cloudConfigurationRuleDescription"),
        ),
        doc="whichever kind of rule it is",
    ),
    text(
        "remediation",
        "sourceRule",
        "resolutionRecommendation",
        alternatives=(("sourceRule", "remediationInstructions"),),
        doc="a control's resolution recommendation or a configuration rule's remediation instructions",
    ),
    text("source_rule_service_type", "sourceRule", "serviceType"),
    text("source_rule_source_type", "sourceRule", "sourceType"),
    text("source_rule_event_type", "sourceRule", "type", doc="a cloud event rule's type"),
    as_json("security_sub_categories", "sourceRule", "securitySubCategories", doc="JSON text"),
    text("entity_id", "entitySnapshot", "id"),
    text("entity_type", "entitySnapshot", "type"),
    text("entity_native_type", "entitySnapshot", "nativeType"),
    text("entity_name", "entitySnapshot", "name"),
    text("entity_status", "entitySnapshot", "status"),
    text("entity_cloud_platform", "entitySnapshot", "cloudPlatform"),
    text("entity_cloud_provider_url", "entitySnapshot", "cloudProviderURL"),
    text("entity_provider_id", "entitySnapshot", "providerId"),
    text("entity_region", "entitySnapshot", "region"),
    text("entity_resource_group_external_id", "entitySnapshot", "resourceGroupExternalId"),
    text("entity_subscription_external_id", "entitySnapshot", "subscriptionExternalId"),
    text("entity_subscription_name", "entitySnapshot", "subscriptionName"),
    as_json("entity_subscription_tags", "entitySnapshot", "subscriptionTags", doc="JSON text"),
    as_json("entity_tags", "entitySnapshot", "tags", doc="JSON text"),
    text("entity_external_id", "entitySnapshot", "externalId"),
    as_json("projects", "projects", doc="JSON text"),
    as_json("service_tickets", "serviceTickets", doc="JSON text"),
    as_json("notes", "notes", doc="JSON text"),
)

RAW = Column("raw", pa.string(), (), doc="the whole node as received, JSON")


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.type) for c in (*self.columns, RAW)])

    def rows_to_batch(self, nodes: list[dict[str, Any]]) -> pa.RecordBatch:
        arrays = [pa.array([c.value(n) for n in nodes], type=c.type) for c in self.columns]
        raw = pa.array([json.dumps(n, ensure_ascii=False, separators=(",", ":")) for n in nodes], pa.string())
        return pa.RecordBatch.from_arrays([*arrays, raw], schema=self.schema)


TABLES = {"audit_logs": Table("audit_logs", AUDIT_LOG_COLUMNS), "issues": Table("issues", ISSUE_COLUMNS)}
