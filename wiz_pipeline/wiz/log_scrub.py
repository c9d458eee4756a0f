"""httpx and httpcore log, at DEBUG, what a server answered, headers included; a server or proxy
that quotes a token back (in a ``Location``, say) would put it in those logs. Every token provider
registers here, and a filter on those libraries' loggers scrubs its secrets out of their records.
"""

from __future__ import annotations

import logging
import weakref
from typing import Protocol

# The loggers httpx 0.28 and httpcore 1.x write to. Filters on a logger see only its own records,
# not its children's, so each one is named.
THIRD_PARTY_LOGGERS = (
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)


class Redactor(Protocol):
    def redact(self, text: str) -> str: ...


_redactors: weakref.WeakSet[Redactor] = weakref.WeakSet()


class _ScrubSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        redactors = list(_redactors)
        if not redactors:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a record that can't format is not ours to fix; logging reports it
            return True
        cleaned = message
        for redactor in redactors:
            cleaned = redactor.redact(cleaned)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_FILTER = _ScrubSecrets()
for _name in THIRD_PARTY_LOGGERS:
    logging.getLogger(_name).addFilter(_FILTER)


def register(redactor: Redactor) -> None:
    """Scrub ``redactor``'s secrets from third-party HTTP logs for as long as it exists."""
    _redactors.add(redactor)
