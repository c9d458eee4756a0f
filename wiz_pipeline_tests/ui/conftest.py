"""The Dagster UI in a real browser: ``dagster-webserver`` on 127.0.0.1 over an instance holding a few
collected windows of every data type, and headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by Selenium) to look at it.

``dagster_ui`` is started once per module: collecting and starting the webserver take most of a test's
time, and the pages only read. Tests that add assertions take ``ui`` (a ``DagsterUI`` page helper) and
``collected`` (what was collected, to compare the pages with).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from selenium.webdriver.remote.webdriver import WebDriver

from wiz_pipeline.cli.demo import patched_environ, prepare_home, simulator_env
from wiz_pipeline.orchestration.checkpoints import Collection, collections_for
from wiz_pipeline.orchestration.partitions import floor_to_window
from wiz_pipeline.settings import load_settings
from wiz_pipeline.simulator import WizSimulator, generate_tenant
from wiz_pipeline_tests.conftest import CLIENT_SECRET, stop_process_group
from wiz_pipeline_tests.ui.browser import browser_binaries, start_chromium
from wiz_pipeline_tests.ui.pages import DagsterUI

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
INTERVAL = 1800
WINDOWS = 6  # partitions from the seed to now
COLLECTED = 3  # the oldest ones are collected, the rest stay missing
WINDOW_SIZE = (1280, 800)  # fixed, so that screenshots are comparable and small
STARTUP_SECONDS = 90  # the webserver loads the code location in a process of its own


@dataclass
class Collected:
    """What the fixture collected for one asset: its partitions and the ones written, and the metadata
    each materialization recorded. An unpartitioned asset (``issues_current``) has no keys; its one
    materialization is under ``None``."""

    asset_key: dg.AssetKey
    keys: list[str]  # every partition, oldest first
    materialized: list[str]
    run_id: str  # the one run that wrote them
    # Per materialized key, its materialization's metadata as recorded (label -> the entry's value).
    metadata: dict[str | None, dict[str, Any]] = field(default_factory=dict)
    collection: Collection | None = None  # a data type's windows, for a partitioned asset

    @property
    def asset_path(self) -> str:
        return "/".join(self.asset_key.path)

    @property
    def missing(self) -> list[str]:
        return [k for k in self.keys if k not in self.materialized]

    @property
    def latest(self) -> str | None:
        """The partition of the latest materialization (the runs write their windows oldest first)."""
        return self.materialized[-1] if self.materialized else None


@dataclass
class RunningUI:
    url: str
    home: Path
    output: Path
    collected: dict[str, Collected]  # by data type


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def collect(env: dict[str, str]) -> dict[str, Collected]:
    """The oldest ``COLLECTED`` windows of every data type, one ranged run each, as a backfill would;
    then every unpartitioned asset (``issues_current``), once. By asset name (``audit_logs``)."""
    with patched_environ(env):
        from wiz_pipeline.orchestration.definitions import build_definitions

        defs = build_definitions()
        collected = {}
        with dg.DagsterInstance.get() as instance:
            for collection in collections_for(load_settings()):
                keys = collection.partitions_def.get_partition_keys()
                done = keys[:COLLECTED]
                tags = {ASSET_PARTITION_RANGE_START_TAG: done[0], ASSET_PARTITION_RANGE_END_TAG: done[-1]}
                job = defs.resolve_job_def(collection.job_name)
                entry = _record(job.execute_in_process(instance=instance, tags=tags), collection.asset_key)
                entry.keys, entry.materialized, entry.collection = keys, done, collection
                assert sorted(entry.metadata) == done
                collected[collection.asset_key.path[-1]] = entry
            for asset in defs.resolve_all_asset_specs():
                if asset.partitions_def is None:
                    job = dg.define_asset_job(f"ui_{asset.key.to_python_identifier()}", selection=[asset.key])
                    run = dg.Definitions.merge(defs, dg.Definitions(jobs=[job])).resolve_job_def(job.name)
                    collected[asset.key.path[-1]] = _record(
                        run.execute_in_process(instance=instance), asset.key
                    )
    return collected


def _record(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> Collected:
    assert result.success
    entry = Collected(key, [], [], result.run_id)
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        assert materialization.asset_key == key
        entry.metadata[materialization.partition] = {
            label: value.value for label, value in materialization.metadata.items()
        }
    assert entry.metadata, f"{key.to_user_string()} wasn't materialized"
    return entry


LOADED = """{
  assetNodes { assetKey { path } }
  workspaceOrError { ... on Workspace { locationEntries {
    name locationOrLoadError { __typename ... on PythonError { message } }
  } } }
}"""


def wait_until_loaded(url: str, assets: list[str], webserver: subprocess.Popen, log: Path) -> None:
    """Until the webserver answers and its code location has loaded every asset (the pages would
    otherwise show a spinner for the first tens of seconds, eating into the browser's waits). A code
    location that fails to load ends the wait at once, with Dagster's message."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if webserver.poll() is not None:
            raise AssertionError(
                f"dagster-webserver exited with {webserver.returncode}\n{log.read_text()[-3000:]}"
            )
        try:
            data = httpx.post(f"{url}/graphql", json={"query": LOADED}, timeout=5).json().get("data") or {}
        except (httpx.HTTPError, ValueError):
            data = {}
        for entry in (data.get("workspaceOrError") or {}).get("locationEntries", []):
            error = entry.get("locationOrLoadError") or {}
            if error.get("__typename") == "PythonError":
                raise AssertionError(f"code location {entry['name']} failed to load: {error['message']}")
        if set(assets) <= {"/".join(n["assetKey"]["path"]) for n in data.get("assetNodes", [])}:
            return
        time.sleep(0.5)
    raise AssertionError(
        f"dagster-webserver didn't load {assets} in {STARTUP_SECONDS} s\n{log.read_text()[-3000:]}"
    )


@pytest.fixture(scope="module")
def dagster_ui() -> Iterator[RunningUI]:
    """The simulator, a DAGSTER_HOME with a few windows of each data type collected through Dagster,
    and ``dagster-webserver`` on a free loopback port over that home and the project's workspace."""
    browser_binaries()  # skip before spending seconds on collecting
    # Not under pytest's basetemp: the file paths show in the screenshots, and read better short.
    with tempfile.TemporaryDirectory(prefix="wiz-ui-") as name:
        yield from _running_ui(Path(name))


def _running_ui(tmp: Path) -> Iterator[RunningUI]:
    now = datetime.now(UTC).replace(microsecond=0)
    # The seed is off a boundary (as in the demo), and the tenant starts earlier: records before the
    # seed exist but aren't collected.
    seed = floor_to_window(now, INTERVAL) - timedelta(seconds=INTERVAL * WINDOWS - 9)
    tenant = generate_tenant(seed - timedelta(hours=1), now, audit_entries=300, issues=80, seed=9)
    with WizSimulator(tenant, client_id="ui-client", client_secret=CLIENT_SECRET) as sim:
        home, output = tmp / "dagster_home", tmp / "data"
        prepare_home(home)  # the instance settings `wiz-pipeline dev` writes (nux off: no pop-up)
        env = {**simulator_env(sim, seed, output, home), "WIZ_POLL_INTERVAL_SECONDS": str(INTERVAL)}
        collected = collect(env)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = tmp / "webserver.log"
        command = [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port)]
        with open(log, "w") as out:
            webserver = subprocess.Popen(
                [*command, "-w", str(ROOT / "workspace.yaml")],
                cwd=ROOT,
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_until_loaded(url, [c.asset_path for c in collected.values()], webserver, log)
            yield RunningUI(url, home, output, collected)
        finally:
            stop_process_group(webserver)


@pytest.fixture(scope="module")
def chromium() -> Iterator[WebDriver]:
    driver = start_chromium(WINDOW_SIZE)
    try:
        yield driver
    finally:
        driver.quit()


def chosen_screenshot_dir(config: pytest.Config) -> Path | None:
    value = config.getoption("--screenshots", default=None)
    return Path(value).absolute() if value else None


@pytest.fixture(scope="module")
def screenshot_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``--screenshots DIR`` (scripts/screenshots passes docs/ui), else a temporary directory."""
    chosen = chosen_screenshot_dir(request.config)
    if chosen is None:
        return tmp_path_factory.mktemp("screenshots")
    chosen.mkdir(parents=True, exist_ok=True)
    return chosen


@pytest.fixture
def ui(dagster_ui: RunningUI, chromium, screenshot_dir: Path) -> DagsterUI:
    return DagsterUI(chromium, dagster_ui.url, screenshot_dir)


@pytest.fixture
def collected(dagster_ui: RunningUI) -> dict[str, Collected]:
    return dagster_ui.collected
