"""Did the client receive what we sent? TCP's answer, for the stock routes' "downloaded
completely" record.

Handing the last chunk to the server does not mean the device has it: the kernel's send
buffer can hold a large part of an image when a device drops off Wi-Fi. So after the last
chunk, :func:`wait_delivered` watches the connection's unacknowledged bytes (the transport's
buffer plus the socket's ``TIOCOUTQ``) fall to zero: the peer's TCP acknowledged it all.
The connection guard (:mod:`otaforge.server.guard`) hands a :class:`Connection` to the
request in ``scope["extensions"]["otaforge.connection"]``; without it (in-process tests,
other platforms), delivery is unknown and the caller keeps what it assumed.

When the socket closes first, the device did not take it all (a device acknowledges an image
long before it closes: it still verifies it), unless the server closed it itself (the request
asked for ``Connection: close``): then the kernel finishes sending, and it is unknown.
"""

from __future__ import annotations

import asyncio
import fcntl
import sys
import termios
from typing import Any

from starlette.types import Scope

EXTENSION = "otaforge.connection"
TIOCOUTQ = getattr(termios, "TIOCOUTQ", None)


class Connection:
    """A connection's transport, and whether it is gone (set by the guard)."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.lost = False


def unacknowledged(transport: Any) -> int | None:
    """Bytes written to ``transport`` that its peer has not acknowledged (None: unknown)."""
    if TIOCOUTQ is None:
        return None
    try:
        sock = transport.get_extra_info("socket")
        queued = fcntl.ioctl(sock.fileno(), TIOCOUTQ, bytes(4))
        return int(transport.get_write_buffer_size()) + int.from_bytes(queued, sys.byteorder)
    except (AttributeError, OSError, ValueError, TypeError):
        return None


def connection(scope: Scope) -> Connection | None:
    """The request's connection, when the guard provided it."""
    conn: Connection | None = scope.get("extensions", {}).get(EXTENSION)
    return conn


async def wait_delivered(scope: Scope, timeout_s: float) -> tuple[bool | None, int]:
    """Wait until everything sent on this request's connection is acknowledged.

    Returns:
        (True, 0) when it was; (False, bytes still unacknowledged) when the connection closed
        or ``timeout_s`` passed first; (None, 0) when it cannot tell (no connection facts,
        or the request asked the server to close the connection: then the kernel finishes
        sending after the socket is gone).
    """
    conn = connection(scope)
    if conn is None or conn.lost:
        return (None, 0) if conn is None else (False, 0)
    closing = any(k == b"connection" and b"close" in v.lower() for k, v in scope["headers"])
    closing = closing or scope.get("http_version") == "1.0"
    loop = asyncio.get_running_loop()
    deadline, pause = loop.time() + timeout_s, 0.001
    last = unacknowledged(conn.transport)
    if last is None:
        return None, 0
    while True:
        pending = unacknowledged(conn.transport)
        if pending == 0:
            return True, 0
        if pending is None:  # the socket closed with bytes unacknowledged
            return (None, 0) if closing else (False, last)
        if loop.time() > deadline:
            return False, pending
        last = pending
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.005)  # a device may close soon after its last ACK
