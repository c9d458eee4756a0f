"""wiz_pipeline.analytics and the examples of docs/analytics.md, against what the demo leaves behind.

The demo runs once for the module (its own code path: schedule ticks, runs, issues_current) against
a simulator whose whole tenant lies between the demo's seed and its last closed window, so every
record the simulator holds is in the output and each answer can be computed from the tenant.
"""

from __future__ import annotations

import re
import shutil
import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from wiz_pipeline.cli.demo import patched_environ, run_demo
from wiz_pipeline.core.times import parse_time
from wiz_pipeline.readers import analytics
from wiz_pipeline.simulator import Tenant, WizSimulator, generate_tenant
from wiz_pipeline_tests.conftest import T0
from wiz_pipeline_tests.pipeline.conftest import s3_environment

# Within the demo's six hours (it runs seconds after the import): a range that skips days and files.
RECENT = datetime.now(UTC) - timedelta(hours=3)
README = Path(__file__).resolve().parents[2] / "docs" / "analytics.md"
README_PATH = "wiz-demo/data"  # the output directory the examples name


@dataclass(frozen=True)
class Demo:
    tenant: Tenant
    output: Path
    after: datetime  # when the demo had finished

    def audit(self) -> list[dict[str, Any]]:
        return list(self.tenant.audit_nodes)

    def issues(self) -> list[dict[str, Any]]:
        return self.tenant.issues_as_of(self.after)

    def findings(self, kind: str) -> list[dict[str, Any]]:
        """Each finding's current version (a deleted one is in no current table)."""
        return self.tenant.findings_as_of(kind, self.after)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    days = 0.25
    now = datetime.now(UTC).replace(microsecond=0)
    # The demo seeds `days` before its own start (a few seconds after `now`) and collects the
    # windows closed WIZ_WINDOW_LAG_SECONDS (300) before then: the tenant lies inside both.
    start = now - timedelta(days=days) + timedelta(minutes=2)
    closed = now - timedelta(seconds=300)
    end = closed.replace(minute=closed.minute - closed.minute % 30, second=0)
    tenant = generate_tenant(
        start,
        end,
        audit_entries=900,
        issues=160,
        vulnerability_findings=1500,
        configuration_findings=300,
        detections=300,
        seed=23,
    )
    directory = tmp_path_factory.mktemp("demo")
    with WizSimulator(tenant) as sim, patched_environ({"WIZ_MAX_REQUESTS_PER_SECOND": "100"}):
        assert run_demo(sim, directory, days) == 0
    return Demo(tenant, directory / "data", datetime.now(UTC))


def records(frame: pd.DataFrame, columns: list[str]) -> list[tuple]:
    """Rows as tuples, nulls as None (DuckDB hands pandas NaN or None for a NULL string)."""
    values = frame[columns].astype(object).where(frame[columns].notna(), None)
    return [tuple(row) for row in values.itertuples(index=False)]


def in_range(node: dict[str, Any], start: datetime | None = None, end: datetime | None = None) -> bool:
    t = parse_time(node["timestamp"])
    return (start is None or t >= start) and (end is None or t < end)


def test_the_demo_leaves_every_dataset_the_questions_read(demo):
    for current in analytics.CURRENT_DATASETS:
        assert (demo.output / current / f"{current}.parquet").is_file()
    con = analytics.connect(demo.output)
    assert con.execute("SELECT count(*) FROM audit_logs").fetchone()[0] == len(demo.tenant.audit_nodes)
    assert con.execute("SELECT count(DISTINCT id) FROM issues_current").fetchone()[0] == len(demo.issues())


def test_audit_activity_counts_every_entry_by_day_user_service_account_action_and_ip(demo):
    frame = analytics.audit_activity(uri=demo.output)
    expected = Counter(
        (
            parse_time(n["timestamp"]).date(),
            (n["user"] or {}).get("name"),
            (n["serviceAccount"] or {}).get("name"),
            n["action"].strip(),
            n["sourceIP"],
        )
        for n in demo.audit()
    )
    keys = ["day", "user", "service_account", "action", "source_ip"]
    got = {(d.date(), *rest): n for (d, *rest), n in zip(records(frame, keys), frame["entries"], strict=True)}
    assert got == dict(expected)
    assert frame["entries"].sum() == len(demo.audit())
    # Sorted by day, then busiest first.
    assert list(frame["day"]) == sorted(frame["day"])
    for _, day in frame.groupby("day"):
        assert list(day["entries"]) == sorted(day["entries"], reverse=True)


def test_audit_activity_keeps_a_half_open_utc_range_and_each_days_top_rows(demo):
    times = sorted(parse_time(n["timestamp"]) for n in demo.audit())
    start, end = times[100], times[700]  # `end` itself is left out
    frame = analytics.audit_activity(start, end, uri=demo.output)
    assert frame["entries"].sum() == sum(in_range(n, start, end) for n in demo.audit()) == 600
    assert frame["first_at"].min() == start and frame["last_at"].max() < end
    # ISO text works too; a naive time doesn't.
    text = analytics.audit_activity(start.isoformat(), end.isoformat(), uri=demo.output)
    pd.testing.assert_frame_equal(text, frame)
    with pytest.raises(analytics.AnalyticsError, match="time zone"):
        analytics.audit_activity(start.replace(tzinfo=None), uri=demo.output)
    top = analytics.audit_activity(uri=demo.output, top=3)
    everything = analytics.audit_activity(uri=demo.output)
    for day, rows in top.groupby("day"):
        assert len(rows) == 3
        assert list(rows["entries"]) == list(everything[everything["day"] == day]["entries"][:3])


def test_failed_logins_are_counted_by_user_and_source_ip(demo):
    expected = Counter(
        ((n["user"] or {}).get("name"), n["sourceIP"])
        for n in demo.audit()
        if n["status"] == "FAILED" and n["action"].strip() in ("Login", "user Login")
    )
    frame = analytics.failed_logins(uri=demo.output)
    assert dict(zip(records(frame, ["user", "source_ip"]), frame["failures"], strict=True)) == dict(expected)
    assert sum(expected.values()) > 0
    assert list(frame["failures"]) == sorted(frame["failures"], reverse=True)
    assert len(analytics.failed_logins(uri=demo.output, top=2)) == 2


def test_api_calls_are_counted_by_service_account(demo):
    calls, failed = Counter(), Counter()
    for n in demo.audit():
        if n["serviceAccount"]:
            calls[n["serviceAccount"]["id"]] += 1
            failed[n["serviceAccount"]["id"]] += n["status"] == "FAILED"
    frame = analytics.api_calls_by_service_account(uri=demo.output)
    assert dict(zip(frame["service_account_id"], frame["calls"], strict=True)) == dict(calls)
    assert dict(zip(frame["service_account_id"], frame["failed"], strict=True)) == dict(failed)
    assert list(frame["calls"]) == sorted(calls.values(), reverse=True)
    top = analytics.api_calls_by_service_account(uri=demo.output, top=1)
    assert list(top["service_account_id"]) == [calls.most_common(1)[0][0]]


def expected_open(issues: list[dict[str, Any]], severities: tuple[str, ...]) -> Counter:
    counts: Counter = Counter()
    for issue in issues:
        if issue["status"] in ("OPEN", "IN_PROGRESS") and issue["severity"] in severities:
            cloud = (issue["entitySnapshot"] or {}).get("cloudPlatform") or "(none)"
            for project in [p["name"] for p in issue["projects"]] or ["(none)"]:
                counts[(cloud, project, issue["severity"])] += 1
    return counts


def test_open_critical_and_high_issues_by_cloud_and_project_include_in_progress(demo):
    frame = analytics.open_issues(uri=demo.output)
    assert list(frame.columns) == ["cloud", "project", "critical", "high", "open", "in_progress", "total"]
    got: Counter = Counter()
    for row in frame.itertuples():
        got[(row.cloud, row.project, "CRITICAL")] += row.critical
        got[(row.cloud, row.project, "HIGH")] += row.high
        assert row.open + row.in_progress == row.total == row.critical + row.high
    assert +got == expected_open(demo.issues(), ("CRITICAL", "HIGH"))
    assert frame["in_progress"].sum() > 0
    assert list(frame["critical"]) == sorted(frame["critical"], reverse=True)
    medium = analytics.open_issues(uri=demo.output, severities=["medium"], top=4)
    assert list(medium.columns)[2] == "medium" and len(medium) == 4
    with pytest.raises(analytics.AnalyticsError, match="choose among"):
        analytics.open_issues(uri=demo.output, severities=["URGENT"])


def test_mean_time_to_resolve_by_severity_from_the_current_state(demo):
    hours: dict[str, list[float]] = {}
    for issue in demo.issues():
        if issue["status"] == "RESOLVED":
            spent = parse_time(issue["resolvedAt"]) - parse_time(issue["createdAt"])
            hours.setdefault(issue["severity"], []).append(spent.total_seconds() / 3600)
    frame = analytics.mean_time_to_resolve(uri=demo.output)
    order = [s for s in analytics.SEVERITIES if s in hours]
    assert list(frame["severity"]) == order
    assert list(frame["resolved"]) == [len(hours[s]) for s in order]
    assert list(frame["mean_hours"]) == pytest.approx([statistics.mean(hours[s]) for s in order])
    assert list(frame["median_hours"]) == pytest.approx([statistics.median(hours[s]) for s in order])


def test_status_changes_in_a_range_come_from_the_issue_windows(demo):
    start, end = demo.after - timedelta(hours=4), demo.after - timedelta(hours=1)
    frame = analytics.status_changes(start, end, uri=demo.output)
    expected = {
        (i["id"], i["status"]) for i in demo.issues() if start <= parse_time(i["statusChangedAt"]) < end
    }
    assert set(zip(frame["id"], frame["status"], strict=True)) == expected and expected
    assert list(frame["status_changed_at"]) == sorted(frame["status_changed_at"])
    # The demo collects each window once, after the fact: it saw one status per issue.
    assert frame["previous_status"].isna().all()
    resolved = analytics.status_changes(start, end, uri=demo.output, statuses=["RESOLVED"])
    assert set(resolved["id"]) == {i for i, s in expected if s == "RESOLVED"}


def test_status_changes_name_the_previous_status_seen_in_an_earlier_window(pipeline):
    keys = pipeline.keys("issues")
    assert pipeline.run(keys[0], keys[-1], data_type="issues").success
    frame = analytics.status_changes(uri=pipeline.root)
    issue = frame[frame["status"] == "OPEN"].iloc[0]["id"]
    later = T0 + timedelta(hours=6, minutes=10)
    pipeline.sim.tenant.set_issue_status(issue, later, "RESOLVED")
    assert pipeline.run(pipeline.keys("issues", hours=6.5)[-1], data_type="issues").success
    changes = analytics.status_changes(later, uri=pipeline.root)
    assert records(changes, ["id", "previous_status", "status"]) == [(issue, "OPEN", "RESOLVED")]


def test_without_issues_current_the_current_state_questions_say_how_to_get_it(demo, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(demo.output, copy, ignore=shutil.ignore_patterns("issues_current"))
    with pytest.raises(analytics.AnalyticsError, match=r"collect_issues_current.*from_windows=True"):
        analytics.open_issues(uri=copy)
    with pytest.raises(analytics.AnalyticsError, match="issues_current"):
        analytics.mean_time_to_resolve(uri=copy)
    # Every issue of this tenant changed status after the seed, so the windows hold its latest state.
    pd.testing.assert_frame_equal(
        analytics.open_issues(uri=copy, from_windows=True), analytics.open_issues(uri=demo.output)
    )
    with pytest.raises(analytics.AnalyticsError, match="No audit_logs data"):
        analytics.failed_logins(uri=tmp_path / "empty")


OPEN = ("OPEN", "IN_PROGRESS")


def asset_of(finding: dict[str, Any]) -> str:
    return finding["vulnerableAsset"]["id"]


def test_open_vulnerabilities_by_asset_count_each_severity_exploit_and_kev(demo):
    frame = analytics.open_vulnerabilities(uri=demo.output)
    assert list(frame.columns)[:3] == ["asset_id", "asset", "asset_type"]
    assert list(frame.columns)[4:8] == ["subscription_external_id", "subscription", "critical", "high"]
    chosen = [
        f
        for f in demo.findings("vulnerability_findings")
        if f["status"] in OPEN and f["CVSSSeverity"] in ("CRITICAL", "HIGH")
    ]
    severity = Counter((asset_of(f), f["CVSSSeverity"]) for f in chosen)
    got = Counter()
    for row in frame.itertuples():
        got[(row.asset_id, "CRITICAL")] += row.critical
        got[(row.asset_id, "HIGH")] += row.high
        assert row.critical + row.high == row.findings
    assert +got == severity and len(chosen) > 100
    exploits = Counter(asset_of(f) for f in chosen if f["hasExploit"])
    kev = Counter(asset_of(f) for f in chosen if f["hasCisaKevExploit"])
    assert +Counter(dict(zip(frame["asset_id"], frame["with_exploit"], strict=True))) == exploits
    assert +Counter(dict(zip(frame["asset_id"], frame["in_kev"], strict=True))) == kev and kev
    cves = {a: sorted({f["name"] for f in chosen if asset_of(f) == a}) for a in frame["asset_id"]}
    assert {a: list(c) for a, c in zip(frame["asset_id"], frame["cves"], strict=True)} == cves
    assert list(frame["critical"]) == sorted(frame["critical"], reverse=True)
    # Only the findings with an exploit (or in KEV), of one severity.
    exploited = analytics.open_vulnerabilities(uri=demo.output, severities="critical", known_exploit=True)
    expected = Counter(
        asset_of(f)
        for f in chosen
        if f["CVSSSeverity"] == "CRITICAL" and (f["hasExploit"] or f["hasCisaKevExploit"])
    )
    assert dict(zip(exploited["asset_id"], exploited["findings"], strict=True)) == dict(expected)
    assert list(exploited.columns)[6] == "critical" and "high" not in exploited.columns


def test_top_cves_rank_open_findings_by_distinct_assets(demo):
    open_findings = [f for f in demo.findings("vulnerability_findings") if f["status"] in OPEN]
    assets: dict[str, set[str]] = {}
    for f in open_findings:
        assets.setdefault(f["name"], set()).add(asset_of(f))
    frame = analytics.top_cves(uri=demo.output, top=None)
    assert dict(zip(frame["cve"], frame["assets"], strict=True)) == {n: len(a) for n, a in assets.items()}
    assert list(frame["assets"]) == sorted(frame["assets"], reverse=True)
    assert frame["findings"].sum() == len(open_findings)
    # Several findings of one CVE on one asset (two packages) count the asset once.
    assert (frame["findings"] >= frame["assets"]).all()
    top = analytics.top_cves(uri=demo.output, top=3)
    assert list(top["cve"]) == list(frame["cve"][:3])
    kev = analytics.top_cves(uri=demo.output, known_exploit=True, severities=["CRITICAL"], top=None)
    exploited = [f for f in open_findings if f["hasExploit"] or f["hasCisaKevExploit"]]
    expected = {f["name"] for f in exploited if f["CVSSSeverity"] == "CRITICAL"}
    assert set(kev["cve"]) == expected and (kev["severity"] == "CRITICAL").all()


def test_mean_time_to_remediate_by_severity_from_first_detection_to_resolution(demo):
    days: dict[str, list[float]] = {}
    for f in demo.findings("vulnerability_findings"):
        if f["status"] == "RESOLVED":
            spent = parse_time(f["resolvedAt"]) - parse_time(f["firstDetectedAt"])
            days.setdefault(f["CVSSSeverity"], []).append(spent.total_seconds() / 86400)
    frame = analytics.mean_time_to_remediate(uri=demo.output)
    order = [s for s in analytics.RANKED_SEVERITIES if s in days]
    assert list(frame["severity"]) == order and len(order) >= 4
    assert list(frame["resolved"]) == [len(days[s]) for s in order]
    assert list(frame["mean_days"]) == pytest.approx([statistics.mean(days[s]) for s in order])
    assert list(frame["median_days"]) == pytest.approx([statistics.median(days[s]) for s in order])
    # A half-open range on resolved_at.
    cut = demo.after - timedelta(hours=2)
    recent = analytics.mean_time_to_remediate(cut, uri=demo.output)
    resolved = [
        f
        for f in demo.findings("vulnerability_findings")
        if f["status"] == "RESOLVED" and parse_time(f["resolvedAt"]) >= cut
    ]
    assert recent["resolved"].sum() == len(resolved) > 0


def test_failing_controls_by_framework_and_cloud_account(demo):
    findings: dict[tuple[str, str], set[str]] = {}
    controls: dict[tuple[str, str], set[str]] = {}
    for f in demo.findings("configuration_findings"):
        if f["result"] != "FAIL" or f["status"] not in OPEN:
            continue
        account = f["resource"]["subscription"]["externalId"]
        for sub in f["securitySubCategories"] or [None]:
            framework = sub["category"]["framework"]["name"] if sub else "(none)"
            findings.setdefault((framework, account), set()).add(f["id"])
            if sub:
                controls.setdefault((framework, account), set()).add(sub["id"])
    frame = analytics.failing_controls(uri=demo.output)
    keys = list(zip(frame["framework"], frame["subscription_external_id"], strict=True))
    assert dict(zip(keys, frame["findings"], strict=True)) == {k: len(v) for k, v in findings.items()}
    assert dict(zip(keys, frame["controls"], strict=True)) == {k: len(controls.get(k, ())) for k in findings}
    assert len({framework for framework, _ in findings}) >= 2
    assert list(frame["findings"]) == sorted(frame["findings"], reverse=True)
    one = frame["framework"].iloc[0]
    only = analytics.failing_controls(uri=demo.output, frameworks=[one])
    pd.testing.assert_frame_equal(only, frame[frame["framework"] == one].reset_index(drop=True))


def test_detections_by_day_count_each_detection_once_by_severity_and_rule(demo, tmp_path):
    # The demo collected after the fact: one version of each detection, its latest (a deleted one: none).
    latest = demo.findings("detections")
    expected = Counter(
        (parse_time(d["createdAt"]).date(), d["severity"], d["ruleMatch"]["rule"]["name"]) for d in latest
    )
    frame = analytics.detections_by_day(uri=demo.output)
    columns = (frame["day"], frame["severity"], frame["rule"], frame["detections"])
    got: Counter = Counter()
    for d, s, r, n in zip(*columns, strict=True):
        got[(d.date(), s, r)] += n  # a rule name may have several ids
    assert got == expected
    assert list(frame["day"]) == sorted(frame["day"])
    threats = sum(d["type"] == "GENERATED_THREAT" for d in latest)
    assert frame["threats"].sum() == threats < len(latest)
    high = analytics.detections_by_day(uri=demo.output, severities=["HIGH"])
    assert high["detections"].sum() == sum(d["severity"] == "HIGH" for d in latest)
    # A detection that changed is in a window per version: an older one, of another severity, counts
    # nowhere.
    copy = tmp_path / "data"
    shutil.copytree(demo.output / "detections", copy / "detections")
    first = sorted(copy.glob("detections/date=*/*.parquet"))[-1]
    table = pq.read_table(first).slice(0, 5)
    hour = pa.scalar(3600 * 10**6, pa.duration("us"))
    other = ["LOW" if s == "INFORMATIONAL" else "INFORMATIONAL" for s in table["severity"].to_pylist()]
    older = table.set_column(
        table.schema.get_field_index("updated_at"), "updated_at", pc.subtract(table["updated_at"], hour)
    )
    older = older.set_column(older.schema.get_field_index("severity"), "severity", pa.array(other))
    pq.write_table(older, first.parent / "older_versions.parquet")
    assert analytics.connect(copy).execute("SELECT count(*) FROM detections").fetchone()[0] == len(latest) + 5
    pd.testing.assert_frame_equal(analytics.detections_by_day(uri=copy), frame)


def test_a_data_type_not_collected_has_no_view_and_its_questions_say_how_to_turn_it_on(demo, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(demo.output, copy, ignore=shutil.ignore_patterns("detections", "vulnerability_findings*"))
    assert "detections" not in {r[0] for r in analytics.connect(copy).execute("SHOW TABLES").fetchall()}
    with pytest.raises(analytics.AnalyticsError, match=r"WIZ_COLLECT_DETECTIONS=true.*read:detections"):
        analytics.detections_by_day(uri=copy)
    with pytest.raises(analytics.AnalyticsError, match="WIZ_COLLECT_VULNERABILITY_FINDINGS=true"):
        analytics.top_cves(uri=copy, from_windows=True)
    assert len(analytics.failing_controls(uri=copy))


def test_without_the_current_tables_the_findings_questions_can_read_the_windows(demo, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(demo.output, copy, ignore=shutil.ignore_patterns("*_findings_current"))
    with pytest.raises(
        analytics.AnalyticsError, match=r"collect_vulnerability_findings_current.*from_windows"
    ):
        analytics.top_cves(uri=copy)
    # The demo collected every finding once, after the fact: the windows' latest versions are the state.
    for question in (analytics.top_cves, analytics.open_vulnerabilities, analytics.failing_controls):
        pd.testing.assert_frame_equal(question(uri=copy, from_windows=True), question(uri=demo.output))


def test_queries_larger_than_memory_spill_into_a_private_directory(demo):
    con = analytics.connect(demo.output)
    spill = Path(con.execute("SELECT current_setting('temp_directory')").fetchone()[0])
    assert spill.is_dir() and spill.stat().st_mode & 0o077 == 0


def test_the_output_uri_defaults_to_wiz_output_uri(demo, monkeypatch):
    monkeypatch.setenv("WIZ_OUTPUT_URI", f"file://{demo.output}")
    pd.testing.assert_frame_equal(analytics.failed_logins(), analytics.failed_logins(uri=demo.output))


@pytest.fixture(scope="module")
def s3_demo(demo, s3_server) -> str:
    """The demo's output copied into a bucket of the module's S3 server, as the pipeline lays it out."""
    bucket = "wiz-analytics-demo"
    client = s3_server.client()
    client.create_bucket(Bucket=bucket)
    for path in demo.output.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), bucket, f"wiz/{path.relative_to(demo.output)}")
    return f"s3://{bucket}/wiz"


@pytest.mark.parametrize(
    "question",
    [
        lambda uri: analytics.audit_activity(uri=uri, top=5),
        lambda uri: analytics.audit_activity(RECENT, RECENT + timedelta(hours=1), uri=uri),
        lambda uri: analytics.failed_logins(uri=uri),
        lambda uri: analytics.api_calls_by_service_account(uri=uri),
        lambda uri: analytics.open_issues(uri=uri),
        lambda uri: analytics.mean_time_to_resolve(uri=uri),
        lambda uri: analytics.status_changes(uri=uri),
        lambda uri: analytics.open_vulnerabilities(uri=uri),
        lambda uri: analytics.top_cves(uri=uri),
        lambda uri: analytics.mean_time_to_remediate(uri=uri),
        lambda uri: analytics.failing_controls(uri=uri),
        lambda uri: analytics.detections_by_day(uri=uri),
    ],
    ids=[
        "audit_activity",
        "audit_activity_range",
        "failed_logins",
        "api_calls",
        "open_issues",
        "time_to_resolve",
        "changes",
        "open_vulnerabilities",
        "top_cves",
        "time_to_remediate",
        "failing_controls",
        "detections_by_day",
    ],
)
def test_each_question_gives_the_same_answer_from_an_s3_output(
    demo, s3_demo, s3_server, tmp_path, monkeypatch, question
):
    s3_environment(monkeypatch, tmp_path, s3_server)  # AWS_* as the pipeline's own runs read them
    local = question(demo.output)
    assert len(local)
    pd.testing.assert_frame_equal(question(s3_demo), local)


def readme_blocks() -> list[tuple[str, str]]:
    """The fenced ``sql`` and ``python`` blocks of docs/analytics.md (the README's Analytics section)."""
    text = README.read_text()
    section = text.split("# Analytics\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(sql|python)\n(.*?)```", section, flags=re.DOTALL)


def test_the_readme_has_analytics_examples_in_sql_and_python_naming_the_demo_output():
    blocks = readme_blocks()
    assert {kind for kind, _ in blocks} == {"sql", "python"}
    assert all(README_PATH in code for _, code in blocks)


@pytest.mark.parametrize("index", range(len(readme_blocks())))
def test_each_readme_analytics_example_runs_against_the_demo_output(demo, index):
    kind, code = readme_blocks()[index]
    code = code.replace(README_PATH, str(demo.output))
    if kind == "sql":
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        result = None
        for statement in [s for s in code.split(";") if s.strip()]:
            result = con.execute(statement).fetchall()
        assert result, "the example's last statement returned no rows"
    else:
        names: dict[str, Any] = {}
        exec(compile(code, f"docs/analytics.md block {index}", "exec"), names)  # noqa: S102
        frames = [v for v in names.values() if isinstance(v, pd.DataFrame)]
        assert frames and all(len(f) for f in frames)


def test_a_dataset_missing_from_an_s3_output_is_named(s3_demo, s3_server, tmp_path, monkeypatch):
    s3_environment(monkeypatch, tmp_path, s3_server)
    empty = s3_demo.replace("/wiz", "/nothing-here")
    with pytest.raises(analytics.AnalyticsError, match=rf"No audit_logs data under {re.escape(empty)}"):
        analytics.failed_logins(uri=empty)
    with pytest.raises(analytics.AnalyticsError, match="collect_issues_current"):
        analytics.open_issues(uri=empty)
