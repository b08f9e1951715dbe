"""Keep download secrets out of logs.

A device's download URL ``/dl/<secret>.bin`` is a credential (it needs no header), so every
log line that could carry a request path goes through :func:`redact`: uvicorn's access log
gets a filter, and otaforge's own log lines call it.
"""

from __future__ import annotations

import logging
import re

SECRET_PATH = re.compile(r"/dl/[^/?#\s\"]+")
REDACTED = "/dl/<redacted>.bin"


def redact(text: str) -> str:
    """``text`` with every ``/dl/<secret>...`` path replaced by ``/dl/<redacted>.bin``."""
    return SECRET_PATH.sub(REDACTED, text)


class RedactSecrets(logging.Filter):
    """Rewrites a record's message and arguments so no download secret reaches a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def redact_access_log(*names: str) -> None:
    """Install :class:`RedactSecrets` on uvicorn's access and error loggers (once each)."""
    for name in names or ("uvicorn.access", "uvicorn.error", "otaforge.server"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
