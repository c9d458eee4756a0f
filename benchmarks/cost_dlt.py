"""The dlt contender of benchmarks/cost.py; runs in dlt's own virtualenv (no wiz_pipeline there).

A dlt pipeline as its documentation suggests for a GraphQL API: RESTClient POSTing the query,
JSONResponseCursorPaginator moving the cursor into the body's variables and stopping on
hasNextPage, the filesystem destination writing Parquet. Settings come from the environment that
cost.py sets (simulator URLs, credentials, query, variables, output directory).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dlt
import requests
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.auth import BearerTokenAuth
from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator


def vm_hwm_mib() -> float | None:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def main() -> None:
    env = os.environ
    token = requests.post(
        env["WIZ_TOKEN_URL"],
        data={
            "grant_type": "client_credentials",
            "client_id": env["WIZ_CLIENT_ID"],
            "client_secret": env["WIZ_CLIENT_SECRET"],
            "audience": "wiz-api",
        },
        timeout=60,
    ).json()["access_token"]
    client = RESTClient(base_url=env["WIZ_API_URL"], auth=BearerTokenAuth(token))
    variables = {**json.loads(env["BENCH_VARIABLES"]), "first": 500, "after": None}

    @dlt.resource(name="audit_logs", write_disposition="append", primary_key="id")
    def audit_logs():
        yield from client.paginate(
            "",
            method="POST",
            json={"query": env["BENCH_QUERY"], "variables": variables},
            paginator=JSONResponseCursorPaginator(
                cursor_path="data.auditLogEntries.pageInfo.endCursor",
                cursor_body_path="variables.after",
                has_more_path="data.auditLogEntries.pageInfo.hasNextPage",
            ),
            data_selector="data.auditLogEntries.nodes",
        )

    output = Path(env["BENCH_OUTPUT"])
    pipeline = dlt.pipeline(
        pipeline_name="wiz_audit_logs",
        destination=dlt.destinations.filesystem(bucket_url=str(output / "dataset")),
        dataset_name="wiz",
        pipelines_dir=str(output / "pipelines"),
    )
    pipeline.run(audit_logs(), loader_file_format="parquet")
    rows = pipeline.last_trace.last_normalize_info.row_counts.get("audit_logs", 0)
    print(json.dumps({"rows": rows, "vm_hwm_mib": vm_hwm_mib()}))


if __name__ == "__main__":
    main()
