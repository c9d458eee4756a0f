"""A simulated Wiz tenant: audit log entries and issues with status histories, as of any moment.

``generate_tenant`` builds a deterministic, realistically messy tenant from a seed; tests can also
add hand-made records (``add_audit_entry``, ``add_issue``) to pin down boundary cases.
"""

from __future__ import annotations

import bisect
import copy
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, overload

import msgspec

from wiz_pipeline.core.times import parse_time
from wiz_pipeline.simulator.findings import KINDS, FindingStore
from wiz_pipeline.simulator.stamps import mix as _mix
from wiz_pipeline.simulator.stamps import wiz_time


@dataclass
class IssueRecord:
    """One issue and its history. ``changes`` are (time, status), ascending; the first is creation.
    ``edits`` are (time, fields) that change the issue without touching its status (severity,
    tickets, due date), ascending; ``deleted_at`` is when it disappeared from the API, if it did."""

    node: dict[str, Any]  # every field but the time- and status-dependent ones
    changes: list[tuple[datetime, str]]
    notes: list[dict[str, Any]] = field(default_factory=list)  # each with "createdAt"
    digits: int = 6  # fractional digits of its timestamps (the API's vary)
    # Real data has updatedAt earlier than createdAt or statusChangedAt now and then.
    updated_lag: timedelta = timedelta(0)
    edits: list[tuple[datetime, dict[str, Any]]] = field(default_factory=list)
    deleted_at: datetime | None = None

    @property
    def created_at(self) -> datetime:
        return self.changes[0][0]

    @property
    def last_event(self) -> datetime:
        times = [t for t, _ in self.changes] + [parse_time(n["createdAt"]) for n in self.notes]
        times += [t for t, _ in self.edits] + ([self.deleted_at] if self.deleted_at else [])
        return max(t for t in times if t is not None)

    def as_of(self, now: datetime) -> dict[str, Any] | None:
        """The issue as the API would show it at ``now``; None if it didn't exist yet."""
        seen = [(t, s) for t, s in self.changes if t <= now]
        if not seen or (self.deleted_at is not None and self.deleted_at <= now):
            return None
        changed_at, status = seen[-1]
        node = copy.copy(self.node)
        edited = []
        for t, fields in self.edits:
            if t <= now:
                node.update(fields)
                edited.append(t)
        node["status"] = status
        node["createdAt"] = wiz_time(self.created_at, self.digits)
        node["statusChangedAt"] = wiz_time(changed_at, self.digits)
        notes = [n for n in self.notes if (parse_time(n["createdAt"]) or now) <= now]
        node["notes"] = notes
        updated = max([changed_at, *edited] + [parse_time(n["updatedAt"]) or changed_at for n in notes])
        node["updatedAt"] = wiz_time(updated - self.updated_lag, self.digits)
        resolved = [t for t, s in seen if s in ("RESOLVED", "REJECTED")]
        # Real data keeps resolvedAt after a reopen; so does the simulator.
        node["resolvedAt"] = wiz_time(resolved[-1], self.digits) if resolved else None
        return node


@dataclass
class Tenant:
    """The records behind the simulator. Audit entries are kept sorted by time for cheap filtering.

    An audit entry can be published late: the API shows it only from ``audit_published[i]`` on, some
    time after its timestamp (ingestion delay). ``audit_published`` is None while no entry is late,
    and ``max_audit_delay`` bounds every delay, so a query scans only the entries that recent.
    """

    audit_times: list[datetime] = field(default_factory=list)
    audit_nodes: list[dict[str, Any] | msgspec.Raw] = field(default_factory=list)
    issues: list[IssueRecord] = field(default_factory=list)
    revision: int = 0  # counts changes to the issues, so that the server's cached lists follow them
    audit_published: list[datetime] | None = None
    max_audit_delay: timedelta = timedelta(0)
    # Vulnerability findings, configuration findings and detections, by kind (see findings.py).
    findings: dict[str, FindingStore] = field(default_factory=dict)

    def add_audit_entry(self, node: dict[str, Any], *, published_at: datetime | None = None) -> None:
        """Add an entry; ``published_at`` (after its timestamp) makes it visible only from then on."""
        when = parse_time(node.get("timestamp"))
        if when is None:
            raise ValueError(f"audit entry without a readable timestamp: {node.get('timestamp')!r}")
        index = bisect.bisect_right(self.audit_times, when)
        self.audit_times.insert(index, when)
        self.audit_nodes.insert(index, node)
        published = when if published_at is None else max(when, published_at)
        if published > when and self.audit_published is None:
            self.audit_published = list(self.audit_times)
            self.audit_published.pop(index)
        if self.audit_published is not None:
            self.audit_published.insert(index, published)
            self.max_audit_delay = max(self.max_audit_delay, published - when)

    def audit_unpublished(self, lo: int, hi: int, now: datetime) -> list[int]:
        """Indices in ``[lo, hi)`` of entries not yet published at ``now``, newest first. Only entries
        less than ``max_audit_delay`` old can be, so only those are looked at."""
        published = self.audit_published
        if published is None or hi <= lo:
            return []
        start = max(lo, bisect.bisect_left(self.audit_times, now - self.max_audit_delay))
        return [i for i in range(hi - 1, start - 1, -1) if published[i] > now]

    def encode_audit_nodes(self) -> None:
        """Keep each audit entry as its encoded JSON (``msgspec.Raw``), served as it is: a large
        tenant takes a fraction of the memory and pages cost no projection. The simulator then
        answers every field of an entry whatever a query selects (the collector selects them all),
        and in exactly the bytes stored."""
        self.audit_nodes = [
            msgspec.Raw(msgspec.json.encode(node)) if isinstance(node, dict) else node
            for node in self.audit_nodes
        ]

    def add_audit_burst(self, start: datetime, end: datetime, count: int, *, seed: int = 13) -> None:
        """``count`` generated audit entries spread at random over ``[start, end)``, merged in at
        once (one by one, each insertion would shift the whole list)."""
        rng = random.Random(seed)
        span = (end - start).total_seconds()
        last = end - timedelta(microseconds=1)
        times = sorted(min(start + timedelta(seconds=rng.random() * span), last) for _ in range(count))
        pairs = [*zip(self.audit_times, self.audit_nodes, strict=True)]
        pairs += [(when, _audit_entry(rng, when)) for when in times]
        pairs.sort(key=lambda pair: pair[0])  # stable: entries already there keep their order
        self.audit_times = [when for when, _ in pairs]
        self.audit_nodes = [node for _, node in pairs]

    def add_issue(self, record: IssueRecord) -> None:
        self.issues.append(record)
        self.revision += 1

    # Changes to existing issues, as a user or Wiz makes them; each one at a time the simulator's
    # clock may not have reached yet (it shows from then on).

    def issue(self, issue_id: str) -> IssueRecord:
        return next(r for r in self.issues if r.node["id"] == issue_id)

    def edit_issue(self, issue_id: str, at: datetime, **fields: Any) -> None:
        """Change fields other than the status (``severity``, ``serviceTickets``, ``dueAt``...):
        ``updatedAt`` moves, ``statusChangedAt`` doesn't, so no issue window sees it."""
        if "status" in fields:
            raise ValueError("use set_issue_status to change an issue's status")
        record = self.issue(issue_id)
        record.edits.insert(bisect.bisect_right([t for t, _ in record.edits], at), (at, fields))
        self.revision += 1

    def add_issue_note(self, issue_id: str, at: datetime, text: str) -> None:
        stamp = wiz_time(at)
        note = {"createdAt": stamp, "updatedAt": stamp, "text": text, "user": None, "serviceAccount": None}
        self.issue(issue_id).notes.append(note)
        self.revision += 1

    def set_issue_status(self, issue_id: str, at: datetime, status: str) -> None:
        """Resolve, reject, reopen...: ``statusChangedAt`` moves to ``at``."""
        record = self.issue(issue_id)
        record.changes.insert(bisect.bisect_right([t for t, _ in record.changes], at), (at, status))
        self.revision += 1

    def delete_issue(self, issue_id: str, at: datetime) -> None:
        """The issue is gone from the API from ``at`` on (its resource was deleted, say)."""
        self.issue(issue_id).deleted_at = at
        self.revision += 1

    def audit_between(self, after: datetime | None, before: datetime | None) -> tuple[int, int]:
        """Index range of entries with ``after <= timestamp <= before`` (both bounds inclusive)."""
        lo = 0 if after is None else bisect.bisect_left(self.audit_times, after)
        hi = len(self.audit_times) if before is None else bisect.bisect_right(self.audit_times, before)
        return lo, max(lo, hi)

    def issues_as_of(self, now: datetime) -> list[dict[str, Any]]:
        return [node for record in self.issues if (node := record.as_of(now)) is not None]

    # Findings and detections, ``kind`` one of KINDS. Each change makes a new version at ``at``,
    # shown from then on with ``updatedAt`` = ``at``; the API shows only the latest version.

    def finding_store(self, kind: str) -> FindingStore:
        store = self.findings.get(kind)
        if store is None:
            store = self.findings[kind] = FindingStore(kind, _EPOCH, _EPOCH + timedelta(seconds=1), 0, 0)
        return store

    def add_finding(self, kind: str, node: dict[str, Any]) -> None:
        """A hand-made finding (with ``id`` and ``updatedAt``, its first version's time)."""
        self.finding_store(kind).add(node)

    def update_finding(self, kind: str, finding_id: str, at: datetime, **fields: Any) -> None:
        """A new version at ``at`` with ``fields`` changed. A vulnerability whose ``status`` becomes
        RESOLVED gets ``resolvedAt`` = ``at`` (OPEN or IN_PROGRESS: null), unless given."""
        self.finding_store(kind).update(finding_id, at, fields)

    def delete_finding(self, kind: str, finding_id: str, at: datetime) -> None:
        """Gone from the API from ``at`` on: no version of it is served, in no window."""
        self.finding_store(kind).delete(finding_id, at)

    def findings_as_of(self, kind: str, now: datetime) -> list[dict[str, Any]]:
        """The current version of every finding visible at ``now``, whatever its status, result or
        type: what an unfiltered full read would ideally return (the API's quirks aside)."""
        return list(self.finding_store(kind).select(now))

    def finding_ids(self, kind: str) -> Sequence[str]:
        """Every id, made when read (a million cost nothing until then), including findings not yet
        visible and deleted ones."""
        return self.finding_store(kind).ids()

    def finding_versions(self, kind: str, finding_id: str) -> list[dict[str, Any]]:
        """Every version of a finding, oldest first, as the API showed each (deletion aside)."""
        return self.finding_store(kind).versions(finding_id)

    def update_random_findings(
        self, kind: str, share: float, start: datetime, end: datetime, *, seed: int = 17
    ) -> list[str]:
        """Updates ``share`` of the existing findings once each, at random times in ``[start, end)``
        (status changes, resolutions; severity for detections); the ids changed."""
        return self.finding_store(kind).update_random(share, start, end, seed)


# -- generation ----------------------------------------------------------------------------------

_USERS = [
    ("admin11", "u-1f3a"),
    ("jane.doe@example.com", "u-7c21"),
    ("sec-oncall@example.com", "u-9d02"),
    ("ravi.k@example.com", "u-44e0"),
    ("marta.s@example.com", "u-2b9c"),
]
_SERVICE_ACCOUNTS = [("op-us", "sa-mlip1"), ("siem-export", "sa-x91k"), ("terraform-ci", "sa-tf07")]
_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4",
    "python-requests/2.31.0",
    "Terraform/1.7.5 terraform-provider-wiz/1.1.30",
    "",
]
_USER_ACTIONS = [
    " user Login",
    "Login",
    "Logout",
    "UpdateUser",
    "CreateSavedGraphQuery",
    "UpdateCloudConfigurationRule",
    "UpdateIssue",
    "CreateReport",
    "DeleteServiceAccount",
    "CreateServiceAccount",
    "UpdateAutomationRule",
]
_API_ACTIONS = ["RunQuery", "CreateReport", "UpdateIssue", "RerunReport"]
_PROJECTS = [
    {
        "id": "83b76efe-0000-4c1a-9f00-000000000002",
        "name": "Project 2",
        "slug": "project-2",
        "businessUnit": "",
        "riskProfile": {"businessImpact": "MBI"},
    },
    {
        "id": "83b76efe-0000-4c1a-9f00-000000000007",
        "name": "Payments",
        "slug": "payments",
        "businessUnit": "Finance",
        "riskProfile": {"businessImpact": "HBI"},
    },
    {
        "id": "83b76efe-0000-4c1a-9f00-000000000009",
        "name": "Marketing site",
        "slug": "marketing-site",
        "businessUnit": "Marketing",
        "riskProfile": {"businessImpact": "LBI"},
    },
]
_SEVERITIES = ["INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL"]
_SEVERITY_WEIGHTS = [10, 30, 35, 18, 7]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _ip(rng: random.Random) -> str:
    if rng.random() < 0.1:
        return f"2001:db8:{rng.randrange(1 << 16):x}::{rng.randrange(1, 1 << 16):x}"
    first = rng.choice([34, 52, 81, 185, 203])
    return f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _audit_entry(rng: random.Random, when: datetime) -> dict[str, Any]:
    by_service_account = rng.random() < 0.35
    request_id = _uuid(rng)
    if by_service_account:
        sa_name, sa_id = rng.choice(_SERVICE_ACCOUNTS)
        action = rng.choice(_API_ACTIONS)
        params: dict[str, Any] | None = {
            "query": rng.choice(
                ["query IssuesTable { ... }", "query AuditLogTable { ... }", "mutation UpdateIssue"]
            ),
            "variables": {"first": rng.choice([100, 500]), "filterBy": {"severity": ["HIGH", "CRITICAL"]}},
            "clientID": sa_id,
        }
        user, service_account = None, {"id": sa_id, "name": sa_name}
        agent = rng.choice(_AGENTS[2:4])
    else:
        name, user_id = rng.choice(_USERS)
        action = rng.choice(_USER_ACTIONS)
        if "Login" in action:
            params = {
                "clientID": "kr7n" + user_id,
                "groups": None,
                "name": "op-us",
                "products": ["*"],
                "role": "",
                "scopes": ["read:issues", "read:reports"],
                "userEmail": "",
                "userID": user_id,
            }
        elif action == "UpdateIssue":
            params = {
                "issueId": _uuid(rng),
                "patch": {
                    "status": rng.choice(["IN_PROGRESS", "RESOLVED"]),
                    "note": rng.choice(["", "ack", "false positive"]),
                },
            }
        elif action in ("CreateServiceAccount", "DeleteServiceAccount"):
            params = {
                "name": rng.choice(["siem-export", "ci-bot", "temp-audit"]),
                "scopes": ["admin:audit", "read:issues"],
            }
        else:
            params = (
                {"id": _uuid(rng), "changes": {"enabled": rng.random() < 0.5}} if rng.random() < 0.8 else {}
            )
        user, service_account = {"id": user_id, "name": name}, None
        agent = rng.choice(_AGENTS)
    roll = rng.random()
    if roll < 0.03 and service_account is not None:
        user = {"id": "u-1f3a", "name": "admin11"}  # a user acting through a service account's token
    elif roll < 0.05:
        user = service_account = None  # done by Wiz itself
        action, agent = rng.choice(["ScheduledReportRun", "ConnectorScan"]), ""
    if rng.random() < 0.03:
        params = None
    failed = rng.random() < 0.04
    return {
        "id": _uuid(rng),
        "action": action,
        "requestId": request_id,
        "status": "FAILED" if failed else "SUCCESS",
        "timestamp": wiz_time(when, rng.choice([0, 3, 5, 6, 6])),
        "actionParameters": params,
        "userAgent": agent,
        "sourceIP": None if rng.random() < 0.15 else _ip(rng),
        "serviceAccount": service_account,
        "user": user,
    }


def _source_rule(rng: random.Random, issue_type: str) -> dict[str, Any]:
    n = rng.randrange(1, 2000)
    if issue_type == "THREAT_DETECTION":
        return {
            "__typename": "CloudEventRule",
            "id": f"cer-{n}",
            "name": rng.choice(
                [
                    "Suspicious IAM role assumption",
                    "Crypto-mining process detected",
                    "Console login without MFA",
                ]
            ),
            "description": "Detects unusual activity in cloud audit events.",
            "sourceType": rng.choice(["CLOUD_EVENTS", "SENSOR"]),
            "type": rng.choice(["DETECTION", "ALERT"]),
        }
    if issue_type == "CLOUD_CONFIGURATION":
        return {
            "__typename": "CloudConfigurationRule",
            "id": f"ccr-{n}",
            "name": rng.choice(
                [
                    "S3 bucket allows public read",
                    "Storage account allows blob public access",
                    "VM has public IP and open SSH",
                ]
            ),
            "description": "Resource configuration deviates from the baseline.",
            "remediationInstructions": rng.choice(["Block public access in the bucket settings.", ""]),
            "serviceType": rng.choice(["AWS", "Azure", "GCP"]),
        }
    return {
        "__typename": "Control",
        "id": f"wc-id-{n}",
        "name": rng.choice(
            [
                "EKS principals assume roles with admin permissions",
                "Publicly exposed VM with critical vulnerability",
                "Secret in container image with access to sensitive data",
            ]
        ),
        "description": "A toxic combination of risks.",
        "resolutionRecommendation": rng.choice(["Restrict the role's trust policy.", ""]),
        "securitySubCategories": [
            {
                "title": "4.1.8 Limit use of the Bind, Impersonate and Escalate permissions",
                "category": {"name": "4.1 RBAC and Service Accounts", "framework": {"name": "CIS EKS 1.2.0"}},
            }
        ],
    }


def _entity(rng: random.Random) -> dict[str, Any]:
    cloud = rng.choice(["AWS", "AWS", "Azure", "GCP", "Kubernetes"])
    rid = _uuid(rng)
    if cloud == "AWS":
        account = str(rng.randrange(10**11, 10**12))
        kind, native, name = rng.choice(
            [
                ("BUCKET", "s3#Bucket", "logs-prod"),
                ("VIRTUAL_MACHINE", "ec2#Instance", "i-0a1b2c3d"),
                ("ACCESS_ROLE", "iam#Role", "deploy-role"),
            ]
        )
        return {
            "id": rid,
            "type": kind,
            "nativeType": native,
            "name": name,
            "status": "Active",
            "cloudPlatform": "AWS",
            "cloudProviderURL": f"https://console.aws.amazon.com/go/{rid}",
            "providerId": f"arn:aws:::{account}:{name}",
            "region": rng.choice(["us-east-1", "eu-west-1"]),
            "resourceGroupExternalId": "",
            "subscriptionExternalId": account,
            "subscriptionName": rng.choice(["prod", "staging"]),
            "subscriptionTags": {"env": "prod"},
            "tags": rng.choice([{}, {"owner": "platform", "cost-center": "42"}]),
            "externalId": f"arn:aws:::{account}:{name}",
        }
    if cloud == "Azure":
        sub = _uuid(rng)
        return {
            "id": rid,
            "type": "VIRTUAL_MACHINE",
            "nativeType": "Microsoft.Compute/virtualMachines",
            "name": "vm-web-01",
            "status": rng.choice(["Active", "Inactive"]),
            "cloudPlatform": "Azure",
            "cloudProviderURL": f"https://portal.azure.com/#resource/{rid}",
            "providerId": rid,
            "region": "westeurope",
            "resourceGroupExternalId": f"/subscriptions/{sub}/resourcegroups/web",
            "subscriptionExternalId": sub,
            "subscriptionName": "demo-integrations",
            "subscriptionTags": {},
            "tags": {"app": "web"},
            "externalId": rid,
        }
    if cloud == "GCP":
        return {
            "id": rid,
            "type": "BUCKET",
            "nativeType": "storage#bucket",
            "name": "analytics-exports",
            "status": None,
            "cloudPlatform": "GCP",
            "cloudProviderURL": "https://console.cloud.google.com/",
            "providerId": f"gs://analytics-exports-{rid[:8]}",
            "region": "europe-west1",
            "resourceGroupExternalId": None,
            "subscriptionExternalId": "acme-analytics-prod",
            "subscriptionName": "acme-analytics-prod",
            "subscriptionTags": {},
            "tags": {},
            "externalId": f"gs://analytics-exports-{rid[:8]}",
        }
    return {
        "id": rid,
        "type": "ACCESS_ROLE",
        "nativeType": "ClusterRole",
        "name": "system:aggregate-to-edit",
        "status": "Active",
        "cloudPlatform": "Kubernetes",
        "cloudProviderURL": "https://example.invalid/k8s",
        "providerId": f"k8s/clusterrole/{rid}",
        "region": "us-01",
        "resourceGroupExternalId": "",
        "subscriptionExternalId": "998231069301",
        "subscriptionName": "demo-integrations",
        "subscriptionTags": {},
        "tags": {"kubernetes.io/bootstrapping": "rbac-defaults"},
        "externalId": f"k8s/clusterrole/{rid}",
    }


_PATHS = [
    ["OPEN"],
    ["OPEN", "IN_PROGRESS"],
    ["OPEN", "RESOLVED"],
    ["OPEN", "IN_PROGRESS", "RESOLVED"],
    ["OPEN", "REJECTED"],
    ["OPEN", "RESOLVED", "OPEN"],
]


def _issue(rng: random.Random, created: datetime, end: datetime) -> IssueRecord:
    issue_type = rng.choices(["TOXIC_COMBINATION", "THREAT_DETECTION", "CLOUD_CONFIGURATION"], [2, 3, 5])[0]
    severity = rng.choices(_SEVERITIES, _SEVERITY_WEIGHTS)[0]
    changes = [(created, "OPEN")]
    t = created
    for status in rng.choice(_PATHS)[1:]:
        t = t + (end - t) * rng.random() * 0.7
        if t >= end:
            break
        changes.append((t, status))
    notes = []
    for _ in range(rng.choice([0, 0, 1, 2])):
        at = created + (end - created) * rng.random()
        notes.append(
            {
                "createdAt": wiz_time(at),
                "updatedAt": wiz_time(at),
                "text": rng.choice(["updated", "ack", ""]),
                "user": rng.choice([{"name": "admin", "email": "admin@example.com"}, None]),
                "serviceAccount": rng.choice([None, {"name": "rev-ke"}]),
            }
        )
    source_rule = _source_rule(rng, issue_type) if rng.random() > 0.03 else None
    if rng.random() < 0.02:
        issue_type = "DATA_SECURITY"  # the enums grow: clients must not reject unknown values
    node = {
        "id": _uuid(rng),
        "sourceRule": source_rule,
        "dueAt": wiz_time(created + timedelta(days={"CRITICAL": 3, "HIGH": 7}.get(severity, 30)))
        if rng.random() < 0.6
        else None,
        "projects": rng.sample(_PROJECTS, rng.choice([0, 1, 1, 2])),
        "severity": severity,
        "type": issue_type,
        "entitySnapshot": _entity(rng) if rng.random() > 0.02 else None,
        "serviceTickets": [
            {
                "externalId": str(rng.randrange(10**3, 10**4)),
                "name": f"SIR{rng.randrange(10**7):07d}",
                "url": "https://tickets.example.com/SIR",
            }
        ]
        if rng.random() < 0.2
        else [],
    }
    lag = timedelta(seconds=rng.randrange(60, 86400)) if rng.random() < 0.05 else timedelta(0)
    return IssueRecord(
        node=node, changes=changes, notes=notes, digits=rng.choice([0, 3, 6, 6]), updated_lag=lag
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def generate_tenant(
    start: datetime,
    end: datetime,
    *,
    audit_entries: int = 2000,
    issues: int = 300,
    vulnerability_findings: int = 0,
    configuration_findings: int = 0,
    detections: int = 0,
    finding_update_share: float = 0.1,
    finding_delete_share: float = 0.01,
    seed: int = 7,
    boundary_share: float = 0.01,
    late_share: float = 0.0,
    max_late_seconds: float = 3000.0,
) -> Tenant:
    """A tenant whose audit entries and issue status changes fall in ``[start, end)``.

    ``boundary_share`` of the audit entries sit exactly on a half-hour mark, so that window
    boundaries are exercised by ordinary data, not only by hand-made cases. ``late_share`` of them
    are published late, each a random 60 s .. ``max_late_seconds`` after its timestamp (drawn from
    a generator of their own, so the rest of the tenant is the same with or without them).

    Findings and detections (generators of their own, too) have a first version each, spread over
    ``[start, end)``; ``finding_update_share`` of them change once later in the range (so a change
    log has repeats) and ``finding_delete_share`` disappear at a time in it.
    """
    if start.tzinfo is None or end.tzinfo is None or not start < end:
        raise ValueError("generate_tenant needs timezone-aware start < end")
    rng = random.Random(seed)
    span = (end - start).total_seconds()
    tenant = Tenant()
    times = []
    for _ in range(audit_entries):
        when = start + timedelta(seconds=rng.random() * span)
        if rng.random() < boundary_share:
            when = when.replace(minute=0 if when.minute < 30 else 30, second=0, microsecond=0)
            when = max(when, start)
        times.append(when)
    times.sort()
    tenant.audit_times = times
    tenant.audit_nodes = [_audit_entry(rng, when) for when in times]
    if late_share > 0:
        late = random.Random(seed * 7919 + 1)
        delays = [
            timedelta(seconds=late.uniform(60, max(60.0, max_late_seconds)))
            if late.random() < late_share
            else timedelta(0)
            for _ in times
        ]
        tenant.audit_published = [when + delay for when, delay in zip(times, delays, strict=True)]
        tenant.max_audit_delay = max(delays, default=timedelta(0))
    for _ in range(issues):
        # Some issues are older than the range and only change status inside it.
        created = start + timedelta(seconds=rng.random() * span)
        record = _issue(rng, created, end)
        if rng.random() < 0.2 and len(record.changes) > 1:
            record.changes[0] = (created - timedelta(days=rng.randrange(1, 30)), "OPEN")
        tenant.add_issue(record)
    counts = zip(KINDS, (vulnerability_findings, configuration_findings, detections), strict=True)
    for number, (kind, count) in enumerate(counts):
        if count <= 0:
            continue
        store = tenant.findings[kind] = FindingStore(kind, start, end, count, seed)
        store.update_random(finding_update_share, start, end, seed * 31 + number)
        doomed = random.Random(seed * 37 + number)
        ids = store.ids()
        for pick in doomed.sample(range(count), round(finding_delete_share * count)):
            first = store.base_us(pick)
            at = first + doomed.randrange(1, max(2, store.end_us - first))
            store.delete(ids[pick], datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=at))
    return tenant


# -- a long history, made on demand ----------------------------------------------------------------
# A year of a mid-size tenant is millions of entries: built eagerly it takes minutes and gigabytes.
# Here each entry is made when the API reads it, from its index alone, so it is the same every time.

# Weekday working hours (08:00-18:00 UTC) are busier than nights, weekends quieter still.
_HOUR_WEIGHTS = [1.0] * 8 + [3.0] * 10 + [1.0] * 6
_WEEKEND_WEIGHT = 0.4


class _AuditTimes(Sequence[datetime]):
    """Entry times in ascending order: a count per hour, spread evenly with jitter inside the hour."""

    def __init__(self, start: datetime, per_hour: list[int], seed: int) -> None:
        self.start, self.seed = start, seed
        self.first = [0]  # index of each hour's first entry
        for count in per_hour:
            self.first.append(self.first[-1] + count)

    def __len__(self) -> int:
        return self.first[-1]

    @overload
    def __getitem__(self, index: int) -> datetime: ...
    @overload
    def __getitem__(self, index: slice) -> list[datetime]: ...
    def __getitem__(self, index: int | slice) -> datetime | list[datetime]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        hour = bisect.bisect_right(self.first, index) - 1
        nth, count = index - self.first[hour], self.first[hour + 1] - self.first[hour]
        jitter = _mix(self.seed ^ index) / 2.0**64  # in [0, 1): order within the hour is kept
        micros = int((nth + jitter) / count * 3_600_000_000)
        return self.start + timedelta(hours=hour, microseconds=micros)


class _AuditNodes(Sequence[dict[str, Any]]):
    def __init__(self, times: _AuditTimes, seed: int) -> None:
        self.times, self.seed = times, seed

    def __len__(self) -> int:
        return len(self.times)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...
    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        when = self.times[index]  # checks the index
        return _audit_entry(random.Random(_mix(self.seed * 7919 + index % len(self))), when)


def generate_long_tenant(start: datetime, end: datetime, *, audit_per_day: int, seed: int = 7) -> Tenant:
    """Audit entries only, ``audit_per_day`` on average from ``start`` (an hour boundary) to ``end``,
    busier on weekday working hours and quieter on weekends; each entry is made when it is read.

    Entries can't be added to it (``add_audit_entry``), and none sits exactly on a window boundary.
    """
    if start.tzinfo is None or end.tzinfo is None or not start < end or start.minute or start.second:
        raise ValueError("generate_long_tenant needs timezone-aware start < end, start on an hour")
    rng = random.Random(seed)
    hours = int((end - start).total_seconds() // 3600)
    weights = []
    for h in range(hours):
        at = start + timedelta(hours=h)
        if h % 24 == 0:
            day_factor = rng.uniform(0.6, 1.4)  # busy days and quiet ones
        base = _WEEKEND_WEIGHT if at.weekday() >= 5 else _HOUR_WEIGHTS[at.hour]
        weights.append(base * day_factor)
    total = audit_per_day * hours / 24
    per_hour, placed, acc = [], 0, 0.0
    scale = total / sum(weights)
    for weight in weights:
        acc += weight * scale
        per_hour.append(round(acc) - placed)
        placed += per_hour[-1]
    times = _AuditTimes(start, per_hour, seed)
    tenant = Tenant()
    tenant.audit_times = times  # type: ignore[assignment]  # a read-only sequence serves the API
    tenant.audit_nodes = _AuditNodes(times, seed)  # type: ignore[assignment]
    return tenant
