"""Issues and detections -> Detection Finding (2004); vulnerability findings -> Vulnerability Finding
(2002); cloud configuration findings -> Compliance Finding (2003).

Decisions ocsf.md leaves open, taken here:
- ``activity_id``: 3 Close when the status is RESOLVED or REJECTED, even for a finding created in the
  window (the event then says what the finding is now, closed); else 1 Create when created at or after
  the window's start (issues and detections ``createdAt``, vulnerabilities ``firstDetectedAt``,
  configuration findings ``firstSeenAt``); else 2 Update. An unreadable creation time is Update.
- ``time`` is the record's own time (issue ``statusChangedAt``, the others ``updatedAt``); if it is
  unreadable (``time`` is required) ``updatedAt``, then the window's start, stand in.
- A vulnerability's severity is ``CVSSSeverity``, else ``vendorSeverity`` (kept in
  ``vulnerabilities[].severity``). ``score`` is CVSS 3.1 (peers' reading, unverified) and becomes
  ``cve.cvss`` only for a CVE; an advisory's score stays in ``unmapped``.
- Detections have no status: no ``status_id``. Their primary actor, triggering events, actors, origins
  and cloud accounts go to ``unmapped`` (JSON text), not ``evidences``; ``cloud`` is the primary actor's
  cloud account (else the first of ``cloudAccounts``), the region the primary resource's.
- ``remediation`` only with a non-empty text (its ``desc`` is required).
- ``compliance.status_id`` has no value for a missing ``result``; ERROR is 99 with ``status`` "ERROR".
"""

from __future__ import annotations

from typing import Any

from wiz_pipeline.ocsf import common, schema
from wiz_pipeline.ocsf.times import epoch_ms

_DETECTION = common.CLASSIFICATIONS["detection_finding"]
_VULNERABILITY = common.CLASSIFICATIONS["vulnerability_finding"]
_COMPLIANCE = common.CLASSIFICATIONS["compliance_finding"]
_ANALYTIC_TYPES = schema.enum_captions(schema.object_shape("analytic"), "type_id")
_COMPLIANCE_STATUS_CAPTIONS = schema.enum_captions(schema.object_shape("compliance"), "status_id")
_COMPLIANCE_STATUS = {"PASS": 1, "NOT_ASSESSED": 2, "FAIL": 3, "ERROR": 99}
CVSS_VERSION = "3.1"


def _activity(status: Any, created_ms: int | None, window_ms: int) -> int:
    if type(status) is str and status in common.CLOSED:
        return 3
    if created_ms is not None and created_ms >= window_ms:
        return 1
    return 2


def _times(node: dict[str, Any], own: str, window_ms: int) -> int:
    """The event's time: the node's ``own`` field, else updatedAt, else the window's start."""
    for key in (own, "updatedAt"):
        value = epoch_ms(node.get(key))
        if value is not None:
            return value
    return window_ms


def _set_time(
    out: dict[str, Any], key: str, node: dict[str, Any], field: str, taken: common.Taken
) -> int | None:
    """``out[key]`` = ``node[field]`` in epoch ms, marking it taken only when it parsed."""
    value = epoch_ms(node.get(field))
    if value is not None:
        out[key] = value
        taken[field] = True
    return value


def _analytic(uid: Any, name: Any) -> dict[str, Any] | None:
    analytic = {k: v for k, v in (("uid", common.text(uid)), ("name", common.text(name))) if v}
    if not analytic:
        return None  # it needs a name or a uid
    analytic["type_id"] = 1
    analytic["type"] = _ANALYTIC_TYPES[1]
    return analytic


def _finish(out: dict[str, Any], node: dict[str, Any], taken: common.Taken) -> dict[str, Any]:
    unmapped = common.rest(node, taken)
    if unmapped:
        out["unmapped"] = unmapped
    return out


# -- issues ----------------------------------------------------------------------------------------

_ISSUE_DESCRIPTIONS = (
    "controlDescription",
    "cloudEventRuleDescription",
    "cloudConfigurationRuleDescription",
    "description",  # the simulator's stored form, before the query's aliases
)
_ISSUE_REMEDIATIONS = ("resolutionRecommendation", "remediationInstructions")


def _finding_event(
    cls: common.Classification,
    node: dict[str, Any],
    raw_text: str,
    window_ms: int,
    *,
    data_type: str,
    finding: dict[str, Any],
    taken: common.Taken,
    created_field: str,
    status: Any,
    severity: Any,
    time_field: str = "updatedAt",
) -> dict[str, Any]:
    """The attributes every finding event has, and ``finding``'s created and modified times."""
    created = _set_time(finding, "created_time", node, created_field, taken)
    _set_time(finding, "modified_time", node, "updatedAt", taken)
    return common.event(
        cls,
        _activity(status, created, window_ms),
        common.severity(severity),
        _times(node, time_field, window_ms),
        common.text(node.get("id")),
        data_type,
        node.get(time_field),
        raw_text,
    )


def map_issue(node: dict[str, Any], raw_text: str, window_ms: int) -> dict[str, Any]:
    taken: common.Taken = {"id": True, "status": True, "severity": True, "type": True}
    status = node.get("status")
    finding: dict[str, Any] = {}
    if epoch_ms(node.get("statusChangedAt")) is not None:
        taken["statusChangedAt"] = True
    out = _finding_event(
        _DETECTION,
        node,
        raw_text,
        window_ms,
        data_type="issues",
        finding=finding,
        taken=taken,
        created_field="createdAt",
        status=status,
        severity=node.get("severity"),
        time_field="statusChangedAt",
    )
    common.set_finding_status(out, _DETECTION, status)
    if type(status) is str and status:
        out["is_alert"] = status == "OPEN"
    finding["uid"] = common.text(node.get("id")) or "unknown"
    kind = common.text(node.get("type"))
    if kind is not None:
        finding["types"] = [kind]
    rule = node.get("sourceRule")
    if isinstance(rule, dict):
        rule_taken: common.Taken = {"id": True, "name": True, "__typename": True}
        title = common.text(rule.get("name"))
        if title is not None:
            finding["title"] = title
        desc = common.pick(rule, *_ISSUE_DESCRIPTIONS)
        if desc is not None:
            finding["desc"] = desc
            rule_taken.update(dict.fromkeys(_ISSUE_DESCRIPTIONS, True))
        analytic = _analytic(rule.get("id"), rule.get("name"))
        if analytic is not None:
            finding["analytic"] = analytic
        remedy = common.pick(rule, *_ISSUE_REMEDIATIONS)
        if remedy is not None:
            out["remediation"] = {"desc": remedy}
            rule_taken.update(dict.fromkeys(_ISSUE_REMEDIATIONS, True))
        taken["sourceRule"] = rule_taken
    out["finding_info"] = finding
    entity = node.get("entitySnapshot")
    if isinstance(entity, dict):
        resource = common.resource(entity, ("providerId", "externalId"))
        if resource:
            out["resources"] = [resource]
            taken["entitySnapshot"] = dict.fromkeys(
                ("id", "name", "nativeType", "type", "region", "providerId", "externalId"), True
            )
        common.set_cloud(
            out,
            entity.get("cloudPlatform"),
            entity.get("region"),
            entity.get("subscriptionExternalId"),
            entity.get("subscriptionName"),
        )
        if "cloud" in out:
            taken.setdefault("entitySnapshot", {}).update(
                dict.fromkeys(("cloudPlatform", "region", "subscriptionExternalId", "subscriptionName"), True)
            )
    return _finish(out, node, taken)


# -- detections ------------------------------------------------------------------------------------


def map_detection(node: dict[str, Any], raw_text: str, window_ms: int) -> dict[str, Any]:
    taken: common.Taken = {"id": True, "severity": True, "description": True}
    finding: dict[str, Any] = {"uid": common.text(node.get("id")) or "unknown"}
    out = _finding_event(
        _DETECTION,
        node,
        raw_text,
        window_ms,
        data_type="detections",
        finding=finding,
        taken=taken,
        created_field="createdAt",
        status=None,
        severity=node.get("severity"),
    )
    desc = common.text(node.get("description"))
    if desc is not None:
        finding["desc"] = desc
    rule = (node.get("ruleMatch") or {}).get("rule") if isinstance(node.get("ruleMatch"), dict) else None
    if isinstance(rule, dict):
        title = common.text(rule.get("name"))
        if title is not None:
            finding["title"] = title
        analytic = _analytic(rule.get("id"), rule.get("name"))
        if analytic is not None:
            finding["analytic"] = analytic
        taken["ruleMatch"] = {"rule": {"id": True, "name": True}}
    kind = common.text(node.get("type"))
    if kind is not None:
        finding["types"] = [kind]
        taken["type"] = True
    out["finding_info"] = finding
    primary = node.get("primaryResource") if isinstance(node.get("primaryResource"), dict) else {}
    resources = []
    listed = node.get("resources")
    if isinstance(listed, list):
        for item in listed:
            if isinstance(item, dict):
                same = primary.get("id") is not None and item.get("id") == primary.get("id")
                resource = common.resource(
                    item, ("providerUniqueId", "externalId"), primary.get("region") if same else None
                )
                if resource:
                    resources.append(resource)
    elif primary:
        resource = common.resource(primary, ("externalId",))
        if resource:
            resources.append(resource)
    if resources:
        out["resources"] = resources
    actor = node.get("primaryActor")
    account = actor.get("cloudAccount") if isinstance(actor, dict) else None
    if not isinstance(account, dict):
        accounts = node.get("cloudAccounts")
        account = (
            accounts[0] if isinstance(accounts, list) and accounts and isinstance(accounts[0], dict) else {}
        )
    common.set_cloud(
        out,
        account.get("cloudProvider"),
        primary.get("region"),
        account.get("externalId"),
        account.get("name"),
    )
    return _finish(out, node, taken)


# -- vulnerability findings ------------------------------------------------------------------------

_VULNERABILITY_TAKEN = dict.fromkeys(
    ("id", "name", "portalUrl", "status", "CVSSSeverity", "vendorSeverity", "hasExploit"),
    True,
)


def map_vulnerability(node: dict[str, Any], raw_text: str, window_ms: int) -> dict[str, Any]:
    taken: common.Taken = dict(_VULNERABILITY_TAKEN)
    status = node.get("status")
    finding: dict[str, Any] = {"uid": common.text(node.get("id")) or "unknown"}
    vulnerability: dict[str, Any] = {}
    _set_time(vulnerability, "first_seen_time", node, "firstDetectedAt", taken)
    _set_time(vulnerability, "last_seen_time", node, "lastDetectedAt", taken)
    cvss_severity = common.text(node.get("CVSSSeverity"))
    vendor_severity = common.text(node.get("vendorSeverity"))
    out = _finding_event(
        _VULNERABILITY,
        node,
        raw_text,
        window_ms,
        data_type="vulnerability_findings",
        finding=finding,
        taken=taken,
        created_field="firstDetectedAt",
        status=status,
        # CVSS NONE with a vendor rating (an advisory's) is the vendor's, not Informational.
        severity=vendor_severity if cvss_severity in (None, "NONE") and vendor_severity else cvss_severity,
    )
    common.set_finding_status(out, _VULNERABILITY, status)
    name = common.text(node.get("name")) or "unknown"
    finding["title"] = name
    url = common.text(node.get("portalUrl"))
    if url is not None:
        finding["src_url"] = url
    out["finding_info"] = finding

    vulnerability["title"] = name
    desc = common.text(node.get("description"))
    if desc is not None:
        vulnerability["desc"] = desc
        taken["description"] = True
    if vendor_severity is not None:
        vulnerability["severity"] = vendor_severity
    if name.startswith("CVE-"):
        cve: dict[str, Any] = {"uid": name}
        cve_desc = common.text(node.get("CVEDescription"))
        if cve_desc is not None:
            cve["desc"] = cve_desc
            taken["CVEDescription"] = True
        score = node.get("score")
        if type(score) in (int, float):
            cvss: dict[str, Any] = {"base_score": float(score), "version": CVSS_VERSION}
            if cvss_severity is not None:
                cvss["severity"] = cvss_severity
            cve["cvss"] = [cvss]
            taken["score"] = True
        probability = node.get("epssProbability")
        if type(probability) in (int, float):
            epss: dict[str, Any] = {"score": str(probability)}  # a string_t in 1.5.0
            percentile = node.get("epssPercentile")
            if type(percentile) in (int, float):
                epss["percentile"] = float(percentile)
                taken["epssPercentile"] = True
            cve["epss"] = epss
            taken["epssProbability"] = True
        vulnerability["cve"] = cve
    else:
        vulnerability["advisory"] = {"uid": name}
    package, version = common.text(node.get("detailedName")), common.text(node.get("version"))
    if package is not None and version is not None:
        affected: dict[str, Any] = {"name": package, "version": version}
        fixed = common.text(node.get("fixedVersion"))
        if fixed is not None:
            affected["fixed_in_version"] = fixed
            taken["fixedVersion"] = True
        path = common.text(node.get("locationPath"))
        if path is not None:
            affected["path"] = path
            taken["locationPath"] = True
        vulnerability["affected_packages"] = [affected]
        taken["detailedName"] = taken["version"] = True
    remedy = common.text(node.get("remediation"))
    if remedy is not None:
        vulnerability["remediation"] = {"desc": remedy}
        taken["remediation"] = True
    vulnerability["is_fix_available"] = common.text(node.get("fixedVersion")) is not None
    exploit = node.get("hasExploit")
    if type(exploit) is bool:
        vulnerability["is_exploit_available"] = exploit
    link = common.text(node.get("link"))
    if link is not None:
        vulnerability["references"] = [link]
        taken["link"] = True
    out["vulnerabilities"] = [vulnerability]

    asset = node.get("vulnerableAsset")
    if isinstance(asset, dict):
        resource = common.resource(asset, ("providerUniqueId",))
        asset_taken = dict.fromkeys(("id", "name", "type", "region", "providerUniqueId"), True)
        if resource:
            out["resources"] = [resource]
        common.set_cloud(
            out,
            asset.get("cloudPlatform"),
            asset.get("region"),
            asset.get("subscriptionExternalId"),
            asset.get("subscriptionName"),
        )
        if "cloud" in out:
            asset_taken.update(
                dict.fromkeys(("cloudPlatform", "subscriptionExternalId", "subscriptionName"), True)
            )
        taken["vulnerableAsset"] = asset_taken
    return _finish(out, node, taken)


# -- cloud configuration findings ------------------------------------------------------------------


def map_configuration(node: dict[str, Any], raw_text: str, window_ms: int) -> dict[str, Any]:
    taken: common.Taken = {"id": True, "status": True, "severity": True, "result": True}
    status = node.get("status")
    finding: dict[str, Any] = {"uid": common.text(node.get("id")) or "unknown"}
    out = _finding_event(
        _COMPLIANCE,
        node,
        raw_text,
        window_ms,
        data_type="configuration_findings",
        finding=finding,
        taken=taken,
        created_field="firstSeenAt",
        status=status,
        severity=node.get("severity"),
    )
    common.set_finding_status(out, _COMPLIANCE, status)
    rule = node.get("rule") if isinstance(node.get("rule"), dict) else {}
    compliance: dict[str, Any] = {}
    control = common.text(rule.get("shortId"))
    if control is not None:
        compliance["control"] = control
    standards: list[str] = []
    subcategories = node.get("securitySubCategories")
    for sub in subcategories if isinstance(subcategories, list) else ():
        category = sub.get("category") if isinstance(sub, dict) else None
        framework = category.get("framework") if isinstance(category, dict) else None
        framework_name = common.text(framework.get("name")) if isinstance(framework, dict) else None
        if framework_name is not None and framework_name not in standards:
            standards.append(framework_name)
    if standards:
        compliance["standards"] = standards
    result = node.get("result")
    if type(result) is str and result:
        status_id = _COMPLIANCE_STATUS.get(result, 99)
        compliance["status_id"] = status_id
        compliance["status"] = common.caption(_COMPLIANCE_STATUS_CAPTIONS, status_id, result)
    out["compliance"] = compliance
    title = common.text(rule.get("name")) or common.text(node.get("name"))
    if title is not None:
        finding["title"] = title
        taken["name"] = True
    desc = common.text(rule.get("description"))
    if desc is not None:
        finding["desc"] = desc
    analytic = _analytic(rule.get("id"), rule.get("name"))
    if analytic is not None:
        finding["analytic"] = analytic
    out["finding_info"] = finding
    rule_taken = dict.fromkeys(("id", "shortId", "name", "description"), True)
    remedy = common.text(rule.get("remediationInstructions"))
    if remedy is not None:
        out["remediation"] = {"desc": remedy}
        rule_taken["remediationInstructions"] = True
    else:
        remedy = common.text(node.get("remediation"))
        if remedy is not None:
            out["remediation"] = {"desc": remedy}
            taken["remediation"] = True
    if rule:
        taken["rule"] = rule_taken
    resource_node = node.get("resource")
    if isinstance(resource_node, dict):
        resource = common.resource(resource_node, ("providerId",))
        resource_taken: common.Taken = dict.fromkeys(
            ("id", "name", "nativeType", "type", "region", "providerId"), True
        )
        if resource:
            out["resources"] = [resource]
        subscription = resource_node.get("subscription")
        subscription = subscription if isinstance(subscription, dict) else {}
        common.set_cloud(
            out,
            common.pick(resource_node, "cloudPlatform") or subscription.get("cloudProvider"),
            resource_node.get("region"),
            subscription.get("externalId"),
            subscription.get("name"),
        )
        if "cloud" in out:
            resource_taken["cloudPlatform"] = True
            resource_taken["subscription"] = dict.fromkeys(("externalId", "name", "cloudProvider"), True)
        taken["resource"] = resource_taken
    return _finish(out, node, taken)
