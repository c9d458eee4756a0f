"""`wiz-pipeline dev`: a sandbox that keeps its tenant with its Dagster home, and the Dagster services
it starts, stopped as a whole."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from wiz_pipeline.core.errors import WizConfigError
from wiz_pipeline.core.times import format_time, parse_time
from wiz_pipeline.simulator import WizSimulator, generate_tenant

STATE_FILE = "wiz-sandbox.json"
DAYS_AHEAD = 7.0


@dataclass(frozen=True)
class Sandbox:
    """What a sandbox's checkpoints refer to: the simulated tenant (regenerated from these, the same
    records each start), the collection seed and the output directory. Kept beside the Dagster home,
    because the home's materializations describe exactly this tenant, seed and output."""

    tenant_start: str
    tenant_end: str
    audit_entries: int
    issues: int
    tenant_seed: int
    since_time: str
    output: str
    late_share: float = 0.0  # of audit entries the simulated API publishes late (re-reads)
    max_late_seconds: float = 3000.0
    vulnerability_findings: int = 0
    configuration_findings: int = 0
    detections: int = 0

    @classmethod
    def new(
        cls,
        days: float,
        audit_entries: int,
        issues: int,
        tenant_seed: int,
        output: Path,
        late_share: float = 0.0,
        max_late_seconds: float = 3000.0,
        vulnerability_findings: int = 0,
        configuration_findings: int = 0,
        detections: int = 0,
    ) -> Sandbox:
        """A tenant ``days`` back and ``DAYS_AHEAD`` days ahead at the same density, the collection
        seed ``days`` back, deliberately off a window boundary."""
        now = datetime.now(UTC).replace(microsecond=0)
        scale = (days + DAYS_AHEAD) / days
        return cls(
            tenant_start=format_time(now - timedelta(days=days)),
            tenant_end=format_time(now + timedelta(days=DAYS_AHEAD)),
            audit_entries=round(audit_entries * scale),
            issues=round(issues * scale),
            tenant_seed=tenant_seed,
            since_time=format_time(now - timedelta(days=days) + timedelta(seconds=9)),
            output=str(output.absolute()),
            late_share=min(1.0, late_share),
            max_late_seconds=max_late_seconds,
            vulnerability_findings=round(vulnerability_findings * scale),
            configuration_findings=round(configuration_findings * scale),
            detections=round(detections * scale),
        )

    @classmethod
    def load(cls, home: Path) -> Sandbox | None:
        path = home / STATE_FILE
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))

    def save(self, home: Path) -> None:
        path = home / STATE_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        path.chmod(0o640)

    def simulator(self, port: int, rate_limit: float | None) -> WizSimulator:
        tenant = generate_tenant(
            parse_time(self.tenant_start),
            parse_time(self.tenant_end),
            audit_entries=self.audit_entries,
            issues=self.issues,
            seed=self.tenant_seed,
            late_share=self.late_share,
            max_late_seconds=self.max_late_seconds,
            vulnerability_findings=self.vulnerability_findings,
            configuration_findings=self.configuration_findings,
            detections=self.detections,
        )
        return WizSimulator(tenant, port=port, rate_limit_per_second=rate_limit)


class SandboxError(WizConfigError):
    """The home and the output given don't belong together; the message says what to pass."""


def open_sandbox(home: Path, output: Path, **tenant: Any) -> Sandbox:
    """The sandbox kept in ``home``, or a new one (``tenant``: ``Sandbox.new``'s arguments; tenant,
    seeds and ``output`` saved there)."""
    from wiz_pipeline.cli.demo import prepare_home

    sandbox = Sandbox.load(home)
    if sandbox is None:
        if home.is_dir() and {p.name for p in home.iterdir()} - {"dagster.yaml"}:
            # Made before sandboxes kept their tenant: its windows came from a tenant no longer known.
            raise SandboxError(
                f"{home} holds a Dagster instance but no {STATE_FILE}: its windows and checkpoints belong "
                "to another tenant. Remove it (and the output it wrote), or pass another --home."
            )
        prepare_home(home)
        sandbox = Sandbox.new(output=output, **tenant)
        sandbox.save(home)
        print(f"New sandbox: its tenant, seeds and output are kept in {home / STATE_FILE}.")
        return sandbox
    if output.absolute() != Path(sandbox.output):
        raise SandboxError(
            f"{home} is the sandbox of the output {sandbox.output} (its checkpoints describe those "
            f"files): pass --output {sandbox.output}, or another --home for a new sandbox."
        )
    prepare_home(home)
    print(
        f"Reusing the sandbox in {home}: tenant seed {sandbox.tenant_seed} from {sandbox.tenant_start}, "
        f"collection seeds {sandbox.since_time} (the tenant's options apply to a new sandbox: remove "
        f"{home} and {sandbox.output}, or pass another --home and --output)."
    )
    return sandbox


def run_dev(sim: WizSimulator, sandbox: Sandbox, home: Path, port: int) -> int:
    """The Dagster UI and daemon over ``sandbox`` (its simulator ``sim`` already started)."""
    from wiz_pipeline.cli.demo import simulator_env

    since = parse_time(sandbox.since_time)
    env = {**os.environ, **simulator_env(sim, since, Path(sandbox.output), home)}
    print(f"Simulated Wiz tenant at {sim.graphql_url}; seeds {sandbox.since_time}; DAGSTER_HOME={home}")
    print("Checkpoints, from another shell (the settings must match the pipeline's):")
    print(
        f"  DAGSTER_HOME={home} AUDIT_SINCE_TIME={sandbox.since_time} ISSUES_SINCE_TIME={sandbox.since_time} "
        ".venv/bin/wiz-pipeline checkpoints"
    )
    print(f"Dagster UI: http://127.0.0.1:{port}  (Ctrl-C stops it all)\n", flush=True)
    return serve(env, port)


def serve(env: dict[str, str], port: int) -> int:
    """The Dagster webserver (on 127.0.0.1) and daemon, until SIGTERM, SIGINT or SIGHUP, or until one
    of them ends; then the whole process group they and their code servers and runs are in is stopped.

    These two are what `dagster dev` starts; Dagster 1.13 marks `dagster dev` superseded (by `dg dev`,
    from the separate dagster-dg-cli package and its project layout), while the webserver and daemon
    commands are its supported way to serve a code location.
    """
    bindir = Path(sys.executable).parent
    target = ["-m", "wiz_pipeline.definitions"]
    commands = [
        [str(bindir / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), *target],
        [str(bindir / "dagster-daemon"), "run", *target],
    ]
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)
        stop.set()

    # Installed before anything starts, so that no signal can leave a process behind.
    handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous = {signum: signal.signal(signum, on_signal) for signum in handled}
    children: list[subprocess.Popen] = []
    try:
        for command in commands:
            # A group of their own, the first one's: a signal to this process alone (a service
            # manager, `kill`) must not leave them running, and a terminal's Ctrl-C reaches them
            # through us, once.
            group = children[0].pid if children else 0
            children.append(subprocess.Popen(command, env=env, process_group=group))  # noqa: S603
        while not stop.wait(0.5):
            if any(child.poll() is not None for child in children):
                print("The Dagster webserver or daemon ended; stopping the other.", file=sys.stderr)
                break
    finally:
        if children:
            stop_group(children[0].pid, tuple(children))
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0 if received else 1


def stop_group(group: int, children: tuple[subprocess.Popen, ...] = (), grace_seconds: float = 20.0) -> None:
    """SIGINT to every process of ``group`` (Dagster's processes shut down cleanly on it, as on a
    terminal's Ctrl-C), SIGKILL to what is left after ``grace_seconds``; returns when the group is
    empty. Code servers and run workers are in the group too, so none outlives the sandbox. Our own
    ``children`` are polled so that, once ended, they don't stay in the group as zombies."""
    if not _signal_group(group, signal.SIGINT):
        return
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        for child in children:
            child.poll()
        if not _signal_group(group, 0):
            return
        time.sleep(0.2)
    _signal_group(group, signal.SIGKILL)
    while _signal_group(group, 0):
        for child in children:
            child.poll()
        time.sleep(0.1)


def _signal_group(group: int, signum: int) -> bool:
    """Whether the group still had a process (a zombie child of ours counts until reaped)."""
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        return False
    return True
