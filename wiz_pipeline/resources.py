"""The Dagster resources: the Wiz API client, and where the Parquet datasets go."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from wiz_pipeline.outputs import Output, open_output
from wiz_pipeline.settings import Settings
from wiz_pipeline.wiz import WizClient


class WizResource(dg.ConfigurableResource):
    """Makes a ``WizClient`` per run. The endpoint and credentials arrive as ``EnvVar``s, so the UI
    shows the variables' names, never the secret."""

    api_url: str
    client_id: str
    client_secret: str
    token_url: str
    scopes: str = ""
    oauth_headers_json: str = "{}"
    oauth_data_json: str = '{"audience": "wiz-api"}'
    token_refresh_margin_seconds: float = 60.0
    page_size: int = 500
    max_retries: int = 5
    request_timeout_seconds: float = 60.0
    max_requests_per_second: float = 3.0
    # Not settings: the client's own defaults, lowered by tests so that retries don't take seconds.
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> WizResource:
        return cls(
            api_url=dg.EnvVar("WIZ_API_URL"),
            client_id=dg.EnvVar("WIZ_CLIENT_ID"),
            client_secret=dg.EnvVar("WIZ_CLIENT_SECRET"),
            token_url=settings.token_url,
            scopes=settings.scopes,
            oauth_headers_json=json.dumps(settings.oauth_headers),
            oauth_data_json=json.dumps(settings.oauth_data),
            token_refresh_margin_seconds=settings.token_refresh_margin_seconds,
            page_size=settings.page_size,
            max_retries=settings.max_retries,
            request_timeout_seconds=settings.request_timeout_seconds,
            max_requests_per_second=settings.max_requests_per_second,
        )

    @contextmanager
    def client(self) -> Iterator[WizClient]:
        client = WizClient(
            api_url=self.api_url,
            client_id=self.client_id,
            client_secret=self.client_secret,
            token_url=self.token_url,
            scopes=self.scopes or None,
            oauth_headers=json.loads(self.oauth_headers_json),
            oauth_data=json.loads(self.oauth_data_json),
            refresh_margin_seconds=self.token_refresh_margin_seconds,
            page_size=self.page_size,
            max_retries=self.max_retries,
            request_timeout_seconds=self.request_timeout_seconds,
            max_requests_per_second=self.max_requests_per_second,
            backoff_base_seconds=self.backoff_base_seconds,
            backoff_max_seconds=self.backoff_max_seconds,
        )
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
