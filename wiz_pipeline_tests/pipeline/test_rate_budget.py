"""One rate budget across runs, through Dagster's own processes.

A real ``dagster-daemon run`` (scheduler, backfill daemon, queued run coordinator, default run
launcher) on an instance made from deploy/dagster.yaml runs both schedules' catch-up and a backfill
launched with the UI's GraphQL mutation, while ``dagster asset materialize`` runs from a terminal.
The simulator refuses a fourth request in any second with a 429.
"""

from __future__ import annotations

import bisect
import itertools
import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow.fs
import pyarrow.parquet as pq
from dagster._core.scheduler.instigation import (
    InstigatorState,
    InstigatorStatus,
    InstigatorType,
    ScheduleInstigatorData,
)
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES
from dagster_graphql.client.query import LAUNCH_PARTITION_BACKFILL_MUTATION
from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

from wiz_pipeline.cli.demo import simulator_env
from wiz_pipeline.orchestration.assets.window_asset import unshared_budget
from wiz_pipeline.orchestration.partitions import cron_for
from wiz_pipeline.simulator import WizSimulator, generate_tenant
from wiz_pipeline.simulator.tenant import wiz_time
from wiz_pipeline_tests.conftest import CLIENT_SECRET, audit_entry, stop_process_group

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
INTERVAL = 1800
RATE = 3


def recent_tick(now: datetime) -> tuple[datetime, int]:
    """A tick a minute or two before ``now`` and the window lag that puts the schedules' cron on it.

    With the default lag (ticks at :05 and :35), a test started just before a tick would see the
    daemon evaluate that real tick too, and stop with its run still queued. This lag puts the next
    real tick 28 minutes away."""
    tick = now.replace(second=0, microsecond=0) - timedelta(minutes=1)
    lag = (tick.minute % 30 or 30) * 60
    minute = tick.minute % 30
    assert cron_for(INTERVAL, lag) == f"{minute},{minute + 30} * * * *"
    return tick, lag


def max_in_any_second(times: list[float]) -> int:
    times = sorted(times)
    return max(bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times))


def start(command: list[str], log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(
            command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def schedule_catch_up_at(instance: dg.DagsterInstance, context, tick: datetime) -> None:
    """Record both schedules as last evaluated just before ``tick``, as after a daemon outage:
    the daemon's first iteration then evaluates the tick at once instead of in up to 30 minutes."""
    for location in context.code_locations:
        for repository in location.get_repositories().values():
            for schedule in repository.get_schedules():
                data = ScheduleInstigatorData(
                    schedule.cron_schedule, (tick - timedelta(minutes=1)).timestamp()
                )
                state = InstigatorState(
                    schedule.get_remote_origin(),
                    InstigatorType.SCHEDULE,
                    InstigatorStatus.DECLARED_IN_CODE,
                    data,
                )
                instance.add_instigator_state(state)


def launch_backfill(context, asset: str, keys: list[str]) -> str:
    """The mutation the UI's "Materialize" of a partition range sends."""
    params = {"partitionNames": keys, "assetSelection": [{"path": ["wiz", asset]}]}
    result = execute_dagster_graphql(context, LAUNCH_PARTITION_BACKFILL_MUTATION, {"backfillParams": params})
    answer = result.data["launchPartitionBackfill"]
    assert answer["__typename"] == "LaunchBackfillSuccess", answer
    return answer["backfillId"]


def wait_for(condition, seconds: float, what: str, logs: list[Path]) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs if p.exists())
            raise AssertionError(f"timed out waiting for {what}\n{tails}")
        time.sleep(1)  # the simulator's threads stamp arrivals: leave them the interpreter


def step_intervals(instance: dg.DagsterInstance, run_id: str) -> list[tuple[float, float]]:
    events = instance.all_logs(
        run_id,
        of_type={
            dg.DagsterEventType.STEP_START,
            dg.DagsterEventType.STEP_SUCCESS,
            dg.DagsterEventType.STEP_FAILURE,
        },
    )
    starts = [e.timestamp for e in events if e.dagster_event.event_type == dg.DagsterEventType.STEP_START]
    ends = [e.timestamp for e in events if e.dagster_event.event_type != dg.DagsterEventType.STEP_START]
    return list(zip(starts, ends, strict=True))


def origin(run: dg.DagsterRun, backfill_id: str) -> str:
    if run.tags.get("dagster/backfill") == backfill_id:
        return "backfill"
    return run.tags.get("dagster/schedule_name", "terminal")


def window_rows(instance: dg.DagsterInstance, asset: str, key: str) -> list[dict]:
    """The rows of a window's file, found through its latest materialization's dagster/uri."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(["wiz", asset]), asset_partitions=[key]), limit=1
    ).records
    assert records, f"{asset} {key} was never materialized"
    uri = records[0].asset_materialization.metadata["dagster/uri"].value
    filesystem, path = pyarrow.fs.FileSystem.from_uri(uri)
    return [json.loads(raw) for raw in pq.read_table(path, filesystem=filesystem)["raw"].to_pylist()]


def test_schedules_a_backfill_and_a_terminal_run_share_one_rate_budget(tmp_path, monkeypatch):
    now = datetime.now(UTC)
    tick, lag = recent_tick(now)
    closed = tick - timedelta(seconds=lag)  # the last window the tick finds closed ends here
    seed = closed - timedelta(hours=2) + timedelta(seconds=9)  # four windows, the first from the seed
    # Nothing happens after `closed`, so no issue moves between windows while the test runs.
    tenant = generate_tenant(
        closed - timedelta(hours=2, minutes=30), closed, audit_entries=40, issues=24, seed=5
    )
    starts = [closed - timedelta(minutes=30 * i) for i in range(4, 0, -1)]
    keys = [s.strftime("%Y-%m-%d-%H:%M") for s in starts]
    for i in range(12):  # the terminal's window: enough pages that its step lasts a few seconds
        tenant.add_audit_entry(
            audit_entry(wiz_time(starts[1] + timedelta(minutes=2 * i, seconds=7)), f"busy-{i}")
        )
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    with WizSimulator(
        tenant, client_id="budget-client", client_secret=CLIENT_SECRET, rate_limit_per_second=RATE
    ) as sim:
        env = {
            **simulator_env(sim, seed, tmp_path / "data", home),
            "WIZ_POLL_INTERVAL_SECONDS": str(INTERVAL),
            "WIZ_WINDOW_LAG_SECONDS": str(lag),
            "WIZ_MAX_REQUESTS_PER_SECOND": str(RATE),
            "WIZ_MAX_WINDOWS_PER_RUN": "4",
            "WIZ_PAGE_SIZE": "3",  # small pages: each run's step sends several requests
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        logs = [tmp_path / "daemon.log", tmp_path / "terminal.log"]
        with dg.DagsterInstance.get() as instance:
            with define_out_of_process_context(str(ROOT / "workspace.yaml"), None, instance) as context:
                schedule_catch_up_at(instance, context, tick)
                backfill_id = launch_backfill(context, "issues", keys[2:])
            daemon = start([str(BIN / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")], logs[0])
            terminal = None
            try:
                started = lambda: instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))  # noqa: E731
                wait_for(started, 90, "the daemon's first run", logs)
                command = [
                    "asset",
                    "materialize",
                    "-m",
                    "wiz_pipeline.definitions",
                    "--select",
                    "wiz/audit_logs",
                ]
                terminal = start([str(BIN / "dagster"), *command, "--partition", keys[1]], logs[1])

                def all_done() -> bool:
                    if terminal.poll() is None:
                        return False
                    # Dagster's "in progress" leaves out runs still waiting in the queue.
                    waiting = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED]
                    if instance.get_runs(dg.RunsFilter(statuses=[*IN_PROGRESS_RUN_STATUSES, *waiting])):
                        return False
                    origins = {origin(run, backfill_id) for run in instance.get_runs()}
                    return origins >= {"collect_audit_logs_schedule", "collect_issues_schedule", "backfill"}

                wait_for(all_done, 180, "every run to finish", logs)
            finally:
                stop_process_group(daemon)
                if terminal is not None:
                    stop_process_group(terminal)

            runs = instance.get_runs()
            assert terminal.returncode == 0, logs[1].read_text()[-3000:]
            assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs), [
                (r.status.value, r.tags.get("dagster/partition"), origin(r, backfill_id))
                for r in runs
                if r.status != dg.DagsterRunStatus.SUCCESS
            ]
            by_origin = Counter(origin(run, backfill_id) for run in runs)
            assert set(by_origin) == {
                "collect_audit_logs_schedule",
                "collect_issues_schedule",
                "backfill",
                "terminal",
            }

            # The terminal's run overlapped the daemon's, but no two Wiz steps overlapped: they took
            # turns at the pool's slot. (With `granularity: run` the terminal's step runs alongside.)
            spans = {r.run_id: instance.get_run_record_by_id(r.run_id) for r in runs}
            (mine,) = [spans[r.run_id] for r in runs if origin(r, backfill_id) == "terminal"]
            assert any(
                other.start_time < mine.end_time and mine.start_time < other.end_time
                for other in spans.values()
                if other is not mine
            )
            steps = sorted(s for r in runs for s in step_intervals(instance, r.run_id))
            assert len(steps) == len(runs)
            overlapping = [(a, b) for a, b in itertools.pairwise(steps) if b[0] < a[1]]
            assert not overlapping, f"Wiz steps ran at the same time: {overlapping}"
            # Zero 429s, and never more than the budget in any second, whatever started the runs.
            records = sim.graphql_records()
            assert sim.counters.rate_limited == 0
            assert all(r.status == 200 for r in records)
            assert max_in_any_second([r.at for r in records]) <= RATE

            # Exact data in every window.
            issues_now = tenant.issues_as_of(sim.now())
            for i, window_start in enumerate(starts):
                low, high = max(window_start, seed), window_start + timedelta(seconds=INTERVAL)
                expected_audit = [
                    node
                    for t, node in zip(tenant.audit_times, tenant.audit_nodes, strict=True)
                    if low <= t < high
                ]
                audit = window_rows(instance, "audit_logs", keys[i])
                assert Counter(r["id"] for r in audit) == Counter(n["id"] for n in expected_audit)
                assert {r["id"]: r["timestamp"] for r in audit} == {
                    n["id"]: n["timestamp"] for n in expected_audit
                }
                expected_issues = {
                    n["id"]: n["statusChangedAt"]
                    for n in issues_now
                    if low <= datetime.fromisoformat(n["statusChangedAt"]) < high
                }
                issues = window_rows(instance, "issues", keys[i])
                assert len(issues) == len(expected_issues)
                assert {r["id"]: r["statusChangedAt"] for r in issues} == expected_issues


def test_two_runs_from_terminals_take_turns_at_the_slot(tmp_path, monkeypatch):
    """The quick form of the test above, without a daemon: two `dagster asset materialize` at once
    on an instance made from deploy/dagster.yaml. With `granularity: run` neither claims the slot,
    and the simulator answers several of their requests with 429."""
    end = datetime(2025, 9, 12, 23, tzinfo=UTC)
    tenant = generate_tenant(end - timedelta(hours=1), end, audit_entries=50, issues=10, seed=3)
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    with WizSimulator(tenant, client_id="c", client_secret=CLIENT_SECRET, rate_limit_per_second=RATE) as sim:
        env = {
            **simulator_env(sim, end - timedelta(hours=1), tmp_path / "data", home),
            "WIZ_MAX_REQUESTS_PER_SECOND": str(RATE),
            "WIZ_PAGE_SIZE": "2",
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        # The instance's storage exists before the runs start, as in any deployment: two processes
        # creating a fresh SQLite instance at once can both write its schema version. And the pool's
        # one slot exists, as the README's `dagster instance concurrency set wiz_api 1` makes it.
        with dg.DagsterInstance.get() as instance:
            instance.event_log_storage.set_concurrency_slots("wiz_api", 1)
        command = [str(BIN / "dagster"), "asset", "materialize", "-m", "wiz_pipeline.definitions"]
        logs = [tmp_path / "first.log", tmp_path / "second.log"]
        keys = [(end - timedelta(minutes=m)).strftime("%Y-%m-%d-%H:%M") for m in (60, 30)]
        # The second starts once the first's step has started (a step starts once it holds the
        # slot): on SQLite, Dagster's claim is a SELECT then an UPDATE that it can't lock (FOR UPDATE
        # is ignored there), so two claims in the same instant can both take the one slot (seen on a
        # loaded 2-core machine; docs/deploying.md). With granularity: run nothing is claimed, the
        # second starts at once while the first is busy, and the two overlap.
        terminals = [start([*command, "--select", "wiz/audit_logs", "--partition", keys[0]], logs[0])]
        try:
            with dg.DagsterInstance.get() as instance:
                deadline = time.monotonic() + 120
                while not any(
                    instance.all_logs(r.run_id, of_type=dg.DagsterEventType.STEP_START)
                    for r in instance.get_runs()
                ):
                    assert time.monotonic() < deadline and terminals[0].poll() is None, logs[0].read_text()[
                        -3000:
                    ]
                    time.sleep(0.05)
            terminals.append(start([*command, "--select", "wiz/audit_logs", "--partition", keys[1]], logs[1]))
            for terminal, log in zip(terminals, logs, strict=True):
                assert terminal.wait(timeout=180) == 0, log.read_text()[-3000:]
        finally:
            for terminal in terminals:
                stop_process_group(terminal)
        with dg.DagsterInstance.get() as instance:
            runs = instance.get_runs()
            assert len(runs) == 2 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
            steps = sorted(s for r in runs for s in step_intervals(instance, r.run_id))
        busiest = max_in_any_second([r.at for r in sim.graphql_records()])
        overlapped = steps[1][0] < steps[0][1]
        assert (sim.counters.rate_limited, busiest <= RATE, overlapped) == (0, True, False), (
            f"{sim.counters.rate_limited} requests answered 429, {busiest} in the busiest second, "
            f"Wiz steps {'overlapped' if overlapped else 'took turns'}"
        )


def test_a_step_says_when_the_instance_would_not_share_the_budget(tmp_path):
    deploy = (ROOT / "deploy" / "dagster.yaml").read_text()
    for name, yaml in {
        "deploy": deploy,
        "per_run": deploy.replace("granularity: op", "granularity: run"),
    }.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "dagster.yaml").write_text(yaml)
    with dg.DagsterInstance.from_config(str(tmp_path / "deploy")) as instance:
        assert unshared_budget(instance) is None  # the default limit, before any step claimed it
        instance.event_log_storage.set_concurrency_slots("wiz_api", 1)
        assert unshared_budget(instance) is None
        # What two steps creating the pool at once can leave (see the test above): a limit of 1 and
        # a second slot, made here as Dagster's own allocation makes them.
        storage = instance.event_log_storage
        with storage.index_transaction() as conn:
            storage._allocate_concurrency_slots(conn, "wiz_api", 2)
        assert storage.get_concurrency_info("wiz_api").limit == 1
        assert "wiz_api pool has 2 slots for a limit of 1" in unshared_budget(instance)
        instance.event_log_storage.set_concurrency_slots("wiz_api", 2)
        assert "wiz_api pool's limit is 2, not 1" in unshared_budget(instance)
    with dg.DagsterInstance.from_config(str(tmp_path / "per_run")) as instance:
        assert "counted per run" in unshared_budget(instance)
    with dg.instance_for_test() as instance:  # no concurrency settings at all
        assert "limit is unset" in unshared_budget(instance)
