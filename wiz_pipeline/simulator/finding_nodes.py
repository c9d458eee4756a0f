"""The first version of a generated finding, in the shapes of the shared API notes' sample nodes.

Each maker gets a generator seeded from the finding's index, its ``updatedAt`` and the values of its
filtered fields (kept apart, one byte per finding, so filters never need to make a node).
"""

from __future__ import annotations

import functools
import random
import uuid
import zlib
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from wiz_pipeline.simulator.stamps import mix, wiz_time

_PROJECTS = [
    {
        "id": "83b76efe-0000-4c1a-9f00-000000000002",
        "name": "Project2",
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
]
_ACCOUNTS = [
    ("AWS", "111111111111", "wiz-integrations"),
    ("AWS", "222233334444", "prod"),
    ("Azure", "6f1c1d2e-8a3b-4c5d-9e0f-123456789abc", "demo-integrations"),
    ("GCP", "acme-analytics-prod", "acme-analytics-prod"),
]
_REGIONS = {"AWS": ["us-east-1", "eu-west-1"], "Azure": ["westeurope"], "GCP": ["europe-west1"]}
# (package, installed, fixed or None, detection method, remediation, advisory link)
_PACKAGES = [
    ("libtiff", "4.0.3-35.amzn2", "4.0.3-35.amzn2.0.1", "PACKAGE", "yum update libtiff", "alas"),
    ("openssl", "1.1.1k-r0", "1.1.1w-r1", "OS", "apk upgrade openssl", "nvd"),
    ("glibc", "2.31-13+deb11u5", None, "DEFAULT_PACKAGE", "", "nvd"),
    ("log4j-core", "2.14.1", "2.17.1", "LIBRARY", "Upgrade log4j-core to 2.17.1", "ghsa"),
    ("lodash", "4.17.15", "4.17.21", "LIBRARY", "npm install lodash@4.17.21", "ghsa"),
    ("urllib3", "1.26.4", "1.26.18", "LIBRARY", "pip install urllib3==1.26.18", "ghsa"),
    ("curl", "7.79.1-r0", "8.4.0-r0", "PACKAGE", "apk upgrade curl", "nvd"),
    ("nginx.conf", "1.21.6", None, "CONFIG_FILE", "", "nvd"),
    ("Microsoft Windows Server 2019", "10.0.17763", "10.0.17763.5329", "OS", "Install KB5034127", "msrc"),
    ("spring-webmvc", "5.3.17", "5.3.18", "APPLICATION", "Upgrade Spring Framework", "ghsa"),
]
_GHSA = "23456789cfghjmpqrvwx"


def _stable(text: str) -> int:
    """A hash that is the same in every process (``hash`` of a str is salted per process)."""
    return zlib.crc32(text.encode())


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _stamp(rng: random.Random, when: datetime) -> str:
    return wiz_time(when, rng.choice([0, 3, 6, 6, 6]))


def _advisory(rng: random.Random, kind: str) -> tuple[str, str]:
    roll = rng.random()
    if kind == "ghsa" and roll < 0.5:
        name = "GHSA-" + "-".join("".join(_pick(rng, _GHSA) for _ in range(4)) for _ in range(3))
        return name, f"https://github.com/advisories/{name}"
    if kind == "alas" and roll < 0.5:
        name = f"ALAS-{rng.randrange(2019, 2025)}-{rng.randrange(1000, 2500)}"
        return name, f"https://alas.aws.amazon.com/AL2/{name}.html"
    if rng.random() < 0.6:
        # As in real tenants, a few CVEs (a base image's OpenSSL, glibc) sit on many assets: a skewed
        # pick from a small pool, so that "the CVEs affecting the most assets" has an answer.
        k = int(400 * rng.random() ** 3)
        name = f"CVE-{2014 + k % 12}-{1000 + (k * 7919) % 51000}"
    else:
        name = f"CVE-{2014 + int(rng.random() * 12)}-{1000 + int(rng.random() * 51000)}"
    return name, f"https://nvd.nist.gov/vuln/detail/{name}"


@functools.lru_cache(maxsize=8192)
def _asset(seed: int, index: int) -> dict[str, Any]:
    """A vulnerable asset: many findings (one per CVE) share one."""
    rng = random.Random(mix(seed ^ (index << 20)))
    kind = rng.choices(["VIRTUAL_MACHINE", "CONTAINER_IMAGE", "SERVERLESS", "CONTAINER"], [4, 3, 1, 2])[0]
    platform, account, account_name = rng.choice(_ACCOUNTS)
    region = rng.choice(_REGIONS[platform])
    asset_id = _uuid(rng)
    name = {
        "VIRTUAL_MACHINE": f"test-{index % 97}",
        "CONTAINER_IMAGE": f"registry.example.com/payments/api:{rng.randrange(1, 300)}",
        "SERVERLESS": f"resize-images-{index % 13}",
        "CONTAINER": f"api-{rng.getrandbits(20):05x}",
    }[kind]
    node: dict[str, Any] = {
        "__typename": {
            "VIRTUAL_MACHINE": "VulnerableAssetVirtualMachine",
            "CONTAINER_IMAGE": "VulnerableAssetContainerImage",
            "SERVERLESS": "VulnerableAssetServerless",
            "CONTAINER": "VulnerableAssetContainer",
        }[kind],
        "id": asset_id,
        "type": kind,
        "name": name,
        "region": region,
        "providerUniqueId": f"arn:aws:ec2:{region}:{account}:instance/i-{rng.getrandbits(60):015x}"
        if platform == "AWS"
        else f"/subscriptions/{account}/resource/{asset_id}",
        "cloudProviderURL": f"https://console.example.invalid/{platform.lower()}/{asset_id}",
        "cloudPlatform": platform,
        "status": rng.choice(["Active", "Active", "Active", "Inactive", None]),
        "subscriptionName": account_name,
        "subscriptionExternalId": account,
        "subscriptionId": str(uuid.UUID(int=mix(_stable(account)) << 64 | 7, version=4)),
        "tags": rng.choice([{}, {"Name": name}, {"env": "prod", "owner": "platform"}]),
        "hasLimitedInternetExposure": rng.random() < 0.2,
        "hasWideInternetExposure": rng.random() < 0.15,
        "isAccessibleFromVPN": rng.random() < 0.3,
        "isAccessibleFromOtherVnets": rng.random() < 0.2,
        "isAccessibleFromOtherSubscriptions": rng.random() < 0.1,
    }
    if kind == "VIRTUAL_MACHINE":
        node["operatingSystem"] = rng.choice(["Linux", "Linux", "Windows"])
        node["ipAddresses"] = rng.choice(
            [[], [f"89.160.20.{rng.randrange(1, 255)}"], [f"10.0.{rng.randrange(256)}.4", "2001:db8::1"]]
        )
    elif kind == "CONTAINER_IMAGE":
        node["imageId"] = f"sha256:{rng.getrandbits(256):064x}"
    elif kind == "SERVERLESS":
        node["runtime"] = rng.choice(["python3.12", "nodejs20.x", "java17", "go1.x"])
    else:
        node.update(
            ImageExternalId=f"sha256:{rng.getrandbits(256):064x}",
            VmExternalId=f"i-{rng.getrandbits(60):015x}" if rng.random() < 0.8 else None,
            ServerlessContainer=rng.random() < 0.15,
            PodNamespace=rng.choice(["default", "payments", "kube-system"]),
            PodName=f"api-{rng.getrandbits(32):08x}-{rng.getrandbits(20):05x}",
            NodeName=f"ip-10-0-{rng.randrange(256)}-{rng.randrange(256)}.ec2.internal",
        )
    return node


_SCORES = {
    "NONE": (0.0, 0.0),
    "LOW": (0.1, 3.9),
    "MEDIUM": (4.0, 6.9),
    "HIGH": (7.0, 8.9),
    "CRITICAL": (9.0, 10.0),
}
_ONE_OFF = {"NONE": "LOW", "LOW": "MEDIUM", "MEDIUM": "HIGH", "HIGH": "CRITICAL", "CRITICAL": "HIGH"}


def _pick(rng: random.Random, options: Sequence[Any]) -> Any:
    return options[int(rng.random() * len(options))]  # a third of rng.choice's cost


_PROJECT_SETS = [[], [_PROJECTS[0]], [_PROJECTS[1]], [_PROJECTS[0]], _PROJECTS]
_DIGITS = [0, 3, 6, 6, 6]


def _vulnerability(store: Any, rng: random.Random, index: int, updated: datetime, values: dict) -> dict:
    # The busiest maker (a full read of a large tenant makes every node): cheap draws only.
    r = rng.random
    package, version, fixed, method, remediation, source = _pick(rng, _PACKAGES)
    name, link = _advisory(rng, source)
    severity, status = values["CVSSSeverity"], values["status"]
    low, high = _SCORES[severity]
    first = updated - timedelta(seconds=int(r() * 400 * 86400))
    last = first + (updated - first) * r()
    asset = _asset(store.seed, int(r() * store.assets))
    has_epss = r() < 0.75
    # A property of the CVE, not of the finding: every asset with it shares its exploit and KEV flags.
    known = zlib.crc32(name.encode()) % 100
    has_exploit = known < 20
    finding_id = store.id_of(index)
    in_image = asset["type"] in ("CONTAINER_IMAGE", "CONTAINER")
    stamp = wiz_time(updated, _pick(rng, _DIGITS))
    return {
        "id": finding_id,
        "portalUrl": f"https://app.wiz.io/explorer/vulnerability-findings#~(entity~(~'{finding_id}))",
        "name": name,
        "CVEDescription": f"In {package} before {fixed or 'a fixed release'}, a crafted input can "
        "lead to memory corruption.",
        "CVSSSeverity": severity,
        "score": round(low + (high - low) * r(), 1),
        "exploitabilityScore": round(0.5 + 3.4 * r(), 1) if r() < 0.9 else None,
        "impactScore": round(1.0 + 5.0 * r(), 1) if r() < 0.9 else None,
        "dataSourceName": "Wiz" if r() < 0.75 else "Amazon Inspector",
        "hasExploit": has_exploit,
        "hasCisaKevExploit": known < 6,
        "status": status,
        "vendorSeverity": severity if r() < 0.8 else _ONE_OFF[severity],
        "firstDetectedAt": wiz_time(first, _pick(rng, _DIGITS)),
        "lastDetectedAt": wiz_time(last, 0),
        "resolvedAt": stamp if status == "RESOLVED" else None,
        "updatedAt": stamp,
        "description": f"The package `{package}` version `{version}` was detected on {asset['type']} "
        f"`{asset['name']}` and is vulnerable to {name}.",
        "remediation": remediation or None,
        "detailedName": package,
        "version": version,
        "fixedVersion": fixed,
        "detectionMethod": method,
        "link": link,
        "locationPath": f"/app/node_modules/{package}/package.json" if method == "LIBRARY" else None,
        "resolutionReason": ("Package upgraded" if r() < 0.7 else "Asset deleted")
        if status == "RESOLVED"
        else None,
        "epssSeverity": _pick(rng, ["LOW", "LOW", "MEDIUM", "HIGH"]) if has_epss else None,
        "epssPercentile": round(r() * 100, 2) if has_epss else None,
        "epssProbability": round(r() ** 3, 4) if has_epss else None,
        "validatedInRuntime": _pick(rng, [True, False, None]),
        "layerMetadata": {
            "id": f"sha256:{rng.getrandbits(64):016x}",
            "details": f"RUN apt-get install -y {package}",
            "isBaseLayer": r() < 0.6,
        }
        if in_image
        else None,
        "projects": _pick(rng, _PROJECT_SETS),
        "ignoreRules": []
        if r() < 0.95
        else [{"id": _uuid(rng), "name": "Accepted risk", "enabled": True, "expiredAt": None}],
        "vulnerableAsset": asset,
    }


# (name, resource native type, resource type, cloud, evidence path)
_RULES = [
    ("S3 bucket allows public read", "s3#Bucket", "BUCKET", "AWS", "acl.grants[*].grantee.uri"),
    ("IAM root account has active access keys", "iam#User", "USER_ACCOUNT", "AWS", "accessKeys"),
    ("Security group allows SSH from 0.0.0.0/0", "ec2#SecurityGroup", "FIREWALL", "AWS", "ipPermissions"),
    (
        "Storage account allows blob public access",
        "Microsoft.Storage/storageAccounts",
        "BUCKET",
        "Azure",
        "properties.allowBlobPublicAccess",
    ),
    (
        "Cloud SQL instance has a public IP",
        "sqladmin#instance",
        "DATABASE",
        "GCP",
        "settings.ipConfiguration",
    ),
]
_FRAMEWORKS = [
    ("CIS AWS 1.5", "1 Identity and Access Management", "1.4 Ensure no root account access key exists"),
    ("CIS AWS 1.5", "5 Networking", "5.2 Ensure no security groups allow ingress to remote admin ports"),
    ("NIST 800-53", "AC Access Control", "AC-3 Access Enforcement"),
    ("PCI DSS", "1 Network Security Controls", "1.3.1 Inbound traffic to the CDE is restricted"),
    ("Wiz for Risk Assessment", "Data exposure", "Public storage"),
]


def _subcategories(rng: random.Random, count: int) -> list[dict[str, Any]]:
    out = []
    for framework, category, title in rng.sample(_FRAMEWORKS, count):
        key = _stable(framework + category + title) % 10**6
        out.append(
            {
                "id": f"wsct-id-{key}",
                "title": title,
                "category": {
                    "id": f"wct-id-{key // 7}",
                    "name": category,
                    "framework": {"id": f"wf-id-{len(framework)}", "name": framework},
                },
            }
        )
    return out


def _configuration(store: Any, rng: random.Random, index: int, updated: datetime, values: dict) -> dict:
    number = rng.randrange(len(_RULES))
    rule_name, native, resource_type, platform, path = _RULES[number]
    _, account, account_name = next(a for a in _ACCOUNTS if a[0] == platform)
    result = values["result"]
    resource_name = f"{resource_type.lower()}-{rng.getrandbits(24):06x}"
    first = updated - timedelta(days=rng.randrange(0, 200), seconds=rng.randrange(86400))
    tags = rng.choice(
        [
            [],
            [{"key": "env", "value": "prod"}],
            [{"key": "owner", "value": "platform"}, {"key": "cost-center", "value": ""}],
        ]
    )
    return {
        "id": store.id_of(index),
        "name": rule_name,
        "analyzedAt": _stamp(rng, updated),
        "firstSeenAt": _stamp(rng, first),
        "updatedAt": _stamp(rng, updated),
        "severity": values["severity"],
        "result": result,
        "status": values["status"],
        "remediation": "Restrict access in the resource's settings." if result == "FAIL" else None,
        "resource": {
            "id": _uuid(rng),
            "providerId": f"arn:aws:::{account}:{resource_name}" if platform == "AWS" else resource_name,
            "name": resource_name,
            "nativeType": native,
            "type": resource_type,
            "region": rng.choice(_REGIONS[platform]),
            "cloudPlatform": platform,
            "subscription": {
                "id": f"sub-{_stable(account) % 10**8}",
                "name": account_name,
                "externalId": account,
                "cloudProvider": platform,
            },
            "tags": tags,
        },
        "rule": {
            "id": f"ccr-{number:04d}-{'abcde'[number]}",
            "shortId": f"{platform[:3].upper()}-{number + 1:03d}",
            "name": rule_name,
            "description": f"Checks that: {rule_name.lower()} does not hold.",
            "remediationInstructions": rng.choice(["Change the setting in the console.", None]),
            "functionAsControl": rng.random() < 0.1,
        },
        "securitySubCategories": _subcategories(rng, rng.choice([0, 1, 2, 3])),
        "evidence": None
        if result == "NOT_ASSESSED"
        else {
            "currentValue": "false" if result == "PASS" else "true",
            "expectedValue": "false",
            "configurationPath": path,
            "cloudConfigurationLink": None
            if rng.random() < 0.5
            else f"https://console.example.invalid/{path}",
        },
        "ignoreRules": []
        if rng.random() < 0.97
        else [{"id": _uuid(rng), "name": "Dev accounts", "enabled": False, "expiredAt": None}],
    }


_THREAT_RULES = [
    ("Suspicious IAM role assumption", "TA0004 Privilege Escalation"),
    ("Crypto-mining process detected", "TA0040 Impact"),
    ("Console login without MFA", "TA0001 Initial Access"),
    ("Unusual volume of S3 GetObject", "TA0010 Exfiltration"),
]


def _actor(rng: random.Random, account: dict[str, Any]) -> dict[str, Any]:
    if rng.random() < 0.6:
        name = rng.choice(["jane.doe@example.com", "ravi.k@example.com"])
        return {
            "id": _uuid(rng),
            "name": name,
            "type": "USER_ACCOUNT",
            "nativeType": "IAMUser",
            "email": name,
            "userAgent": rng.choice(["aws-cli/2.15.0", "Mozilla/5.0", None]),
            "externalId": f"AIDA{rng.getrandbits(60):015X}",
            "providerUniqueId": f"arn:aws:iam::{account['externalId']}:user/{name}",
            "cloudAccount": account,
        }
    return {
        "id": _uuid(rng),
        "name": "deploy-role",
        "type": "SERVICE_ACCOUNT",
        "nativeType": "IAMRole",
        "email": None,
        "userAgent": "Boto3/1.34.0",
        "externalId": f"AROA{rng.getrandbits(60):015X}",
        "providerUniqueId": f"arn:aws:iam::{account['externalId']}:role/deploy-role",
        "cloudAccount": account,
    }


def _detection(store: Any, rng: random.Random, index: int, updated: datetime, values: dict) -> dict:
    platform, external, account_name = rng.choice(_ACCOUNTS)
    account = {
        "id": f"acc-{_stable(external) % 10**8}",
        "externalId": external,
        "name": account_name,
        "cloudProvider": platform,
    }
    rule_name, tactic = rng.choice(_THREAT_RULES)
    actor = _actor(rng, account)
    resource = {
        "id": _uuid(rng),
        "type": rng.choice(["VIRTUAL_MACHINE", "BUCKET", "ACCESS_ROLE"]),
        "name": f"res-{rng.getrandbits(20):05x}",
        "externalId": f"ext-{rng.getrandbits(32):08x}",
        "region": rng.choice(_REGIONS[platform]),
        "providerUniqueId": f"pu-{rng.getrandbits(32):08x}",
    }
    total = rng.choice([1, 1, 2, 3, 5, 8]) if rng.random() < 0.95 else rng.randrange(51, 400)
    created = updated - timedelta(seconds=rng.randrange(0, 2 * 86400))
    events = [
        {
            "__typename": "CloudEvent",
            "id": _uuid(rng),
            "description": f"{actor['name']} called AssumeRole",
            "actorIP": None if rng.random() < 0.1 else f"203.0.113.{rng.randrange(1, 255)}",
            "timestamp": wiz_time(created - timedelta(seconds=n * 37)),
        }
        for n in range(min(total, 50))
    ]
    detection_type = values["type"]
    return {
        "id": store.id_of(index),
        "type": detection_type,
        "origins": rng.choice([["WIZ_SENSOR"], ["AWS_CLOUDTRAIL"], ["AWS_CLOUDTRAIL", "AWS_GUARDDUTY"]]),
        "createdAt": _stamp(rng, created),
        "updatedAt": _stamp(rng, updated),
        "severity": values["severity"],
        "description": f"**{rule_name}**: `{actor['name']}` acted on `{resource['name']}` in {account_name}.",
        "issue": {"id": _uuid(rng)} if detection_type == "GENERATED_THREAT" and rng.random() < 0.7 else None,
        "ruleMatch": {
            "rule": {
                "id": _uuid(rng),
                "name": rule_name,
                "builtin": rng.random() < 0.85,
                "securitySubCategories": [
                    {
                        "id": f"mitre-{tactic[:6]}",
                        "title": tactic,
                        "category": {
                            "id": "mitre-tactics",
                            "name": "Tactics",
                            "framework": {"id": "mitre", "name": "MITRE ATT&CK Matrix"},
                        },
                    }
                ],
            }
        },
        "primaryResource": {k: resource[k] for k in ("id", "type", "name", "externalId", "region")},
        "resources": [{k: resource[k] for k in ("id", "name", "externalId", "providerUniqueId", "type")}],
        "primaryActor": actor,
        "actors": [{k: actor[k] for k in ("id", "name", "externalId", "providerUniqueId", "type")}],
        "cloudAccounts": [account],
        "triggeringEvents": {"totalCountV2": total, "nodes": events},
    }


MAKERS: dict[str, Callable[[Any, random.Random, int, datetime, dict], dict[str, Any]]] = {
    "vulnerability_findings": _vulnerability,
    "configuration_findings": _configuration,
    "detections": _detection,
}
