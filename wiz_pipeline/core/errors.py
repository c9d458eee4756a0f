"""The errors every layer may raise: a bad setting or input, named so that an operator can act on it.

``WizConfigError`` is raised by settings, outputs, the ledger's bounds and the commands as well as by the
client, so it lives here, below all of them; the client's own errors (``wiz.errors``) derive from
``WizError``.
"""

from __future__ import annotations


class WizError(Exception):
    """Base class for everything the Wiz client raises."""


class WizConfigError(WizError, ValueError):
    """A setting is unusable (bad URL, page size out of range, ...)."""
