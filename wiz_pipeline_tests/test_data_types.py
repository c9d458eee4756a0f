"""A data type is one module: everything else (settings, asset, job, schedule, checkpoint, files) is
built from its definition in ``wiz_pipeline.data_types``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq

from wiz_pipeline.data_types import DATA_TYPES

# A third data type, written as its own module would be. It reuses the audit log query (which the
# simulator serves) under its own name, with fewer columns, so that what lands shows it was built
# from this definition and not from the audit logs'.
MODULE = """
from wiz_pipeline.data_types import DataType
from wiz_pipeline.data_types.audit_logs import COLUMNS, QUERY

AUDIT_COPY = DataType(
    name="audit_copy",
    description="A copy of the audit log, for the test.",
    operation="AuditLogTable",
    query=QUERY,
    connection="auditLogEntries",
    time_field="timestamp",
    permission="admin:audit",
    columns=COLUMNS[:4],
    checkpoint_variable="AUDIT_COPY_SINCE_TIME",
    seed_help="Where the copy starts.",
    enabled_by="WIZ_COLLECT_AUDIT_COPY",
    enabled_help="Collect the copy (true/false).",
)
"""

# Registers the module (the one line a new data type adds to data_types/__init__.py), then goes
# through the pipeline's own code paths with a real simulator and a Dagster instance.
SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
import wiz_pipeline.data_types as registry
from audit_copy import AUDIT_COPY
registry.DATA_TYPES[AUDIT_COPY.name] = AUDIT_COPY

from datetime import timedelta
import dagster as dg
from wiz_pipeline.orchestration.checkpoints import checkpoint, collections_for
from wiz_pipeline.orchestration.definitions import build_definitions
from wiz_pipeline.settings import load_settings, settings_table
from wiz_pipeline.simulator import WizSimulator
from wiz_pipeline_tests.conftest import HISTORY, T0, small_tenant
from wiz_pipeline_tests.pipeline.conftest import SEED
from wiz_pipeline.orchestration.resources import WizResource

out = sys.argv[1] + "/data"
env = {"WIZ_OUTPUT_URI": out, "AUDIT_SINCE_TIME": SEED, "AUDIT_COPY_SINCE_TIME": SEED,
       "WIZ_COLLECT_ISSUES": "false"}
found = {"table": settings_table()}
sim = WizSimulator(small_tenant(), client_id="test-client", client_secret="test-secret-8c1f0b5d7e2a4c9b")
sim.set_now(T0 + HISTORY + timedelta(days=1))
with sim, dg.instance_for_test() as instance:
    wiz = WizResource.from_settings(
        load_settings(env), api_url=sim.graphql_url, client_id=sim.client_id,
        client_secret=sim.client_secret, token_url=sim.token_url, max_requests_per_second=1000,
        request_timeout_seconds=5)
    defs = build_definitions(env, resources={"wiz": wiz})
    found["assets"] = sorted(list(k.path) for k in defs.resolve_asset_graph().get_all_asset_keys())
    found["schedules"] = sorted(s.name for s in defs.schedules)
    found["description"] = defs.resolve_assets_def(dg.AssetKey(["wiz", "audit_copy"])).descriptions_by_key[
        dg.AssetKey(["wiz", "audit_copy"])]
    collection = next(c for c in collections_for(load_settings(env)) if c.data_type == "audit_copy")
    found["checkpoint_name"] = collection.checkpoint_name
    keys = collection.partitions_def.get_partition_keys(current_time=T0 + timedelta(hours=2))
    result = defs.resolve_job_def("collect_audit_copy").execute_in_process(
        instance=instance, partition_key=keys[0], raise_on_error=False)
    found["success"] = result.success
    found["checkpoint"] = checkpoint(instance, collection).isoformat()
    found["window_end"] = collection.partitions_def.time_window_for_partition_key(keys[0]).end.isoformat()
    off = build_definitions({**env, "WIZ_COLLECT_AUDIT_COPY": "false"}, resources={"wiz": wiz})
    found["assets_when_off"] = sorted(list(k.path) for k in off.resolve_asset_graph().get_all_asset_keys())
print(json.dumps(found))
"""


def test_a_new_data_type_is_one_module_and_gets_its_settings_asset_job_schedule_checkpoint_and_files(
    tmp_path: Path,
):
    (tmp_path / "audit_copy.py").write_text(MODULE)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert "`AUDIT_COPY_SINCE_TIME`" in found["table"] and "`WIZ_COLLECT_AUDIT_COPY`" in found["table"]
    assert found["assets"] == [["wiz", "audit_copy"], ["wiz", "audit_logs"]]
    assert found["schedules"] == ["collect_audit_copy_schedule", "collect_audit_logs_schedule"]
    assert found["description"].startswith("A copy of the audit log, for the test. Each partition")
    assert found["checkpoint_name"] == "AUDIT_COPY_SINCE_TIME"
    assert found["success"]
    assert found["checkpoint"] == found["window_end"]
    files = sorted((tmp_path / "data" / "audit_copy").rglob("*.parquet"))
    assert len(files) == 1 and files[0].name.startswith("audit_copy_")
    table = pq.read_table(files[0])
    assert table.column_names == ["id", "timestamp", "action", "status", "raw", "window_start"]
    assert table.num_rows > 0
    assert found["assets_when_off"] == [["wiz", "audit_logs"]]


def test_every_data_type_keeps_its_asset_key_job_schedule_and_checkpoint_names():
    named = {
        name: (dt.asset_key_path, dt.job_name, dt.schedule_name, dt.checkpoint_variable, dt.enabled_by)
        for name, dt in DATA_TYPES.items()
    }
    assert named == {
        "audit_logs": (
            ("wiz", "audit_logs"),
            "collect_audit_logs",
            "collect_audit_logs_schedule",
            "AUDIT_SINCE_TIME",
            None,
        ),
        "issues": (
            ("wiz", "issues"),
            "collect_issues",
            "collect_issues_schedule",
            "ISSUES_SINCE_TIME",
            "WIZ_COLLECT_ISSUES",
        ),
        # Issue 14's names, as its table gives them.
        "vulnerability_findings": (
            ("wiz", "vulnerability_findings"),
            "collect_vulnerability_findings",
            "collect_vulnerability_findings_schedule",
            "VULNERABILITY_FINDINGS_SINCE_TIME",
            "WIZ_COLLECT_VULNERABILITY_FINDINGS",
        ),
        "configuration_findings": (
            ("wiz", "configuration_findings"),
            "collect_configuration_findings",
            "collect_configuration_findings_schedule",
            "CONFIGURATION_FINDINGS_SINCE_TIME",
            "WIZ_COLLECT_CONFIGURATION_FINDINGS",
        ),
        "detections": (
            ("wiz", "detections"),
            "collect_detections",
            "collect_detections_schedule",
            "DETECTIONS_SINCE_TIME",
            "WIZ_COLLECT_DETECTIONS",
        ),
    }
    assert [name for name, dt in DATA_TYPES.items() if not dt.enabled_by_default] == [
        "vulnerability_findings",
        "configuration_findings",
        "detections",
    ]


def _modules_after(code: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.split()


def _client_side(modules: list[str]) -> list[str]:
    return [
        m
        for m in modules
        if m == "wiz_pipeline.wiz"
        or m.startswith("wiz_pipeline.wiz.")
        or m.split(".")[0] in ("httpx", "dagster")
    ]


def test_importing_and_running_the_simulator_loads_no_client_code_httpx_or_dagster():
    code = textwrap.dedent(
        """
        import urllib.parse, urllib.request
        from datetime import UTC, datetime, timedelta
        from wiz_pipeline.simulator import WizSimulator, generate_tenant
        t0 = datetime(2025, 9, 12, 21, tzinfo=UTC)
        tenant = generate_tenant(t0, t0 + timedelta(hours=1), audit_entries=10, issues=5, seed=1)
        with WizSimulator(tenant) as sim:
            form = urllib.parse.urlencode({"grant_type": "client_credentials", "audience": "wiz-api",
                "client_id": sim.client_id, "client_secret": sim.client_secret}).encode()
            urllib.request.urlopen(sim.token_url, data=form).close()
        """
    )
    assert _client_side(_modules_after(code)) == []


def test_importing_the_data_types_loads_no_client_code_httpx_or_dagster():
    assert _client_side(_modules_after("import wiz_pipeline.data_types")) == []
