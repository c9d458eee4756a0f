"""Definitions and settings: what loads, what a bad value says, what the UI can see."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster_shared.serdes import serialize_value

from wiz_pipeline.cli.commands import main
from wiz_pipeline.orchestration.definitions import build_definitions
from wiz_pipeline.settings import ALLOWED_INTERVALS, ENVIRONMENT, SETTINGS, SettingsError, load_settings
from wiz_pipeline_tests.conftest import CLIENT_SECRET

ROOT = Path(__file__).resolve().parents[2]
MODULE = "wiz_pipeline.definitions"
AUDIT, ISSUES = dg.AssetKey(["wiz", "audit_logs"]), dg.AssetKey(["wiz", "issues"])
CURRENT = dg.AssetKey(["wiz", "issues_current"])


def test_asset_keys_groups_pool_and_schedules_are_as_documented():
    defs = build_definitions({})
    graph = defs.resolve_asset_graph()
    assert set(graph.get_all_asset_keys()) == {AUDIT, ISSUES, CURRENT}
    for key in (AUDIT, ISSUES, CURRENT):
        assets_def = defs.resolve_assets_def(key)
        assert assets_def.group_names_by_key[key] == "wiz"
        assert assets_def.op.pool == "wiz_api"
        if key == CURRENT:
            assert assets_def.partitions_def is None  # one file, the current state, rebuilt whole
        else:
            assert isinstance(assets_def.partitions_def, dg.TimeWindowPartitionsDefinition)
    assert {s.name for s in defs.schedules} == {
        "collect_audit_logs_schedule",
        "collect_issues_schedule",
        "collect_issues_current_schedule",
    }


def test_issues_are_left_out_when_their_collection_is_off():
    defs = build_definitions({"WIZ_COLLECT_ISSUES": "false"})
    assert set(defs.resolve_asset_graph().get_all_asset_keys()) == {AUDIT}
    assert [s.name for s in defs.schedules] == ["collect_audit_logs_schedule"]


def test_the_partitions_start_on_the_boundary_at_or_before_the_seed():
    defs = build_definitions(
        {"AUDIT_SINCE_TIME": "2025-09-12T21:00:09Z", "ISSUES_SINCE_TIME": "2025-09-12T23:59:59+02:00"}
    )
    audit = defs.resolve_assets_def(AUDIT).partitions_def
    issues = defs.resolve_assets_def(ISSUES).partitions_def
    assert audit.start.isoformat() == "2025-09-12T21:00:00+00:00"
    assert issues.start.isoformat() == "2025-09-12T21:30:00+00:00"  # 21:59:59 UTC


def test_the_definitions_load_without_the_endpoint_or_credentials_and_a_run_names_what_is_missing(
    monkeypatch, tmp_path
):
    for name in ("WIZ_API_URL", "WIZ_CLIENT_ID", "WIZ_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WIZ_CLIENT_ID", "someone")  # one of the three set: the other two are named
    defs = build_definitions({"WIZ_OUTPUT_URI": str(tmp_path)})  # loads: nothing read yet
    dg.Definitions.validate_loadable(defs)
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("collect_audit_logs").execute_in_process(
            instance=instance, partition_key="2025-09-12-21:30", raise_on_error=False
        )
    assert not result.success
    (failure,) = result.get_step_failure_events()
    error = failure.step_failure_data.error
    # One line naming every missing variable; not a config error block per variable.
    # A Failure: Dagster shows its description, with no wrapping step error and no chained cause.
    assert error.cls_name == "Failure" and error.cause is None and error.context is None
    message = failure.step_failure_data.user_failure_data.description
    assert error.message.strip().endswith(message)
    assert message.count("\n") == 0 and len(message) < 300, message
    assert "WIZ_API_URL, WIZ_CLIENT_SECRET are not set where this run started" in message
    assert "WIZ_CLIENT_ID" not in message and "PostProcessingError" not in message
    assert not list(tmp_path.rglob("*.parquet"))


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("api.us1.app.wiz.io/graphql", "must start with https://"),
        ("http://api.us1.app.wiz.io/graphql", "plain http to a non-loopback host"),
        ("https://", "has no host"),
    ],
)
def test_a_bad_api_url_that_is_set_stops_the_definitions_loading_in_one_line(value, says):
    with pytest.raises(SettingsError) as caught:
        build_definitions({"WIZ_API_URL": value})
    (line,) = str(caught.value).splitlines()[1:]  # under "Bad settings:", one line
    assert line.strip().startswith("WIZ_API_URL=") and says in line and len(line) < 300, line


def test_dagster_reports_a_bad_api_url_when_it_loads_the_code_location(tmp_path):
    env = {**os.environ, "WIZ_API_URL": "ftp://api.us1.app.wiz.io/graphql", "DAGSTER_HOME": str(tmp_path)}
    result = subprocess.run(
        [Path(sys.executable).with_name("dagster"), "definitions", "validate", "-m", MODULE],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "WIZ_API_URL='ftp://api.us1.app.wiz.io/graphql' must start with https://" in output, output[-3000:]


def test_the_secret_is_an_env_var_the_ui_never_sees(monkeypatch):
    monkeypatch.setenv("WIZ_CLIENT_SECRET", CLIENT_SECRET)
    defs = build_definitions({})
    snapshot = serialize_value(RepositorySnap.from_def(defs.get_repository_def()))
    assert "WIZ_CLIENT_SECRET" in snapshot
    assert CLIENT_SECRET not in snapshot


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("WIZ_POLL_INTERVAL_SECONDS", "1700", "Nearest allowed values: 1200 or 1800"),
        ("WIZ_POLL_INTERVAL_SECONDS", "90", "Nearest allowed values: 60 or 120"),
        ("WIZ_POLL_INTERVAL_SECONDS", "half an hour", "not a whole number"),
        ("AUDIT_SINCE_TIME", "2025-09-12T21:00:09", "no time zone"),
        ("ISSUES_SINCE_TIME", "yesterday", "not an ISO 8601 time"),
        ("WIZ_COLLECT_ISSUES", "maybe", "use true or false"),
        ("WIZ_PAGE_SIZE", "501", "between 1 and 500"),
        ("WIZ_MAX_RETRIES", "-1", "between 0 and 100"),
        ("WIZ_REQUEST_TIMEOUT_SECONDS", "0", "> 0"),
        ("WIZ_MAX_REQUESTS_PER_SECOND", "nan", "finite number"),
        ("WIZ_TOKEN_REFRESH_MARGIN_SECONDS", "-5", ">= 0"),
        ("WIZ_OAUTH_DATA", "audience=wiz-api", "not valid JSON"),
        ("WIZ_OAUTH_HEADERS", '["x"]', "JSON object of strings"),
        ("WIZ_TOKEN_URL", "http://auth.example.com/oauth/token", "https"),
        ("WIZ_OUTPUT_URI", "gs://bucket/wiz", "unsupported scheme"),
        ("WIZ_OUTPUT_URI", "s3://", "names no bucket"),
        ("WIZ_OUTPUT_URI", "s3:///wiz", "names no bucket"),
        ("WIZ_OUTPUT_URI", "s3://My_Bucket/wiz", "not a valid S3 bucket name"),
        ("WIZ_OUTPUT_URI", "s3://bucket/a//b", "empty, '.' or '..' segment"),
        ("WIZ_WINDOW_LAG_SECONDS", "-1", "between 0"),
        ("WIZ_MAX_WINDOWS_PER_RUN", "0", "between 1"),
    ],
)
def test_a_bad_setting_fails_naming_the_variable_and_what_is_allowed(name, value, says):
    with pytest.raises(SettingsError) as caught:
        build_definitions({name: value})
    assert name in str(caught.value) and says in str(caught.value)


@pytest.mark.parametrize(
    "value", ["s3://AKIAEXAMPLE:wJalrXUtnFEMI@bucket/wiz", "s3://bucket/wiz?secret_key=wJalrXUtnFEMI"]
)
def test_an_output_uri_carrying_credentials_is_rejected_without_echoing_them(value):
    with pytest.raises(SettingsError) as caught:
        build_definitions({"WIZ_OUTPUT_URI": value})
    assert "WIZ_OUTPUT_URI" in str(caught.value) and "AWS_ACCESS_KEY_ID" in str(caught.value)
    assert "wJalrXUtnFEMI" not in str(caught.value)


@pytest.mark.parametrize(
    ("value", "normalised"),
    [
        ("s3://bucket", "s3://bucket"),
        ("s3://bucket/wiz/", "s3://bucket/wiz"),
        ("s3://b.c-d/a/b", "s3://b.c-d/a/b"),
    ],
)
def test_an_s3_output_uri_is_accepted_and_normalised(value, normalised):
    from wiz_pipeline.settings import load_settings

    assert load_settings({"WIZ_OUTPUT_URI": value}).output_uri == normalised


def test_every_bad_setting_is_reported_at_once():
    with pytest.raises(SettingsError) as caught:
        load_settings({"WIZ_PAGE_SIZE": "0", "WIZ_COLLECT_ISSUES": "perhaps"})
    assert "WIZ_PAGE_SIZE" in str(caught.value) and "WIZ_COLLECT_ISSUES" in str(caught.value)


def test_every_interval_accepted_divides_an_hour_or_a_day_into_whole_minutes():
    for seconds in ALLOWED_INTERVALS:
        defs = build_definitions({"WIZ_POLL_INTERVAL_SECONDS": str(seconds), "WIZ_COLLECT_ISSUES": "false"})
        partitions = defs.resolve_assets_def(AUDIT).partitions_def
        first = partitions.time_window_for_partition_key(partitions.get_first_partition_key())
        assert (first.end - first.start).total_seconds() == seconds
    assert 1800 in ALLOWED_INTERVALS and 86400 in ALLOWED_INTERVALS and 5400 not in ALLOWED_INTERVALS


def test_the_readme_lists_every_setting_once_with_its_default(capsys):
    readme = (ROOT / "docs" / "configuration.md").read_text()  # the settings tables, moved from the README
    assert main(["settings"]) == 0
    table = capsys.readouterr().out
    for setting in (*SETTINGS, *ENVIRONMENT):
        rows = [line for line in readme.splitlines() if line.startswith(f"| `{setting.name}` |")]
        assert len(rows) == 1, setting.name
        assert rows[0] in table
    assert re.search(r"\| `WIZ_POLL_INTERVAL_SECONDS` \| `1800` \|", readme)
