"""The pipeline on a PostgreSQL-backed Dagster instance (deploy/dagster-postgres.yaml) against a real
server on 127.0.0.1: ticks, runs and checkpoints agree with a SQLite instance (deploy/dagster.yaml)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from wiz_pipeline.cli.commands import main
from wiz_pipeline.simulator import Fault
from wiz_pipeline_tests.pipeline.conftest import SEED, Pipeline
from wiz_pipeline_tests.pipeline.test_schedule import requested, tick

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
AT = datetime(2025, 9, 13, 2, 35, tzinfo=UTC)  # 11 closed windows after the seed's
WRONG_PASSWORD = "not-the-password-5f2e9a"


class _Command:
    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process

    def result(self) -> tuple[int, str, str]:
        out, err = self.process.communicate(timeout=90)
        return self.process.returncode, out, err


@pytest.fixture(scope="module", autouse=True)
def wrong_password_command(request, tmp_path_factory) -> Iterator[_Command | None]:
    """`wiz-pipeline checkpoints` with a wrong DAGSTER_PG_PASSWORD, started as this module starts: it
    spends about ten seconds in Dagster's connection retries, asleep, which the other tests overlap."""
    try:
        server = request.getfixturevalue("postgres_server")
    except pytest.skip.Exception:
        yield None  # the test that reads it asks for the server itself, and is skipped with the reason
        return
    home = _home(tmp_path_factory.mktemp("wrong-password") / "home", "dagster-postgres.yaml")
    env = {**server.env("postgres"), "DAGSTER_PG_PASSWORD": WRONG_PASSWORD, "DAGSTER_HOME": str(home)}
    process = subprocess.Popen(
        [sys.executable, "-m", "wiz_pipeline.cli", "checkpoints"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield _Command(process)
    if process.poll() is None:
        process.kill()
        process.communicate()


def test_the_postgres_instance_yaml_keeps_the_pool_monitoring_and_telemetry_of_dagster_yaml():
    sqlite = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    postgres = yaml.safe_load((DEPLOY / "dagster-postgres.yaml").read_text())
    assert {"concurrency", "run_monitoring", "telemetry"} <= set(sqlite)
    # Every section of deploy/dagster.yaml (pools, run monitoring, telemetry, whatever is added later),
    # unchanged; only the storage differs.
    assert set(postgres) == set(sqlite) | {"storage"}
    for section in sqlite:
        assert postgres[section] == sqlite[section], section
    db = postgres["storage"]["postgres"]["postgres_db"]
    assert db.pop("scheme") == "postgresql+psycopg2"  # the driver dagster-postgres installs
    assert {name: value["env"] for name, value in db.items()} == {
        "username": "DAGSTER_PG_USERNAME",
        "password": "DAGSTER_PG_PASSWORD",
        "hostname": "DAGSTER_PG_HOST",
        "db_name": "DAGSTER_PG_DB",
        "port": "DAGSTER_PG_PORT",
    }


def _home(path: Path, config: str) -> Path:
    path.mkdir(mode=0o750)
    shutil.copyfile(DEPLOY / config, path / "dagster.yaml")
    (path / "dagster.yaml").chmod(0o640)
    return path


def _checkpoints(homes: dict[str, Path], env: dict[str, dict[str, str]]) -> dict[str, str]:
    """`wiz-pipeline checkpoints` in a process of its own per instance (side by side), with the counts
    that depend on today's date left out."""
    processes = {
        name: subprocess.Popen(
            [sys.executable, "-m", "wiz_pipeline.cli", "checkpoints"],
            env={**os.environ, **env[name], "DAGSTER_HOME": str(home)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, home in homes.items()
    }
    printed = {}
    for name, process in processes.items():
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        printed[name] = re.sub(r"of \d+ closed windows written; \d+ missing", "of N closed; M missing", out)
    return printed


def _sequence(pipeline: Pipeline) -> list[object]:
    """A catch-up tick, its ranged runs (one fails on 500s), the tick after, reruns of a failed and of
    a written window, the last tick, and what they left in the instance, as plain values."""
    seen: list[object] = []

    def observe_tick() -> list[tuple[str, str]]:
        data = tick(pipeline, AT)
        runs = requested(data)
        seen.append(
            [(r, q.tags["wiz/since_time"]) for r, q in zip(runs, data.run_requests or [], strict=True)]
        )
        seen.append(data.skip_message)
        return runs

    runs = observe_tick()
    assert len(runs) == 3
    results = [pipeline.run(*runs[0]).success]
    pipeline.sim.inject(Fault.http_status(500), times=6)  # every attempt of the second range's query
    results += [pipeline.run(*runs[1]).success, pipeline.run(*runs[2]).success]
    retry = observe_tick()
    results.append(pipeline.run(*retry[0]).success)  # the first half of the failed range
    results.append(pipeline.run(runs[0][0]).success)  # a written window again: replaces its file
    seen.append(results)
    observe_tick()
    seen.append(sorted(pipeline.instance.get_materialized_partitions(pipeline.collection().asset_key)))
    seen.append(sorted(pipeline.table().column("id").to_pylist()))
    return seen


def test_ticks_runs_and_checkpoints_on_postgres_agree_with_sqlite(sim, tmp_path, postgres_env, monkeypatch):
    for name, value in postgres_env.items():  # the instance yaml reads them from the environment
        monkeypatch.setenv(name, value)
    observed, homes, envs = {}, {}, {}
    for backend, config in (("postgres", "dagster-postgres.yaml"), ("sqlite", "dagster.yaml")):
        homes[backend] = _home(tmp_path / f"{backend}-home", config)
        envs[backend] = {
            "WIZ_OUTPUT_URI": str(tmp_path / f"{backend}-data"),
            "AUDIT_SINCE_TIME": SEED,
            "ISSUES_SINCE_TIME": SEED,
            "WIZ_POLL_INTERVAL_SECONDS": "1800",
            "WIZ_WINDOW_LAG_SECONDS": "300",
            "WIZ_MAX_WINDOWS_PER_RUN": "4",
        }
        with dg.DagsterInstance.from_config(str(homes[backend])) as instance:
            storages = (instance.run_storage, instance.event_log_storage, instance.schedule_storage)
            kinds = (PostgresRunStorage, PostgresEventLogStorage, PostgresScheduleStorage)
            assert [isinstance(s, k) for s, k in zip(storages, kinds, strict=True)] == [
                backend == "postgres"
            ] * 3
            pipeline = Pipeline(sim, envs[backend], instance, tmp_path / f"{backend}-data", {})
            observed[backend] = _sequence(pipeline)
    printed = _checkpoints(homes, envs)
    assert printed["postgres"] == printed["sqlite"]
    assert observed["postgres"] == observed["sqlite"]
    # What the sequence shows, so that agreeing on nothing can't pass.
    first_tick, _, after_failure, _, results, last_tick, last_message, written, _ = observed["sqlite"]
    assert [r for r, _ in first_tick] == [
        ("2025-09-12-21:00", "2025-09-12-22:30"),
        ("2025-09-12-23:00", "2025-09-13-00:30"),
        ("2025-09-13-01:00", "2025-09-13-02:00"),
    ]
    assert results == [True, False, True, True, True]
    assert after_failure == [  # the failed range in halves, the checkpoint held at the failure
        (("2025-09-12-23:00", "2025-09-12-23:30"), "2025-09-12T23:00:00Z"),
        (("2025-09-13-00:00", "2025-09-13-00:30"), "2025-09-12T23:00:00Z"),
    ]
    assert last_tick == [(("2025-09-13-00:00", "2025-09-13-00:30"), "2025-09-13T00:00:00Z")]
    assert last_message is None
    assert len(written) == 9
    assert (
        "AUDIT_SINCE_TIME=2025-09-13T00:00:00Z  # 9 of N closed; M missing, the first 2025-09-13-00:00"
        in (printed["sqlite"])
    )
    assert "ISSUES_SINCE_TIME=2025-09-12T21:00:09Z  # 0 of " in printed["sqlite"]


def test_an_unset_postgres_variable_is_named_in_one_line(tmp_path, monkeypatch, capsys):
    home = _home(tmp_path / "home", "dagster-postgres.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for name, value in {
        "DAGSTER_PG_USERNAME": "u",
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_DB": "d",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "pg-secret-1a2b")
    monkeypatch.delenv("DAGSTER_PG_PORT", raising=False)
    assert main(["checkpoints"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        f"wiz-pipeline checkpoints: DAGSTER_PG_PORT not set: {home}/dagster.yaml reads it from the "
        "environment (see docs/deploying.md, PostgreSQL)"
    ]


def test_a_wrong_postgres_password_ends_the_command_in_one_line_that_never_shows_it(
    postgres_server, wrong_password_command
):
    returncode, out, err = wrong_password_command.result()
    assert returncode == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("wiz-pipeline checkpoints: cannot reach the PostgreSQL database of ")
    assert 'password authentication failed for user "wiz_dagster"' in last
    assert "DAGSTER_PG_PASSWORD" in last
    assert WRONG_PASSWORD not in out + err
