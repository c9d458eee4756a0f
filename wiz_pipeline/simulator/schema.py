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
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLUnionType,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    build_schema,
    get_named_type,
    parse,
    validate,
)
from graphql.execution.values import get_argument_values, get_variable_values

from wiz_pipeline.core.times import parse_time

SDL = """
scalar DateTime
scalar JSON

type Query {
  auditLogEntries(first: Int, after: String, filterBy: AuditLogEntryFilters): AuditLogEntryConnection!
  issuesV2(filterBy: IssueFilters, first: Int, after: String, orderBy: IssueOrder): IssueConnection!
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

type SecurityFramework { name: String }
type SecurityCategory { name: String, framework: SecurityFramework }
type SecuritySubCategory { title: String, category: SecurityCategory }
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
    concrete = value.get("__typename") if isinstance(static, GraphQLUnionType) else type_name
    out: dict[str, Any] = {}
    for sel in selection.selections:
        if isinstance(sel, FieldNode):
            name = sel.name.value
            key = sel.alias.value if sel.alias else name
            if name == "__typename":
                out[key] = concrete
                continue
            assert isinstance(static, GraphQLObjectType)  # validation allows no other field selections
            field_type = get_named_type(static.fields[name].type)
            out[key] = project(value.get(name), sel.selection_set, fragments, field_type.name)
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
    return out
