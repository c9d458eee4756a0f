"""Certificates from a locally generated CA (trustme), and the simulator served over HTTPS with them."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme

from wiz_pipeline.simulator import WizSimulator
from wiz_pipeline_tests.conftest import CLIENT_SECRET, HISTORY, T0, small_tenant

# What the machine running the tests may have set, and would change what a test proves.
HOST_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR", "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")


def forget_host_trust_and_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in HOST_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@dataclass(frozen=True)
class Certificates:
    ca: Path  # the CA's certificate: what WIZ_CA_BUNDLE or SSL_CERT_FILE points at
    server: Path  # the server's certificate chain and private key, for the simulator


def issue(directory: Path, *hosts: str, name: str = "corp") -> Certificates:
    """A fresh CA (``name`` tells files apart) and a server certificate from it, valid for ``hosts``."""
    ca = trustme.CA(organization_name=f"{name} proxy CA")
    directory.mkdir(parents=True, exist_ok=True)
    ca_file, server_file = directory / f"{name}-ca.pem", directory / f"{name}-server.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    ca.issue_cert(*hosts).private_key_and_cert_chain_pem.write_to_path(str(server_file))
    return Certificates(ca_file, server_file)


def https_simulator(certificates: Certificates, **kwargs: Any) -> WizSimulator:
    """The tests' usual tenant and credentials (as the ``sim`` fixture), served over HTTPS."""
    sim = WizSimulator(
        small_tenant(),
        client_id="test-client",
        client_secret=CLIENT_SECRET,
        tls_cert=certificates.server,
        **kwargs,
    )
    sim.set_now(T0 + HISTORY + timedelta(days=1))
    return sim


def wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    """Whether ``condition`` came true within ``seconds``: a client gives up on a handshake before the
    server's handler thread has counted it."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
