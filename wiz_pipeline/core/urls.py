"""URL checks: credentials and tokens only ever travel over TLS, or stay on this machine.

The standard library's parser, so that settings and outputs can check a URL without loading the client.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from wiz_pipeline.core.errors import WizConfigError


def is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, *, name: str) -> str:
    """Return ``url`` if it is https, or http to a loopback host (the simulator); else raise.

    ``name`` is the setting the URL came from, so that the message says what to fix.
    """
    try:
        parsed = urlsplit(url)
        host = parsed.hostname or ""
        parsed.port  # noqa: B018  (reading it checks it: a port that is not a number raises here)
        if any(c.isspace() or ord(c) < 32 for c in url):
            raise ValueError("it contains spaces or control characters")
    except (ValueError, TypeError, AttributeError) as exc:
        raise WizConfigError(f"{name}={url!r} is not a valid URL ({exc}).") from exc
    if parsed.scheme not in ("https", "http"):
        raise WizConfigError(f"{name}={url!r} must start with https:// (or http:// to a loopback host).")
    if not host:
        raise WizConfigError(f"{name}={url!r} has no host; expected e.g. https://api.us1.app.wiz.io/graphql.")
    if "@" in parsed.netloc:
        # Never echo the URL here: its user info may be a password.
        raise WizConfigError(
            f"{name} must not carry a user name or password (user:pass@host); the client authenticates "
            "with WIZ_CLIENT_ID / WIZ_CLIENT_SECRET. Remove them from the URL."
        )
    if parsed.scheme == "http" and not is_loopback_host(host):
        raise WizConfigError(
            f"{name}={url!r} uses plain http to a non-loopback host; credentials and tokens must "
            "travel over https. Use https://, or http:// only for 127.0.0.1/localhost (the simulator)."
        )
    return url
