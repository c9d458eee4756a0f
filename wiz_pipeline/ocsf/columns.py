"""The columns each class's Parquet holds: a declared set of attribute paths, every type from the schema.

A path names an attribute through objects (``finding_info.analytic.uid``); an array of objects is
walked like an object (``resources.uid`` is the ``uid`` of each of ``resources``). The Arrow types follow
the schema's (string_t -> string, integer_t -> int32, long_t and timestamp_t -> int64, float_t ->
float64, boolean_t -> bool, other *_t by their base type, objects -> struct, arrays -> list), except
``unmapped``: ``map<string, string>`` of JSON text, the Security Lake convention for a free-form object.
A path the schema doesn't have raises KeyError when the class's schema is first built.
"""

from __future__ import annotations

import functools
from typing import Any

import pyarrow as pa

from wiz_pipeline.ocsf import schema

_SCALARS = {
    "string_t": pa.string(),
    "integer_t": pa.int32(),
    "long_t": pa.int64(),
    "timestamp_t": pa.int64(),
    "float_t": pa.float64(),
    "boolean_t": pa.bool_(),
    "json_t": pa.string(),  # JSON text
}
UNMAPPED_TYPE = pa.map_(pa.string(), pa.string())

# The cloud profile's attributes are declared by the findings (see schema.PROFILE_ATTRIBUTES).
_CLOUD = ("cloud.provider", "cloud.region", "cloud.account.uid", "cloud.account.name")

_CLASSIFICATION = (
    "activity_id",
    "activity_name",
    "category_uid",
    "category_name",
    "class_uid",
    "class_name",
    "type_uid",
    "type_name",
    "severity_id",
    "severity",
    "status_id",
    "status",
    "time",
)
_METADATA = (
    "metadata.version",
    "metadata.product.name",
    "metadata.product.vendor_name",
    "metadata.uid",
    "metadata.log_name",
    "metadata.original_time",
    "metadata.profiles",
)
_TAIL = ("raw_data", "unmapped")

_USER = ("uid", "name", "type_id", "type")

_RESOURCES = (
    "resources.uid",
    "resources.uid_alt",
    "resources.name",
    "resources.type",
    "resources.region",
)

_FINDING_INFO = (
    "finding_info.uid",
    "finding_info.title",
    "finding_info.desc",
    "finding_info.src_url",
    "finding_info.created_time",
    "finding_info.modified_time",
    "finding_info.types",
    "finding_info.analytic.uid",
    "finding_info.analytic.name",
    "finding_info.analytic.type_id",
    "finding_info.analytic.type",
)

PATHS: dict[str, tuple[str, ...]] = {
    "authentication": (
        *_CLASSIFICATION,
        "status_code",
        *_METADATA,
        *(f"user.{a}" for a in _USER),
        "service.name",
        "src_endpoint.ip",
        "http_request.user_agent",
        *_TAIL,
    ),
    "api_activity": (
        *_CLASSIFICATION,
        "status_code",
        *_METADATA,
        *(f"actor.user.{a}" for a in _USER),
        "actor.app_name",
        "api.operation",
        "api.request.uid",
        "src_endpoint.ip",
        "src_endpoint.uid",
        "http_request.user_agent",
        *_TAIL,
    ),
    "detection_finding": (
        *_CLASSIFICATION,
        *_METADATA,
        *_FINDING_INFO,
        "remediation.desc",
        "is_alert",
        *_RESOURCES,
        *_CLOUD,
        *_TAIL,
    ),
    "vulnerability_finding": (
        *_CLASSIFICATION,
        *_METADATA,
        *_FINDING_INFO,
        "vulnerabilities.title",
        "vulnerabilities.desc",
        "vulnerabilities.severity",
        "vulnerabilities.cve.uid",
        "vulnerabilities.cve.desc",
        "vulnerabilities.cve.cvss.base_score",
        "vulnerabilities.cve.cvss.severity",
        "vulnerabilities.cve.cvss.version",
        "vulnerabilities.cve.epss.score",
        "vulnerabilities.cve.epss.percentile",
        "vulnerabilities.advisory.uid",
        "vulnerabilities.affected_packages.name",
        "vulnerabilities.affected_packages.version",
        "vulnerabilities.affected_packages.fixed_in_version",
        "vulnerabilities.affected_packages.path",
        "vulnerabilities.remediation.desc",
        "vulnerabilities.is_fix_available",
        "vulnerabilities.is_exploit_available",
        "vulnerabilities.first_seen_time",
        "vulnerabilities.last_seen_time",
        "vulnerabilities.references",
        *_RESOURCES,
        *_CLOUD,
        *_TAIL,
    ),
    "compliance_finding": (
        *_CLASSIFICATION,
        *_METADATA,
        *_FINDING_INFO,
        "compliance.control",
        "compliance.standards",
        "compliance.status_id",
        "compliance.status",
        "remediation.desc",
        *_RESOURCES,
        *_CLOUD,
        *_TAIL,
    ),
}

# The profiles whose attributes a class's paths may use.
PROFILES: dict[str, frozenset[str]] = {
    "authentication": frozenset(),
    "api_activity": frozenset(),
    "detection_finding": frozenset({"cloud"}),
    "vulnerability_finding": frozenset({"cloud"}),
    "compliance_finding": frozenset({"cloud"}),
}


def _tree(paths: tuple[str, ...]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        for part in path.split("."):
            node = node.setdefault(part, {})
    return tree


def _field(attribute: schema.Attribute, children: dict[str, Any], where: str) -> pa.Field:
    if attribute.is_object:
        if attribute.type == "object":
            kind: pa.DataType = UNMAPPED_TYPE  # a free-form object (`unmapped`)
        else:
            if not children:
                raise KeyError(f"{where}: an object needs the attributes it holds declared")
            kind = _struct(schema.object_shape(attribute.type).attributes, children, where)
    else:
        if children:
            raise KeyError(f"{where} is a {attribute.type}, not an object")
        kind = _SCALARS[attribute.type]
    return pa.field(attribute.name, pa.list_(kind) if attribute.is_array else kind)


def _struct(attributes: dict[str, schema.Attribute], tree: dict[str, Any], where: str) -> pa.StructType:
    fields = []
    for name, children in tree.items():
        if name not in attributes:
            raise KeyError(f"OCSF {schema.VERSION}: {where} has no attribute {name!r}")
        fields.append(_field(attributes[name], children, f"{where}.{name}"))
    return pa.struct(fields)


@functools.cache
def arrow_schema(class_name: str) -> pa.Schema:
    """The Arrow schema of a class's table: its declared attribute paths, typed by the schema."""
    if class_name not in PATHS:
        raise KeyError(f"no OCSF class {class_name!r}: one of {', '.join(PATHS)}")
    attributes = schema.class_attributes(class_name, PROFILES[class_name])
    struct = _struct(attributes, _tree(PATHS[class_name]), class_name)
    return pa.schema(list(struct), metadata={"ocsf_version": schema.VERSION, "ocsf_class": class_name})


def columns_text(class_name: str) -> str:
    """The class's attribute paths as docs/ocsf.md lists them (one line, in the file's order)."""
    return ", ".join(f"`{path}`" for path in PATHS[class_name])
