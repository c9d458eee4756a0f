"""The Dagster resources: the Wiz API client, and where the Parquet datasets go."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg

from wiz_pipeline.landing.iceberg import DEFAULT_NAMESPACE, Tables, catalog_properties
from wiz_pipeline.landing.outputs import Output, open_output
from wiz_pipeline.ocsf.layout import default_uri
from wiz_pipeline.settings import Settings
from wiz_pipeline.wiz import WizClient, WizConfigError, WizOptions


class MissingCredentialsError(WizConfigError):
    """The Wiz endpoint or credentials aren't set where a run started; names every missing one."""


# The endpoint and credentials: read by Dagster (EnvVar) when a run starts, never when the
# definitions load, so that the UI shows only these names.
CREDENTIALS = {"api_url": "WIZ_API_URL", "client_id": "WIZ_CLIENT_ID", "client_secret": "WIZ_CLIENT_SECRET"}


class WizResource(dg.ConfigurableResource):
    """Makes a ``WizClient`` per run. The endpoint and credentials arrive as ``EnvVar``s, so the UI
    shows the variables' names, never the secret; the other options, checked by the settings when the
    definitions loaded, travel as one JSON object."""

    # None: the variable was unset when the definitions loaded (see ``from_settings``).
    api_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    options_json: str  # every other WizOptions field

    @classmethod
    def from_settings(cls, settings: Settings, **fields: Any) -> WizResource:
        """``fields`` replace the endpoint and credentials (by default the EnvVars) or any other
        ``WizOptions`` field (tests lower the backoff and raise the rate).

        A variable unset in this process is left out rather than given as an EnvVar: Dagster would
        fail the run with a config error of its own per variable, a block each; ``options`` names them
        all in one line instead. The run's process loads the definitions itself, so this is decided
        in the environment the run has.
        """
        credentials = {
            field: fields.pop(field) if field in fields else dg.EnvVar(name) if os.environ.get(name) else None
            for field, name in CREDENTIALS.items()
        }
        return cls(**credentials, options_json=json.dumps({**settings.client_options(), **fields}))

    def options(self) -> WizOptions:
        missing = [name for field, name in CREDENTIALS.items() if not getattr(self, field)]
        if missing:
            raise MissingCredentialsError(
                f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set where this run "
                "started: set the Wiz endpoint and service account credentials in the environment of "
                "the Dagster webserver, daemon and runs (docs/configuration.md). Nothing was fetched or "
                "written."
            )
        return WizOptions(
            api_url=self.api_url,
            client_id=self.client_id,
            client_secret=self.client_secret,
            **json.loads(self.options_json),
        )

    @contextmanager
    def client(self) -> Iterator[WizClient]:
        try:
            options = self.options()
        except MissingCredentialsError as exc:
            # Dagster shows any other exception from a step wrapped in its own, with two tracebacks;
            # a Failure is shown as its description.
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        client = WizClient(options)
        try:
            yield client
        finally:
            client.close()


class ParquetDatasets(dg.ConfigurableResource):
    """Where the hive-partitioned Parquet datasets are written (WIZ_OUTPUT_URI: a directory or an
    s3:// URI). S3 credentials and endpoint are not config: the AWS SDK reads them from the run's
    environment (AWS_*), so they never show in the UI."""

    root: str
    ocsf_root: str = ""  # WIZ_OCSF_URI as resolved (settings.ocsf_output_uri); "": OCSF is off
    # WIZ_ICEBERG and WIZ_ICEBERG_NAMESPACE; the catalog's properties are read from the run's
    # environment when it opens the catalog (``tables``), never put in config: a URI may hold a password.
    iceberg: bool = False
    iceberg_namespace: str = DEFAULT_NAMESPACE

    def output(self) -> Output:
        return open_output(self.root)

    def tables(self) -> Tables | None:
        """The Iceberg tables (None: WIZ_ICEBERG is off)."""
        if not self.iceberg:
            return None
        return Tables(catalog_properties(os.environ, self.root), self.iceberg_namespace)

    def ocsf_output(self) -> Output:
        return open_output(self.ocsf_root or default_uri(self.root), "WIZ_OCSF_URI")
