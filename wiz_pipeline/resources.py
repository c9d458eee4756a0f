"""The Dagster resources: the Wiz API client, and where the Parquet datasets go."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg

from wiz_pipeline.outputs import Output, open_output
from wiz_pipeline.settings import Settings
from wiz_pipeline.wiz import WizClient, WizOptions


class WizResource(dg.ConfigurableResource):
    """Makes a ``WizClient`` per run. The endpoint and credentials arrive as ``EnvVar``s, so the UI
    shows the variables' names, never the secret; the other options, checked by the settings when the
    definitions loaded, travel as one JSON object."""

    api_url: str
    client_id: str
    client_secret: str
    options_json: str  # every other WizOptions field

    @classmethod
    def from_settings(cls, settings: Settings, **fields: Any) -> WizResource:
        """``fields`` replace the endpoint and credentials (by default the EnvVars) or any other
        ``WizOptions`` field (tests lower the backoff and raise the rate)."""
        return cls(
            api_url=fields.pop("api_url", dg.EnvVar("WIZ_API_URL")),
            client_id=fields.pop("client_id", dg.EnvVar("WIZ_CLIENT_ID")),
            client_secret=fields.pop("client_secret", dg.EnvVar("WIZ_CLIENT_SECRET")),
            options_json=json.dumps({**settings.client_options(), **fields}),
        )

    def options(self) -> WizOptions:
        return WizOptions(
            api_url=self.api_url,
            client_id=self.client_id,
            client_secret=self.client_secret,
            **json.loads(self.options_json),
        )

    @contextmanager
    def client(self) -> Iterator[WizClient]:
        client = WizClient(self.options())
        try:
            yield client
        finally:
            client.close()


class ParquetDatasets(dg.ConfigurableResource):
    """Where the hive-partitioned Parquet datasets are written (WIZ_OUTPUT_URI: a directory or an
    s3:// URI). S3 credentials and endpoint are not config: the AWS SDK reads them from the run's
    environment (AWS_*), so they never show in the UI."""

    root: str

    def output(self) -> Output:
        return open_output(self.root)
