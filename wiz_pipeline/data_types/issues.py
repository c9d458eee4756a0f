"""Issues: findings, placed by ``statusChangedAt`` so that new issues and status changes both land."""

from __future__ import annotations

from wiz_pipeline.data_types import CurrentState, DataType
from wiz_pipeline.data_types.columns import as_json, text, when

QUERY = """
query IssuesTable($filterBy: IssueFilters, $first: Int, $after: String, $orderBy: IssueOrder) {
  issues: issuesV2(filterBy: $filterBy, first: $first, after: $after, orderBy: $orderBy) {
    nodes {
      id
      sourceRule {
        __typename
        ... on Control { id name controlDescription: description resolutionRecommendation
          securitySubCategories { title category { name framework { name } } } }
        ... on CloudEventRule { id name cloudEventRuleDescription: description sourceType type }
        ... on CloudConfigurationRule { id name cloudConfigurationRuleDescription: description
          remediationInstructions serviceType }
      }
      createdAt updatedAt dueAt resolvedAt statusChangedAt
      projects { id name slug businessUnit riskProfile { businessImpact } }
      status severity type
      entitySnapshot { id type nativeType name status cloudPlatform cloudProviderURL providerId
        region resourceGroupExternalId subscriptionExternalId subscriptionName subscriptionTags
        tags externalId }
      serviceTickets { externalId name url }
      notes { createdAt updatedAt text user { name email } serviceAccount { name } }
    }
    pageInfo { hasNextPage endCursor }
  }
}
"""

COLUMNS = (
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

# The current state of every issue, rebuilt whole from a full read at each build (collect.current).
CURRENT = CurrentState(
    dataset="issues_current",
    noun="issues",
    cron_setting="WIZ_ISSUES_CURRENT_CRON",
    cron_default="20 4 * * *",
    # updatedAt alone can't order versions: the API shows it earlier than statusChangedAt now and then.
    version_columns=("status_changed_at", "updated_at"),
    # New issues land at the end, and nothing but a deletion moves an issue (see collect.current).
    read_order={"field": "CREATED_AT", "direction": "ASC"},
)
CURRENT_DATASET = CURRENT.dataset

# statusChangedAt catches new issues and every status change (see the shared API notes).
ISSUES = DataType(
    name="issues",
    description=(
        "The history of Wiz issues (severity, status, type, affected resource, source rule, "
        "remediation), one Parquet file per window by `statusChangedAt`: an issue lands again in a "
        "later window each time its status changes, so the windows are a change log (for the "
        "current state of each issue, see issues_current). Under {WIZ_OUTPUT_URI}/issues/."
    ),
    operation="IssuesTable",
    query=QUERY,
    connection="issues",
    time_field="statusChangedAt",
    permission="read:issues",
    columns=COLUMNS,
    summary_columns=("severity", "status"),
    checkpoint_variable="ISSUES_SINCE_TIME",
    seed_help="Where issue collection starts (by statusChangedAt); nothing before it is collected.",
    enabled_by="WIZ_COLLECT_ISSUES",
    enabled_help="Collect issues too (true/false); false drops both issue assets (issues, "
    "issues_current) and their schedules.",
    records_can_leave=True,
    current=CURRENT,
)
