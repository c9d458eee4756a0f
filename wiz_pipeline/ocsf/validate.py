"""Do a class's rows validate against OCSF 1.5.0? Two checks, both from the bundled schema:

- the pydantic-ocsf model of the class (required attributes, enum values, types, caption siblings);
- a walk of the event through the schema's attribute -> object information, objects in arrays
  included, for what pydantic-ocsf does not check: the ``at_least_one`` / ``just_one`` constraints of
  every object reached, attributes the class or object doesn't define (pydantic-ocsf allows extras),
  required attributes it relaxes (``type_uid``), and strict scalar types (pydantic coerces "5" to 5).

Profiles: an event may use a profile's attributes when its class includes the profile and
``metadata.profiles`` names it (see ``schema.PROFILE_ATTRIBUTES``). Free-form objects (``unmapped``,
type ``object``) are not walked. It costs more than the mapping (pydantic above all), and the window
asset's ``ocsf_valid`` check runs it over every row it writes: about 100-175 µs a row
(benchmarks/ocsf_views.py).
"""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, ValidationError

from wiz_pipeline.ocsf import schema
from wiz_pipeline.ocsf.mapping import to_events

_MODELS = {
    "authentication": "Authentication",
    "api_activity": "ApiActivity",
    "detection_finding": "DetectionFinding",
    "vulnerability_finding": "VulnerabilityFinding",
    "compliance_finding": "ComplianceFinding",
}
_SCALAR_CHECKS = {
    "string_t": lambda v: type(v) is str,
    "integer_t": lambda v: type(v) is int,
    "long_t": lambda v: type(v) is int,
    "timestamp_t": lambda v: type(v) is int,
    "float_t": lambda v: type(v) in (int, float),
    "boolean_t": lambda v: type(v) is bool,
    "json_t": lambda v: True,
}


class Problems(list[tuple[str, str]]):
    """(attribute path, problem) pairs, and the enum values the schema accepted (by path)."""

    def __init__(self) -> None:
        super().__init__()
        self.accepted: set[str] = set()


@functools.cache
def _model(class_name: str) -> type[BaseModel]:
    from ocsf.v1_5_0 import events

    return getattr(events, _MODELS[class_name])


def _value(attr: schema.Attribute, value: Any, where: str, problems: Problems) -> None:
    if attr.is_object:
        if not isinstance(value, dict):
            problems.append((where, f"expected a {attr.type} object, got {type(value).__name__}"))
        elif attr.type != "object":  # `object` is free-form
            shape = schema.object_shape(attr.type)
            _walk(shape.attributes, shape, value, f"{where}.", problems)
        return
    if not _SCALAR_CHECKS[attr.type](value):
        problems.append((where, f"expected {attr.type}, got {type(value).__name__} {value!r:.40}"))
    elif attr.enum and type(value) is int:
        if value in attr.enum:
            problems.accepted.add(where)
        else:
            problems.append((where, f"{value} is not a value of the enum ({', '.join(map(str, attr.enum))})"))


def _walk(
    attributes: dict[str, schema.Attribute],
    shape: schema.Shape,
    value: dict[str, Any],
    path: str,
    problems: Problems,
) -> None:
    for key, item in value.items():
        where = f"{path}{key}"
        attr = attributes.get(key)
        if attr is None:
            problems.append((where, f"not an attribute of {shape.name}"))
        elif item is None:
            continue
        elif attr.is_array:
            if not isinstance(item, list):
                problems.append((where, f"expected an array, got {type(item).__name__}"))
                continue
            for index, element in enumerate(item):
                _value(attr, element, f"{where}[{index}]", problems)
        else:
            _value(attr, item, where, problems)
    for name, attr in attributes.items():
        if attr.requirement == "required" and value.get(name) is None:
            problems.append((f"{path}{name}", "required attribute missing"))
    where = path.rstrip(".") or shape.name
    if shape.at_least_one and all(value.get(k) is None for k in shape.at_least_one):
        problems.append((where, f"needs at least one of {', '.join(shape.at_least_one)}"))
    if shape.just_one:
        present = [k for k in shape.just_one if value.get(k) is not None]
        if len(present) != 1:
            problems.append((where, f"needs exactly one of {', '.join(shape.just_one)}, has {len(present)}"))


@functools.cache
def _class_attributes(class_name: str, profiles: frozenset[str]) -> dict[str, schema.Attribute]:
    # The source schema's class_uid and category_uid enums hold only the base event's 0: a class's own
    # values are derived (category uid * 1000 + class ordinal), so they are the enum here.
    attributes = dict(schema.class_attributes(class_name, profiles))
    category_uid, category_name = schema.category(class_name)
    fixed = {
        "class_uid": {schema.class_uid(class_name): schema.event_class(class_name).caption},
        "category_uid": {category_uid: category_name},
    }
    for name, enum in fixed.items():
        attributes[name] = replace(attributes[name], enum=enum)
    return attributes


def event_problems(class_name: str, event: dict[str, Any]) -> Problems:
    """Every problem of one event, as (attribute path, problem)."""
    problems = Problems()
    metadata = event.get("metadata")
    declared = metadata.get("profiles") if isinstance(metadata, dict) else None
    profiles = (
        frozenset(p for p in declared if isinstance(p, str)) if isinstance(declared, list) else frozenset()
    )
    attributes = _class_attributes(class_name, profiles)
    _walk(attributes, schema.event_class(class_name), event, "", problems)
    class_uid, activity_id, type_uid = (event.get(k) for k in ("class_uid", "activity_id", "type_uid"))
    if type(class_uid) is int and type(activity_id) is int and type_uid != class_uid * 100 + activity_id:
        problems.append(("type_uid", f"{type_uid!r} is not class_uid * 100 + activity_id"))
    seen = {where for where, _ in problems}
    try:
        _model(class_name).model_validate(dict(event))
    except ValidationError as error:
        for item in error.errors():
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in item["loc"]).lstrip(".")
            # pydantic-ocsf 3.0.0 resolves same-named enums by name: every finding class's
            # status_id gets the `check` object's (Pass/Warning/Fail), not the finding's (New ..
            # Archived). The schema wins: an enum value the schema accepted there is not a problem.
            if item["type"] == "enum" and where in problems.accepted:
                continue
            if where not in seen:
                problems.append((where or class_name, f"{item['msg']} (pydantic-ocsf)"))
    return problems


def invalid_rows(
    class_name: str, table: pa.Table, limit: int = 10, first_row: int = 0
) -> tuple[int, list[str]]:
    """(how many rows don't validate against OCSF 1.5.0, up to ``limit`` "row N: path: problem" lines;
    ``first_row``: the number of the table's first row in its file)."""
    if class_name not in _MODELS:
        raise KeyError(f"no OCSF class {class_name!r}: one of {', '.join(_MODELS)}")
    invalid, messages = 0, []
    for number, event in enumerate(to_events(table)):
        problems = event_problems(class_name, event)
        if problems:
            invalid += 1
            for where, problem in problems:
                if len(messages) < limit:
                    messages.append(f"row {first_row + number}: {where}: {problem}")
    return invalid, messages
