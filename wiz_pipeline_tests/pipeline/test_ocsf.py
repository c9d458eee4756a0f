"""WIZ_OCSF: each data type's OCSF 1.5.0 view, written with its windows, through Dagster against the
simulator on 127.0.0.1 (one row per record in the right class, valid against the schema, reruns,
failures, the OCSF-only rebuild, the Security Lake layout, the ledger, checkpoints and analytics)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from wiz_pipeline.cli.commands import main
from wiz_pipeline.core.times import parse_time
from wiz_pipeline.data_types import DATA_TYPES
from wiz_pipeline.ocsf import SOURCES, to_events
from wiz_pipeline.ocsf.validate import invalid_rows
from wiz_pipeline.readers import analytics
from wiz_pipeline.simulator import Fault, WizSimulator, generate_tenant
from wiz_pipeline_tests.conftest import CLIENT_SECRET, T0
from wiz_pipeline_tests.pipeline.conftest import SEED, Pipeline
from wiz_pipeline_tests.pipeline.test_findings_windows import configuration_finding

HOURS = 2
NOW = T0 + timedelta(hours=HOURS, days=1)
TYPES = tuple(DATA_TYPES)
OFF_BY_DEFAULT = ("vulnerability_findings", "configuration_findings", "detections")
# Each source's time attribute, as ocsf.md says: OCSF `time` is it, in epoch milliseconds.
TIME_FIELD = {
    "audit_logs": "timestamp",
    "issues": "statusChangedAt",
    "vulnerability_findings": "updatedAt",
    "configuration_findings": "updatedAt",
    "detections": "updatedAt",
}
SEVERITY_ID = {"INFORMATIONAL": 1, "NONE": 1, "LOW": 2, "MEDIUM": 3, "HIGH": 4, "CRITICAL": 5, None: 0}


def _tenant():
    return generate_tenant(
        T0,
        T0 + timedelta(hours=HOURS),
        audit_entries=300,
        issues=40,
        vulnerability_findings=150,
        configuration_findings=120,
        detections=80,
        seed=41,
    )


def _env(root: Path, **extra: str) -> dict[str, str]:
    return {
        "WIZ_OUTPUT_URI": str(root),
        "WIZ_OCSF": "true",
        "WIZ_POLL_INTERVAL_SECONDS": "1800",
        "WIZ_WINDOW_LAG_SECONDS": "300",
        "WIZ_PAGE_SIZE": "40",
        **{DATA_TYPES[t].enabled_by: "true" for t in OFF_BY_DEFAULT},
        **{DATA_TYPES[t].checkpoint_variable: SEED for t in TYPES},
        **extra,
    }


@pytest.fixture
def ocsf(tmp_path):
    sim = WizSimulator(_tenant(), client_id="ocsf-client", client_secret=CLIENT_SECRET)
    sim.set_now(NOW)
    with sim, dg.instance_for_test() as instance:
        yield Pipeline(sim, _env(tmp_path / "data"), instance, tmp_path / "data", {})


def native_windows(pipeline: Pipeline, data_type: str) -> dict[str, list[dict[str, Any]]]:
    """Each native window file's nodes by partition key."""
    found = {}
    for path in pipeline.files(data_type):
        manifest = json.loads(path.with_name(f"_{path.stem}.json").read_text())
        found[manifest["partition_key"]] = [json.loads(r) for r in pq.read_table(path)["raw"].to_pylist()]
    return found


def ocsf_files(root: Path, data_type: str) -> dict[str, list[Path]]:
    """Each class's OCSF files of a data type (hive layout)."""
    return {
        c: sorted((root / "ocsf" / c / f"source={data_type}").rglob("*.parquet")) for c in SOURCES[data_type]
    }


def class_of(node: dict[str, Any]) -> str:
    last = node["action"].strip().rpartition(" ")[2]
    return "authentication" if last in ("Login", "DeviceLogin") else "api_activity"


def ms(text: str) -> int:
    at = parse_time(text)
    assert at is not None
    return int(at.timestamp() * 1000)


@pytest.mark.parametrize("data_type", TYPES)
def test_every_record_of_every_window_has_one_valid_ocsf_row_in_its_class(ocsf, data_type):
    keys = ocsf.keys(data_type, hours=HOURS)
    result = ocsf.run(keys[0], keys[-1], data_type=data_type)
    assert result.success
    native = native_windows(ocsf, data_type)
    assert sorted(native) == keys
    files = ocsf_files(ocsf.root, data_type)
    total = 0
    for class_name, paths in files.items():
        # One file per window of the class, named by the window, even for a window with no row of it.
        assert len(paths) == len(keys), class_name
        for path in paths:
            table = pq.read_table(path)
            # The file's last column is its window's start (constant, for an Iceberg partition), then OCSF.
            assert table.column_names[-1] == "window_start"
            assert set(table["window_start"].to_pylist()) <= {
                datetime.strptime(path.stem[-16:], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            }
            count, messages = invalid_rows(class_name, table.drop_columns(["window_start"]))
            assert count == 0, messages
            total += table.num_rows
    assert total == sum(len(nodes) for nodes in native.values()) > 20
    for key, nodes in native.items():
        start = datetime.strptime(key, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC)
        rows: dict[str, dict[str, Any]] = {}
        for class_name in SOURCES[data_type]:
            stem = f"{class_name}_{data_type}_{start:%Y%m%dT%H%M%SZ}"
            path = (
                ocsf.root
                / "ocsf"
                / class_name
                / f"source={data_type}"
                / f"date={start:%Y-%m-%d}"
                / f"{stem}.parquet"
            )
            for event in to_events(pq.read_table(path)):
                assert event["metadata"]["uid"] not in rows, "a record has two OCSF rows"
                rows[event["metadata"]["uid"]] = event | {"_class": class_name}
        # Issues are a change log: the same issue may be in two windows, never twice in one.
        assert sorted(rows) == sorted(n["id"] for n in nodes), key
        for node in nodes:
            event = rows[node["id"]]
            assert event["metadata"]["version"] == "1.5.0"
            assert event["metadata"]["product"]["vendor_name"] == "Wiz"
            assert event["time"] == ms(node[TIME_FIELD[data_type]])
            assert event["type_uid"] == event["class_uid"] * 100 + event["activity_id"]
            assert json.loads(event["raw_data"]) == node
            if data_type == "audit_logs":
                assert event["_class"] == class_of(node)
                assert event["severity_id"] == 1
            else:
                # A vulnerability's is its CVSS severity (the native `severity` column), the vendor's
                # when CVSS says nothing or NONE.
                severity = node.get("severity")
                if data_type == "vulnerability_findings":
                    cvss, vendor = node.get("CVSSSeverity"), node.get("vendorSeverity")
                    severity = vendor if cvss in (None, "NONE") and vendor else cvss
                assert event["severity_id"] == SEVERITY_ID[severity], severity
    # The view's materializations, one per window, and its checks, all passed.
    view = ocsf.collection(data_type).ocsf_key
    assert ocsf.instance.get_materialized_partitions(view) == set(keys)
    evaluations = [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
        and e.asset_check_evaluation_data.asset_key == view
    ]
    assert len(evaluations) == 2 * len(keys)
    assert all(e.passed for e in evaluations)


def test_a_rerun_replaces_a_windows_ocsf_rows_without_duplicates(ocsf):
    keys = ocsf.keys(hours=HOURS)
    assert ocsf.run(keys[0], keys[-1]).success
    before = {c: [p.name for p in ps] for c, ps in ocsf_files(ocsf.root, "audit_logs").items()}
    rows = ds.dataset(ocsf.root / "ocsf" / "api_activity", partitioning="hive").count_rows()
    assert ocsf.run(keys[1]).success
    assert ocsf.run(keys[0], keys[-1]).success
    assert {c: [p.name for p in ps] for c, ps in ocsf_files(ocsf.root, "audit_logs").items()} == before
    again = ds.dataset(ocsf.root / "ocsf" / "api_activity", partitioning="hive").to_table()
    assert again.num_rows == rows
    uids = [m["uid"] for m in again["metadata"].to_pylist()]
    assert len(uids) == len(set(uids))


def test_a_failing_window_writes_no_ocsf_rows_and_materializes_neither_asset(ocsf):
    keys = ocsf.keys(hours=HOURS)
    assert ocsf.run(keys[0]).success
    ocsf.sim.inject(Fault.http_status(500), times=6)  # the first try and all 5 retries
    failed = ocsf.run(keys[1])
    assert not failed.success
    assert not failed.get_asset_materialization_events()
    second = datetime.strptime(keys[1], "%Y-%m-%d-%H:%M").replace(tzinfo=UTC)
    assert not [p for p in (ocsf.root / "ocsf").rglob(f"*{second:%Y%m%dT%H%M%SZ}*")]
    assert keys[1] not in ocsf.instance.get_materialized_partitions(ocsf.collection().ocsf_key)


def test_a_view_that_cannot_be_written_fails_the_window_and_records_neither_asset(ocsf):
    keys = ocsf.keys(hours=HOURS)
    # A file where the day's folder of one class goes: that class's file can't be made, after the
    # native file and the other class's were.
    blocker = ocsf.root / "ocsf" / "api_activity" / "source=audit_logs" / "date=2025-09-12"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a folder")
    result = ocsf.run(keys[0])
    assert not result.success
    assert not result.get_asset_materialization_events()
    assert not ocsf.instance.get_materialized_partitions(ocsf.collection().asset_key)
    assert [p for p in (ocsf.root / "ocsf").rglob("*") if p.is_file()] == [blocker]


def test_turning_ocsf_on_later_rebuilds_the_view_from_the_written_windows_without_an_api_read(ocsf):
    keys = ocsf.keys(hours=HOURS)
    ocsf.env["WIZ_OCSF"] = "false"
    assert ocsf.run(keys[0], keys[-1]).success
    assert not (ocsf.root / "ocsf").exists()
    ocsf.env["WIZ_OCSF"] = "true"
    requests = len(ocsf.sim.graphql_records())
    view = ocsf.collection().ocsf_key
    job = dg.define_asset_job("rebuild", selection=[view]).resolve(
        asset_graph=ocsf.defs.resolve_asset_graph()
    )
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    tags = {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]}
    result = job.execute_in_process(instance=ocsf.instance, tags=tags, raise_on_error=False)
    assert result.success
    assert len(ocsf.sim.graphql_records()) == requests  # nothing asked of the API
    assert ocsf.instance.get_materialized_partitions(view) == set(keys)
    rows = sum(
        pq.read_metadata(p).num_rows for ps in ocsf_files(ocsf.root, "audit_logs").values() for p in ps
    )
    assert rows == ocsf.table().num_rows
    # A window whose native file was never written can't be derived: the run says which to collect.
    later = ocsf.collection().partitions_def.get_partition_keys(current_time=NOW)[len(keys) + 1]
    refused = job.execute_in_process(instance=ocsf.instance, partition_key=later, raise_on_error=False)
    assert not refused.success
    failure = next(e for e in refused.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert "materialize wiz/audit_logs for them" in str(failure.step_failure_data.error)


def test_the_security_lake_layout_is_one_custom_source_per_class_by_region_account_and_day(
    ocsf, tmp_path, monkeypatch, capsys
):
    lake = tmp_path / "lake"
    ocsf.env |= {
        "WIZ_OCSF_LAYOUT": "security_lake",
        "WIZ_OCSF_URI": str(lake),
        "WIZ_OCSF_REGION": "eu-west-1",
        "WIZ_OCSF_ACCOUNT_ID": "123456789012",
    }
    for data_type in ("audit_logs", "issues", "detections"):
        keys = ocsf.keys(data_type, hours=HOURS)
        assert ocsf.run(keys[0], keys[-1], data_type=data_type).success
    data = sorted(str(p.relative_to(lake)) for p in lake.rglob("*.parquet"))
    folders = {p.rpartition("/")[0] for p in data}
    assert folders == {
        f"ext/wiz_{c}/region=eu-west-1/accountId=123456789012/eventDay=20250912"
        for c in ("authentication", "api_activity", "detection_finding")
    }
    assert (
        "ext/wiz_api_activity/region=eu-west-1/accountId=123456789012/eventDay=20250912/audit_logs_20250912T210000Z.parquet"
        in data
    )
    # Issues and detections share their class's source, each window a file of its own.
    detection = [p for p in data if p.startswith("ext/wiz_detection_finding/")]
    assert len(detection) == 2 * len(ocsf.keys(hours=HOURS))
    # Each file is one OCSF class, as Security Lake requires, and every row validates.
    for path in lake.rglob("*.parquet"):
        table = pq.read_table(path)
        class_name = path.relative_to(lake).parts[1].removeprefix("wiz_")
        assert set(table["class_uid"].to_pylist()) <= {
            {"authentication": 3002, "api_activity": 6003, "detection_finding": 2004}[class_name]
        }
        assert invalid_rows(class_name, table)[0] == 0
    # Nothing but Parquet under the custom sources, as Security Lake requires: the manifests are kept
    # beside the native datasets.
    assert {p.suffix for p in lake.rglob("*") if p.is_file()} == {".parquet"}
    manifests = ocsf.root / "_ocsf_manifests"
    assert sorted(str(p.relative_to(manifests)).removesuffix(".json") for p in manifests.rglob("*.json")) == [
        d.removesuffix(".parquet") for d in data
    ]
    # The ledger finds each file and its manifest in their two places.
    for name, value in ocsf.env.items():
        monkeypatch.setenv(name, value)
    to = (T0 + timedelta(hours=HOURS)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert main(["ledger", "--type", "issues", "--to", to]) == 0
    assert "ocsf/issues: no gap" in capsys.readouterr().out
    next(manifests.rglob("issues_*.json")).unlink()
    assert main(["ledger", "--type", "issues", "--to", to]) == 1
    assert "not written: 2025-09-12-" in (out := capsys.readouterr().out) and "[output: no manifest]" in out
    # Analytics finds the views in this layout too.
    con = analytics.connect(ocsf.root, ocsf_uri=lake)
    assert con.execute("SELECT count(*) FROM ocsf_detection_finding").fetchone()[0] == sum(
        ocsf.table(t).num_rows for t in ("issues", "detections")
    )


def test_the_ledger_and_checkpoints_know_the_ocsf_views(ocsf, monkeypatch, capsys):
    keys = ocsf.keys(hours=HOURS)
    assert ocsf.run(keys[0], keys[-1]).success
    for name, value in ocsf.env.items():
        monkeypatch.setenv(name, value)
    to = (T0 + timedelta(hours=HOURS)).strftime("%Y-%m-%dT%H:%M:%SZ")
    code = main(["ledger", "--type", "audit_logs", "--to", to])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"ocsf/audit_logs: no gap: all {len(keys)} closed windows" in out
    lines = [line.split() for line in out.splitlines() if line.startswith("ocsf/audit_logs ")]
    assert sum(int(cols[3]) for cols in lines) == ocsf.table().num_rows
    # A class file deleted is a gap naming the file.
    gone = ocsf_files(ocsf.root, "audit_logs")["authentication"][0]
    gone.unlink()
    code = main(["ledger", "--type", "audit_logs", "--to", to])
    out = capsys.readouterr().out
    assert code == 1
    assert f"output: no data file ({gone.name})" in out
    # checkpoints: the view is counted beside its source's checkpoint.
    assert main(["checkpoints"]) == 0
    out = capsys.readouterr().out
    assert "#   ocsf/audit_logs: " in out and "closed windows written" in out


def test_analytics_reads_each_class_and_asks_one_question_across_the_finding_classes(ocsf):
    # A failing control on an asset that also has a vulnerability: one resource, two classes.
    tenant = ocsf.sim.tenant
    vulnerable = next(
        n
        for n in tenant.findings_as_of("vulnerability_findings", NOW)
        if (n.get("vulnerableAsset") or {}).get("providerUniqueId")
    )
    asset = vulnerable["vulnerableAsset"]
    failing = configuration_finding("cf-on-the-vulnerable-asset", T0 + timedelta(minutes=40))
    failing["resource"] = {
        "id": asset.get("id"),
        "providerId": asset["providerUniqueId"],
        "name": asset.get("name"),
        "nativeType": "virtualMachine",
        "type": "VIRTUAL_MACHINE",
        "region": asset.get("region"),
        "cloudPlatform": "AWS",
        "subscription": None,
        "tags": [],
    }
    tenant.add_finding("configuration_findings", failing)
    for data_type in ("issues", "vulnerability_findings", "configuration_findings", "detections"):
        keys = ocsf.keys(data_type, hours=HOURS)
        assert ocsf.run(keys[0], keys[-1], data_type=data_type).success
    con = analytics.connect(ocsf.root)
    views = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert {
        "ocsf_detection_finding",
        "ocsf_vulnerability_finding",
        "ocsf_compliance_finding",
        "ocsf_findings",
    } <= views
    total = con.execute("SELECT count(*) FROM ocsf_findings").fetchone()[0]
    assert total == sum(
        ocsf.table(t).num_rows
        for t in ("issues", "vulnerability_findings", "configuration_findings", "detections")
    )
    # The resource with the most findings: every one of them, from each class that has it.
    uid, count = con.execute(
        "SELECT r.uid, count(*) FROM (SELECT unnest(resources) AS r FROM ocsf_findings) "
        "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1"
    ).fetchone()
    frame = analytics.findings_on_resource(uid, uri=ocsf.root)
    assert len(frame) == count
    both = analytics.findings_on_resource(asset["providerUniqueId"], uri=ocsf.root)
    assert {"Vulnerability Finding", "Compliance Finding"} <= set(both["class_name"])
    assert "cf-on-the-vulnerable-asset" in set(both["finding_uid"])
    # By Wiz's own id (uid_alt) too.
    if asset.get("id") and asset["id"] != asset["providerUniqueId"]:
        assert len(analytics.findings_on_resource(asset["id"], uri=ocsf.root)) == len(both)
    assert list(frame.columns)[:3] == ["event_time", "class_name", "source"]
    assert frame["event_time"].is_monotonic_decreasing


def test_the_security_lake_layout_lands_in_its_own_s3_bucket_beside_the_native_output(s3_pipeline):
    # The native datasets in one bucket, the custom sources' objects in Security Lake's.
    lake = f"{s3_pipeline.bucket[:50]}-lake"
    s3_pipeline.s3.client().create_bucket(Bucket=lake)
    s3_pipeline.env |= {
        "WIZ_OCSF": "true",
        "WIZ_OCSF_LAYOUT": "security_lake",
        "WIZ_OCSF_URI": f"s3://{lake}",
        "WIZ_OCSF_REGION": "us-east-1",
        "WIZ_OCSF_ACCOUNT_ID": "123456789012",
        "WIZ_OCSF_SOURCE_VERSION": "1.0",
    }
    keys = s3_pipeline.keys()
    assert s3_pipeline.run(keys[0], keys[3]).success
    listing = s3_pipeline.s3.client().list_objects_v2(Bucket=lake)["Contents"]
    objects = sorted(item["Key"] for item in listing)
    folder = "region=us-east-1/accountId=123456789012/eventDay=20250912"
    for class_name in ("authentication", "api_activity"):
        data = [
            k
            for k in objects
            if k.startswith(f"ext/wiz_{class_name}/1.0/{folder}/") and k.endswith(".parquet")
        ]
        assert len(data) == 4, class_name
    assert len(objects) == 8  # 4 windows x 2 classes; the manifests are beside the native datasets
    manifests = [k for k in s3_pipeline.keys_in_bucket() if k.startswith("wiz/_ocsf_manifests/ext/")]
    assert len(manifests) == 8
    # Rows read back from the bucket: one per native record.
    fs = s3_pipeline.s3.filesystem()
    rows = ds.dataset(f"{lake}/ext", filesystem=fs, format="parquet", partitioning="hive").count_rows()
    assert rows == s3_pipeline.table().num_rows
    assert not [
        k for k in s3_pipeline.keys_in_bucket() if "/ocsf/" in k or k.startswith(("ext/", "wiz/ext/"))
    ]


def test_ocsf_files_and_folders_are_never_world_readable_whatever_the_umask(ocsf):
    import os
    import stat

    keys = ocsf.keys(hours=HOURS)
    previous = os.umask(0)
    try:
        assert ocsf.run(keys[0], keys[1]).success
    finally:
        os.umask(previous)
    created = [ocsf.root / "ocsf", *(ocsf.root / "ocsf").rglob("*")]
    assert {stat.S_IMODE(p.stat().st_mode) for p in created if p.is_dir()} == {0o750}
    assert {stat.S_IMODE(p.stat().st_mode) for p in created if p.is_file()} == {0o640}
    assert len([p for p in created if p.is_file()]) == 8  # 2 windows x 2 classes, each with its manifest


def test_each_collected_data_type_gets_an_ocsf_asset_with_its_partitions_deps_checks_and_job(ocsf):
    ocsf.env[DATA_TYPES["detections"].enabled_by] = "false"
    defs = ocsf.defs
    graph = defs.resolve_asset_graph()
    views = {k for k in graph.get_all_asset_keys() if k.path[:2] == ["wiz", "ocsf"]}
    expected = {dg.AssetKey(["wiz", "ocsf", t]) for t in TYPES if t != "detections"}
    assert views == expected
    for view in views:
        source = dg.AssetKey(["wiz", view.path[-1]])
        node = graph.get(view)
        assert node.partitions_def == graph.get(source).partitions_def
        assert node.parent_keys == {source}
        assert {c.name for c in node.check_keys} == {"ocsf_valid", "ocsf_one_row_per_record"}
        # The UI says what it holds and where.
        description = defs.resolve_assets_def(view).descriptions_by_key[view]
        assert "OCSF 1.5.0" in description and "{WIZ_OCSF_URI}/" in description
        job = defs.resolve_job_def(f"collect_{view.path[-1]}")
        assert view in job.asset_layer.selected_asset_keys
    # Off (the default), there is none.
    ocsf.env["WIZ_OCSF"] = "false"
    assert not [k for k in ocsf.defs.resolve_asset_graph().get_all_asset_keys() if "ocsf" in k.path]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"WIZ_OCSF_LAYOUT": "security_lake"}, "needs WIZ_OCSF_REGION and WIZ_OCSF_ACCOUNT_ID"),
        ({"WIZ_OCSF_LAYOUT": "lake"}, "WIZ_OCSF_LAYOUT='lake': expected one of hive, security_lake"),
        ({"WIZ_OCSF_ACCOUNT_ID": "1234"}, "not a 12-digit AWS account id"),
        ({"WIZ_OCSF_REGION": "Europe"}, "not an AWS region name"),
        ({"WIZ_OCSF_URI": "ftp://x"}, "WIZ_OCSF_URI=ftp://…: unsupported scheme"),
    ],
)
def test_a_bad_ocsf_setting_stops_the_load_naming_it(tmp_path, extra, message):
    from wiz_pipeline.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match=re.escape(message)):
        load_settings(_env(tmp_path, **extra))


def test_an_ocsf_location_that_cannot_be_written_fails_the_run_before_any_wiz_request_naming_it(
    ocsf, tmp_path
):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    ocsf.env["WIZ_OCSF_URI"] = str(blocker / "ocsf")
    result = ocsf.run(ocsf.keys()[0])
    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error.cause
    assert error.cls_name == "OutputError"
    assert f"WIZ_OCSF_URI={blocker / 'ocsf'}/authentication: can't create the directory" in error.message
    assert not ocsf.sim.graphql_records()
    assert not ocsf.instance.get_materialized_partitions(ocsf.collection().asset_key)
