"""TLS behind a corporate proxy: the client against the simulator served over HTTPS on 127.0.0.1,
with certificates from CAs generated here (trustme), through a CONNECT proxy on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from wiz_pipeline.settings import load_settings
from wiz_pipeline.simulator import WizSimulator
from wiz_pipeline.wiz import WizClient, WizTLSError
from wiz_pipeline.wiz.tls import ssl_context
from wiz_pipeline_tests.conftest import client_options
from wiz_pipeline_tests.connect_proxy import ConnectProxy
from wiz_pipeline_tests.tls_helpers import (
    Certificates,
    forget_host_trust_and_proxies,
    https_simulator,
    issue,
    wait_until,
)

QUERY = "{ auditLogEntries(first: 2) { nodes { id } pageInfo { hasNextPage endCursor } } }"


@pytest.fixture(autouse=True)
def _no_proxy_or_trust_from_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    forget_host_trust_and_proxies(monkeypatch)


@pytest.fixture
def certs(tmp_path: Path) -> Certificates:
    return issue(tmp_path / "certs", "127.0.0.1", "localhost")


@pytest.fixture
def https_sim(certs: Certificates) -> Iterator[WizSimulator]:
    with https_simulator(certs) as sim:
        yield sim


def client_for(sim: WizSimulator, **overrides: Any) -> WizClient:
    settings = {
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
    return WizClient(client_options(**settings))


def nodes(client: WizClient) -> list[dict]:
    with client:
        return client.execute(QUERY, {}, operation="AuditLogs")["auditLogEntries"]["nodes"]


def test_certificates_are_verified_by_default_and_a_refusal_is_not_retried(https_sim):
    with pytest.raises(WizTLSError) as caught, client_for(https_sim) as client:
        client.execute(QUERY, {}, operation="AuditLogs")
    message = str(caught.value)
    assert message.startswith(f"Token request: the TLS certificate of 127.0.0.1:{https_sim.port} was refused")
    assert "unable to get local issuer certificate" in message and "WIZ_CA_BUNDLE" in message
    assert "\n" not in message and caught.value.__cause__ is None and caught.value.__context__ is None
    assert wait_until(lambda: https_sim.counters.tls_handshakes_failed == 1)
    # One connection, refused at the handshake: no retry, and no request ever reached the server.
    assert https_sim.counters.connections == 1 and https_sim.counters.requests == 0


def test_the_ca_bundle_makes_the_certificate_trusted(https_sim, certs):
    assert len(nodes(client_for(https_sim, ca_bundle=str(certs.ca)))) == 2
    assert https_sim.counters.tls_handshakes_failed == 0


def test_a_refused_certificate_at_the_graphql_endpoint_is_not_retried_and_names_its_host(tmp_path):
    # The token host (localhost) is in the certificate; the API host (127.0.0.1) is not.
    certs = issue(tmp_path / "certs", "localhost")
    with https_simulator(certs) as sim:
        client = client_for(
            sim, ca_bundle=str(certs.ca), token_url=f"https://localhost:{sim.port}/oauth/token"
        )
        with pytest.raises(WizTLSError) as caught, client:
            client.execute(QUERY, {}, operation="AuditLogs")
        assert str(caught.value).startswith(
            f"AuditLogs: the TLS certificate of 127.0.0.1:{sim.port} was refused"
        )
        assert "address mismatch" in str(caught.value) and "WIZ_CA_BUNDLE" in str(caught.value)
        assert wait_until(lambda: sim.counters.tls_handshakes_failed == 1)
        assert sim.counters.token_requests == 1 and sim.counters.graphql_requests == 0
        assert sim.counters.connections == 2  # the token's, and the API's one refused handshake


def test_ssl_cert_file_is_honoured_with_or_without_the_bundle(https_sim, certs, tmp_path, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(certs.ca))
    assert len(nodes(client_for(https_sim))) == 2
    # WIZ_CA_BUNDLE adds to SSL_CERT_FILE, it doesn't replace it: a host signed by either CA works.
    other = issue(tmp_path / "other", "127.0.0.1", name="private")
    with https_simulator(other) as private:
        assert len(nodes(client_for(private, ca_bundle=str(other.ca)))) == 2
        assert len(nodes(client_for(https_sim, ca_bundle=str(other.ca)))) == 2
    monkeypatch.delenv("SSL_CERT_FILE")
    with pytest.raises(WizTLSError):
        nodes(client_for(https_sim, ca_bundle=str(other.ca)))


def test_the_bundle_adds_to_the_public_roots_rather_than_replacing_them(certs):
    public = ssl_context(None).cert_store_stats()["x509_ca"]
    assert public > 50  # certifi's roots, so that public hosts (or NO_PROXY ones) still verify
    assert ssl_context(str(certs.ca)).cert_store_stats()["x509_ca"] == public + 1


def test_https_proxy_tunnels_both_endpoints_and_no_proxy_bypasses_it(https_sim, certs, monkeypatch):
    target = f"127.0.0.1:{https_sim.port}"
    with ConnectProxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        assert len(nodes(client_for(https_sim, ca_bundle=str(certs.ca)))) == 2
        assert proxy.targets and set(proxy.targets) == {target}
        assert https_sim.counters.token_requests == 1 and https_sim.counters.graphql_requests == 1
        # Through the tunnel, the certificate is still the server's and still checked.
        with pytest.raises(WizTLSError, match=f"certificate of {target} was refused"):
            nodes(client_for(https_sim))
        tunnelled = len(proxy.targets)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        assert len(nodes(client_for(https_sim, ca_bundle=str(certs.ca)))) == 2
        assert len(proxy.targets) == tunnelled


def test_a_dead_proxy_is_a_network_failure_and_no_proxy_goes_around_it(https_sim, certs, monkeypatch):
    import socket

    from wiz_pipeline.wiz import WizRetriesExhaustedError

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]  # nothing listens there once the probe is closed
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{dead}")
    with pytest.raises(WizRetriesExhaustedError, match="ConnectError"):
        nodes(client_for(https_sim, ca_bundle=str(certs.ca), max_retries=1))
    assert https_sim.counters.connections == 0
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    assert len(nodes(client_for(https_sim, ca_bundle=str(certs.ca)))) == 2


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "no such file"),
        ("directory", "is a directory"),
        (b"not a certificate\n", "holds no PEM certificate"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "holds no PEM certificate"),
    ],
)
def test_a_bad_ca_bundle_is_refused_when_the_settings_load_in_one_line(tmp_path, content, says):
    from wiz_pipeline.orchestration.definitions import build_definitions
    from wiz_pipeline.settings import SettingsError

    path = tmp_path / "bundle.pem"
    if content == "directory":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(SettingsError) as caught:
        build_definitions({"WIZ_CA_BUNDLE": str(path), "WIZ_OUTPUT_URI": str(tmp_path / "data")})
    lines = [line.strip() for line in str(caught.value).splitlines() if "WIZ_CA_BUNDLE" in line]
    assert lines == [lines[0]] and lines[0].startswith(f"WIZ_CA_BUNDLE={path}: {says}")


def test_a_good_ca_bundle_travels_to_the_client_as_an_absolute_path(certs, monkeypatch):
    monkeypatch.chdir(certs.ca.parent)
    settings = load_settings({"WIZ_CA_BUNDLE": certs.ca.name})
    assert settings.ca_bundle == str(certs.ca)
    assert settings.client_options()["ca_bundle"] == str(certs.ca)
    assert load_settings({}).ca_bundle == ""


def test_a_ca_bundle_gone_by_the_time_a_run_starts_is_one_line_naming_it(https_sim, tmp_path):
    from wiz_pipeline.wiz import WizConfigError

    gone = tmp_path / "gone.pem"
    with pytest.raises(WizConfigError) as caught:
        client_for(https_sim, ca_bundle=str(gone))
    assert str(caught.value) == (
        f"WIZ_CA_BUNDLE={gone}: can't be loaded where this run runs (No such file or directory); "
        "make the file available there too."
    )


def test_the_command_line_simulator_serves_https(certs, tmp_path):
    command = [
        sys.executable,
        "-m",
        "wiz_pipeline.cli",
        "simulator",
        "--port",
        "0",
        "--tls-cert",
        str(certs.server),
    ]
    command += ["--days", "0.1", "--days-ahead", "0", "--audit-entries", "50", "--issues", "5"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = process.stdout.readline()
        assert first.startswith("Wiz API simulator listening on https://127.0.0.1:"), first
        url = first.split()[5]
        answer = httpx.get(url, verify=ssl_context(str(certs.ca)), timeout=10)
        assert answer.status_code == 200 and answer.json()["graphql"] == f"{url}/graphql"
    finally:
        process.kill()
        process.wait(timeout=10)
    command[command.index("--tls-cert") + 1] = str(tmp_path / "missing.pem")
    bad = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith("--tls-cert/--tls-key: cannot load the certificate and key")
    assert len(bad.stderr.strip().splitlines()) == 1
