"""What every mapped event shares: classification and its captions, metadata, severities, statuses,
resources and cloud, and the ``unmapped`` rest of the node. Captions are read from the schema once.

Decisions ocsf.md leaves open, taken here:
- A missing Wiz status on a finding omits ``status_id`` instead of setting 0: the finding classes
  redefine ``status_id``'s enum (1 New .. 5 Archived) and pydantic-ocsf, which replaces an enum rather
  than merging it with the dictionary's, then rejects 0. Unknown statuses are 99 with the text.
- An unknown severity text is 99 Other with ``severity`` holding the text (a missing one is 0).
- For an enum value 99 the caption sibling holds the source's own text where there is one (that is
  what OCSF's "Other" asks for); otherwise the schema's caption "Other".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from wiz_pipeline.ocsf import schema
from wiz_pipeline.ocsf.classes import CLASSES

PRODUCT = {"name": "Wiz", "vendor_name": "Wiz"}

_SEVERITY_IDS = {"INFORMATIONAL": 1, "NONE": 1, "LOW": 2, "MEDIUM": 3, "HIGH": 4, "CRITICAL": 5}
_FINDING_STATUS_IDS = {"OPEN": 1, "IN_PROGRESS": 2, "REJECTED": 3, "RESOLVED": 4}
CLOSED = frozenset({"RESOLVED", "REJECTED"})

_encode = msgspec.json.Encoder().encode


def json_text(value: Any) -> str:
    return _encode(value).decode()


@dataclass(frozen=True)
class Classification:
    """A class's fixed attributes and the captions of its enums, from the schema."""

    name: str
    class_uid: int
    class_name: str
    category_uid: int
    category_name: str
    activities: dict[int | str, str]
    severities: dict[int | str, str]
    statuses: dict[int | str, str]


def _classification(name: str) -> Classification:
    shape = schema.event_class(name)
    return Classification(
        name=name,
        class_uid=CLASSES[name].class_uid,
        class_name=shape.caption,
        category_uid=CLASSES[name].category_uid,
        category_name=schema.category(name)[1],
        activities=schema.enum_captions(shape, "activity_id"),
        severities=schema.enum_captions(shape, "severity_id"),
        statuses=schema.enum_captions(shape, "status_id"),
    )


CLASSIFICATIONS = {name: _classification(name) for name in CLASSES}


def caption(enum: dict[int | str, str], value: int, text: str | None = None) -> str:
    if value == 99 and text:
        return text
    return enum.get(value) or enum.get(99, "Other")


def event(
    cls: Classification,
    activity_id: int,
    severity: tuple[int, str | None],
    time_ms: int,
    uid: str | None,
    data_type: str,
    original_time: Any,
    raw_text: str,
) -> dict[str, Any]:
    activity_name = caption(cls.activities, activity_id)
    metadata: dict[str, Any] = {"version": schema.VERSION, "product": PRODUCT, "log_name": data_type}
    if uid is not None:
        metadata["uid"] = uid
    if isinstance(original_time, str):
        metadata["original_time"] = original_time
    severity_id, severity_text = severity
    return {
        "activity_id": activity_id,
        "activity_name": activity_name,
        "category_uid": cls.category_uid,
        "category_name": cls.category_name,
        "class_uid": cls.class_uid,
        "class_name": cls.class_name,
        "type_uid": cls.class_uid * 100 + activity_id,
        "type_name": f"{cls.class_name}: {activity_name}",
        "severity_id": severity_id,
        "severity": caption(cls.severities, severity_id, severity_text),
        "time": time_ms,
        "metadata": metadata,
        "raw_data": raw_text,
    }


def severity(value: Any) -> tuple[int, str | None]:
    """Wiz severity -> (severity_id, the text for 99)."""
    if not isinstance(value, str) or not value.strip():
        return 0, None
    found = _SEVERITY_IDS.get(value.strip().upper())
    return (found, None) if found is not None else (99, value)


def set_finding_status(out: dict[str, Any], cls: Classification, value: Any) -> None:
    if not isinstance(value, str) or not value:
        return
    status_id = _FINDING_STATUS_IDS.get(value, 99)
    out["status_id"] = status_id
    out["status"] = caption(cls.statuses, status_id, value)


def text(value: Any) -> str | None:
    """A non-empty string, else None (Wiz sends empty strings for absent values)."""
    return value if type(value) is str and value else None


def pick(node: Any, *keys: str) -> Any:
    """The first non-empty string among ``node[key]`` for ``keys``."""
    if not isinstance(node, dict):
        return None
    for key in keys:
        value = node.get(key)
        if type(value) is str and value:
            return value
    return None


def resource(node: dict[str, Any], uid_keys: tuple[str, ...], region: Any = None) -> dict[str, Any]:
    """A ``resource_details``: uid the provider's id (else the Wiz id, then uid_alt is dropped), name,
    type (the native type if any), region."""
    out: dict[str, Any] = {}
    uid = pick(node, *uid_keys)
    wiz_id = text(node.get("id"))
    if uid is not None:
        out["uid"] = uid
        if wiz_id is not None and wiz_id != uid:
            out["uid_alt"] = wiz_id
    elif wiz_id is not None:
        out["uid"] = wiz_id
    name = text(node.get("name"))
    if name is not None:
        out["name"] = name
    kind = pick(node, "nativeType", "type")
    if kind is not None:
        out["type"] = kind
    region = text(region if region is not None else node.get("region"))
    if region is not None:
        out["region"] = region
    # A resource needs a uid or a name (the schema's at-least-one): one with neither is left out
    # (raw_data still has it) rather than making the row invalid.
    return out if "uid" in out or "name" in out else {}


def set_cloud(out: dict[str, Any], provider: Any, region: Any, account_uid: Any, account_name: Any) -> None:
    """``cloud`` (and the cloud profile in metadata) when the provider is known: it is required there."""
    provider = text(provider)
    if provider is None:
        return
    cloud: dict[str, Any] = {"provider": provider}
    if text(region):
        cloud["region"] = region
    account = {k: v for k, v in (("uid", text(account_uid)), ("name", text(account_name))) if v}
    if account:
        cloud["account"] = account
    out["cloud"] = cloud
    out["metadata"]["profiles"] = ["cloud"]


# What a mapper took from a node: a key's value whole (True), or some of its keys (a nested dict).
Taken = dict[str, Any]


def rest(node: dict[str, Any], taken: Taken, prefix: str = "") -> dict[str, str]:
    """Every non-null value of ``node`` no attribute took, as JSON text under its dotted path.

    A partly taken object is split (``entitySnapshot.tags``); a list is kept whole unless taken whole.
    """
    out: dict[str, str] = {}
    for key, value in node.items():
        if value is None:
            continue
        took = taken.get(key)
        if took is True:
            continue
        if took and isinstance(value, dict):
            out.update(rest(value, took, f"{prefix}{key}."))
        elif value != {} and value != []:
            out[prefix + key] = json_text(value)
    return out
