"""Wiz nodes -> OCSF 1.5.0 tables: class split, attributes, times, enums, and a validator that can fail."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import msgspec
import pyarrow as pa
import pytest

from wiz_pipeline.data_types import DATA_TYPES
from wiz_pipeline.ocsf import CLASSES, OCSF_VERSION, SOURCES, arrow_schema, columns, map_records, to_events
from wiz_pipeline.ocsf.mapping import map_events
from wiz_pipeline.ocsf.validate import invalid_rows
from wiz_pipeline.simulator import generate_tenant
from wiz_pipeline.simulator.schema import prepare, project

T0 = datetime(2025, 9, 12, 21, 0, tzinfo=UTC)
WINDOW = datetime(2023, 8, 1, tzinfo=UTC)
_CONNECTIONS = {
    "audit_logs": "AuditLogEntryConnection",
    "issues": "IssueConnection",
    "vulnerability_findings": "VulnerabilityFindingConnection",
    "configuration_findings": "ConfigurationFindingConnection",
    "detections": "DetectionConnection",
}

# The shared API notes' sample nodes (values as there, "..." kept).
AUDIT = {
    "id": "8f7fa6bd-ce32-4f11-91b4-a0377438561e",
    "action": " user Login",
    "requestId": "8f7fa6bd-ce32-4f11-91b4-a0377438561e",
    "status": "SUCCESS",
    "timestamp": "2023-08-24T08:54:21.44203Z",
    "actionParameters": {
        "clientID": "kr7n...",
        "groups": None,
        "name": "op-us",
        "products": ["*"],
        "role": "",
        "scopes": ["read:issues", "read:reports"],
        "userEmail": "",
        "userID": "mlip...",
    },
    "userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) ...",
    "sourceIP": None,
    "serviceAccount": {"id": "mlip...", "name": "op-us"},
    "user": {"id": "123abc", "name": "admin11"},
}
ISSUE = {
    "id": "fff9cffd-64a7-412c-9535-cf837f4b0b40",
    "type": "THREAT_DETECTION",
    "status": "IN_PROGRESS",
    "severity": "INFORMATIONAL",
    "createdAt": "2023-08-23T07:56:09.903743Z",
    "updatedAt": "2023-08-14T06:06:18.331647Z",
    "statusChangedAt": "2023-07-31T06:26:08.708199Z",
    "resolvedAt": "2023-08-09T23:10:22.588721Z",
    "dueAt": "2023-08-30T21:00:00Z",
    "sourceRule": {
        "__typename": "Control",
        "id": "wc-id-1335",
        "name": "EKS principals assume roles ...",
        "controlDescription": "...",
        "resolutionRecommendation": "...",
        "securitySubCategories": [
            {
                "title": "4.1.8 Limit use of ...",
                "category": {"name": "4.1 RBAC and Service Accounts", "framework": {"name": "CIS EKS 1.2.0"}},
            }
        ],
    },
    "entitySnapshot": {
        "id": "e507d472-...",
        "type": "ACCESS_ROLE",
        "nativeType": "ClusterRole",
        "name": "system:aggregate-to-edit",
        "status": "Active",
        "cloudPlatform": "Kubernetes",
        "cloudProviderURL": "https://...",
        "providerId": "k8s/clusterrole/...",
        "region": "us-01",
        "resourceGroupExternalId": "/subscriptions/.../resourcegroups/...",
        "subscriptionExternalId": "998231069301",
        "subscriptionName": "demo-integrations",
        "subscriptionTags": {},
        "tags": {"kubernetes.io/bootstrapping": "rbac-defaults"},
        "externalId": "k8s/clusterrole/...",
    },
    "projects": [
        {
            "id": "83b76efe-...",
            "name": "Project 2",
            "slug": "project-2",
            "businessUnit": "",
            "riskProfile": {"businessImpact": "MBI"},
        }
    ],
    "serviceTickets": [{"externalId": "6383...", "name": "SIR0010002", "url": "https://..."}],
    "notes": [
        {
            "createdAt": "...",
            "updatedAt": "...",
            "text": "updated",
            "user": {"name": "admin", "email": "admin@example.com"},
            "serviceAccount": {"name": "rev-ke"},
        }
    ],
}
VULNERABILITY = {
    "id": "5e95ff50-5490-514e-87f7-11e56f3230ff",
    "name": "CVE-2020-35522",
    "CVEDescription": "In LibTIFF, ...",
    "CVSSSeverity": "MEDIUM",
    "score": 5.5,
    "exploitabilityScore": 1.8,
    "hasExploit": False,
    "hasCisaKevExploit": False,
    "status": "OPEN",
    "vendorSeverity": "MEDIUM",
    "firstDetectedAt": "2022-05-01T11:36:10.063767Z",
    "lastDetectedAt": "2023-08-16T18:40:57Z",
    "resolvedAt": None,
    "updatedAt": "2023-08-16T18:40:57Z",
    "remediation": "yum update libtiff",
    "detailedName": "libtiff",
    "version": "4.0.3-35.amzn2",
    "fixedVersion": "4.0.3-35.amzn2.0.1",
    "detectionMethod": "PACKAGE",
    "link": "https://alas.aws.amazon.com/AL2/ALAS-2022-1780.html",
    "epssSeverity": "LOW",
    "epssProbability": 0.1,
    "projects": [{"id": "83b76efe-...", "name": "Project2", "slug": "project-2", "businessUnit": ""}],
    "vulnerableAsset": {
        "id": "c828de0d-...",
        "type": "VIRTUAL_MACHINE",
        "name": "test-4",
        "region": "us-east-1",
        "providerUniqueId": "arn:aws:ec2:us-east-1:111111111111:instance/i-0a0f...",
        "cloudPlatform": "AWS",
        "status": "Active",
        "subscriptionName": "wiz-integrations",
        "subscriptionExternalId": "111111111111",
        "tags": {"Name": "test-4"},
        "hasWideInternetExposure": True,
        "operatingSystem": "Linux",
        "ipAddresses": ["89.160.20.112"],
    },
}
SAMPLES = {"audit_logs": [AUDIT], "issues": [ISSUE], "vulnerability_findings": [VULNERABILITY]}


def encode(*nodes):
    return [msgspec.json.encode(node) for node in nodes]


@pytest.fixture(scope="module")
def simulated():
    """Each data type's nodes as the simulator answers the pipeline's own query (aliases, fragments)."""
    tenant = generate_tenant(
        T0,
        T0 + timedelta(hours=6),
        audit_entries=300,
        issues=120,
        vulnerability_findings=300,
        configuration_findings=300,
        detections=200,
        seed=11,
    )
    now = T0 + timedelta(days=1)
    out = {}
    for name, connection in _CONNECTIONS.items():
        if name == "audit_logs":
            nodes = list(tenant.audit_nodes)
        elif name == "issues":
            nodes = tenant.issues_as_of(now)
        else:
            nodes = tenant.findings_as_of(name, now)
        query = prepare(DATA_TYPES[name].query, {})
        root = query.fields[0]
        out[name] = encode(*project({"nodes": nodes}, root.selection, query.fragments, connection)["nodes"])
    return out


def one(data_type, node, window=WINDOW):
    tables = map_records(data_type, encode(node), window)
    (event,) = [e for table in tables.values() for e in to_events(table)]
    return event


# -- the whole output ---------------------------------------------------------------------------------


def test_public_interface():
    assert OCSF_VERSION == "1.5.0"
    assert {n: (c.class_uid, c.category_uid, c.caption) for n, c in CLASSES.items()} == {
        "authentication": (3002, 3, "Authentication"),
        "api_activity": (6003, 6, "API Activity"),
        "detection_finding": (2004, 2, "Detection Finding"),
        "vulnerability_finding": (2002, 2, "Vulnerability Finding"),
        "compliance_finding": (2003, 2, "Compliance Finding"),
    }
    assert all(c.description.endswith(".") for c in CLASSES.values())
    assert SOURCES["audit_logs"] == ("authentication", "api_activity")
    assert set(SOURCES) == set(DATA_TYPES)


@pytest.mark.parametrize("data_type", list(_CONNECTIONS))
def test_every_node_is_one_valid_row(simulated, data_type):
    raw = simulated[data_type] + encode(*SAMPLES.get(data_type, []))
    tables = map_records(data_type, raw, T0 + timedelta(hours=3))
    assert tuple(tables) == SOURCES[data_type]
    assert sum(t.num_rows for t in tables.values()) == len(raw)
    for name, table in tables.items():
        assert table.schema == arrow_schema(name)
        assert invalid_rows(name, table, limit=5) == (0, [])
    # Nothing mapped is lost on the way into Arrow (from_pylist ignores keys the schema lacks).
    for name, rows in map_events(data_type, raw, T0 + timedelta(hours=3)).items():
        assert to_events(tables[name]) == rows
    # Each raw node is exactly one row, in input order within its class.
    uids = [e["metadata"]["uid"] for t in tables.values() for e in to_events(t)]
    assert sorted(uids) == sorted(msgspec.json.decode(r)["id"] for r in raw)


def test_empty_input_gives_every_class_an_empty_table():
    tables = map_records("audit_logs", [], WINDOW)
    assert {n: t.num_rows for n, t in tables.items()} == {"authentication": 0, "api_activity": 0}
    assert tables["api_activity"].schema == arrow_schema("api_activity")


def test_schema_columns_are_ocsf_attributes_typed_by_the_schema():
    schema = arrow_schema("vulnerability_finding")
    assert schema.field("time").type == pa.int64()
    assert schema.field("activity_id").type == pa.int32()
    assert schema.field("unmapped").type == pa.map_(pa.string(), pa.string())
    vulnerability = schema.field("vulnerabilities").type.value_type
    cvss = vulnerability.field("cve").type.field("cvss").type.value_type
    assert cvss.field("base_score").type == pa.float64()
    assert vulnerability.field("cve").type.field("epss").type.field("score").type == pa.string()
    assert vulnerability.field("is_fix_available").type == pa.bool_()
    assert schema.field("resources").type.value_type.field("uid").type == pa.string()


def test_an_attribute_the_schema_lacks_raises(monkeypatch):
    monkeypatch.setitem(columns.PATHS, "authentication", (*columns.PATHS["authentication"], "user.nickname"))
    columns.arrow_schema.cache_clear()
    try:
        with pytest.raises(KeyError, match="nickname"):
            arrow_schema("authentication")
    finally:
        monkeypatch.undo()
        columns.arrow_schema.cache_clear()


def test_a_node_that_is_not_an_object_raises_naming_it():
    with pytest.raises(ValueError, match="audit_logs node 1 is not a JSON object"):
        map_records("audit_logs", [msgspec.json.encode(AUDIT), b"[1, 2]"], WINDOW)
    with pytest.raises(ValueError, match="issues node 0 is not JSON"):
        map_records("issues", [b"{nope"], WINDOW)


# -- audit log entries ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "class_name"),
    [
        ("Login", "authentication"),
        ("DeviceLogin", "authentication"),
        (" Login ", "authentication"),
        (" user Login", "authentication"),
        ("Logout", "api_activity"),
        ("CreateReport", "api_activity"),
    ],
)
def test_class_split(action, class_name):
    tables = map_records("audit_logs", encode({**AUDIT, "action": action}), WINDOW)
    assert {n: t.num_rows for n, t in tables.items()}[class_name] == 1


def test_authentication():
    event = one("audit_logs", {**AUDIT, "action": "  Login", "sourceIP": "89.160.20.112"})
    assert (event["class_uid"], event["activity_id"], event["type_uid"]) == (3002, 1, 300201)
    assert (event["activity_name"], event["type_name"]) == ("Logon", "Authentication: Logon")
    assert (event["severity_id"], event["severity"]) == (1, "Informational")
    assert event["time"] == 1692867261442  # 2023-08-24T08:54:21.44203Z
    assert event["metadata"] == {
        "version": "1.5.0",
        "product": {"name": "Wiz", "vendor_name": "Wiz"},
        "uid": AUDIT["id"],
        "log_name": "audit_logs",
        "original_time": "2023-08-24T08:54:21.44203Z",
    }
    assert event["user"] == {"uid": "123abc", "name": "admin11", "type_id": 1, "type": "User"}
    assert event["service"] == {"name": "Wiz"}
    assert event["src_endpoint"] == {"ip": "89.160.20.112"}
    assert event["http_request"] == {"user_agent": AUDIT["userAgent"]}
    assert msgspec.json.decode(event["unmapped"]["actionParameters"]) == AUDIT["actionParameters"]
    assert msgspec.json.decode(event["unmapped"]["serviceAccount"]) == AUDIT["serviceAccount"]
    service = one("audit_logs", {**AUDIT, "action": "Login", "user": None})
    assert service["user"] == {"uid": "mlip...", "name": "op-us", "type_id": 99, "type": "Service Account"}
    assert "src_endpoint" not in service


@pytest.mark.parametrize(
    ("action", "activity"),
    [
        ("CreateReport", (1, "Create")),
        ("AddUser", (1, "Create")),
        ("RunQuery", (2, "Read")),
        ("ExportReport", (2, "Read")),
        ("UpdateIssue", (3, "Update")),
        ("  DisableRule ", (3, "Update")),
        ("DeleteServiceAccount", (4, "Delete")),
        ("RemoveProject", (4, "Delete")),
        ("RerunReport", (99, "Other")),
        ("Logout", (99, "Other")),
    ],
)
def test_api_activity_verbs(action, activity):
    event = one("audit_logs", {**AUDIT, "action": action})
    assert (event["activity_id"], event["activity_name"]) == activity
    assert event["type_uid"] == 600300 + activity[0]
    assert event["api"] == {"operation": action.strip(), "request": {"uid": AUDIT["requestId"]}}


def test_api_activity_endpoint_and_actor_are_never_empty():
    event = one("audit_logs", {**AUDIT, "action": "ConnectorScan", "user": None, "serviceAccount": None})
    assert event["src_endpoint"] == {"uid": "unknown"}
    assert event["actor"] == {"app_name": "Wiz"}
    with_ip = one("audit_logs", {**AUDIT, "action": "RunQuery", "sourceIP": "2001:db8::1"})
    assert with_ip["src_endpoint"] == {"ip": "2001:db8::1"}
    assert with_ip["actor"]["user"]["uid"] == "123abc"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("SUCCESS", (1, "Success")),
        ("FAILED", (2, "Failure")),
        ("INVALID", (2, "Failure")),
        ("ACCESS_DENIED", (2, "Failure")),
        ("THROTTLED", (99, "THROTTLED")),
        (None, (0, "Unknown")),
    ],
)
def test_audit_status(status, expected):
    event = one("audit_logs", {**AUDIT, "status": status})
    assert (event["status_id"], event["status"]) == expected
    assert event.get("status_code") == status


def test_raw_data_is_the_bytes_as_received():
    raw = ' {"id": "a\\u00e9", "action":"Login",  "timestamp": "2023-08-24T08:54:21Z", "note": "ünï"}\n'
    raw = raw.encode()
    (event,) = to_events(map_records("audit_logs", [raw], WINDOW)["authentication"])
    assert event["raw_data"].encode() == raw
    assert msgspec.json.decode(event["unmapped"]["note"]) == "ünï"


# -- times ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "millis"),
    [
        ("2023-08-24T08:54:21Z", 1692867261000),
        ("2023-08-24T08:54:21.4Z", 1692867261400),
        ("2023-08-24T08:54:21.123456789Z", 1692867261123),
        ("2023-08-24T10:54:21.5+02:00", 1692867261500),
        ("2023-08-24T03:54:21-0500", 1692867261000),
    ],
)
def test_times_are_epoch_milliseconds(text, millis):
    assert one("audit_logs", {**AUDIT, "action": "Login", "timestamp": text})["time"] == millis


def test_an_unreadable_time_is_null_and_kept():
    event = one("vulnerability_findings", {**VULNERABILITY, "firstDetectedAt": "yesterday"})
    assert "created_time" not in event["finding_info"]
    assert "first_seen_time" not in event["vulnerabilities"][0]
    assert event["unmapped"]["firstDetectedAt"] == '"yesterday"'
    audit = one("audit_logs", {**AUDIT, "action": "Login", "timestamp": "2023-13-01T00:00:00Z"})
    assert audit["time"] == int(WINDOW.timestamp() * 1000)  # required: the window's start stands in
    assert audit["metadata"]["original_time"] == "2023-13-01T00:00:00Z"
    assert audit["unmapped"]["timestamp"] == '"2023-13-01T00:00:00Z"'


# -- findings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        ("INFORMATIONAL", (1, "Informational")),
        ("NONE", (1, "Informational")),
        ("LOW", (2, "Low")),
        ("MEDIUM", (3, "Medium")),
        ("HIGH", (4, "High")),
        ("CRITICAL", (5, "Critical")),
        ("SEVERE", (99, "SEVERE")),
        (None, (0, "Unknown")),
    ],
)
def test_severity(severity, expected):
    event = one("issues", {**ISSUE, "severity": severity})
    assert (event["severity_id"], event["severity"]) == expected


@pytest.mark.parametrize(
    ("status", "expected", "activity"),
    [
        ("OPEN", (1, "New"), 2),
        ("IN_PROGRESS", (2, "In Progress"), 2),
        ("REJECTED", (3, "Suppressed"), 3),
        ("RESOLVED", (4, "Resolved"), 3),
        ("SNOOZED", (99, "SNOOZED"), 2),
    ],
)
def test_finding_status_and_close(status, expected, activity):
    for data_type, node in (("issues", ISSUE), ("vulnerability_findings", VULNERABILITY)):
        event = one(data_type, {**node, "status": status}, window=datetime(2024, 1, 1, tzinfo=UTC))
        assert (event["status_id"], event["status"]) == expected
        assert (event["activity_id"], event["type_uid"]) == (activity, event["class_uid"] * 100 + activity)
    assert one("issues", {**ISSUE, "status": status})["is_alert"] is (status == "OPEN")


def test_create_update_relative_to_the_window_start():
    created = datetime(2023, 8, 23, 7, 56, 9, 903743, tzinfo=UTC)  # ISSUE's createdAt
    assert one("issues", ISSUE, window=created)["activity_name"] == "Create"
    assert one("issues", ISSUE, window=created + timedelta(milliseconds=1))["activity_name"] == "Update"
    assert one("issues", {**ISSUE, "status": "RESOLVED"}, window=created)["activity_name"] == "Close"
    first = datetime(2022, 5, 1, 11, 36, 10, 63000, tzinfo=UTC)  # VULNERABILITY's firstDetectedAt
    assert one("vulnerability_findings", VULNERABILITY, window=first)["activity_id"] == 1
    assert (
        one("vulnerability_findings", VULNERABILITY, window=first + timedelta(seconds=1))["activity_id"] == 2
    )


def test_issue():
    event = one("issues", ISSUE)
    assert (event["class_uid"], event["time"]) == (2004, 1690784768708)  # statusChangedAt
    assert event["finding_info"] == {
        "uid": ISSUE["id"],
        "title": "EKS principals assume roles ...",
        "desc": "...",
        "created_time": 1692777369903,
        "modified_time": 1691993178331,
        "types": ["THREAT_DETECTION"],
        "analytic": {
            "uid": "wc-id-1335",
            "name": "EKS principals assume roles ...",
            "type_id": 1,
            "type": "Rule",
        },
    }
    assert event["remediation"] == {"desc": "..."}
    assert event["resources"] == [
        {
            "uid": "k8s/clusterrole/...",
            "uid_alt": "e507d472-...",
            "name": "system:aggregate-to-edit",
            "type": "ClusterRole",
            "region": "us-01",
        }
    ]
    assert event["cloud"] == {
        "provider": "Kubernetes",
        "region": "us-01",
        "account": {"uid": "998231069301", "name": "demo-integrations"},
    }
    assert event["metadata"]["profiles"] == ["cloud"]
    assert {"projects", "notes", "serviceTickets", "dueAt", "resolvedAt", "entitySnapshot.tags"} <= set(
        event["unmapped"]
    )
    assert "sourceRule.securitySubCategories" in event["unmapped"]
    empty = one("issues", {**ISSUE, "sourceRule": {**ISSUE["sourceRule"], "resolutionRecommendation": ""}})
    assert "remediation" not in empty


def test_vulnerability_cve():
    (vulnerability,) = one("vulnerability_findings", VULNERABILITY)["vulnerabilities"]
    assert vulnerability["cve"] == {
        "uid": "CVE-2020-35522",
        "desc": "In LibTIFF, ...",
        "cvss": [{"base_score": 5.5, "severity": "MEDIUM", "version": "3.1"}],
        "epss": {"score": "0.1"},
    }
    assert "advisory" not in vulnerability
    assert vulnerability["affected_packages"] == [
        {"name": "libtiff", "version": "4.0.3-35.amzn2", "fixed_in_version": "4.0.3-35.amzn2.0.1"}
    ]
    assert (vulnerability["is_fix_available"], vulnerability["is_exploit_available"]) == (True, False)
    assert (vulnerability["first_seen_time"], vulnerability["last_seen_time"]) == (
        1651404970063,
        1692211257000,
    )
    assert vulnerability["references"] == [VULNERABILITY["link"]]


def test_vulnerability_advisory_and_package_without_version():
    event = one("vulnerability_findings", {**VULNERABILITY, "name": "GHSA-2345-6789-cfgh", "version": None})
    (vulnerability,) = event["vulnerabilities"]
    assert vulnerability["advisory"] == {"uid": "GHSA-2345-6789-cfgh"}
    assert "cve" not in vulnerability and "affected_packages" not in vulnerability
    assert event["unmapped"]["score"] == "5.5" and event["unmapped"]["detailedName"] == '"libtiff"'
    assert event["finding_info"]["title"] == "GHSA-2345-6789-cfgh"
    assert event["resources"][0]["uid"].startswith("arn:aws:ec2:")
    assert event["cloud"]["account"] == {"uid": "111111111111", "name": "wiz-integrations"}


def test_compliance_and_detection_unmapped(simulated):
    configs = [
        e
        for t in map_records("configuration_findings", simulated["configuration_findings"], T0).values()
        for e in to_events(t)
    ]
    by_result = {msgspec.json.decode(e["raw_data"])["result"]: e for e in configs}
    expected = {
        "PASS": (1, "Pass"),
        "FAIL": (3, "Fail"),
        "NOT_ASSESSED": (2, "Warning"),
        "ERROR": (99, "ERROR"),
    }
    for result, status in expected.items():
        compliance = by_result[result]["compliance"]
        assert (compliance["status_id"], compliance["status"]) == status
        assert compliance["control"]
    assert any(e["compliance"].get("standards") for e in configs)
    assert all("evidence" in e["unmapped"] for e in configs if msgspec.json.decode(e["raw_data"])["evidence"])
    detections = to_events(map_records("detections", simulated["detections"], T0)["detection_finding"])
    for event in detections:
        assert {"primaryActor", "triggeringEvents", "origins"} <= set(event["unmapped"])
        assert event["finding_info"]["analytic"]["type_id"] == 1 and "status_id" not in event


# -- the validator can fail -----------------------------------------------------------------------


def _planted(data_type, node, change):
    tables = map_records(data_type, encode(node), WINDOW)
    name, table = next((n, t) for n, t in tables.items() if t.num_rows)
    (event,) = to_events(table)
    # Some plants don't fit the class's Arrow schema (a wrong type, an unknown attribute): the table's
    # schema is inferred, which would make `unmapped` a struct; it isn't what is tested here.
    event.pop("unmapped", None)
    assert invalid_rows(name, pa.Table.from_pylist([event])) == (0, [])  # the control
    event = copy.deepcopy(event)
    change(event)
    return name, pa.Table.from_pylist([event])


def _set(path, value):
    def change(event):
        *parents, last = path
        target = event
        for key in parents:
            target = target[key]
        if value is KeyError:
            del target[last]
        else:
            target[last] = value

    return change


@pytest.mark.parametrize(
    ("data_type", "node", "change", "where"),
    [
        ("audit_logs", AUDIT, _set(("time",), KeyError), "time"),  # missing required
        ("issues", ISSUE, _set(("finding_info", "uid"), KeyError), "finding_info.uid"),
        (
            "issues",
            ISSUE,
            _set(("type_uid",), KeyError),
            "type_uid",
        ),  # pydantic-ocsf fills it, the schema requires it
        ("issues", ISSUE, _set(("severity_id",), 7), "severity_id"),  # enum out of range
        ("issues", ISSUE, _set(("finding_info", "analytic", "type_id"), 42), "finding_info.analytic.type_id"),
        ("audit_logs", AUDIT, _set(("time",), "2023-08-24"), "time"),  # wrong type
        (
            "vulnerability_findings",
            VULNERABILITY,
            _set(("vulnerabilities", 0, "is_fix_available"), "yes"),
            "vulnerabilities[0].is_fix_available",
        ),
        ("audit_logs", {**AUDIT, "action": "Login"}, _set(("user",), {"type_id": 1}), "user"),  # at_least_one
        ("audit_logs", {**AUDIT, "action": "Login"}, _set(("service",), KeyError), "authentication"),
        ("audit_logs", AUDIT, _set(("src_endpoint",), {"port": 443}), "src_endpoint"),
        (
            "vulnerability_findings",
            VULNERABILITY,
            _set(("vulnerabilities", 0, "advisory"), {"uid": "ALAS-1"}),
            "vulnerabilities[0]",
        ),  # just_one
        (
            "vulnerability_findings",
            VULNERABILITY,
            _set(("vulnerabilities", 0, "cve"), KeyError),
            "vulnerabilities[0]",
        ),
        (
            "issues",
            ISSUE,
            _set(("finding_info", "colour"), "red"),
            "finding_info.colour",
        ),  # unknown attribute
        ("issues", ISSUE, _set(("colour",), "red"), "colour"),
        ("issues", ISSUE, _set(("metadata", "profiles"), []), "cloud"),  # cloud without its profile
        ("issues", ISSUE, _set(("type_uid",), 200499), "type_uid"),
    ],
)
def test_invalid_rows_catches_a_planted_problem(data_type, node, change, where):
    name, table = _planted(data_type, node, change)
    count, messages = invalid_rows(name, table)
    assert count == 1, messages
    assert any(m.startswith(f"row 0: {where}:") for m in messages), messages


def test_invalid_rows_counts_rows_and_limits_messages():
    tables = map_records("issues", encode(*[ISSUE] * 5), WINDOW)
    events = to_events(tables["detection_finding"])
    for event in events:
        del event["unmapped"]
    for event in events[1:]:
        event["colour"], event["severity_id"] = "red", 7
    count, messages = invalid_rows("detection_finding", pa.Table.from_pylist(events), limit=3)
    assert count == 4 and len(messages) == 3
    assert messages[0].startswith("row 1: ")


# -- odd nodes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data_type", "change"),
    [
        ("issues", {"status": {"a": None}}),
        ("issues", {"status": ["OPEN"]}),
        ("vulnerability_findings", {"status": 3}),
        ("configuration_findings", {"status": {"x": 1}, "securitySubCategories": ["x", {"category": [{}]}]}),
        ("configuration_findings", {"securitySubCategories": [{"category": {"framework": "CIS"}}]}),
    ],
)
def test_a_node_of_an_unforeseen_shape_still_maps_to_one_row(simulated, data_type, change):
    node = {**msgspec.json.decode(simulated[data_type][0]), **change}
    failures = []
    tables = map_records(data_type, encode(node), WINDOW, failures)
    assert sum(t.num_rows for t in tables.values()) == 1
    assert failures == []  # mapped as far as it goes, not a fallback


def test_a_node_the_mapping_fails_on_keeps_its_row_and_fails_validation(simulated, monkeypatch):
    from wiz_pipeline.ocsf import mapping

    def broken(node, raw_text, window_ms):
        raise RuntimeError("a shape nobody foresaw")

    monkeypatch.setitem(mapping._FINDING_MAPPERS, "detections", ("detection_finding", broken))
    raw = simulated["detections"][:3]
    failures = []
    tables = map_records("detections", raw, WINDOW, failures)
    table = tables["detection_finding"]
    assert table.num_rows == 3
    assert [(c, i) for c, i, _ in failures] == [
        ("detection_finding", 0),
        ("detection_finding", 1),
        ("detection_finding", 2),
    ]
    assert "RuntimeError: a shape nobody foresaw" in failures[0][2]
    events = to_events(table)
    assert [e["raw_data"] for e in events] == [r.decode() for r in raw]
    assert events[0]["unmapped"]["mapping_error"] == "RuntimeError: a shape nobody foresaw"
    assert events[0]["metadata"]["uid"] == msgspec.json.decode(raw[0])["id"]
    count, messages = invalid_rows("detection_finding", table)
    assert count == 3 and "finding_info" in messages[0]


def test_an_advisory_rated_none_by_cvss_takes_the_vendors_severity():
    event = one("vulnerability_findings", {**VULNERABILITY, "CVSSSeverity": "NONE", "vendorSeverity": "HIGH"})
    assert (event["severity_id"], event["severity"]) == (4, "High")
    event = one("vulnerability_findings", {**VULNERABILITY, "CVSSSeverity": "LOW", "vendorSeverity": "HIGH"})
    assert event["severity_id"] == 2
    event = one("vulnerability_findings", {**VULNERABILITY, "CVSSSeverity": "NONE", "vendorSeverity": None})
    assert event["severity_id"] == 1


def test_a_resource_with_neither_id_nor_name_is_left_out_and_the_row_stays_valid(simulated):
    node = msgspec.json.decode(simulated["issues"][0])
    node["entitySnapshot"] = {"id": "", "name": None, "providerId": None, "region": "us-east-1"}
    tables = map_records("issues", encode(node), WINDOW)
    (event,) = to_events(tables["detection_finding"])
    assert "resources" not in event
    assert invalid_rows("detection_finding", tables["detection_finding"])[0] == 0
