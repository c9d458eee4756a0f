"""WIZ_OUTPUT_URI=s3://…: the same datasets in a bucket of a real S3 API (moto's server on 127.0.0.1),
written through Dagster, with the same guarantees as on disk."""

from __future__ import annotations

import json
import socket
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from wiz_pipeline.landing.outputs import stale_uploads
from wiz_pipeline.simulator import Fault
from wiz_pipeline_tests.conftest import T0, audit_entry
from wiz_pipeline_tests.pipeline.conftest import s3_environment
from wiz_pipeline_tests.pipeline.test_checkpoints import checkpoints_output

SEED_TIME = T0 + timedelta(seconds=9)


def materialized(pipeline) -> set[str]:
    return pipeline.instance.get_materialized_partitions(pipeline.collection().asset_key)


def expected_audit_ids(pipeline) -> Counter:
    tenant = pipeline.sim.tenant
    return Counter(
        n["id"] for t, n in zip(tenant.audit_times, tenant.audit_nodes, strict=True) if t >= SEED_TIME
    )


def test_a_ranged_run_writes_one_object_per_window_that_reads_back_as_the_simulators_records(
    s3_pipeline,
):
    keys = s3_pipeline.keys()
    result = s3_pipeline.run(keys[0], keys[-1])
    assert result.success
    starts = [datetime.strptime(k, "%Y-%m-%d-%H:%M") for k in keys]
    names = [f"wiz/audit_logs/date={s:%Y-%m-%d}/audit_logs_{s:%Y%m%dT%H%M%S}Z" for s in starts]
    assert s3_pipeline.keys_in_bucket() == sorted(
        [f"{n}.parquet" for n in names]
        + [n.replace("/audit_logs_", "/_audit_logs_") + ".json" for n in names]
    )
    assert not s3_pipeline.uploads()
    # Read back with pyarrow's own S3 filesystem, hive-partitioned: exactly the simulator's records.
    table = s3_pipeline.table()
    assert Counter(table["id"].to_pylist()) == expected_audit_ids(s3_pipeline)
    assert set(table["date"].to_pylist()) == {"2025-09-12", "2025-09-13"}

    event = next(e for e in result.get_asset_materialization_events() if e.partition == keys[1])
    metadata = {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}
    folder, name = names[1].rsplit("/", 1)
    uri = f"s3://{s3_pipeline.bucket}/{folder}/{name}.parquet"
    assert metadata["dagster/uri"] == metadata["path"] == uri
    assert metadata["manifest"] == f"s3://{s3_pipeline.bucket}/{folder}/_{name}.json"
    manifest = json.loads(s3_pipeline.read(f"{folder}/_{name}.json"))
    assert manifest["file"] == uri and manifest["run_id"] == result.run_id
    assert manifest["rows"] == metadata["dagster/row_count"] > 0
    assert manifest["bytes"] == len(s3_pipeline.read(f"{folder}/{name}.parquet"))
    # The AWS secret key is in the run's environment, and nowhere in what the run recorded.
    logs = s3_pipeline.instance.get_records_for_run(result.run_id).records
    text = "\n".join(str(r.event_log_entry) for r in logs)
    assert s3_pipeline.s3.secret_key not in text and s3_pipeline.s3.access_key not in text


def test_a_rerun_leaves_exactly_one_object_per_window(s3_pipeline):
    keys = s3_pipeline.keys()
    assert s3_pipeline.run(keys[2]).success
    first = s3_pipeline.table().num_rows
    s3_pipeline.sim.tenant.add_audit_entry(audit_entry("2025-09-12T22:10:00Z", "arrived-late"))
    assert s3_pipeline.run(keys[2]).success
    # The replaced object's ids were read back from the bucket and compared with the new ones.
    manifest_key = "wiz/audit_logs/date=2025-09-12/_audit_logs_20250912T220000Z.json"
    replaced = json.loads(s3_pipeline.read(manifest_key))
    assert (replaced["reads"], replaced["late_records"], replaced["gone_records"]) == (2, 1, 0)
    assert s3_pipeline.run(keys[0], keys[3]).success  # a range over it as well
    again = json.loads(s3_pipeline.read(manifest_key))
    assert (again["reads"], again["late_records"], again["gone_records"]) == (3, 0, 0)
    first_file = json.loads(s3_pipeline.read(manifest_key.replace("T220000Z", "T210000Z")))
    assert (first_file["reads"], first_file["late_records"]) == (1, None)
    assert len(s3_pipeline.files()) == 4
    assert len(s3_pipeline.keys_in_bucket()) == 8  # and one manifest each
    assert not s3_pipeline.uploads()
    ids = s3_pipeline.table()["id"].to_pylist()
    assert max(Counter(ids).values()) == 1 and "arrived-late" in ids
    window = [k for k in s3_pipeline.files() if "20250912T220000Z" in k]
    assert len(window) == 1
    import pyarrow as pa
    import pyarrow.parquet as pq

    assert pq.read_table(pa.BufferReader(s3_pipeline.read(window[0]))).num_rows == first + 1


def test_a_window_failing_mid_pagination_leaves_the_old_object_byte_identical(s3_pipeline, sim):
    keys = s3_pipeline.keys()
    s3_pipeline.overrides["page_size"] = 50
    assert s3_pipeline.run(keys[4]).success
    [old] = s3_pipeline.files()
    before = s3_pipeline.read(old)
    manifest = old.replace("audit_logs_", "_audit_logs_").replace(".parquet", ".json")
    manifest_before = s3_pipeline.read(manifest)
    sim.tenant.add_audit_entry(audit_entry("2025-09-12T23:10:00Z", "would-change-it"))
    sim.inject(Fault.http_status(503), times=6, skip=3)  # page 4 of the range never comes
    result = s3_pipeline.run(keys[0], keys[-1])
    assert not result.success
    assert not result.get_asset_materialization_events()
    assert s3_pipeline.files() == [old]
    assert s3_pipeline.read(old) == before and s3_pipeline.read(manifest) == manifest_before
    assert not s3_pipeline.uploads()  # every window's upload was aborted
    assert materialized(s3_pipeline) == {keys[4]}


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        (
            "missing bucket",
            "WIZ_OUTPUT_URI=s3://wiz-no-such-bucket/wiz: bucket 'wiz-no-such-bucket' does not exist",
        ),
        ("unknown access key", "check AWS_ACCESS_KEY_ID"),
        ("wrong secret key", "check AWS_SECRET_ACCESS_KEY"),
        ("unreachable endpoint", "cannot reach the S3 endpoint http://127.0.0.1:"),
        ("plain-http endpoint", "AWS_ENDPOINT_URL='http://minio.example.com:9000' uses plain http"),
    ],
)
def test_a_bad_s3_setting_fails_the_run_before_any_wiz_request_naming_the_variable(
    s3_pipeline, monkeypatch, tmp_path, fault, says
):
    secret = s3_pipeline.s3.secret_key
    if fault == "missing bucket":
        s3_pipeline.env["WIZ_OUTPUT_URI"] = "s3://wiz-no-such-bucket/wiz"
    elif fault == "unknown access key":
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    elif fault == "wrong secret key":
        secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    elif fault == "unreachable endpoint":
        s3_environment(
            monkeypatch, tmp_path, s3_pipeline.s3, AWS_ENDPOINT_URL=f"http://127.0.0.1:{_closed_port()}"
        )
    else:  # refused before any request: the data would cross the network in clear
        monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio.example.com:9000")
    result = s3_pipeline.run(s3_pipeline.keys()[0], s3_pipeline.keys()[3])
    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error.cause  # the asset's own
    assert error.cls_name == "OutputError"
    assert says in error.message and len(error.message.strip().splitlines()) == 1, error.message
    assert error.cause is None and error.context is None  # no botocore chain repeating the request
    assert not s3_pipeline.sim.graphql_records() and s3_pipeline.sim.counters.token_requests == 0
    assert not result.get_asset_materialization_events() and not materialized(s3_pipeline)
    assert not s3_pipeline.keys_in_bucket() and not s3_pipeline.uploads()
    logs = s3_pipeline.instance.get_records_for_run(result.run_id).records
    assert secret not in "\n".join(str(r.event_log_entry) for r in logs)


def test_the_checkpoint_command_works_with_an_s3_output(s3_pipeline, monkeypatch, capsys):
    keys = s3_pipeline.keys()
    assert s3_pipeline.run(keys[0], keys[3]).success
    out = checkpoints_output(s3_pipeline, monkeypatch, capsys)
    assert "AUDIT_SINCE_TIME=2025-09-12T23:00:00Z  # 4 of " in out


def test_only_uploads_older_than_any_live_run_count_as_left_by_dead_runs():
    # moto reports every upload as started in 2010, so a live upload can't be shown surviving a
    # sweep there; the rule itself is this.
    now = datetime(2026, 1, 1, tzinfo=UTC)
    uploads = [
        {"Key": "dead", "UploadId": "1", "Initiated": now - timedelta(hours=7)},
        {"Key": "live", "UploadId": "2", "Initiated": now - timedelta(hours=3)},
    ]
    assert [u["Key"] for u in stale_uploads(uploads, now - timedelta(hours=6))] == ["dead"]


# The collection the killed process runs: the pipeline's own definitions and job, in a process of its
# own (the settings and AWS_* come from its environment, as in a deployment).
KILLED_RUN = """
import sys
import dagster as dg
from wiz_pipeline.orchestration.definitions import build_definitions

job = build_definitions().resolve_job_def("collect_audit_logs")
job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), partition_key=sys.argv[1])
"""


BIG = 40


def test_a_process_killed_mid_window_leaves_the_old_object_and_the_next_run_cleans_up(s3_pipeline, sim):
    import os
    import secrets
    import signal
    import subprocess
    import sys
    import time

    keys = s3_pipeline.keys()
    window = keys[4]  # 23:00-23:30
    assert s3_pipeline.run(window).success
    [old] = s3_pipeline.files()
    before = s3_pipeline.read(old)
    # Enough new data in the window (about 40 MB as Arrow) that row groups are written and multipart
    # parts sent while pages still arrive, each page a little slow, so the kill lands mid-window.
    for i in range(BIG):
        entry = audit_entry(f"2025-09-12T23:{i // 2 + 1:02d}:{i % 2:02d}.5Z", f"big-{i}")
        entry["actionParameters"] = {"blob": secrets.token_hex(250_000)}
        sim.tenant.add_audit_entry(entry)
    sim.inject(Fault.slow(0.3), times=1000)
    env = {
        **os.environ,
        **s3_pipeline.env,
        "WIZ_API_URL": sim.graphql_url,
        "WIZ_TOKEN_URL": sim.token_url,
        "WIZ_CLIENT_ID": sim.client_id,
        "WIZ_CLIENT_SECRET": sim.client_secret,
        "WIZ_PAGE_SIZE": "5",
        "WIZ_MAX_REQUESTS_PER_SECOND": "1000",
    }
    process = subprocess.Popen([sys.executable, "-c", KILLED_RUN, window], env=env)
    s3 = s3_pipeline.s3.client()
    try:
        deadline = time.monotonic() + 90
        parts: list = []
        while not parts and time.monotonic() < deadline and process.poll() is None:
            for upload in s3_pipeline.uploads():
                if upload["Key"].endswith(".parquet"):
                    listing = s3.list_parts(
                        Bucket=s3_pipeline.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    parts = listing.get("Parts", [])
            time.sleep(0.05)
        assert parts, "the run sent no part before it ended"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    sim.faults.clear()
    served = len(sim.graphql_records())

    # Killed after sending parts of the window's new file: readers still see the old one, whole.
    assert s3_pipeline.files() == [old] and s3_pipeline.read(old) == before
    [leftover] = s3_pipeline.uploads()
    assert leftover["Key"] == old

    # The next run aborts the dead run's upload (moto dates every upload 2010, so it is stale at
    # once; on S3 after STALE_AFTER_SECONDS) and writes the window whole.
    assert s3_pipeline.run(window).success
    assert len(sim.graphql_records()) > served
    assert not s3_pipeline.uploads()
    assert s3_pipeline.files() == [old]
    ids = s3_pipeline.table()["id"].to_pylist()
    assert len(ids) == len(set(ids)) and {f"big-{i}" for i in range(BIG)} <= set(ids)


def test_a_run_aborts_only_the_leftover_uploads_of_its_own_dataset(s3_pipeline):
    s3 = s3_pipeline.s3.client()
    theirs = ["wiz/issues/date=2025-09-12/issues_20250912T210000Z.parquet", "elsewhere/audit_logs/x.parquet"]
    ours = "wiz/audit_logs/date=2025-08-01/audit_logs_20250801T000000Z.parquet"  # a window not in the run
    for key in [*theirs, ours]:
        s3.create_multipart_upload(Bucket=s3_pipeline.bucket, Key=key)
    assert s3_pipeline.run(s3_pipeline.keys()[0]).success
    # moto dates every upload 2010, so each counts as a dead run's; only the audit_logs ones are ours.
    assert sorted(u["Key"] for u in s3_pipeline.uploads()) == sorted(theirs)


def test_open_files_wait_on_disk_not_in_memory_and_arrive_whole(s3_pipeline):
    import tracemalloc

    from wiz_pipeline.landing.outputs import open_output

    output = open_output(s3_pipeline.env["WIZ_OUTPUT_URI"])
    chunk = bytes(range(256)) * 4096  # 1 MiB
    tracemalloc.start()
    try:
        # 24 files open at once, 3 MiB each: less than a part, so nothing is sent yet.
        uploads = [output.open(f"spool/{i}.bin") for i in range(24)]
        for upload in uploads:
            for _ in range(3):
                upload.file.write(chunk)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 8 * 2**20  # not 72 MiB
    # One of them grows past a part, which is sent; aborting it leaves nothing, as for the others.
    for _ in range(3):
        uploads[1].file.write(chunk)
    assert [u["Key"] for u in s3_pipeline.uploads()] == ["wiz/spool/1.bin"]
    for upload in uploads[1:]:
        upload.abort()
    assert not s3_pipeline.uploads()
    # One more file of 12 MiB: two parts and a tail, completed in one piece.
    for _ in range(9):
        uploads[0].file.write(chunk)
    assert uploads[0].finish() == 12 * 2**20
    output.publish([uploads[0]])
    assert s3_pipeline.read("wiz/spool/0.bin") == chunk * 12
    assert not s3_pipeline.uploads() and s3_pipeline.keys_in_bucket() == ["wiz/spool/0.bin"]
    parts = s3_pipeline.s3.client().head_object(
        Bucket=s3_pipeline.bucket, Key="wiz/spool/0.bin", PartNumber=1
    )
    assert parts["ContentLength"] == 5 * 2**20 and parts["PartsCount"] == 3


def test_records_served_out_of_order_land_once_in_their_window_object(s3_pipeline, sim):
    # A window whose file was closed early and then gets a record is read back from its upload and
    # written again, on S3 as on disk (see test_collection).
    keys = s3_pipeline.keys()
    s3_pipeline.overrides["page_size"] = 20
    sim.audit_stragglers = (7, 120)
    result = s3_pipeline.run(keys[0], keys[-1])
    assert result.success
    assert all(e.passed for e in result.get_asset_check_evaluations())
    assert Counter(s3_pipeline.table()["id"].to_pylist()) == expected_audit_ids(s3_pipeline)
    assert not s3_pipeline.uploads()
    assert len(s3_pipeline.keys_in_bucket()) == 2 * len(keys)


def test_an_upload_reads_back_whole_after_parts_were_sent(s3_pipeline):
    from wiz_pipeline.landing.outputs import open_output

    output = open_output(s3_pipeline.env["WIZ_OUTPUT_URI"])
    chunk = bytes(range(256)) * 4096  # 1 MiB
    upload = output.open("spool/back.bin")
    for _ in range(7):
        upload.file.write(chunk)
    assert [u["Key"] for u in s3_pipeline.uploads()] == ["wiz/spool/back.bin"]  # a part went out
    with upload.read_back() as data:
        assert data.read() == chunk * 7
    upload.abort()
    assert not s3_pipeline.uploads()
