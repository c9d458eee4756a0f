"""Every test talks to a real simulator over HTTP on 127.0.0.1; nothing reaches a real Wiz host."""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from wiz_pipeline.settings import load_settings
from wiz_pipeline.simulator import Tenant, WizSimulator, generate_tenant
from wiz_pipeline.wiz import WizClient, WizOptions
from wiz_pipeline_tests.postgres_server import PostgresServer, PostgresUnavailable, start_server, stop_server

# A fixed history, so that every figure a test checks is reproducible.
T0 = datetime(2025, 9, 12, 21, 0, tzinfo=UTC)
HISTORY = timedelta(hours=6)
CLIENT_SECRET = "test-secret-8c1f0b5d7e2a4c9b"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--screenshots",
        metavar="DIR",
        help="the Dagster UI test saves its screenshots here (scripts/screenshots: docs/ui) instead of "
        "a temporary directory",
    )


def client_options(**fields: Any) -> WizOptions:
    """Options as the settings' defaults make them, with ``fields`` (the endpoint, credentials, tuning)."""
    return load_settings({}).wiz_options(**fields)


def small_tenant(**kwargs: Any) -> Tenant:
    return generate_tenant(T0, T0 + HISTORY, **{"audit_entries": 600, "issues": 120, "seed": 11, **kwargs})


def audit_entry(stamp: str, ident: str) -> dict:
    return {
        "id": ident,
        "action": "Login",
        "requestId": ident,
        "status": "SUCCESS",
        "timestamp": stamp,
        "actionParameters": {},
        "userAgent": "",
        "sourceIP": None,
        "serviceAccount": None,
        "user": {"id": "u1", "name": "admin"},
    }


@pytest.fixture
def sim() -> Iterator[WizSimulator]:
    simulator = WizSimulator(small_tenant(), client_id="test-client", client_secret=CLIENT_SECRET)
    simulator.set_now(T0 + HISTORY + timedelta(days=1))
    with simulator:
        yield simulator


@pytest.fixture
def make_client(sim: WizSimulator) -> Iterator[Callable[..., WizClient]]:
    """A client for ``sim`` with quick backoff and no practical rate limit unless a test asks."""
    clients: list[WizClient] = []

    def make(**overrides: Any) -> WizClient:
        settings: dict[str, Any] = {
            "api_url": sim.graphql_url,
            "token_url": sim.token_url,
            "client_id": sim.client_id,
            "client_secret": sim.client_secret,
            "backoff_base_seconds": 0.01,
            "backoff_max_seconds": 0.05,
            "max_requests_per_second": 1000,
            "request_timeout_seconds": 5,
            **overrides,
        }
        client = WizClient(client_options(**settings))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


_databases = itertools.count()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server on 127.0.0.1 for the session; never skipped in CI."""
    try:
        server = start_server()
    except PostgresUnavailable as error:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI needs a PostgreSQL server: {error}", pytrace=False)
        pytest.skip(f"no PostgreSQL server: {error}")
    yield server
    stop_server(server)


@pytest.fixture
def postgres_env(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> dict[str, str]:
    """The DAGSTER_PG_* variables for a fresh database of this test's own."""
    name = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:50]
    return postgres_server.env(postgres_server.create_database(f"t{next(_databases)}_{name}"))


def stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM the group a test started (``start_new_session=True``), SIGKILL it after 30 s."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
