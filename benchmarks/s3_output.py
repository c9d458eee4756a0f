"""The cost of an s3:// WIZ_OUTPUT_URI next to a local directory: one ranged run through Dagster.

    .venv/bin/python benchmarks/s3_output.py [--audit-entries 20000] [--windows 48]

The simulator and moto's S3 server (a dev dependency) run in this process on 127.0.0.1; the same
ranged run is written once to a temporary directory and once to a bucket, and the wall time of each
and the requests S3 received are printed. moto is not S3: the figure shows the pipeline's own overhead
per window (three requests per file), not a real network's latency.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta

import boto3
import dagster as dg
import httpx
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from moto.server import ThreadedMotoServer

from wiz_pipeline.orchestration.definitions import build_definitions
from wiz_pipeline.orchestration.resources import WizResource
from wiz_pipeline.settings import load_settings
from wiz_pipeline.simulator import WizSimulator, generate_tenant

T0 = datetime(2025, 9, 12, 21, 0, tzinfo=UTC)


def s3_server() -> tuple[ThreadedMotoServer, str, dict[str, str]]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    iam.create_user(UserName="bench")
    key = iam.create_access_key(UserName="bench")["AccessKey"]
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam.put_user_policy(UserName="bench", PolicyName="all", PolicyDocument=json.dumps(policy))
    httpx.post(f"{endpoint}/moto-api/reset-auth", content=b"0", headers={"Content-Type": "text/plain"})
    env = {
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    return server, endpoint, env


def run(sim: WizSimulator, output: str, windows: int) -> tuple[float, int]:
    env = {
        "WIZ_OUTPUT_URI": output,
        "AUDIT_SINCE_TIME": "2025-09-12T21:00:00Z",
        "WIZ_COLLECT_ISSUES": "false",
        "WIZ_MAX_WINDOWS_PER_RUN": str(windows),
    }
    wiz = WizResource.from_settings(
        load_settings(env),
        api_url=sim.graphql_url,
        client_id=sim.client_id,
        client_secret=sim.client_secret,
        token_url=sim.token_url,
        max_requests_per_second=1000,
    )
    defs = build_definitions(env, resources={"wiz": wiz})
    keys = [f"{T0 + timedelta(minutes=30 * i):%Y-%m-%d-%H:%M}" for i in range(windows)]
    tags = {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]}
    with dg.instance_for_test() as instance:
        began = time.perf_counter()
        result = defs.resolve_job_def("collect_audit_logs").execute_in_process(
            instance=instance,
            tags=tags,
            run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
        )
        wall = time.perf_counter() - began
    rows = sum(
        e.materialization.metadata["dagster/row_count"].value
        for e in result.get_asset_materialization_events()
    )
    return wall, rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--audit-entries", type=int, default=20_000)
    parser.add_argument("--windows", type=int, default=48)
    args = parser.parse_args()
    end = T0 + timedelta(minutes=30 * args.windows)
    tenant = generate_tenant(T0, end, audit_entries=args.audit_entries, issues=10, seed=3)
    server, endpoint, aws = s3_server()
    os.environ.update(aws)
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="wiz-bench")
    try:
        with WizSimulator(tenant) as sim, tempfile.TemporaryDirectory() as tmp:
            sim.set_now(end + timedelta(days=1))
            print(f"{args.audit_entries} audit entries in {args.windows} windows, one ranged run:")
            for label, output in (
                ("local directory", f"{tmp}/data"),
                ("s3 (moto, loopback)", "s3://wiz-bench/wiz"),
            ):
                wall, rows = run(sim, output, args.windows)
                print(f"  {label:<20} {wall:6.2f} s  {rows} rows")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
