"""A Dagster pipeline wired to the simulator on 127.0.0.1, with a throwaway instance and output."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pyarrow.dataset as ds
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from wiz_pipeline.orchestration.checkpoints import Collection, collections_for
from wiz_pipeline.orchestration.definitions import build_definitions
from wiz_pipeline.orchestration.resources import WizResource
from wiz_pipeline.settings import load_settings
from wiz_pipeline.simulator import WizSimulator

SEED = "2025-09-12T21:00:09Z"


@dataclass
class Pipeline:
    sim: WizSimulator
    env: dict[str, str]
    instance: dg.DagsterInstance
    root: Path
    overrides: dict[str, Any]

    @property
    def defs(self) -> dg.Definitions:
        # Built afresh each time, so a test can change ``env`` first.
        fields = {
            "api_url": self.sim.graphql_url,
            "client_id": self.sim.client_id,
            "client_secret": self.sim.client_secret,
            "token_url": self.sim.token_url,
            "max_requests_per_second": 1000,
            "request_timeout_seconds": 5,
            "backoff_base_seconds": 0.01,
            "backoff_max_seconds": 0.05,
            **self.overrides,  # may replace any of the above (a token URL on another host name)
        }
        wiz = WizResource.from_settings(load_settings(self.env), **fields)
        return build_definitions(self.env, resources={"wiz": wiz})

    def collection(self, data_type: str = "audit_logs") -> Collection:
        return next(c for c in collections_for(load_settings(self.env)) if c.data_type == data_type)

    def keys(self, data_type: str = "audit_logs", hours: float = 6) -> list[str]:
        """The windows of the tenant's history, oldest first."""
        collection = self.collection(data_type)
        end = datetime(2025, 9, 12, 21, tzinfo=UTC) + timedelta(hours=hours)
        return collection.partitions_def.get_partition_keys(current_time=end)

    def run(self, first: str, last: str | None = None, data_type: str = "audit_logs", **kwargs: Any):
        job = self.defs.resolve_job_def(f"collect_{data_type}")
        if last is None or last == first:
            return job.execute_in_process(
                instance=self.instance, partition_key=first, raise_on_error=False, **kwargs
            )
        tags = {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last}
        return job.execute_in_process(instance=self.instance, tags=tags, raise_on_error=False, **kwargs)

    def files(self, data_type: str = "audit_logs") -> list[Path]:
        return sorted((self.root / data_type).rglob("*.parquet"))

    def table(self, data_type: str = "audit_logs"):
        return ds.dataset(self.root / data_type, partitioning="hive").to_table()


@pytest.fixture
def pipeline(sim: WizSimulator, tmp_path: Path) -> Iterator[Pipeline]:
    env = {
        "WIZ_OUTPUT_URI": str(tmp_path / "data"),
        "AUDIT_SINCE_TIME": SEED,
        "ISSUES_SINCE_TIME": SEED,
        "WIZ_POLL_INTERVAL_SECONDS": "1800",
        "WIZ_WINDOW_LAG_SECONDS": "300",
    }
    with dg.instance_for_test() as instance:
        yield Pipeline(sim, env, instance, tmp_path / "data", {})


# -- a real S3 API on 127.0.0.1 (moto in server mode) ---------------------------------------------


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://127.0.0.1:port
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def client(self, **overrides: Any):
        """A boto3 client for the tests' own looks at the bucket (the pipeline uses s3fs)."""
        import boto3

        settings = {
            "endpoint_url": self.endpoint,
            "region_name": self.region,
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
            **overrides,
        }
        return boto3.client("s3", **settings)

    def filesystem(self):
        """pyarrow's own S3 filesystem, as a reader of the datasets would use it."""
        from pyarrow.fs import S3FileSystem

        return S3FileSystem(
            endpoint_override=self.endpoint.removeprefix("http://"),
            scheme="http",
            access_key=self.access_key,
            secret_key=self.secret_key,
            region=self.region,
        )


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server on a free loopback port, checking every request's signature against an IAM
    user it knows (so wrong credentials are refused, as by S3)."""
    import json
    import logging
    import os

    try:
        import boto3
        from moto.server import ThreadedMotoServer
    except ImportError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("moto[server] is not installed: pip install -e '.[dev]'")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        # Until authentication is switched on below, moto takes any key: make the user and its key.
        iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
        )
        iam.create_user(UserName="wiz-pipeline")
        key = iam.create_access_key(UserName="wiz-pipeline")["AccessKey"]
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        iam.put_user_policy(UserName="wiz-pipeline", PolicyName="all", PolicyDocument=json.dumps(policy))
        switched = httpx.post(
            f"{endpoint}/moto-api/reset-auth",
            content=b"0",
            headers={"Content-Type": "text/plain"},
            timeout=10,
        )
        switched.raise_for_status()
        yield S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        server.stop()


def s3_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, s3: S3Server, **overrides: str) -> None:
    """The AWS_* variables of a run's process, pointed at ``s3``; nothing from the host's ~/.aws, and no
    instance-metadata lookups (they would leave 127.0.0.1)."""
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    values = {
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        "AWS_REGION": s3.region,
        "AWS_ENDPOINT_URL": s3.endpoint,
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        **overrides,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)


@dataclass
class S3Pipeline(Pipeline):
    """A ``Pipeline`` writing to ``s3://{bucket}/wiz``, with the tests' views of the bucket."""

    s3: S3Server | None = None
    bucket: str = ""

    @property
    def prefix(self) -> str:
        return f"{self.bucket}/wiz"

    def keys_in_bucket(self) -> list[str]:
        listing = self.s3.client().list_objects_v2(Bucket=self.bucket)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def files(self, data_type: str = "audit_logs") -> list[str]:  # type: ignore[override]
        return [
            k for k in self.keys_in_bucket() if k.startswith(f"wiz/{data_type}/") and k.endswith(".parquet")
        ]

    def read(self, key: str) -> bytes:
        return self.s3.client().get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def uploads(self) -> list[dict[str, Any]]:
        return self.s3.client().list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])

    def table(self, data_type: str = "audit_logs"):
        dataset = ds.dataset(
            f"{self.prefix}/{data_type}",
            filesystem=self.s3.filesystem(),
            partitioning="hive",
            format="parquet",
        )
        return dataset.to_table()


@pytest.fixture
def s3_pipeline(
    sim: WizSimulator, s3_server: S3Server, tmp_path: Path, monkeypatch, request
) -> Iterator[S3Pipeline]:
    import hashlib
    import re

    # One bucket per test (parameters included), named after it.
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-")
    bucket = f"wiz-{name}-{hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:8]}"
    s3_server.client().create_bucket(Bucket=bucket)
    s3_environment(monkeypatch, tmp_path, s3_server)
    env = {
        "WIZ_OUTPUT_URI": f"s3://{bucket}/wiz",
        "AUDIT_SINCE_TIME": SEED,
        "ISSUES_SINCE_TIME": SEED,
        "WIZ_POLL_INTERVAL_SECONDS": "1800",
        "WIZ_WINDOW_LAG_SECONDS": "300",
    }
    with dg.instance_for_test() as instance:
        yield S3Pipeline(sim, env, instance, tmp_path / "unused", {}, s3=s3_server, bucket=bucket)
