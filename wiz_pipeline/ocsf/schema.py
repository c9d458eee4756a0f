"""The bundled OCSF 1.5.0 schema (pydantic-ocsf's JSON), resolved: every class's and object's attributes
with their types, requirements, enum captions and constraints, read once and cached.

The JSON is the schema repository's source form: a class or object lists only its own attributes and
names its parent (``extends``); an attribute's type and shared enum live in the dictionary. Resolving
merges the chain root first, each level's spec over the dictionary's, and the enums key by key (so a
class's ``activity_id`` keeps the base event's 0 Unknown and 99 Other), as the schema's own compiler
does. Profiles are the exception: the bundle names them (``$include``) but does not carry their
attributes, see ``PROFILE_ATTRIBUTES``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import ocsf

VERSION = "1.5.0"
SCHEMA_PATH = Path(ocsf.__file__).parent / "schemas" / f"v{VERSION.replace('.', '_')}.json"

# The scalar types every other *_t type reduces to (the dictionary's ``types``).
BASE_TYPES = frozenset({"string_t", "integer_t", "long_t", "float_t", "boolean_t", "json_t"})

# What a profile adds to the classes that include it. The bundle lists the profiles a class includes
# but not their attributes; only the cloud profile is used here (Security Lake's consumers find the
# account and region in `cloud`), and it adds exactly these two (ocsf-schema 1.5.0 profiles/cloud.json).
# The attributes' types still come from the dictionary.
PROFILE_ATTRIBUTES: dict[str, dict[str, str]] = {"cloud": {"api": "optional", "cloud": "required"}}


@dataclass(frozen=True)
class Attribute:
    name: str
    type: str  # a base scalar type (BASE_TYPES, or timestamp_t) or an object's name
    is_object: bool
    is_array: bool
    requirement: str  # required, recommended or optional
    enum: dict[int | str, str] | None  # value -> caption
    sibling: str | None  # the caption attribute of an enum attribute


@dataclass(frozen=True)
class Shape:
    """A class or an object, resolved."""

    name: str
    caption: str
    attributes: dict[str, Attribute]
    at_least_one: tuple[str, ...] = ()
    just_one: tuple[str, ...] = ()
    profiles: tuple[str, ...] = ()  # the profiles it includes (their attributes: PROFILE_ATTRIBUTES)

    def attribute(self, name: str) -> Attribute:
        try:
            return self.attributes[name]
        except KeyError:
            raise KeyError(f"OCSF {VERSION} {self.name} has no attribute {name!r}") from None


@functools.cache
def raw() -> dict[str, Any]:
    return msgspec.json.decode(SCHEMA_PATH.read_bytes())


def _base_type(type_name: str) -> str:
    types = raw()["dictionary"]["types"]["attributes"]
    seen = type_name
    # timestamp_t stays itself: it is a long_t that holds epoch milliseconds.
    while seen not in BASE_TYPES and seen != "timestamp_t":
        parent = types.get(seen, {}).get("type")
        if parent is None:
            raise KeyError(f"OCSF {VERSION} has no data type {type_name!r}")
        seen = parent
    return seen


def _merge(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    merged = {**(old or {}), **new}
    if old and "enum" in old and "enum" in new:
        merged["enum"] = {**old["enum"], **new["enum"]}
    return merged


def _enum_key(key: str) -> int | str:
    # Most enums are integers; a few string attributes (http_request.http_method) list their values.
    return int(key) if key.lstrip("-").isdigit() else key


def _attribute(name: str, spec: dict[str, Any]) -> Attribute:
    schema = raw()
    type_name = spec.get("object_type") or spec.get("type") or "string_t"
    is_object = type_name in schema["objects"]
    enum = spec.get("enum")
    return Attribute(
        name=name,
        type=type_name if is_object else _base_type(type_name),
        is_object=is_object,
        is_array=bool(spec.get("is_array")),
        requirement=spec.get("requirement") or "optional",
        enum={_enum_key(k): v.get("caption", k) for k, v in enum.items()} if enum else None,
        sibling=spec.get("sibling"),
    )


def _resolve(collection: str, name: str) -> Shape:
    schema = raw()
    specs = schema[collection]
    if name not in specs:
        raise KeyError(f"OCSF {VERSION} has no {collection[:-1]} {name!r}")
    chain = []
    at: str | None = name
    while at is not None:
        spec = specs.get(at) or schema["objects"][at]  # classes extend classes, objects objects
        chain.append(spec)
        at = spec.get("extends")
    dictionary = schema["dictionary"]["attributes"]
    merged: dict[str, dict[str, Any]] = {}
    constraints: dict[str, list[str]] = {}
    profiles: list[str] = []
    for spec in reversed(chain):
        for attr, attr_spec in spec.get("attributes", {}).items():
            if attr.startswith("$") or not isinstance(attr_spec, dict):
                continue
            merged[attr] = _merge(merged.get(attr) or dictionary.get(attr), attr_spec)
        constraints.update(spec.get("constraints") or {})
        profiles += [p for p in spec.get("profiles") or () if p not in profiles]
    return Shape(
        name=name,
        caption=chain[0].get("caption", name),
        attributes={attr: _attribute(attr, spec) for attr, spec in merged.items()},
        at_least_one=tuple(constraints.get("at_least_one", ())),
        just_one=tuple(constraints.get("just_one", ())),
        profiles=tuple(profiles),
    )


@functools.cache
def event_class(name: str) -> Shape:
    return _resolve("events", name)


@functools.cache
def object_shape(name: str) -> Shape:
    return _resolve("objects", name)


@functools.cache
def profile_attributes(name: str) -> dict[str, Attribute]:
    dictionary = raw()["dictionary"]["attributes"]
    return {
        attr: _attribute(attr, {**dictionary[attr], "requirement": requirement})
        for attr, requirement in PROFILE_ATTRIBUTES[name].items()
    }


@functools.cache
def class_attributes(name: str, profiles: frozenset[str] = frozenset()) -> dict[str, Attribute]:
    """A class's attributes, with those of the profiles in ``profiles`` it includes."""
    shape = event_class(name)
    out = dict(shape.attributes)
    for profile in profiles & set(shape.profiles) & PROFILE_ATTRIBUTES.keys():
        out.update(profile_attributes(profile))
    return out


def category(class_name: str) -> tuple[int, str]:
    """A class's category: (uid, caption)."""
    schema = raw()
    at: str | None = class_name
    while at is not None:
        spec = schema["events"][at]
        if spec.get("category"):
            meta = schema["categories_meta"]["attributes"][spec["category"]]
            return meta["uid"], meta["caption"]
        at = spec.get("extends")
    raise KeyError(f"OCSF {VERSION} class {class_name!r} has no category")


def class_uid(class_name: str) -> int:
    return category(class_name)[0] * 1000 + raw()["events"][class_name]["uid"]


def enum_captions(owner: Shape | dict[str, Attribute], attribute: str) -> dict[int | str, str]:
    attributes = owner.attributes if isinstance(owner, Shape) else owner
    enum = attributes[attribute].enum
    if not enum:
        raise KeyError(f"OCSF {VERSION} attribute {attribute!r} has no enum")
    return enum
