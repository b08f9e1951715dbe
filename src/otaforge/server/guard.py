"""Connection guards for uvicorn's HTTP protocols: header and body read deadlines, and a limit
of open connections per client address (slowloris and stalled-body defences).

uvicorn bounds neither how long a client may take to send its request headers nor how long
a body may trickle in, so a few hundred connections that send ``Content-Length: 100`` and one
byte would hold server slots forever. :func:`guarded_protocol` subclasses uvicorn's protocol
class (h11 or httptools, whichever runs) with one timer per connection:

* **headers** -- armed when the connection opens and when the first byte of a kept-alive
  connection's next request arrives; headers incomplete when it fires: ``408`` and close.
* **body** -- armed when the headers are complete and a body is still to come
  (``upload_timeout_s`` for release uploads, ``body_timeout_s`` otherwise); the body
  incomplete when it fires: ``408`` and close; the application sees a client disconnect.

A client address with ``max_connections_per_client`` connections open gets ``429`` and a
close on the next one. HTTP/1.1 serves one request at a time per connection, so this also
bounds the requests one address has in progress. Between requests, uvicorn's own keep-alive
timeout closes idle connections.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from otaforge.protocol.problem import PROBLEM_MEDIA_TYPE, problem_body
from otaforge.server.delivery import EXTENSION, Connection

log = logging.getLogger("otaforge.server")
UPLOAD_PATH = re.compile(r"^/api/v1/fleets/[^/]+/releases$|^/ui/releases/publish$")


@dataclass(frozen=True)
class Limits:
    """Per-connection bounds.

    Attributes:
        header_timeout_s: seconds a client has to send a request's headers.
        body_timeout_s: seconds a client has to send a (non-upload) request body.
        upload_timeout_s: seconds for the body of a release upload.
        max_connections_per_client: open connections one client address may hold.
    """

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    upload_timeout_s: float = 300.0
    max_connections_per_client: int = 64


def raw_problem(status: int, phrase: str, detail: str, reason: str,
                extra: dict[str, str] | None = None) -> bytes:
    """A complete HTTP/1.1 problem+json response that closes the connection."""
    body = json.dumps(problem_body(status, detail, reason), separators=(",", ":")).encode()
    head = [f"HTTP/1.1 {status} {phrase}", f"content-type: {PROBLEM_MEDIA_TYPE}",
            f"content-length: {len(body)}", "connection: close",
            *(f"{k}: {v}" for k, v in (extra or {}).items())]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def guarded_protocol(base: type[Any], limits: Limits) -> type[asyncio.Protocol]:
    """A subclass of uvicorn's ``base`` protocol class enforcing ``limits``."""
    per_client: Counter[str] = Counter()

    class Guarded(base):  # type: ignore[misc, valid-type]
        _guard_timer: asyncio.TimerHandle | None = None
        _guard_phase = "headers"  # "headers" | "body" | "serving" | "idle"
        _guard_cycle: Any = None
        _guard_ip: str | None = None
        _guard_conn: Connection | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._guard_conn = Connection(transport)
            self._guard_ip = self.client[0] if self.client else None
            if self._guard_ip is not None:
                per_client[self._guard_ip] += 1
                if per_client[self._guard_ip] > limits.max_connections_per_client:
                    log.warning("429: %s already has %d connections open",
                                self._guard_ip, limits.max_connections_per_client)
                    self._refuse(raw_problem(
                        429, "Too Many Requests", f"more than "
                        f"{limits.max_connections_per_client} connections from this address",
                        "too_many_connections", {"retry-after": "5"}))
                    return
            self._arm("headers", limits.header_timeout_s)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if self._guard_conn is not None:
                self._guard_conn.lost = True
            if self._guard_ip is not None:
                per_client[self._guard_ip] -= 1
                if per_client[self._guard_ip] <= 0:
                    del per_client[self._guard_ip]
                self._guard_ip = None
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._guard_phase == "idle":  # first byte of the next request
                self._arm("headers", limits.header_timeout_s)
            super().data_received(data)
            self._follow()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self.cycle is self._guard_cycle:
                self._guard_phase = "idle"
                self._disarm()
            self._follow()

        def _follow(self) -> None:
            """Move the timer along with the request the parser has reached."""
            cycle = self.cycle
            if cycle is None or cycle.response_complete:
                return
            if cycle is not self._guard_cycle:  # headers complete (the app has not started)
                self._guard_cycle = cycle
                cycle.scope.setdefault("extensions", {})[EXTENSION] = self._guard_conn
                if cycle.more_body:
                    upload = UPLOAD_PATH.match(cycle.scope.get("path", "")) is not None
                    self._arm("body", limits.upload_timeout_s if upload
                              else limits.body_timeout_s)
                else:
                    self._serving()
            elif self._guard_phase == "body" and not cycle.more_body:
                self._serving()

        def _serving(self) -> None:
            self._guard_phase = "serving"
            self._disarm()

        def _arm(self, phase: str, seconds: float) -> None:
            self._disarm()
            self._guard_phase = phase
            self._guard_timer = self.loop.call_later(seconds, self._expired)

        def _disarm(self) -> None:
            if self._guard_timer is not None:
                self._guard_timer.cancel()
                self._guard_timer = None

        def _expired(self) -> None:
            self._guard_timer = None
            if self.transport is None or self.transport.is_closing():
                return
            phase = self._guard_phase
            seconds = limits.header_timeout_s if phase == "headers" else (
                limits.upload_timeout_s if self._is_upload() else limits.body_timeout_s)
            who = self._guard_ip or "a client"
            log.warning("408: %s sent no complete request %s in %g s; connection closed",
                        who, "headers" if phase == "headers" else "body", seconds)
            cycle = self.cycle
            started = cycle is not None and not cycle.response_complete and \
                cycle.response_started
            if phase == "body" and cycle is not None:
                cycle.disconnected = True  # the app sees http.disconnect; its answer is dropped
                cycle.message_event.set()
            what = "headers" if phase == "headers" else "body"
            self._refuse(b"" if started else raw_problem(
                408, "Request Timeout", f"request {what} not received within {seconds:g} s",
                "request_timeout"))

        def _is_upload(self) -> bool:
            cycle = self.cycle
            return cycle is not None and UPLOAD_PATH.match(cycle.scope.get("path", "")) \
                is not None

        def _refuse(self, response: bytes) -> None:
            self._disarm()
            self._guard_phase = "closed"
            if response:
                self.transport.write(response)
            self.transport.close()

    Guarded.__name__ = Guarded.__qualname__ = f"Guarded{base.__name__}"
    return Guarded
