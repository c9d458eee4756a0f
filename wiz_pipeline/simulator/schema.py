"""The slice of the Wiz GraphQL schema the simulator serves, and a fast executor for it.

Queries are parsed and validated with graphql-core against this schema, so an unknown field or a
wrong variable type gets the same kind of error a real GraphQL server sends. Execution is a plain
projection of the stored records onto the selection set (aliases and inline fragments included):
graphql-core's general executor is an order of magnitude slower, and benchmarks should measure
the collector, not the simulator.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import msgspec
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLUnionType,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    build_schema,
    get_named_type,
    parse,
    validate,
)
from graphql.execution.values import get_argument_values, get_variable_values

from wiz_pipeline.core.times import parse_time

_ASSET_BASE = """
  id: ID!, type: String, name: String, region: String, providerUniqueId: String,
  cloudProviderURL: String, cloudPlatform: String, status: String, subscriptionName: String,
  subscriptionExternalId: String, subscriptionId: String, tags: JSON,
  hasLimitedInternetExposure: Boolean, hasWideInternetExposure: Boolean, isAccessibleFromVPN: Boolean,
  isAccessibleFromOtherVnets: Boolean, isAccessibleFromOtherSubscriptions: Boolean
"""

# Order enums are accepted, not honoured: findings are served in a stable order that isn't by time.
FINDINGS_SDL = f"""
enum FindingStatus {{ OPEN IN_PROGRESS RESOLVED REJECTED }}
enum FindingSeverity {{ NONE LOW MEDIUM HIGH CRITICAL }}
enum FindingOrderField {{ ID UPDATED_AT SEVERITY FIRST_DETECTED_AT }}

input VulnerabilityFindingFilters {{
  updatedAt: DateTimeFilter, status: [FindingStatus!], severity: [FindingSeverity!]
}}
input VulnerabilityFindingOrder {{ direction: OrderDirection!, field: FindingOrderField! }}
type LayerMetadata {{ id: ID, details: String, isBaseLayer: Boolean }}
type IgnoreRule {{ id: ID!, name: String, enabled: Boolean, expiredAt: DateTime }}
interface VulnerableAssetBase {{ {_ASSET_BASE} }}
type VulnerableAssetVirtualMachine implements VulnerableAssetBase {{
  {_ASSET_BASE}, operatingSystem: String, ipAddresses: [String!]
}}
type VulnerableAssetServerless implements VulnerableAssetBase {{ {_ASSET_BASE}, runtime: String }}
type VulnerableAssetContainerImage implements VulnerableAssetBase {{ {_ASSET_BASE}, imageId: String }}
type VulnerableAssetContainer implements VulnerableAssetBase {{
  {_ASSET_BASE}, ImageExternalId: String, VmExternalId: String, ServerlessContainer: Boolean,
  PodNamespace: String, PodName: String, NodeName: String
}}
union VulnerableAsset = VulnerableAssetVirtualMachine | VulnerableAssetServerless
  | VulnerableAssetContainerImage | VulnerableAssetContainer
type VulnerabilityFinding {{
  id: ID!, portalUrl: String, name: String, CVEDescription: String, CVSSSeverity: String,
  score: Float, exploitabilityScore: Float, impactScore: Float, dataSourceName: String,
  hasExploit: Boolean, hasCisaKevExploit: Boolean, status: String, vendorSeverity: String,
  firstDetectedAt: DateTime, lastDetectedAt: DateTime, resolvedAt: DateTime, updatedAt: DateTime,
  description: String, remediation: String, detailedName: String, version: String,
  fixedVersion: String, detectionMethod: String, link: String, locationPath: String,
  resolutionReason: String, epssSeverity: String, epssPercentile: Float, epssProbability: Float,
  validatedInRuntime: Boolean, layerMetadata: LayerMetadata, projects: [Project!],
  ignoreRules: [IgnoreRule!], vulnerableAsset: VulnerableAsset
}}
type VulnerabilityFindingConnection {{ nodes: [VulnerabilityFinding!]!, pageInfo: PageInfo! }}

enum ConfigurationFindingResult {{ PASS FAIL ERROR NOT_ASSESSED }}
input ConfigurationFindingFilters {{
  updatedAt: DateTimeFilter, result: [ConfigurationFindingResult!], status: [FindingStatus!],
  severity: [FindingSeverity!]
}}
input ConfigurationFindingOrder {{ direction: OrderDirection!, field: FindingOrderField! }}
type CloudSubscription {{ id: ID, name: String, externalId: String, cloudProvider: String }}
type ResourceTag {{ key: String, value: String }}
type ConfigurationFindingResource {{
  id: ID, providerId: String, name: String, nativeType: String, type: String, region: String,
  cloudPlatform: String, subscription: CloudSubscription, tags: [ResourceTag!]
}}
type ConfigurationRule {{
  id: ID!, shortId: String, name: String, description: String, remediationInstructions: String,
  functionAsControl: Boolean
}}
type ConfigurationEvidence {{
  currentValue: String, expectedValue: String, configurationPath: String,
  cloudConfigurationLink: String
}}
type ConfigurationFinding {{
  id: ID!, name: String, analyzedAt: DateTime, firstSeenAt: DateTime, updatedAt: DateTime,
  severity: String, result: String, status: String, remediation: String,
  resource: ConfigurationFindingResource, rule: ConfigurationRule,
  securitySubCategories: [SecuritySubCategory!], evidence: ConfigurationEvidence,
  ignoreRules: [IgnoreRule!]
}}
type ConfigurationFindingConnection {{ nodes: [ConfigurationFinding!]!, pageInfo: PageInfo! }}

enum DetectionType {{ GENERATED_THREAT MATCH_ONLY }}
enum DescriptionFormat {{ MARKDOWN TEXT }}
input DetectionTypeFilter {{ equals: [DetectionType!] }}
input DetectionFilters {{ updatedAt: DateTimeFilter, type: DetectionTypeFilter }}
input DetectionOrder {{ direction: OrderDirection!, field: FindingOrderField! }}
type IssueRef {{ id: ID! }}
type DetectionRule {{
  id: ID!, name: String, builtin: Boolean, securitySubCategories: [SecuritySubCategory!]
}}
type DetectionRuleMatch {{ rule: DetectionRule }}
type DetectionResource {{
  id: ID, type: String, name: String, externalId: String, region: String, providerUniqueId: String
}}
type CloudAccount {{ id: ID, externalId: String, name: String, cloudProvider: String }}
type DetectionActor {{
  id: ID, name: String, type: String, nativeType: String, email: String, userAgent: String,
  externalId: String, providerUniqueId: String, cloudAccount: CloudAccount
}}
type CloudEvent {{ id: ID!, description: String, actorIP: String, timestamp: DateTime }}
union DetectionEvent = CloudEvent
type DetectionEventConnection {{ totalCountV2: Int, nodes: [DetectionEvent!] }}
type Detection {{
  id: ID!, type: String, origins: [String!], createdAt: DateTime, updatedAt: DateTime,
  severity: String, description(format: DescriptionFormat): String, issue: IssueRef,
  ruleMatch: DetectionRuleMatch, primaryResource: DetectionResource, resources: [DetectionResource!],
  primaryActor: DetectionActor, actors: [DetectionActor!], cloudAccounts: [CloudAccount!],
  triggeringEvents(first: Int): DetectionEventConnection
}}
type DetectionConnection {{ nodes: [Detection!]!, pageInfo: PageInfo! }}
"""

SDL = (
    """
scalar DateTime
scalar JSON

type Query {
  auditLogEntries(first: Int, after: String, filterBy: AuditLogEntryFilters): AuditLogEntryConnection!
  issuesV2(filterBy: IssueFilters, first: Int, after: String, orderBy: IssueOrder): IssueConnection!
  vulnerabilityFindings(
    filterBy: VulnerabilityFindingFilters, first: Int, after: String, orderBy: VulnerabilityFindingOrder
  ): VulnerabilityFindingConnection!
  configurationFindings(
    filterBy: ConfigurationFindingFilters, first: Int, after: String, orderBy: ConfigurationFindingOrder
  ): ConfigurationFindingConnection!
  detections(
    filterBy: DetectionFilters, first: Int, after: String, orderBy: DetectionOrder
  ): DetectionConnection!
}

input DateTimeFilter { after: DateTime, before: DateTime }
input AuditLogEntryFilters { timestamp: DateTimeFilter }
input IssueFilters {
  statusChangedAt: DateTimeFilter, createdAt: DateTimeFilter,
  status: [IssueStatus!], severity: [IssueSeverity!], type: [IssueType!]
}
enum IssueStatus { OPEN IN_PROGRESS RESOLVED REJECTED }
enum IssueSeverity { INFORMATIONAL LOW MEDIUM HIGH CRITICAL }
enum IssueType { TOXIC_COMBINATION THREAT_DETECTION CLOUD_CONFIGURATION }
enum OrderDirection { ASC DESC }
enum IssueOrderField { CREATED_AT SEVERITY STATUS_CHANGED_AT }
input IssueOrder { direction: OrderDirection!, field: IssueOrderField! }

type PageInfo { hasNextPage: Boolean!, endCursor: String }

type User { id: ID!, name: String, email: String }
type ServiceAccount { id: ID, name: String }
type AuditLogEntry {
  id: ID!, action: String, requestId: String, status: String, timestamp: DateTime!,
  actionParameters: JSON, userAgent: String, sourceIP: String,
  serviceAccount: ServiceAccount, user: User
}
type AuditLogEntryConnection { nodes: [AuditLogEntry!]!, pageInfo: PageInfo! }

type SecurityFramework { id: ID, name: String }
type SecurityCategory { id: ID, name: String, framework: SecurityFramework }
type SecuritySubCategory { id: ID, title: String, category: SecurityCategory }
type Control {
  id: ID!, name: String, description: String, resolutionRecommendation: String,
  securitySubCategories: [SecuritySubCategory!]
}
type CloudEventRule { id: ID!, name: String, description: String, sourceType: String, type: String }
type CloudConfigurationRule {
  id: ID!, name: String, description: String, remediationInstructions: String, serviceType: String
}
union IssueSourceRule = Control | CloudEventRule | CloudConfigurationRule

type RiskProfile { businessImpact: String }
type Project { id: ID!, name: String, slug: String, businessUnit: String, riskProfile: RiskProfile }
type EntitySnapshot {
  id: ID, type: String, nativeType: String, name: String, status: String, cloudPlatform: String,
  cloudProviderURL: String, providerId: String, region: String, resourceGroupExternalId: String,
  subscriptionExternalId: String, subscriptionName: String, subscriptionTags: JSON, tags: JSON,
  externalId: String
}
type ServiceTicket { externalId: String, name: String, url: String }
type IssueNote {
  createdAt: DateTime, updatedAt: DateTime, text: String, user: User, serviceAccount: ServiceAccount
}
type Issue {
  id: ID!, sourceRule: IssueSourceRule, createdAt: DateTime, updatedAt: DateTime, dueAt: DateTime,
  resolvedAt: DateTime, statusChangedAt: DateTime, projects: [Project!], status: String,
  severity: String, type: String, entitySnapshot: EntitySnapshot, serviceTickets: [ServiceTicket!],
  notes: [IssueNote!]
}
type IssueConnection { nodes: [Issue!]!, pageInfo: PageInfo! }
"""
    + FINDINGS_SDL
)


def _parse_datetime(value: Any) -> Any:
    parsed = parse_time(value)
    if parsed is None:
        raise GraphQLError(f"DateTime cannot represent {value!r}: expected an ISO 8601 timestamp")
    return parsed


SCHEMA = build_schema(SDL)
_date_time = SCHEMA.type_map["DateTime"]
assert isinstance(_date_time, GraphQLScalarType)
_date_time.parse_value = _parse_datetime  # type: ignore[method-assign]


class QueryRejected(Exception):
    """The query can't run; ``errors`` are GraphQL error dicts, ``code`` their extensions code."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors[0]["message"] if errors else "query rejected")
        self.errors = errors


def _error(message: str, code: str, locations: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"message": message, "extensions": {"code": code}}
    if locations:
        err["locations"] = [{"line": loc.line, "column": loc.column} for loc in locations]
    return err


@functools.lru_cache(maxsize=256)
def _parsed(query: str) -> DocumentNode:
    try:
        document = parse(query)
    except GraphQLError as exc:
        raise QueryRejected([_error(exc.message, "GRAPHQL_PARSE_FAILED", exc.locations)]) from None
    problems = validate(SCHEMA, document)
    if problems:
        # graphql-core quotes names with ' where graphql-js, and so the Wiz API, uses "
        raise QueryRejected(
            [_error(p.message.replace("'", '"'), "GRAPHQL_VALIDATION_FAILED", p.locations) for p in problems]
        )
    return document


@dataclass(frozen=True)
class RootField:
    name: str  # schema field, e.g. "issuesV2"
    key: str  # response key (alias or name)
    arguments: dict[str, Any]
    selection: SelectionSetNode | None


@dataclass(frozen=True)
class PreparedQuery:
    operation_name: str | None
    fields: list[RootField]
    fragments: dict[str, FragmentDefinitionNode]


def prepare(query: str, variables: dict[str, Any] | None, operation_name: str | None = None) -> PreparedQuery:
    """Parse, validate and coerce: raises ``QueryRejected`` with GraphQL-style errors."""
    document = _parsed(query)
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name:
        operations = [op for op in operations if op.name and op.name.value == operation_name]
    if len(operations) != 1:
        raise QueryRejected(
            [_error("Must provide exactly one operation (or a matching operationName).", "BAD_USER_INPUT")]
        )
    operation = operations[0]
    if operation.operation.value != "query":
        raise QueryRejected([_error(f"{operation.operation.value} is not supported here", "BAD_USER_INPUT")])
    coerced = get_variable_values(SCHEMA, operation.variable_definitions or [], variables or {})
    if isinstance(coerced, list):
        raise QueryRejected([_error(e.message, "BAD_USER_INPUT", e.locations) for e in coerced])
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    query_type = SCHEMA.query_type
    assert query_type is not None
    fields = []
    for selection in operation.selection_set.selections:
        if not isinstance(selection, FieldNode):
            raise QueryRejected([_error("fragments on the root type are not supported", "BAD_USER_INPUT")])
        name = selection.name.value
        key = selection.alias.value if selection.alias else name
        if name == "__typename":
            fields.append(RootField(name, key, {}, None))
            continue
        arguments = get_argument_values(query_type.fields[name], selection, coerced)
        fields.append(RootField(name, key, arguments, selection.selection_set))
    return PreparedQuery(operation.name.value if operation.name else None, fields, fragments)


def project(
    value: Any,
    selection: SelectionSetNode | None,
    fragments: dict[str, FragmentDefinitionNode],
    type_name: str,
) -> Any:
    """Shape a stored record of the schema type ``type_name`` like a GraphQL response for ``selection``.

    Stored records of a union's members carry their ``__typename``; for any other object type the
    static type from the schema is the concrete one.
    """
    if selection is None or value is None or isinstance(value, msgspec.Raw):
        # A record stored as encoded JSON (benchmark tenants: see Tenant.audit_nodes) is already
        # shaped for the query it was made for, and is served as it is.
        return value
    if isinstance(value, list):
        return [project(item, selection, fragments, type_name) for item in value]
    static = SCHEMA.type_map[type_name]
    abstract = isinstance(static, GraphQLUnionType | GraphQLInterfaceType)
    concrete = value.get("__typename") if abstract else type_name
    owner = SCHEMA.type_map[concrete] if abstract else static
    out: dict[str, Any] = {}
    for sel in selection.selections:
        if isinstance(sel, FieldNode):
            name = sel.name.value
            key = sel.alias.value if sel.alias else name
            if name == "__typename":
                out[key] = concrete
                continue
            assert isinstance(owner, GraphQLObjectType)  # validation allows no other field selections
            field_type = get_named_type(owner.fields[name].type)
            item = value.get(name)
            limit = _first_argument(sel)
            if limit is not None and isinstance(item, dict) and isinstance(item.get("nodes"), list):
                item = {**item, "nodes": item["nodes"][:limit]}  # a nested connection's page
            out[key] = project(item, sel.selection_set, fragments, field_type.name)
        else:
            if isinstance(sel, InlineFragmentNode):
                condition, sub = sel.type_condition, sel.selection_set
            elif isinstance(sel, FragmentSpreadNode):
                fragment = fragments[sel.name.value]
                condition, sub = fragment.type_condition, fragment.selection_set
            else:  # pragma: no cover - graphql-core has no other selection kinds
                continue
            # A fragment applies on the record's own type, or on the union it was selected through.
            on = condition.name.value if condition else concrete
            if on in (concrete, type_name):
                out.update(project(value, sub, fragments, on or type_name))
            elif (
                isinstance(on_type := SCHEMA.type_map.get(on), GraphQLInterfaceType)
                and isinstance(owner, GraphQLObjectType)
                and SCHEMA.is_sub_type(on_type, owner)
            ):
                out.update(project(value, sub, fragments, concrete))
    return out


def _first_argument(node: FieldNode) -> int | None:
    """A literal ``first:`` on a nested field (``triggeringEvents(first: 50)``); variables there are
    not supported, as no query sends one."""
    for argument in node.arguments or ():
        if argument.name.value == "first" and isinstance(argument.value, IntValueNode):
            return int(argument.value.value)
    return None
