"""SHA-256 of each window's file in its manifest and metadata, and `wiz-pipeline ledger`: every closed
window of a range, proved written by both the Dagster instance and the output, or named as a gap."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq

from wiz_pipeline.cli.commands import main
from wiz_pipeline.landing.files import manifest_key, window_key
from wiz_pipeline.orchestration.partitions import KEY_FORMAT
from wiz_pipeline.readers.ledger import window_names
from wiz_pipeline.simulator import Fault

TO = "2025-09-13T03:00:00Z"  # the end of the simulated tenant's six hours: twelve 30-minute windows


def metadata_by_partition(pipeline, data_type: str = "audit_logs") -> dict[str, dict]:
    records = pipeline.instance.fetch_materializations(pipeline.collection(data_type).asset_key, limit=1000)
    found: dict[str, dict] = {}
    for record in reversed(records.records):  # newest last, so that the latest wins
        m = record.asset_materialization
        found[m.partition] = {k: getattr(v, "value", v) for k, v in m.metadata.items()} | {
            "run_id": record.run_id
        }
    return found


def ledger_output(pipeline, monkeypatch, capsys, *args: str) -> tuple[int, str]:
    for name, value in pipeline.env.items():
        monkeypatch.setenv(name, value)
    code = main(["ledger", *args])
    captured = capsys.readouterr()
    pipeline.stderr = captured.err
    return code, captured.out


def rows_of(out: str) -> dict[str, list[str]]:
    """The window lines of a text ledger, by window key, split into columns."""
    lines = [line.split() for line in out.splitlines() if line.startswith(("audit_logs ", "issues "))]
    return {f"{cols[0]}/{cols[1]}": cols for cols in lines if len(cols) > 2 and cols[2] in ("yes", "NO")}


# -- SHA-256 ------------------------------------------------------------------------------------------


def test_each_windows_manifest_and_metadata_carry_the_sha256_of_the_file_as_stored(pipeline):
    keys = pipeline.keys()
    assert pipeline.run(keys[0], keys[3]).success
    assert pipeline.run(keys[1]).success  # a rerun: the new file's digest replaces the old one's
    metadata = metadata_by_partition(pipeline)
    files = pipeline.files()
    assert len(files) == 4
    for path in files:
        manifest = json.loads(path.with_name(f"_{path.stem}.json").read_text())
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert manifest["sha256"] == digest
        assert metadata[manifest["partition_key"]]["sha256"] == digest


def test_an_s3_windows_sha256_matches_the_object_as_stored(s3_pipeline):
    keys = s3_pipeline.keys()
    assert s3_pipeline.run(keys[0], keys[2]).success
    metadata = metadata_by_partition(s3_pipeline)
    files = s3_pipeline.files()
    assert len(files) == 3
    for key in files:
        folder, name = key.rsplit("/", 1)
        manifest = json.loads(s3_pipeline.read(f"{folder}/_{name.removesuffix('.parquet')}.json"))
        digest = hashlib.sha256(s3_pipeline.read(key)).hexdigest()
        assert manifest["sha256"] == digest == metadata[manifest["partition_key"]]["sha256"]


# -- the ledger ---------------------------------------------------------------------------------------


def test_the_ledgers_fast_names_are_the_storages_names():
    start = datetime(2025, 12, 31, 22, 0, tzinfo=UTC)
    for interval in (60, 1800, 86400):
        windows = [start + timedelta(seconds=i * interval) for i in range(200)]
        expected = [
            (w.strftime(KEY_FORMAT), window_key(name, w), manifest_key(window_key(name, w)))
            for name in ("audit_logs",)
            for w in windows
        ]
        assert window_names("audit_logs", windows) == expected


def test_after_real_runs_the_ledger_exits_0_and_prints_each_windows_rows_sha256_and_run(
    pipeline, monkeypatch, capsys
):
    keys = pipeline.keys()
    first = pipeline.run(keys[0], keys[5])
    second = pipeline.run(keys[6], keys[-1])
    assert first.success and second.success
    assert pipeline.run(keys[0], keys[-1], data_type="issues").success
    code, out = ledger_output(pipeline, monkeypatch, capsys, "--to", TO)
    assert code == 0, out
    assert "audit_logs: no gap: all 12 closed windows from 2025-09-12-21:00 to 2025-09-13-02:30" in out
    assert "issues: no gap: all 12 closed windows" in out
    lines = rows_of(out)
    assert len(lines) == 24
    for path in pipeline.files():
        manifest = json.loads(path.with_name(f"_{path.stem}.json").read_text())
        cols = lines[f"audit_logs/{manifest['partition_key']}"]
        assert cols[2] == "yes"
        assert int(cols[3]) == manifest["rows"] == pq.read_metadata(path).num_rows
        assert cols[4] == str(manifest["queries"]) == "1"  # queries, from the split's manifest key
        assert cols[7] == hashlib.sha256(path.read_bytes()).hexdigest()
        expected_run = first.run_id if manifest["partition_key"] <= keys[5] else second.run_id
        assert cols[8] == expected_run
    assert (
        sum(int(c[3]) for k, c in lines.items() if k.startswith("audit_logs/")) == pipeline.table().num_rows
    )


def test_a_failed_window_and_a_deleted_file_are_gaps_naming_the_side_missing(
    pipeline, sim, monkeypatch, capsys
):
    keys = pipeline.keys()
    assert pipeline.run(keys[0], keys[3]).success
    sim.inject(Fault.http_status(500), times=6)
    assert not pipeline.run(keys[4]).success  # never written: both sides miss it
    assert pipeline.run(keys[5], keys[-1]).success
    sim.inject(Fault.http_status(500), times=6)
    assert not pipeline.run(keys[2]).success  # its rerun failed: the old file is there, the instance says no
    deleted = next(p for p in pipeline.files() if "20250913T000000Z" in p.name)
    deleted.unlink()  # keys[6]: the instance has it, the output not
    code, out = ledger_output(pipeline, monkeypatch, capsys, "--to", TO, "--type", "audit_logs")
    assert code == 1, out
    lines = rows_of(out)
    assert lines["audit_logs/2025-09-12-22:00"][2] == "NO"
    assert "instance: latest run failed" in " ".join(lines["audit_logs/2025-09-12-22:00"])
    assert "output" not in " ".join(lines["audit_logs/2025-09-12-22:00"])  # its file is still there
    missing_both = " ".join(lines["audit_logs/2025-09-12-23:00"])
    assert (
        "instance: latest run failed" in missing_both
        and "output: no data file and no manifest" in missing_both
    )
    deleted_line = " ".join(lines["audit_logs/2025-09-13-00:00"])
    assert "output: no data file" in deleted_line and "instance" not in deleted_line
    assert sum(cols[2] == "NO" for cols in lines.values()) == 3
    summary = out.strip().splitlines()[-1]
    assert summary.startswith(
        "audit_logs: GAP: 3 of 12 closed windows from 2025-09-12-21:00 to 2025-09-13-02:30"
    )
    assert "2025-09-12-22:00" in summary and "2025-09-13-00:00" in summary
    # --gaps-only prints those three windows and the same verdict.
    code, gaps = ledger_output(
        pipeline, monkeypatch, capsys, "--to", TO, "--type", "audit_logs", "--gaps-only"
    )
    assert code == 1
    assert sorted(rows_of(gaps)) == [
        "audit_logs/2025-09-12-22:00",
        "audit_logs/2025-09-12-23:00",
        "audit_logs/2025-09-13-00:00",
    ]
    assert gaps.strip().splitlines()[-1] == summary


def test_from_and_to_bound_the_range(pipeline, sim, monkeypatch, capsys):
    keys = pipeline.keys()
    assert pipeline.run(keys[2], keys[5]).success
    code, out = ledger_output(
        pipeline,
        monkeypatch,
        capsys,
        "--type",
        "audit_logs",
        "--from",
        "2025-09-12T22:10:00Z",
        "--to",
        "2025-09-13T00:00:00Z",
    )
    assert code == 0, out
    assert sorted(rows_of(out)) == [f"audit_logs/{k}" for k in keys[2:6]]
    # Widened by one window on each side, the range has two gaps.
    code, out = ledger_output(
        pipeline,
        monkeypatch,
        capsys,
        "--type",
        "audit_logs",
        "--from",
        "2025-09-12T21:30:00Z",
        "--to",
        "2025-09-13T00:30:00Z",
        "--json",
    )
    assert code == 1
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["window"] for r in records[:-1]] == keys[1:7]
    assert [r["written"] for r in records[:-1]] == [False, True, True, True, True, False]
    assert records[-1]["gaps"] == [
        {
            "first": keys[1],
            "last": keys[1],
            "windows": 1,
            "missing": ["instance: not materialized", "output: no data file and no manifest"],
        },
        {
            "first": keys[6],
            "last": keys[6],
            "windows": 1,
            "missing": ["instance: not materialized", "output: no data file and no manifest"],
        },
    ]


def test_a_manifest_from_before_this_change_prints_unknown_fields(pipeline, monkeypatch, capsys):
    keys = pipeline.keys()
    assert pipeline.run(keys[0]).success
    path = pipeline.files()[0]
    manifest_file = path.with_name(f"_{path.stem}.json")
    manifest = json.loads(manifest_file.read_text())
    for name in ("sha256", "queries", "reads", "late_records"):
        manifest.pop(name, None)
    manifest_file.write_text(json.dumps(manifest))
    code, out = ledger_output(
        pipeline, monkeypatch, capsys, "--type", "audit_logs", "--to", "2025-09-12T21:30:00Z"
    )
    assert code == 0, out
    cols = rows_of(out)[f"audit_logs/{keys[0]}"]
    assert cols[2:] == ["yes", str(manifest["rows"]), "?", "?", "?", "?", manifest["run_id"]]


def test_usage_and_setting_errors_exit_2_with_one_line(pipeline, monkeypatch, capsys):
    for args in (
        ["--from", "yesterday"],
        ["--from", TO, "--to", "2025-09-12T22:00:00Z"],
        ["--to", "2020-01-01T00:00:00Z"],
    ):
        code, _ = ledger_output(pipeline, monkeypatch, capsys, *args)
        assert code == 2
        assert len(pipeline.stderr.strip().splitlines()) == 1, pipeline.stderr
    monkeypatch.setenv("WIZ_COLLECT_ISSUES", "false")
    pipeline.env["WIZ_COLLECT_ISSUES"] = "false"
    code, _ = ledger_output(pipeline, monkeypatch, capsys, "--type", "issues")
    assert code == 2
    assert "WIZ_COLLECT_ISSUES" in pipeline.stderr


def test_the_ledger_reads_an_s3_output(s3_pipeline, monkeypatch, capsys):
    keys = s3_pipeline.keys()
    assert s3_pipeline.run(keys[0], keys[-1]).success
    code, out = ledger_output(s3_pipeline, monkeypatch, capsys, "--type", "audit_logs", "--to", TO)
    assert code == 0, out
    lines = rows_of(out)
    for key in s3_pipeline.files():
        folder, name = key.rsplit("/", 1)
        manifest = json.loads(s3_pipeline.read(f"{folder}/_{name.removesuffix('.parquet')}.json"))
        cols = lines[f"audit_logs/{manifest['partition_key']}"]
        assert cols[7] == hashlib.sha256(s3_pipeline.read(key)).hexdigest()
        assert int(cols[3]) == manifest["rows"]
    s3_pipeline.s3.client().delete_object(Bucket=s3_pipeline.bucket, Key=s3_pipeline.files()[3])
    code, out = ledger_output(
        s3_pipeline, monkeypatch, capsys, "--type", "audit_logs", "--to", TO, "--gaps-only"
    )
    assert code == 1
    assert list(rows_of(out)) == [f"audit_logs/{keys[3]}"]
    assert "output: no data file" in out


def test_wiz_pipeline_ledger_as_a_command(sim, tmp_path, monkeypatch):
    from wiz_pipeline_tests.pipeline.conftest import SEED, Pipeline

    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(Path(__file__).resolve().parents[2] / "deploy" / "dagster.yaml", home / "dagster.yaml")
    env = {
        "WIZ_OUTPUT_URI": str(tmp_path / "data"),
        "AUDIT_SINCE_TIME": SEED,
        "WIZ_COLLECT_ISSUES": "false",
        "WIZ_POLL_INTERVAL_SECONDS": "1800",
        "WIZ_WINDOW_LAG_SECONDS": "300",
    }
    with dg.DagsterInstance.from_config(str(home)) as instance:
        pipeline = Pipeline(sim, env, instance, tmp_path / "data", {})
        keys = pipeline.keys()
        assert pipeline.run(keys[0], keys[-1]).success
    command = [sys.executable, "-m", "wiz_pipeline.cli", "ledger", "--to", TO]
    done = subprocess.run(
        command,
        env={**os.environ, **env, "DAGSTER_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("audit_logs: no gap: all 12 closed windows")
    (tmp_path / "data" / "audit_logs" / "date=2025-09-13").joinpath(
        "_audit_logs_20250913T010000Z.json"
    ).unlink()
    done = subprocess.run(
        [*command, "--gaps-only"],
        env={**os.environ, **env, "DAGSTER_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "2025-09-13-01:00" in done.stdout and "output: no manifest" in done.stdout


def test_a_data_file_replaced_behind_its_manifests_back_is_a_gap(pipeline, monkeypatch, capsys):
    keys = pipeline.keys()
    assert pipeline.run(keys[0]).success
    path = pipeline.files()[0]
    size = path.stat().st_size
    path.write_bytes(path.read_bytes() + b"tampered")
    code, out = ledger_output(
        pipeline, monkeypatch, capsys, "--type", "audit_logs", "--to", "2025-09-12T21:30:00Z"
    )
    assert code == 1
    assert f"output: data file has {size + 8} bytes, its manifest says {size}" in out
