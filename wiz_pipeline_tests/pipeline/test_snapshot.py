"""What a user can see of the pipeline stays as it was: asset keys, checks, jobs and schedules, and per
dataset the files, the schema, the rows, the manifest keys and the materialization's metadata keys.

``snapshot.json`` was written by the same collection on the code before the packages were reorganised
(commit 765a847), so a refactor that changes anything a reader or an operator relies on fails here.
Regenerate it only for a change that means to alter one of those, and say so in its commit.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.dataset as ds

from wiz_pipeline_tests.pipeline.conftest import Pipeline

SNAPSHOT = Path(__file__).with_name("snapshot.json")


def observed(pipeline: Pipeline) -> dict[str, Any]:
    defs = pipeline.defs
    graph = defs.resolve_asset_graph()
    seen: dict[str, Any] = {
        "assets": sorted("/".join(k.path) for k in graph.get_all_asset_keys()),
        "checks": sorted(f"{c.asset_key.to_user_string()}:{c.name}" for c in graph.asset_check_keys),
        "jobs": sorted(j.name for j in defs.resolve_all_job_defs()),
        "schedules": sorted(s.name for s in defs.schedules),
    }
    for name in ("audit_logs", "issues"):
        assert pipeline.run("2025-09-12-21:00", "2025-09-13-02:30", data_type=name).success
    job = defs.resolve_job_def("collect_issues_current")
    assert job.execute_in_process(instance=pipeline.instance).success
    for name in ("audit_logs", "issues", "issues_current"):
        root = pipeline.root / name
        table = ds.dataset(root, partitioning="hive").to_table()
        rows = sorted(json.dumps(r, sort_keys=True, default=str) for r in table.to_pylist())
        event = pipeline.instance.get_latest_materialization_event(dg.AssetKey(["wiz", name]))
        assert event is not None and event.asset_materialization is not None
        seen[name] = {
            "manifest_keys": sorted({k for f in root.rglob("_*.json") for k in json.loads(f.read_text())}),
            "metadata_keys": sorted(event.asset_materialization.metadata),
            "files": sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()),
            "schema": [f"{f.name}:{f.type}" for f in table.schema],
            "rows": len(rows),
            "rows_sha256": hashlib.sha256("\n".join(rows).encode()).hexdigest(),
        }
    return seen


def test_asset_keys_checks_jobs_files_schemas_rows_manifests_and_metadata_are_as_before(pipeline):
    expected = json.loads(SNAPSHOT.read_text())
    seen = observed(pipeline)
    if os.environ.get("WIZ_UPDATE_SNAPSHOT") == "1":  # a change made on purpose: review the diff
        SNAPSHOT.write_text(json.dumps(seen, indent=1) + "\n")
        expected = seen
    for part in expected:
        assert seen[part] == expected[part], part
    assert seen.keys() == expected.keys()
