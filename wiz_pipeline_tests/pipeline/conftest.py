"""A Dagster pipeline wired to the simulator on 127.0.0.1, with a throwaway instance and output."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.dataset as ds
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from wiz_pipeline.checkpoints import Collection, collections_for
from wiz_pipeline.definitions import build_definitions
from wiz_pipeline.resources import WizResource
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
        wiz = WizResource(
            api_url=self.sim.graphql_url,
            client_id=self.sim.client_id,
            client_secret=self.sim.client_secret,
            token_url=self.sim.token_url,
            max_requests_per_second=1000,
            request_timeout_seconds=5,
            backoff_base_seconds=0.01,
            backoff_max_seconds=0.05,
            **self.overrides,
        )
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
