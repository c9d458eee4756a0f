"""Cloud configuration findings: one per rule and resource, placed by ``updatedAt``.

State, like vulnerability findings: each update moves ``updatedAt`` and the API returns only the
current version, so the windows are the change log and ``configuration_findings_current`` the state.
``analyzedAt`` moves at every scan: filtering on it would re-read the whole posture each day.
"""

from __future__ import annotations

from wiz_pipeline.data_types import ChoiceFilter, CurrentState, DataType
from wiz_pipeline.data_types.columns import as_json, flag, text, when

QUERY = """
query CloudConfigurationFindingsPage($filterBy: ConfigurationFindingFilters, $first: Int,
                                     $after: String, $orderBy: ConfigurationFindingOrder) {
  configurationFindings(filterBy: $filterBy, first: $first, after: $after, orderBy: $orderBy) {
    nodes {
      id name analyzedAt firstSeenAt updatedAt severity result status remediation
      resource { id providerId name nativeType type region cloudPlatform
        subscription { id name externalId cloudProvider } tags { key value } }
      rule { id shortId name description remediationInstructions functionAsControl }
      securitySubCategories { id title category { id name framework { id name } } }
      evidence { currentValue expectedValue configurationPath cloudConfigurationLink }
      ignoreRules { id name enabled expiredAt }
    }
    pageInfo { hasNextPage endCursor }
  }
}
"""

RESULTS = ("PASS", "FAIL", "ERROR", "NOT_ASSESSED")

COLUMNS = (
    text("id", "id"),
    when("updated_at", "updatedAt", doc="places the finding in its window; moves at every update"),
    text("name", "name"),
    text("result", "result", doc="PASS, FAIL, ERROR or NOT_ASSESSED"),
    text("status", "status", doc="OPEN, IN_PROGRESS, RESOLVED or REJECTED"),
    text("severity", "severity", doc="NONE, LOW, MEDIUM, HIGH or CRITICAL"),
    when("analyzed_at", "analyzedAt", doc="the last scan (moves at every scan)"),
    when("first_seen_at", "firstSeenAt"),
    text("remediation", "remediation"),
    text("rule_id", "rule", "id"),
    text("rule_short_id", "rule", "shortId"),
    text("rule_name", "rule", "name"),
    text("rule_description", "rule", "description"),
    text("rule_remediation_instructions", "rule", "remediationInstructions"),
    flag("rule_function_as_control", "rule", "functionAsControl"),
    text("resource_id", "resource", "id"),
    text("resource_provider_id", "resource", "providerId"),
    text("resource_name", "resource", "name"),
    text("resource_native_type", "resource", "nativeType"),
    text("resource_type", "resource", "type"),
    text("resource_region", "resource", "region"),
    text("resource_cloud_platform", "resource", "cloudPlatform"),
    text("subscription_id", "resource", "subscription", "id"),
    text(
        "subscription_external_id", "resource", "subscription", "externalId", doc="the cloud account's own id"
    ),
    text("subscription_name", "resource", "subscription", "name"),
    text("subscription_cloud_provider", "resource", "subscription", "cloudProvider"),
    as_json("resource_tags", "resource", "tags", doc="JSON text (a list of {key, value})"),
    text("evidence_current_value", "evidence", "currentValue"),
    text("evidence_expected_value", "evidence", "expectedValue"),
    text("evidence_configuration_path", "evidence", "configurationPath"),
    text("evidence_cloud_configuration_link", "evidence", "cloudConfigurationLink"),
    as_json(
        "security_sub_categories",
        "securitySubCategories",
        doc="the compliance frameworks' controls the rule maps to; JSON text",
    ),
    as_json("ignore_rules", "ignoreRules", doc="JSON text"),
)

CONFIGURATION_FINDINGS = DataType(
    name="configuration_findings",
    description=(
        "The change log of Wiz cloud configuration findings (one per rule and resource: result, "
        "severity, status, the rule and the frameworks it maps to, the resource and its cloud "
        "account, the evidence), one Parquet file per window by `updatedAt`, under "
        "{WIZ_OUTPUT_URI}/configuration_findings/, for the results in "
        "WIZ_CONFIGURATION_FINDING_RESULTS. Findings are state, not events: each update moves "
        "`updatedAt` and the API returns only the current version, so a finding lands again in a "
        "later window each time it changes. For the current state of each finding, see "
        "configuration_findings_current."
    ),
    operation="CloudConfigurationFindingsPage",
    query=QUERY,
    connection="configurationFindings",
    time_field="updatedAt",
    permission="read:cloud_configuration",
    columns=COLUMNS,
    summary_columns=("result", "severity"),
    checkpoint_variable="CONFIGURATION_FINDINGS_SINCE_TIME",
    seed_help="Where configuration finding collection starts (by updatedAt); nothing before it is collected.",
    enabled_by="WIZ_COLLECT_CONFIGURATION_FINDINGS",
    enabled_help=(
        "Collect cloud configuration findings (true/false; needs read:cloud_configuration): the "
        "assets configuration_findings and configuration_findings_current and their schedules."
    ),
    enabled_by_default=False,
    choice=ChoiceFilter(
        setting="WIZ_CONFIGURATION_FINDING_RESULTS",
        key="result",
        choices=RESULTS,
        default=("FAIL",),
        help=(
            "Which configuration finding results are collected: a comma list of PASS, FAIL, ERROR, "
            "NOT_ASSESSED. A finding exists per rule and resource, PASS included, so PASS multiplies "
            "the volume."
        ),
    ),
    # The same cap per query as audit logs is reported: a window past it is split.
    result_cap=10_000,
    records_can_leave=True,
    current=CurrentState(
        dataset="configuration_findings_current",
        noun="configuration findings",
        cron_setting="WIZ_CONFIGURATION_FINDINGS_CURRENT_CRON",
        cron_default="20 5 * * *",
        version_columns=("updated_at",),
        full_read_days_setting="WIZ_CONFIGURATION_FINDINGS_FULL_READ_DAYS",
        severity_column="severity",
    ),
)
