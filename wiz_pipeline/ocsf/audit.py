"""Audit log entries -> Authentication (3002) or API Activity (6003).

Decisions ocsf.md leaves open, taken here:
- The split is on the trimmed action's last word: ``Login`` and ``DeviceLogin`` (and padded
  ``" Login "``) are Authentication, and so is ``" user Login"``, the form the shared notes' sample
  login has (a user's successful sign-in, with its client and scopes): read literally, the table would
  file the one real login sample as an API call. ``Logout``, ``LoginAttempt`` and the rest are API
  Activity (``analytics.failed_logins`` reads logins the same way).
- A subject with both ``user`` and ``serviceAccount`` (a user acting through a service account's
  token) is the user; the service account goes to ``unmapped``. Neither (Wiz itself acted): an
  Authentication's ``user`` is ``{name: "unknown", type_id: 0}`` (the attribute is required); an API
  Activity's ``actor`` is ``{app_name: "Wiz"}`` (the actor needs one of user, process, app_name...).
- An API Activity without ``sourceIP`` has ``src_endpoint {uid: "unknown"}``: the endpoint is
  required and needs one identifier, and "unknown" can't be mistaken for an address or a host name.
- The Wiz ``status`` text is kept in ``status_code`` (FAILED and ACCESS_DENIED are both 2 Failure).
- The verb is the action's first word (``CreateReport`` -> Create); an action that starts otherwise
  (``user Login``, ``RerunReport``) is 99 Other.
- An unreadable ``timestamp`` (``time`` is required) takes the window's start; the text stays in
  ``metadata.original_time``, ``unmapped`` and ``raw_data``.
"""

from __future__ import annotations

import re
from typing import Any

from wiz_pipeline.ocsf import common, schema
from wiz_pipeline.ocsf.times import epoch_ms

LOGIN_ACTIONS = frozenset({"Login", "DeviceLogin"})
_AUTHENTICATION = common.CLASSIFICATIONS["authentication"]
_API = common.CLASSIFICATIONS["api_activity"]
_VERBS = {
    **dict.fromkeys(("Create", "Add"), 1),
    **dict.fromkeys(("Get", "List", "Read", "Run", "Export", "Download"), 2),
    **dict.fromkeys(("Update", "Set", "Enable", "Disable", "Edit"), 3),
    **dict.fromkeys(("Delete", "Remove"), 4),
}
_VERB = re.compile(r"[A-Za-z][a-z]*")
_AUDIT_STATUS = {"SUCCESS": 1, "FAILED": 2, "INVALID": 2, "ACCESS_DENIED": 2}
_BASE_TAKEN: common.Taken = dict.fromkeys(
    ("id", "action", "requestId", "status", "timestamp", "userAgent", "sourceIP"), True
)
_USER_TAKEN = {"id": True, "name": True}
_USER_TYPE_CAPTIONS = schema.enum_captions(schema.object_shape("user"), "type_id")
# 99 is "Other": its caption says which other.
_USER_TYPES = {0: _USER_TYPE_CAPTIONS[0], 1: _USER_TYPE_CAPTIONS[1], 99: "Service Account"}


def is_login(node: dict[str, Any]) -> bool:
    action = node.get("action")
    return type(action) is str and action.strip().rpartition(" ")[2] in LOGIN_ACTIONS


def activity_id(action: str) -> int:
    match = _VERB.match(action)
    if match is None:
        return 99
    verb = match.group()
    return _VERBS.get(verb[0].upper() + verb[1:], 99)


def _subject(node: dict[str, Any], taken: common.Taken) -> dict[str, Any] | None:
    for key, type_id in (("user", 1), ("serviceAccount", 99)):
        who = node.get(key)
        if not isinstance(who, dict):
            continue
        user = {
            k: v
            for k, v in (("uid", common.text(who.get("id"))), ("name", common.text(who.get("name"))))
            if v
        }
        if user:
            taken[key] = _USER_TAKEN
            return {**user, "type_id": type_id, "type": _USER_TYPES[type_id]}
    return None


def map_audit(node: dict[str, Any], raw_text: str, window_ms: int) -> tuple[str, dict[str, Any]]:
    """(class name, event) of one audit log entry."""
    login = is_login(node)
    cls = _AUTHENTICATION if login else _API
    action = node.get("action")
    operation = action.strip() if type(action) is str else ""
    taken = dict(_BASE_TAKEN)
    stamp = node.get("timestamp")
    time_ms = epoch_ms(stamp)
    if time_ms is None:
        time_ms = window_ms
        taken.pop("timestamp")
    out = common.event(
        cls,
        1 if login else activity_id(operation),
        (1, None),  # audit entries carry no severity: Informational
        time_ms,
        common.text(node.get("id")),
        "audit_logs",
        stamp,
        raw_text,
    )
    status = node.get("status")
    if type(status) is str and status:
        status_id = _AUDIT_STATUS.get(status, 99)
        out["status_code"] = status
    else:
        status_id = 0
    out["status_id"] = status_id
    out["status"] = common.caption(cls.statuses, status_id, status if type(status) is str else None)

    subject = _subject(node, taken)
    ip = common.text(node.get("sourceIP"))
    agent = common.text(node.get("userAgent"))
    if login:
        out["user"] = subject or {"name": "unknown", "type_id": 0, "type": _USER_TYPES[0]}
        out["service"] = {"name": "Wiz"}
        if ip is not None:
            out["src_endpoint"] = {"ip": ip}
    else:
        out["actor"] = {"user": subject} if subject else {"app_name": "Wiz"}
        api: dict[str, Any] = {"operation": operation or "unknown"}
        request_id = common.text(node.get("requestId"))
        if request_id is not None:
            api["request"] = {"uid": request_id}
        out["api"] = api
        out["src_endpoint"] = {"ip": ip} if ip is not None else {"uid": "unknown"}
    if agent is not None:
        out["http_request"] = {"user_agent": agent}
    unmapped = common.rest(node, taken)
    if unmapped:
        out["unmapped"] = unmapped
    return cls.name, out
