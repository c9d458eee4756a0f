"""WIZ_ICEBERG: every dataset an Iceberg table, through Dagster against the simulator on 127.0.0.1,
with real catalogs (SQLite, the tests' PostgreSQL server) and moto's S3 server: each table's scan
equals the simulator's records, reruns replace without duplicates, a failed commit leaves the table
unchanged and an orphan that maintenance removes, concurrent writers, schema evolution, expiry, the
ledger and analytics."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wiz_pipeline.cli.commands import main
from wiz_pipeline.data_types import DATA_TYPES
from wiz_pipeline.landing.iceberg import IcebergError, Tables, catalog_properties
from wiz_pipeline.ocsf import SOURCES
from wiz_pipeline.readers import analytics
from wiz_pipeline.settings import SettingsError, load_settings
from wiz_pipeline.simulator import WizSimulator, generate_tenant
from wiz_pipeline_tests.conftest import CLIENT_SECRET, T0
from wiz_pipeline_tests.pipeline.conftest import SEED, Pipeline, S3Pipeline

HOURS = 3
NOW = T0 + timedelta(hours=HOURS, days=1)


def _tenant():
    return generate_tenant(
        T0, T0 + timedelta(hours=HOURS), audit_entries=400, issues=60, detections=50, seed=23
    )


def _env(root: Path, **extra: str) -> dict[str, str]:
    return {
        "WIZ_OUTPUT_URI": str(root),
        "WIZ_ICEBERG": "true",
        "WIZ_POLL_INTERVAL_SECONDS": "1800",
        "WIZ_WINDOW_LAG_SECONDS": "300",
        "WIZ_PAGE_SIZE": "50",
        "AUDIT_SINCE_TIME": SEED,
        "ISSUES_SINCE_TIME": SEED,
        "DETECTIONS_SINCE_TIME": SEED,
        **extra,
    }


@pytest.fixture
def lake(tmp_path):
    sim = WizSimulator(_tenant(), client_id="iceberg-client", client_secret=CLIENT_SECRET)
    sim.set_now(NOW)
    with sim, dg.instance_for_test() as instance:
        yield Pipeline(sim, _env(tmp_path / "data"), instance, tmp_path / "data", {})


def tables_of(pipeline: Pipeline) -> Tables:
    return Tables(catalog_properties(pipeline.env, pipeline.env["WIZ_OUTPUT_URI"]))


def audit_ids_in(sim: WizSimulator, start: datetime, end: datetime) -> list[str]:
    seed = datetime(2025, 9, 12, 21, 0, 9, tzinfo=UTC)
    tenant = sim.tenant
    return sorted(
        n["id"]
        for t, n in zip(tenant.audit_times, tenant.audit_nodes, strict=True)
        if max(start, seed) <= t < end
    )


def window_start(key: str) -> datetime:
    return datetime.strptime(key, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC)


def scan_ids(tables: Tables, dataset: str, snapshot_id: int | None = None) -> list[str]:
    table = tables.load(dataset)
    assert table is not None
    return sorted(table.scan(snapshot_id=snapshot_id, selected_fields=("id",)).to_arrow()["id"].to_pylist())


def test_each_table_scan_equals_the_simulators_records_after_ranged_runs(lake):
    keys = lake.keys(hours=HOURS)
    # Two ranged runs (the second also crossing into the first's last window again).
    assert lake.run(keys[0], keys[2]).success
    tables = tables_of(lake)
    assert len(tables.load("audit_logs").metadata.snapshots) == 1  # a run's windows in one commit
    assert lake.run(keys[2], keys[-1]).success
    assert scan_ids(tables, "audit_logs") == audit_ids_in(
        lake.sim, T0, window_start(keys[-1]) + timedelta(minutes=30)
    )
    table = tables.load("audit_logs")
    assert table is not None
    assert table.metadata.format_version == 2
    assert str(table.spec().fields[0].transform) == "day"
    assert table.location() == str(lake.root / "audit_logs")
    # Each window exactly once, in its own file; every snapshot so far holds each window it has once.
    for snapshot in table.metadata.snapshots:
        ids = scan_ids(tables, "audit_logs", snapshot.snapshot_id)
        assert len(ids) == len(set(ids))
    held = tables.window_files("audit_logs")
    assert sorted(held) == [
        window_start(k)
        for k in keys
        if audit_ids_in(lake.sim, window_start(k), window_start(k) + timedelta(minutes=30))
    ]
    assert all(len(names) == 1 for names in held.values())
    # The materialization names the snapshot holding the window's file.
    record = lake.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(["wiz", "audit_logs"]), asset_partitions=[keys[1]]),
        limit=1,
    ).records[0]
    metadata = record.asset_materialization.metadata
    snapshot_id = int(metadata["iceberg_snapshot_id"].value)
    assert metadata["iceberg_table"].value == "wiz.audit_logs"
    in_window = audit_ids_in(lake.sim, window_start(keys[1]), window_start(keys[1]) + timedelta(minutes=30))
    assert set(in_window) <= set(scan_ids(tables, "audit_logs", snapshot_id))
    path = Path(metadata["path"].value)
    assert path.name in held[window_start(keys[1])]
    manifest = json.loads(
        (path.parent / f"_audit_logs_{window_start(keys[1]):%Y%m%dT%H%M%SZ}.json").read_text()
    )
    assert manifest["iceberg_snapshot_id"] == snapshot_id
    assert manifest["file"] == str(path)
    # The window_start column is the window's start in every row of its file.
    column = pq.read_table(path, columns=["window_start"])["window_start"].to_pylist()
    assert set(column) == {window_start(keys[1])}


def test_a_rerun_replaces_the_window_in_one_snapshot_without_duplicates(lake):
    keys = lake.keys(hours=HOURS)
    assert lake.run(keys[0], keys[3]).success
    tables = tables_of(lake)
    before = tables.window_files("audit_logs")[window_start(keys[1])]
    snapshots = len(tables.load("audit_logs").metadata.snapshots)
    assert lake.run(keys[1]).success
    after = tables.window_files("audit_logs")[window_start(keys[1])]
    assert len(after) == 1 and after != before  # a new file, the old one out of the snapshot
    table = tables.load("audit_logs")
    assert len(table.metadata.snapshots) == snapshots + 1
    latest = table.current_snapshot()
    assert latest.summary.operation.value == "overwrite"
    assert latest.summary["deleted-data-files"] == "1" and latest.summary["added-data-files"] == "1"
    ids = scan_ids(tables, "audit_logs")
    assert len(ids) == len(set(ids))
    assert ids == audit_ids_in(lake.sim, T0, window_start(keys[3]) + timedelta(minutes=30))
    # The replaced file is still on disk for the older snapshots (time travel), until maintenance.
    folder = lake.root / "audit_logs" / f"date={window_start(keys[1]):%Y-%m-%d}"
    assert (folder / next(iter(before))).exists()
    previous = table.metadata.snapshots[-2].snapshot_id
    assert scan_ids(tables, "audit_logs", previous) == ids


def test_a_failed_commit_leaves_the_table_unchanged_and_maintenance_removes_the_orphan(lake):
    keys = lake.keys(hours=HOURS)
    assert lake.run(keys[0], keys[1]).success
    tables = tables_of(lake)
    current = tables.load("audit_logs").current_snapshot().snapshot_id
    # Another process holds the SQLite catalog locked: the window's file is in place, its commit
    # can't be made, as when a run dies between the two.
    lock = sqlite3.connect(lake.root / "_iceberg" / "catalog.db", timeout=0)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        result = lake.run(keys[2])
    finally:
        lock.rollback()
        lock.close()
    assert not result.success
    assert tables.load("audit_logs").current_snapshot().snapshot_id == current
    assert window_start(keys[2]) not in tables.window_files("audit_logs")
    assert not lake.instance.get_materialized_partitions(dg.AssetKey(["wiz", "audit_logs"])) - set(keys[:2])
    folder = lake.root / "audit_logs" / f"date={window_start(keys[2]):%Y-%m-%d}"
    orphans = sorted(folder.glob(f"audit_logs_{window_start(keys[2]):%Y%m%dT%H%M%SZ}-*.parquet"))
    assert len(orphans) == 1
    assert not (folder / f"_audit_logs_{window_start(keys[2]):%Y%m%dT%H%M%SZ}.json").exists()
    # The ledger names the window as unwritten; maintenance deletes the orphan and nothing else.
    kept = sorted(p for p in (lake.root / "audit_logs").rglob("*.parquet") if p not in orphans)
    maintenance(lake, retention_days=0)
    assert not orphans[0].exists()
    assert all(p.exists() for p in kept)
    assert scan_ids(tables, "audit_logs") == audit_ids_in(
        lake.sim, T0, window_start(keys[1]) + timedelta(minutes=30)
    )
    # The next run writes the window.
    assert lake.run(keys[2]).success
    assert window_start(keys[2]) in tables.window_files("audit_logs")


def maintenance(pipeline: Pipeline, retention_days: int):
    job = pipeline.defs.resolve_job_def("iceberg_maintenance")
    config = {"ops": {"maintain_iceberg_tables": {"config": {"retention_days": retention_days}}}}
    result = job.execute_in_process(instance=pipeline.instance, run_config=config)
    assert result.success
    return result


def test_maintenance_expires_snapshots_and_deletes_replaced_files_keeping_the_current_data(lake):
    keys = lake.keys(hours=HOURS)
    assert lake.run(keys[0], keys[3]).success
    for key in keys[1:3]:
        assert lake.run(key).success  # reruns: replaced files
    tables = tables_of(lake)
    table = tables.load("audit_logs")
    assert len(table.metadata.snapshots) == 3  # the run's windows in one commit, then two reruns
    files_before = sorted((lake.root / "audit_logs").rglob("*.parquet"))
    expected = scan_ids(tables, "audit_logs")
    # A retention that keeps every snapshot keeps every file.
    maintenance(lake, retention_days=7)
    assert len(tables.load("audit_logs").metadata.snapshots) == len(table.metadata.snapshots)
    assert sorted((lake.root / "audit_logs").rglob("*.parquet")) == files_before
    maintenance(lake, retention_days=0)
    table = tables.load("audit_logs")
    assert [s.snapshot_id for s in table.metadata.snapshots] == [table.current_snapshot().snapshot_id]
    held = {n for names in tables.window_files("audit_logs").values() for n in names}
    on_disk = {p.name for p in (lake.root / "audit_logs").rglob("*.parquet")}
    assert on_disk == held  # the replaced files are gone, the empty windows had none
    assert scan_ids(tables, "audit_logs") == expected
    metadata = {p.name for p in (lake.root / "audit_logs" / "_iceberg_metadata").iterdir()}
    assert any(n.endswith(".metadata.json") for n in metadata)
    referenced = {Path(m.manifest_path).name for m in table.current_snapshot().manifests(table.io)}
    assert referenced <= metadata
    assert len([n for n in metadata if n.startswith("snap-")]) == 1  # expired manifest lists deleted


def test_an_iceberg_table_per_dataset_current_and_ocsf_included(lake):
    lake.env |= {"WIZ_OCSF": "true", "WIZ_COLLECT_DETECTIONS": "true"}
    keys = lake.keys(hours=HOURS)
    for data_type in ("audit_logs", "issues", "detections"):
        assert lake.run(keys[0], keys[-1], data_type=data_type).success
    job = lake.defs.resolve_job_def("collect_issues_current")
    assert job.execute_in_process(instance=lake.instance).success
    tables = tables_of(lake)
    names = set(tables.datasets())
    expected = {"audit_logs", "issues", "detections", "issues_current"}
    expected |= {f"ocsf_{c}" for t in ("audit_logs", "issues", "detections") for c in SOURCES[t]}
    assert names == expected
    # The current table is the current file alone, replaced whole.
    current = tables.load("issues_current")
    manifest = json.loads((lake.root / "issues_current" / "_issues_current.json").read_text())
    assert manifest["iceberg_snapshot_id"] == current.current_snapshot().snapshot_id
    ids = sorted(i["id"] for i in lake.sim.tenant.issues_as_of(lake.sim.now()))
    assert scan_ids(tables, "issues_current") == ids
    assert job.execute_in_process(instance=lake.instance).success
    current = tables.load("issues_current")
    assert scan_ids(tables, "issues_current") == ids
    assert current.current_snapshot().summary["deleted-data-files"] == "1"
    assert len(current.scan().plan_files()) == 1
    assert current.spec().is_unpartitioned()
    # Each OCSF class table has one row per record of its sources, kept apart by source.
    detection = tables.load("ocsf_detection_finding")
    # Their source is in every row (metadata.log_name), their files under source=<data type>/.
    sources = [
        m["log_name"]
        for m in detection.scan(selected_fields=("metadata",)).to_arrow()["metadata"].to_pylist()
    ]
    by_source = {s: sources.count(s) for s in ("issues", "detections")}
    native = {t: tables.load(t).scan().to_arrow().num_rows for t in ("issues", "detections")}
    assert by_source == native and all(native.values())
    audit = sum(tables.load(f"ocsf_{c}").scan().to_arrow().num_rows for c in SOURCES["audit_logs"])
    assert audit == tables.load("audit_logs").scan().to_arrow().num_rows
    # A rerun of issues replaces the issues' files in the class table and leaves the detections'.
    assert lake.run(keys[1], data_type="issues").success
    rows = tables.load("ocsf_detection_finding").scan(selected_fields=("metadata",)).to_arrow()
    sources = [m["log_name"] for m in rows["metadata"].to_pylist()]
    assert {s: sources.count(s) for s in ("issues", "detections")} == native
    # The OCSF view's materialization names each class table's snapshot.
    record = lake.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(["wiz", "ocsf", "issues"]), asset_partitions=[keys[1]]),
        limit=1,
    ).records[0]
    snapshots = record.asset_materialization.metadata["iceberg_snapshot_ids"].value
    assert snapshots == {
        "detection_finding": str(tables.load("ocsf_detection_finding").current_snapshot().snapshot_id)
    }


def test_two_writers_on_different_windows_at_once_each_window_once_in_every_snapshot(tmp_path):
    root = tmp_path / "out"
    (root / "audit_logs").mkdir(parents=True)
    schema = pa.schema([("id", pa.string()), ("window_start", pa.timestamp("us", tz="UTC"))])
    starts = [T0 + timedelta(minutes=30 * i) for i in range(16)]

    def write(start: datetime, rows: int) -> str:
        folder = root / "audit_logs" / f"date={start:%Y-%m-%d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"audit_logs_{start:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:12]}.parquet"
        ids = [f"{start:%H%M}-{i}" for i in range(rows)]
        pq.write_table(pa.table({"id": ids, "window_start": [start] * rows}, schema=schema), path)
        return str(path)

    errors: list[BaseException] = []

    def writer(mine: list[datetime]) -> None:
        tables = Tables(catalog_properties({}, str(root)))  # its own catalog connection
        try:
            for start in mine:
                for rows in (3, 5):  # a first write, then a rerun with more rows
                    tables.replace_window(
                        "audit_logs", str(root / "audit_logs"), start, [write(start, rows)], schema
                    )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(starts[i::2],)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    tables = Tables(catalog_properties({}, str(root)))
    final = scan_ids(tables, "audit_logs")
    assert final == sorted(f"{s:%H%M}-{i}" for s in starts for i in range(5))
    table = tables.load("audit_logs")
    assert len(table.metadata.snapshots) == 2 * len(starts)
    for snapshot in table.metadata.snapshots:
        ids = scan_ids(tables, "audit_logs", snapshot.snapshot_id)
        windows = [i.rsplit("-", 1)[0] for i in ids]
        counts = {w: windows.count(w) for w in set(windows)}
        assert set(counts.values()) <= {3, 5}  # each window in one version, never two


def test_a_new_column_widens_the_table_and_older_files_read_it_as_null(lake):
    keys = lake.keys(hours=HOURS)
    assert lake.run(keys[0], keys[2]).success
    tables = tables_of(lake)
    # A later release's data type with one more column: its file, as the pipeline writes it.
    old_path = lake.root / "audit_logs" / f"date={window_start(keys[1]):%Y-%m-%d}"
    source = next(iter(tables.window_files("audit_logs")[window_start(keys[1])]))
    table = pq.read_table(old_path / source)
    widened = table.add_column(table.num_columns - 1, "risk_score", pa.array([7.5] * table.num_rows))
    new = old_path / f"audit_logs_{window_start(keys[1]):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:12]}.parquet"
    pq.write_table(widened, new)
    tables.replace_window(
        "audit_logs", str(lake.root / "audit_logs"), window_start(keys[1]), [str(new)], widened.schema
    )
    iceberg = tables.load("audit_logs")
    assert "risk_score" in iceberg.schema().column_names
    rows = iceberg.scan(selected_fields=("id", "risk_score", "window_start")).to_arrow().to_pylist()
    assert {r["risk_score"] for r in rows if r["window_start"] == window_start(keys[1])} == {7.5}
    assert {r["risk_score"] for r in rows if r["window_start"] != window_start(keys[1])} == {None}
    # A pipeline run after it still commits (its files lack the column).
    assert lake.run(keys[0]).success
    assert "risk_score" in tables.load("audit_logs").schema().column_names


def test_a_file_whose_partition_would_be_null_is_refused(tmp_path):
    root = tmp_path / "out"
    (root / "audit_logs").mkdir(parents=True)
    schema = pa.schema([("id", pa.string()), ("window_start", pa.timestamp("us", tz="UTC"))])
    path = root / "audit_logs" / "no-stats.parquet"
    pq.write_table(pa.table({"id": ["a"], "window_start": [T0]}, schema=schema), path, write_statistics=False)
    tables = Tables(catalog_properties({}, str(root)))
    with pytest.raises(IcebergError, match="partition would be null"):
        tables.replace_window("audit_logs", str(root / "audit_logs"), T0, [str(path)], schema)
    assert tables.load("audit_logs").current_snapshot() is None


def test_the_ledger_reads_the_table_as_well_as_the_files(lake, monkeypatch, capsys, tmp_path):
    lake.env |= {"WIZ_OCSF": "true"}
    keys = lake.keys(hours=HOURS)
    assert lake.run(keys[0], keys[-1]).success
    for name, value in lake.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    # The CLI opens the instance at DAGSTER_HOME: give it this test's instance's runs.
    monkeypatch.setattr("wiz_pipeline.cli.commands._open_instance", lambda: _borrowed(lake.instance))
    end = (window_start(keys[-1]) + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert main(["ledger", "--type", "audit_logs", "--to", end]) == 0
    out = capsys.readouterr().out
    assert "audit_logs: no gap" in out and "ocsf/audit_logs: no gap" in out
    # The table loses a window (a commit of someone else's): the ledger names it, files or not.
    tables = tables_of(lake)
    busy = next(k for k in keys if window_start(k) in tables.window_files("audit_logs"))
    table = tables.load("audit_logs")
    table.delete(f"window_start = '{window_start(busy).isoformat()}'")
    assert main(["ledger", "--type", "audit_logs", "--to", end]) == 1
    out = capsys.readouterr().out
    assert busy in out and "table: holds no file of this window" in out
    assert "ocsf/audit_logs: no gap" in out  # its own tables still hold the window


class _borrowed:
    def __init__(self, instance):
        self.instance = instance

    def __enter__(self):
        return self.instance

    def __exit__(self, *exc):
        return False


def test_analytics_reads_the_tables_snapshot_not_replaced_files(lake, monkeypatch):
    keys = lake.keys(hours=HOURS)
    assert lake.run(keys[0], keys[-1]).success
    assert lake.run(keys[1]).success  # the replaced file stays on disk until maintenance
    expected = audit_ids_in(lake.sim, T0, window_start(keys[-1]) + timedelta(minutes=30))
    with_files = analytics.connect(lake.root, ["audit_logs"], iceberg=False)
    assert with_files.execute("SELECT count(*) FROM audit_logs").fetchone()[0] > len(expected)
    for name, value in lake.env.items():
        monkeypatch.setenv(name, value)
    con = analytics.connect(lake.root, ["audit_logs"])
    ids = [r[0] for r in con.execute("SELECT id FROM audit_logs ORDER BY id").fetchall()]
    assert ids == expected
    days = con.execute("SELECT DISTINCT date FROM audit_logs").fetchall()
    assert days == [(T0.date(),)]
    frame = analytics.audit_activity(uri=lake.root)
    assert int(frame["entries"].sum()) == len(expected)


def test_files_are_private_under_umask_0(lake):
    previous = os.umask(0)
    try:
        assert lake.run(lake.keys(hours=HOURS)[0]).success
    finally:
        os.umask(previous)
    made = [lake.root / "_iceberg", *(lake.root / "_iceberg").iterdir()]
    made += [
        lake.root / "audit_logs" / "_iceberg_metadata",
        *(lake.root / "audit_logs" / "_iceberg_metadata").iterdir(),
    ]
    for path in made:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o007 == 0, (path, oct(mode))


def test_settings_refuse_a_local_catalog_for_an_s3_output_and_name_the_variable():
    with pytest.raises(SettingsError, match="needs a catalog that is not a local file"):
        load_settings({"WIZ_ICEBERG": "true", "WIZ_OUTPUT_URI": "s3://bucket/wiz"})
    with pytest.raises(SettingsError, match="WIZ_ICEBERG_CATALOG_URI is a SQLite file"):
        load_settings(
            {
                "WIZ_ICEBERG": "true",
                "WIZ_OUTPUT_URI": "s3://bucket/wiz",
                "WIZ_ICEBERG_CATALOG_URI": "sqlite:////tmp/catalog.db",
            }
        )
    with pytest.raises(SettingsError, match="WIZ_ICEBERG_NAMESPACE"):
        load_settings({"WIZ_ICEBERG": "true", "WIZ_ICEBERG_NAMESPACE": "9 lives"})
    props = catalog_properties(
        {"WIZ_ICEBERG_CATALOG_TYPE": "glue", "WIZ_ICEBERG_CATALOG_GLUE__REGION": "eu-west-1"},
        "s3://bucket/wiz",
    )
    assert props["type"] == "glue" and props["glue.region"] == "eu-west-1"
    # Off: no catalog, no tables, no maintenance job.
    defs = load_settings({})
    assert not defs.iceberg


def catalog_database(postgres_server) -> tuple[str, str]:
    """A fresh database on the tests' PostgreSQL server for a catalog: its SQLAlchemy URL, password."""
    database = postgres_server.create_database(f"iceberg_{uuid.uuid4().hex[:8]}")
    env = postgres_server.env(database)
    uri = (
        f"postgresql+psycopg2://{env['DAGSTER_PG_USERNAME']}:{env['DAGSTER_PG_PASSWORD']}@"
        f"{env['DAGSTER_PG_HOST']}:{env['DAGSTER_PG_PORT']}/{database}"
    )
    return uri, env["DAGSTER_PG_PASSWORD"]


def test_a_postgresql_catalog_on_the_tests_server(lake, postgres_server):
    uri, password = catalog_database(postgres_server)
    lake.env |= {"WIZ_ICEBERG_CATALOG_TYPE": "sql", "WIZ_ICEBERG_CATALOG_URI": uri}
    os.environ["WIZ_ICEBERG_CATALOG_URI"] = uri  # the run reads the catalog's URI from its environment
    os.environ["WIZ_ICEBERG_CATALOG_TYPE"] = "sql"
    try:
        keys = lake.keys(hours=HOURS)
        result = lake.run(keys[0], keys[-1])
        assert result.success
        assert lake.run(keys[2]).success
    finally:
        del os.environ["WIZ_ICEBERG_CATALOG_URI"], os.environ["WIZ_ICEBERG_CATALOG_TYPE"]
    tables = tables_of(lake)
    assert scan_ids(tables, "audit_logs") == audit_ids_in(
        lake.sim, T0, window_start(keys[-1]) + timedelta(minutes=30)
    )
    assert not (lake.root / "_iceberg").exists()  # no SQLite catalog beside the data
    # The password is in no event the run recorded.
    for record in lake.instance.all_logs(result.run_id):
        assert password not in str(record)


def test_an_s3_output_with_the_postgresql_catalog(s3_pipeline: S3Pipeline, postgres_server, monkeypatch):
    uri, _ = catalog_database(postgres_server)
    extra = {"WIZ_ICEBERG": "true", "WIZ_ICEBERG_CATALOG_TYPE": "sql", "WIZ_ICEBERG_CATALOG_URI": uri}
    s3_pipeline.env |= extra
    for name, value in extra.items():
        monkeypatch.setenv(name, value)
    keys = s3_pipeline.keys(hours=2)
    assert s3_pipeline.run(keys[0], keys[-1]).success
    assert s3_pipeline.run(keys[1]).success
    tables = Tables(catalog_properties(os.environ, s3_pipeline.env["WIZ_OUTPUT_URI"]))
    table = tables.load("audit_logs")
    assert table.location() == f"s3://{s3_pipeline.bucket}/wiz/audit_logs"
    ids = sorted(table.scan(selected_fields=("id",)).to_arrow()["id"].to_pylist())
    assert ids == sorted(s3_pipeline.table()["id"].to_pylist()) or len(ids) < s3_pipeline.table().num_rows
    assert len(ids) == len(set(ids)) > 0
    assert any(k.startswith("wiz/audit_logs/_iceberg_metadata/") for k in s3_pipeline.keys_in_bucket())
    # Analytics reads the S3 table through its snapshot.
    con = analytics.connect(s3_pipeline.env["WIZ_OUTPUT_URI"], ["audit_logs"])
    assert sorted(r[0] for r in con.execute("SELECT id FROM audit_logs").fetchall()) == ids
    # Maintenance on S3: the replaced window's file goes, the table's stay.
    job = s3_pipeline.defs.resolve_job_def("iceberg_maintenance")
    config = {"ops": {"maintain_iceberg_tables": {"config": {"retention_days": 0}}}}
    assert job.execute_in_process(instance=s3_pipeline.instance, run_config=config).success
    held = {n for names in tables.window_files("audit_logs").values() for n in names}
    left = {k.rpartition("/")[2] for k in s3_pipeline.files()}
    assert left == held
    assert sorted(tables.load("audit_logs").scan(selected_fields=("id",)).to_arrow()["id"].to_pylist()) == ids


def test_definitions_have_the_maintenance_job_only_with_iceberg(lake):
    defs = lake.defs
    assert defs.resolve_job_def("iceberg_maintenance") is not None
    schedule = defs.resolve_schedule_def("iceberg_maintenance_schedule")
    assert schedule.cron_schedule == "40 3 * * *"
    lake.env["WIZ_ICEBERG"] = "false"
    names = {s.name for s in lake.defs.schedules or []}
    assert "iceberg_maintenance_schedule" not in names
    assert "collect_audit_logs_schedule" in names or names
    assert DATA_TYPES["audit_logs"].name == "audit_logs"


def test_a_lost_sqlite_catalog_is_rebuilt_from_the_metadata_files(lake, monkeypatch, capsys):
    lake.env |= {"WIZ_OCSF": "true"}
    keys = lake.keys(hours=HOURS)
    assert lake.run(keys[0], keys[-1]).success
    tables = tables_of(lake)
    before = {name: tables.load(name).scan().to_arrow().num_rows for name in tables.datasets()}
    ids = scan_ids(tables, "audit_logs")
    snapshot = tables.load("audit_logs").current_snapshot().snapshot_id
    (lake.root / "_iceberg" / "catalog.db").unlink()
    for name, value in lake.env.items():
        monkeypatch.setenv(name, value)
    assert main(["iceberg", "register"]) == 0
    out = capsys.readouterr().out
    assert "wiz.audit_logs: registered from" in out and "wiz.ocsf_authentication: registered from" in out
    tables = tables_of(lake)
    assert {name: tables.load(name).scan().to_arrow().num_rows for name in tables.datasets()} == before
    assert tables.load("audit_logs").current_snapshot().snapshot_id == snapshot
    # Again: every table is there already, and the next run commits on top of the rebuilt catalog.
    assert main(["iceberg", "register"]) == 0
    assert "wiz.audit_logs: in the catalog" in capsys.readouterr().out
    assert lake.run(keys[1]).success
    assert scan_ids(tables, "audit_logs") == ids


def test_an_s3_output_with_moto_s_glue_catalog(s3_pipeline: S3Pipeline, s3_server, monkeypatch):
    extra = {
        "WIZ_ICEBERG": "true",
        "WIZ_ICEBERG_CATALOG_TYPE": "glue",
        "WIZ_ICEBERG_CATALOG_GLUE__ENDPOINT": s3_server.endpoint,
        "WIZ_ICEBERG_CATALOG_GLUE__REGION": s3_server.region,
        "WIZ_ICEBERG_NAMESPACE": f"wiz_{uuid.uuid4().hex[:8]}",
    }
    s3_pipeline.env |= extra
    for name, value in extra.items():
        monkeypatch.setenv(name, value)
    keys = s3_pipeline.keys(hours=2)
    assert s3_pipeline.run(keys[0], keys[-1]).success
    assert s3_pipeline.run(keys[1]).success
    tables = Tables(
        catalog_properties(os.environ, s3_pipeline.env["WIZ_OUTPUT_URI"]), extra["WIZ_ICEBERG_NAMESPACE"]
    )
    table = tables.load("audit_logs")
    assert table.location() == f"s3://{s3_pipeline.bucket}/wiz/audit_logs"
    ids = sorted(table.scan(selected_fields=("id",)).to_arrow()["id"].to_pylist())
    assert len(ids) == len(set(ids)) > 0
    # The Glue database and table, as Athena would find them.
    import boto3

    glue = boto3.client(
        "glue",
        endpoint_url=s3_server.endpoint,
        region_name=s3_server.region,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key=s3_server.secret_key,
    )
    found = glue.get_table(DatabaseName=extra["WIZ_ICEBERG_NAMESPACE"], Name="audit_logs")["Table"]
    assert found["Parameters"]["table_type"].upper() == "ICEBERG"
    assert found["Parameters"]["metadata_location"] == table.metadata_location


KILLED_BETWEEN_FILE_AND_COMMIT = """
import json, os, signal, sys
import dagster as dg
from wiz_pipeline.landing.iceberg import PendingCommits
from wiz_pipeline.orchestration.definitions import build_definitions
from wiz_pipeline.orchestration.resources import WizResource
from wiz_pipeline.settings import load_settings

args = json.loads(sys.argv[1])
# The process dies the moment the run's files are in place and their commit would begin.
PendingCommits.flush = lambda self: os.kill(os.getpid(), signal.SIGKILL)
env = args["env"]
wiz = WizResource.from_settings(load_settings(env), **args["wiz"])
job = build_definitions(env, resources={"wiz": wiz}).resolve_job_def("collect_audit_logs")
job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), partition_key=args["key"])
"""


def test_a_run_killed_between_the_file_and_the_commit_leaves_the_table_unchanged(lake):
    import subprocess
    import sys

    keys = lake.keys(hours=HOURS)
    assert lake.run(keys[0], keys[2]).success
    tables = tables_of(lake)
    snapshot = tables.load("audit_logs").current_snapshot().snapshot_id
    held = tables.window_files("audit_logs")
    folder = lake.root / "audit_logs" / f"date={window_start(keys[1]):%Y-%m-%d}"
    before = set(folder.glob("*.parquet"))
    wiz = {
        "api_url": lake.sim.graphql_url,
        "client_id": lake.sim.client_id,
        "client_secret": lake.sim.client_secret,
        "token_url": lake.sim.token_url,
    }
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            KILLED_BETWEEN_FILE_AND_COMMIT,
            json.dumps({"env": lake.env, "wiz": wiz, "key": keys[1]}),
        ],
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == -9, done.stderr.decode()[-2000:]
    orphans = set(folder.glob("*.parquet")) - before
    assert len(orphans) == 1  # the new file, in place under its own name
    table = tables.load("audit_logs")
    assert table.current_snapshot().snapshot_id == snapshot
    assert tables.window_files("audit_logs") == held
    manifest = json.loads((folder / f"_audit_logs_{window_start(keys[1]):%Y%m%dT%H%M%SZ}.json").read_text())
    assert Path(manifest["file"]).name in held[window_start(keys[1])]  # still the committed file's
    maintenance(lake, retention_days=0)
    assert not next(iter(orphans)).exists()
    assert scan_ids(tables, "audit_logs") == audit_ids_in(
        lake.sim, T0, window_start(keys[2]) + timedelta(minutes=30)
    )


def test_a_window_rewritten_empty_leaves_the_table_with_none_of_its_rows(tmp_path):
    root = tmp_path / "out"
    folder = root / "audit_logs" / "date=2025-09-12"
    folder.mkdir(parents=True)
    schema = pa.schema([("id", pa.string()), ("window_start", pa.timestamp("us", tz="UTC"))])
    tables = Tables(catalog_properties({}, str(root)))
    for start, rows in ((T0, 3), (T0 + timedelta(minutes=30), 2)):
        path = folder / f"w-{start:%H%M}-{uuid.uuid4().hex[:12]}.parquet"
        pq.write_table(
            pa.table(
                {"id": [f"{start:%H%M}-{i}" for i in range(rows)], "window_start": [start] * rows},
                schema=schema,
            ),
            path,
        )
        tables.replace_window("audit_logs", str(root / "audit_logs"), start, [str(path)], schema)
    empty = folder / f"w-empty-{uuid.uuid4().hex[:12]}.parquet"
    pq.write_table(pa.table({"id": [], "window_start": []}, schema=schema), empty)
    committed = tables.replace_window("audit_logs", str(root / "audit_logs"), T0, [str(empty)], schema)
    assert (committed.removed, committed.added) == (1, 0)
    assert scan_ids(tables, "audit_logs") == ["2130-0", "2130-1"]
    # Nothing to change: no snapshot, the current one named.
    again = tables.replace_window("audit_logs", str(root / "audit_logs"), T0, [str(empty)], schema)
    assert again.snapshot_id == committed.snapshot_id and (again.removed, again.added) == (0, 0)


def test_a_catalog_that_cant_be_opened_is_named_without_its_password(tmp_path):
    uri = "postgresql+psycopg2://iceberg:hunter2-secret@127.0.0.1:1/iceberg"
    props = catalog_properties({"WIZ_ICEBERG_CATALOG_URI": uri}, str(tmp_path))
    assert props["type"] == "sql"  # not guessed by pyiceberg from the URI
    with pytest.raises(IcebergError) as caught:
        Tables(props).catalog  # noqa: B018 - opening it is the test
    assert "hunter2-secret" not in str(caught.value) and "WIZ_ICEBERG_CATALOG_" in str(caught.value)
    odd = catalog_properties(
        {"WIZ_ICEBERG_CATALOG_URI": "postgres://iceberg:hunter2-secret@db/x"}, str(tmp_path)
    )
    with pytest.raises(IcebergError) as caught:
        Tables(odd).catalog  # noqa: B018
    assert "hunter2-secret" not in str(caught.value)


def test_register_skips_a_metadata_file_left_by_a_lost_commit(lake, monkeypatch, capsys):
    keys = lake.keys(hours=HOURS)
    assert lake.run(keys[0], keys[-1]).success
    tables = tables_of(lake)
    good = tables.load("audit_logs").metadata_location
    metadata = lake.root / "audit_logs" / "_iceberg_metadata"
    # A commit that lost its race: the next version's metadata file, its manifest list cleaned up.
    newest = max(metadata.glob("*.metadata.json"))
    body = json.loads(newest.read_text())
    for snapshot in body["snapshots"]:
        if snapshot["snapshot-id"] == body["current-snapshot-id"]:
            snapshot["manifest-list"] = str(metadata / "snap-gone.avro")
    (metadata / f"{int(newest.name[:5]) + 1:05d}-{uuid.uuid4()}.metadata.json").write_text(json.dumps(body))
    (lake.root / "_iceberg" / "catalog.db").unlink()
    for name, value in lake.env.items():
        monkeypatch.setenv(name, value)
    assert main(["iceberg", "register"]) == 0
    assert f"wiz.audit_logs: registered from {good.removeprefix('file://')}" in capsys.readouterr().out


def test_the_demo_with_iceberg_reports_each_table_and_answers_from_the_tables(capsys, tmp_path, monkeypatch):
    # A catalog of the environment's is never the demo's.
    monkeypatch.setenv("WIZ_ICEBERG_CATALOG_URI", "postgresql+psycopg2://someone:pw@db.example:5432/prod")
    args = ["demo", "--dir", str(tmp_path / "demo"), "--days", "0.25", "--audit-entries", "300", "--iceberg"]
    assert main([*args, "--issues", "40", "--detections", "30", "--rate-limit", "50"]) == 0
    out = capsys.readouterr().out
    assert "Iceberg tables in namespace wiz (sql catalog sqlite:///" in out
    data = tmp_path / "demo" / "data"
    tables = Tables(catalog_properties({}, str(data)))
    audit = tables.load("audit_logs")
    report = out.split("Iceberg tables in namespace", 1)[1]
    line = next(line for line in report.splitlines() if line.strip().startswith("audit_logs "))
    assert f"snapshot {audit.current_snapshot().snapshot_id}" in line
    assert "issues_current" in out and "ocsf_authentication" in out
    assert "Top audit actions:" in out
