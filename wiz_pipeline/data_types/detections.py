"""Wiz Defend detections: threats matched by a rule, placed by ``updatedAt``."""

from __future__ import annotations

from wiz_pipeline.data_types import DataType
from wiz_pipeline.data_types.columns import as_json, count, flag, text, when

QUERY = """
query DetectionsTable($filterBy: DetectionFilters, $first: Int, $after: String,
                      $orderBy: DetectionOrder) {
  detections(filterBy: $filterBy, first: $first, after: $after, orderBy: $orderBy) {
    nodes {
      id type origins createdAt updatedAt severity description(format: MARKDOWN)
      issue { id }
      ruleMatch { rule { id name builtin securitySubCategories { id title
        category { id name framework { id name } } } } }
      primaryResource { id type name externalId region }
      resources { id name externalId providerUniqueId type }
      primaryActor { id name type nativeType email userAgent externalId providerUniqueId
        cloudAccount { id externalId name cloudProvider } }
      actors { id name externalId providerUniqueId type }
      cloudAccounts { id name externalId cloudProvider }
      triggeringEvents(first: 50) { totalCountV2 nodes { ... on CloudEvent { id description
        actorIP timestamp } } }
    }
    pageInfo { hasNextPage endCursor }
  }
}
"""

ACTOR = "primaryActor"

COLUMNS = (
    text("id", "id"),
    when("updated_at", "updatedAt", doc="places the detection in its window"),
    when("created_at", "createdAt"),
    text("type", "type", doc="GENERATED_THREAT or MATCH_ONLY"),
    text("severity", "severity", doc="INFORMATIONAL, LOW, MEDIUM, HIGH or CRITICAL"),
    as_json("origins", "origins", doc="JSON text"),
    text("description", "description", doc="Markdown"),
    text("issue_id", "issue", "id", doc="the issue (threat) it belongs to"),
    text("rule_id", "ruleMatch", "rule", "id"),
    text("rule_name", "ruleMatch", "rule", "name"),
    flag("rule_builtin", "ruleMatch", "rule", "builtin"),
    as_json("security_sub_categories", "ruleMatch", "rule", "securitySubCategories", doc="JSON text"),
    text("resource_id", "primaryResource", "id"),
    text("resource_type", "primaryResource", "type"),
    text("resource_name", "primaryResource", "name"),
    text("resource_external_id", "primaryResource", "externalId"),
    text("resource_region", "primaryResource", "region"),
    text("actor_id", ACTOR, "id"),
    text("actor_name", ACTOR, "name"),
    text("actor_type", ACTOR, "type"),
    text("actor_native_type", ACTOR, "nativeType"),
    text("actor_email", ACTOR, "email"),
    text("actor_user_agent", ACTOR, "userAgent"),
    text("actor_external_id", ACTOR, "externalId"),
    text("actor_provider_unique_id", ACTOR, "providerUniqueId"),
    text("cloud_account_id", ACTOR, "cloudAccount", "id", doc="the primary actor's cloud account"),
    text("cloud_account_external_id", ACTOR, "cloudAccount", "externalId"),
    text("cloud_account_name", ACTOR, "cloudAccount", "name"),
    text("cloud_provider", ACTOR, "cloudAccount", "cloudProvider"),
    count(
        "triggering_events_total",
        "triggeringEvents",
        "totalCountV2",
        doc="how many events triggered it (triggering_events holds the first 50)",
    ),
    as_json("triggering_events", "triggeringEvents", "nodes", doc="the first 50; JSON text"),
    as_json("resources", "resources", doc="JSON text"),
    as_json("actors", "actors", doc="JSON text"),
    as_json("cloud_accounts", "cloudAccounts", doc="JSON text"),
)

DETECTIONS = DataType(
    name="detections",
    description=(
        "Wiz Defend detections (threats a rule matched: type, severity, rule, primary resource and "
        "actor, cloud accounts, the first 50 triggering events), one Parquet file per window by "
        "`updatedAt`, under {WIZ_OUTPUT_URI}/detections/, GENERATED_THREAT and MATCH_ONLY both. A "
        "detection that is updated moves its `updatedAt` and the API returns only its current "
        "version, so it lands again in a later window each time it changes: the windows are a "
        "change log."
    ),
    operation="DetectionsTable",
    query=QUERY,
    connection="detections",
    time_field="updatedAt",
    permission="read:detections",
    columns=COLUMNS,
    summary_columns=("severity", "type"),
    checkpoint_variable="DETECTIONS_SINCE_TIME",
    seed_help="Where detection collection starts (by updatedAt); nothing before it is collected.",
    enabled_by="WIZ_COLLECT_DETECTIONS",
    enabled_help=(
        "Collect Wiz Defend detections (true/false; needs read:detections): the asset detections "
        "and its schedule."
    ),
    enabled_by_default=False,
    # With any filterBy, the API applies a default type filter of GENERATED_THREAT and silently
    # drops MATCH_ONLY detections.
    filters={"type": {"equals": ["GENERATED_THREAT", "MATCH_ONLY"]}},
    records_can_leave=True,
)
