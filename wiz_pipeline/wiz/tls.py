"""Which certificates the client trusts, and how a certificate it refused is reported.

Trust is httpx's own (``SSL_CERT_FILE``, else ``SSL_CERT_DIR``, else certifi's public roots) plus, when
``WIZ_CA_BUNDLE`` is set, the CAs in that file. Added, not replacing: behind a TLS-inspecting proxy
the Wiz hosts' certificates are signed by the proxy's private CA, while hosts the proxy lets through
untouched (or that ``NO_PROXY`` sends direct) still show public ones, and both must work.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import httpx

from wiz_pipeline.wiz.errors import WizConfigError

CA_BUNDLE_VARIABLE = "WIZ_CA_BUNDLE"


def check_ca_bundle(name: str, text: str) -> str:
    """``text`` as an absolute path to a readable PEM file holding at least one certificate, or ""
    (unset); otherwise a ``WizConfigError`` naming ``name`` in one line."""
    text = text.strip()
    if not text:
        return ""
    path = Path(text).expanduser().absolute()
    if not path.is_file():
        problem = "is a directory, not a file" if path.is_dir() else "no such file"
        raise WizConfigError(f"{name}={text}: {problem}; set it to the PEM file of your proxy's CA.")
    if not os.access(path, os.R_OK):
        raise WizConfigError(f"{name}={text}: the file is not readable by this user; fix its permissions.")
    # A bare context: only the file's certificates are counted, none of the system's.
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        probe.load_verify_locations(cafile=str(path))
    except (ssl.SSLError, ValueError, UnicodeDecodeError):
        probe = None
    if probe is None or not probe.cert_store_stats()["x509"]:
        raise WizConfigError(
            f"{name}={text}: holds no PEM certificate (-----BEGIN CERTIFICATE-----); export the CA "
            "certificate in PEM (base64) form."
        )
    return str(path)


def ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    """The context for the API and token hosts: httpx's default trust plus ``ca_bundle``. Made by
    httpx's own function, because a context handed to httpx replaces all of its trust handling,
    ``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` included."""
    context = httpx.create_ssl_context(trust_env=True)
    if ca_bundle:
        try:
            context.load_verify_locations(cafile=ca_bundle)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            # Checked when the settings loaded, but a run may start on another machine or pod.
            raise WizConfigError(
                f"{CA_BUNDLE_VARIABLE}={ca_bundle}: can't be loaded where this run runs "
                f"({getattr(exc, 'strerror', None) or exc}); make the file available there too."
            ) from None
    return context


def certificate_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate error behind an httpx failure, if that is what it was (httpx and httpcore
    chain the original exception as the cause)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def certificate_message(what: str, url: str, failure: ssl.SSLCertVerificationError) -> str:
    """One line naming the host whose certificate was refused, why, and the setting that fixes it."""
    parsed = httpx.URL(url)
    host = f"{parsed.host}:{parsed.port}" if parsed.port else parsed.host
    reason = failure.verify_message or failure.reason or "certificate verify failed"
    return (
        f"{what}: the TLS certificate of {host} was refused ({reason}); not retried. If a proxy or a "
        f"private CA signs it, set {CA_BUNDLE_VARIABLE} to that CA's PEM file "
        "(see docs/deploying.md, TLS and proxies)."
    )
