"""The OCSF classes Wiz data becomes, and which data type feeds which (the table in ocsf.md)."""

from __future__ import annotations

from dataclasses import dataclass

from wiz_pipeline.ocsf import schema


@dataclass(frozen=True)
class OcsfClass:
    name: str  # the schema's name, e.g. "authentication"
    class_uid: int
    category_uid: int
    caption: str  # e.g. "Authentication"
    description: str  # one sentence, for the UI


_DESCRIPTIONS = {
    "authentication": "Logins to the Wiz tenant (audit log Login and DeviceLogin entries) as OCSF "
    "Authentication.",
    "api_activity": "Every other Wiz audit log entry (API calls, configuration changes) as OCSF API "
    "Activity.",
    "detection_finding": "Wiz issues and Wiz Defend detections as OCSF Detection Findings.",
    "vulnerability_finding": "Wiz vulnerability findings (one per CVE or advisory and asset) as OCSF "
    "Vulnerability Findings.",
    "compliance_finding": "Wiz cloud configuration findings (one per rule and resource) as OCSF Compliance "
    "Findings.",
}


def _make(name: str) -> OcsfClass:
    return OcsfClass(
        name=name,
        class_uid=schema.class_uid(name),
        category_uid=schema.category(name)[0],
        caption=schema.event_class(name).caption,
        description=_DESCRIPTIONS[name],
    )


CLASSES: dict[str, OcsfClass] = {name: _make(name) for name in _DESCRIPTIONS}

# Data type -> the classes it feeds, in a fixed order (map_records returns one table for each).
SOURCES: dict[str, tuple[str, ...]] = {
    "audit_logs": ("authentication", "api_activity"),
    "issues": ("detection_finding",),
    "detections": ("detection_finding",),
    "vulnerability_findings": ("vulnerability_finding",),
    "configuration_findings": ("compliance_finding",),
}
