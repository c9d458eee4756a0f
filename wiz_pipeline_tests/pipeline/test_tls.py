"""Dagster runs against the simulator served over HTTPS with a certificate from a CA made here: trusted
through WIZ_CA_BUNDLE or SSL_CERT_FILE the data is exact; refused, the run ends at once in one line."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from wiz_pipeline.orchestration.checkpoints import checkpoint
from wiz_pipeline_tests.connect_proxy import ConnectProxy
from wiz_pipeline_tests.pipeline.conftest import SEED, Pipeline
from wiz_pipeline_tests.tls_helpers import (
    Certificates,
    forget_host_trust_and_proxies,
    https_simulator,
    issue,
    wait_until,
)


@dataclass
class TLSPipeline(Pipeline):
    certs: Certificates | None = None

    def trust(self) -> None:
        self.env["WIZ_CA_BUNDLE"] = str(self.certs.ca)

    def materialized(self) -> set[str]:
        return self.instance.get_materialized_partitions(self.collection().asset_key)


@pytest.fixture(autouse=True)
def _no_proxy_or_trust_from_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    forget_host_trust_and_proxies(monkeypatch)


def tls_pipeline(tmp_path: Path, *hosts: str) -> Iterator[TLSPipeline]:
    certs = issue(tmp_path / "certs", *hosts)
    env = {
        "WIZ_OUTPUT_URI": str(tmp_path / "data"),
        "AUDIT_SINCE_TIME": SEED,
        "ISSUES_SINCE_TIME": SEED,
        "WIZ_POLL_INTERVAL_SECONDS": "1800",
        "WIZ_WINDOW_LAG_SECONDS": "300",
    }
    with https_simulator(certs) as sim, dg.instance_for_test() as instance:
        yield TLSPipeline(sim, env, instance, tmp_path / "data", {}, certs=certs)


@pytest.fixture
def https(tmp_path: Path) -> Iterator[TLSPipeline]:
    """The simulator's certificate names 127.0.0.1 and localhost, as a proxy's re-signed one would."""
    yield from tls_pipeline(tmp_path, "127.0.0.1", "localhost")


def refusal(result: dg.ExecuteInProcessResult):
    """The error that failed the run's step (Dagster wraps it: the cause is ours)."""
    assert not result.success
    [failure] = result.get_step_failure_events()
    return failure.step_failure_data.error.cause


def test_with_the_ca_bundle_a_run_over_https_collects_exactly_what_plain_http_does(https, pipeline):
    https.trust()
    keys = https.keys()
    assert https.run(keys[0], keys[-1]).success
    assert pipeline.run(keys[0], keys[-1]).success  # the same tenant over plain http
    over_tls, over_http = https.table().sort_by("id"), pipeline.table().sort_by("id")
    assert over_tls.num_rows == over_http.num_rows > 0
    assert over_tls.to_pylist() == over_http.to_pylist()
    assert [f.relative_to(https.root) for f in https.files()] == [
        f.relative_to(pipeline.root) for f in pipeline.files()
    ]


def test_without_the_bundle_a_run_fails_at_once_in_one_line_and_writes_nothing(https):
    keys = https.keys()
    https.trust()
    assert https.run(keys[0]).success
    files, moved_to = https.files(), checkpoint(https.instance, https.collection())
    connections, requests = https.sim.counters.connections, https.sim.counters.requests
    del https.env["WIZ_CA_BUNDLE"]
    result = https.run(keys[1], keys[3])
    error = refusal(result)
    assert error.cls_name == "WizTLSError"
    assert len(error.message.strip().splitlines()) == 1 and error.cause is None
    assert f"the TLS certificate of 127.0.0.1:{https.sim.port} was refused" in error.message
    assert "unable to get local issuer certificate" in error.message and "WIZ_CA_BUNDLE" in error.message
    # At once: one connection, refused at its handshake, and no retry after it.
    assert wait_until(lambda: https.sim.counters.tls_handshakes_failed == 1)
    assert https.sim.counters.connections == connections + 1 and https.sim.counters.requests == requests
    # Nothing written, nothing recorded, the checkpoint where it was.
    assert https.files() == files and not [p for p in https.root.rglob("*") if ".tmp-" in p.name]
    assert not result.get_asset_materialization_events() and https.materialized() == {keys[0]}
    assert checkpoint(https.instance, https.collection()) == moved_to


@pytest.fixture
def wrong_host(tmp_path: Path) -> Iterator[TLSPipeline]:
    yield from tls_pipeline(tmp_path, "wiz.example.com")


def test_a_certificate_for_another_host_fails_the_run_the_same_way(wrong_host):
    wrong_host.trust()
    result = wrong_host.run(wrong_host.keys()[0])
    error = refusal(result)
    assert error.cls_name == "WizTLSError" and len(error.message.strip().splitlines()) == 1
    assert f"certificate of 127.0.0.1:{wrong_host.sim.port} was refused (IP address mismatch" in error.message
    assert "WIZ_CA_BUNDLE" in error.message
    assert wait_until(lambda: wrong_host.sim.counters.tls_handshakes_failed == 1)
    assert wrong_host.sim.counters.connections == 1 and not wrong_host.files()


@pytest.fixture
def localhost_only(tmp_path: Path) -> Iterator[TLSPipeline]:
    yield from tls_pipeline(tmp_path, "localhost")


def test_a_refused_certificate_at_the_graphql_endpoint_fails_the_run_the_same_way(localhost_only):
    sim = localhost_only.sim
    localhost_only.trust()
    # The token host's name is in the certificate; the API's (127.0.0.1) is not.
    localhost_only.overrides["token_url"] = f"https://localhost:{sim.port}/oauth/token"
    error = refusal(localhost_only.run(localhost_only.keys()[0]))
    assert error.cls_name == "WizTLSError" and len(error.message.strip().splitlines()) == 1
    assert f"certificate of 127.0.0.1:{sim.port} was refused" in error.message
    assert "WIZ_CA_BUNDLE" in error.message
    assert wait_until(lambda: sim.counters.tls_handshakes_failed == 1)
    assert sim.counters.token_requests == 1 and sim.counters.graphql_requests == 0
    assert sim.counters.connections == 2 and not localhost_only.files()


def test_ssl_cert_file_lets_a_run_through_without_the_bundle(https, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(https.certs.ca))
    assert https.run(https.keys()[0]).success
    assert len(https.files()) == 1 and https.sim.counters.tls_handshakes_failed == 0


def test_a_run_goes_through_https_proxy_unless_no_proxy_names_the_host(https, monkeypatch):
    https.trust()
    keys = https.keys()
    with ConnectProxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        assert https.run(keys[0]).success
        assert proxy.targets and set(proxy.targets) == {f"127.0.0.1:{https.sim.port}"}
        tunnelled = len(proxy.targets)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        assert https.run(keys[1]).success
        assert len(proxy.targets) == tunnelled
    assert len(https.files()) == 2
