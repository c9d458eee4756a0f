"""Audit log entries: logins, configuration changes and API calls, placed by ``timestamp``."""

from __future__ import annotations

from wiz_pipeline.data_types import DataType
from wiz_pipeline.data_types.columns import Column, Kind, as_json, text, when

QUERY = """
query AuditLogTable($first: Int, $after: String, $filterBy: AuditLogEntryFilters) {
  auditLogEntries(first: $first, after: $after, filterBy: $filterBy) {
    nodes {
      id action requestId status timestamp actionParameters userAgent sourceIP
      serviceAccount { id name }
      user { id name }
    }
    pageInfo { hasNextPage endCursor }
  }
}
"""

COLUMNS = (
    text("id", "id"),
    when("timestamp", "timestamp", doc="places the entry in its window"),
    Column(
        "action",
        Kind.TEXT,
        ("action",),
        strip=True,
        doc="surrounding spaces removed (Wiz pads some; `raw` keeps them)",
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

AUDIT_LOGS = DataType(
    name="audit_logs",
    description=(
        "Who did what in the Wiz tenant: every audit log entry (user and service-account logins, "
        "configuration changes, API calls, with source IP, user agent and status), one Parquet file "
        "per window by `timestamp`, under {WIZ_OUTPUT_URI}/audit_logs/. Use it to investigate an "
        "account's actions, failed logins or unexpected API use."
    ),
    operation="AuditLogTable",
    query=QUERY,
    connection="auditLogEntries",
    time_field="timestamp",
    permission="admin:audit (a service account scoped to projects cannot read audit logs)",
    columns=COLUMNS,
    summary_columns=("action", "status"),
    checkpoint_variable="AUDIT_SINCE_TIME",
    seed_help=(
        "Where audit log collection starts (ISO 8601 with Z or an offset); nothing before it is collected."
    ),
    result_cap=10_000,
    published_late=True,
)
