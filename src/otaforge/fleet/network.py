"""The devices' network: the real HTTPS fetcher, with each device's link in virtual time.

:class:`SimFetcher` wraps the agent's real :class:`~otaforge.agent.fetcher.Fetcher` (httpx,
TLS pinned to the server's CA); per device turn the engine sets a :class:`Link`: the latency
and bandwidth drawn for that device (virtual time passes by latency per request and
bytes / bandwidth while a body streams) and, when the fault profile says so, a drop after a
number of firmware bytes (:class:`~otaforge.errors.ConnectionLost`, which the agent resumes
from with a Range request). Bytes of firmware served are counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from otaforge.agent.fetcher import Fetcher, Request, Response
from otaforge.errors import ConnectionLost
from otaforge.fleet.clock import FleetClock

FIRMWARE_PATH = "/firmware/"


@dataclass
class Link:
    """One device's connection during its turn.

    Attributes:
        latency_s: added per request.
        bandwidth: bytes per second while a body streams.
        drop_after: firmware bytes after which the connection drops (once), or None.
    """

    latency_s: float = 0.0
    bandwidth: float = float("inf")
    drop_after: int | None = None


class SimFetcher:
    """A :class:`Fetcher` over a real one, with the current device's link applied.

    Attributes:
        link: the link of the device whose turn it is.
        firmware_bytes: firmware body bytes the server sent (all devices).
        requests: requests sent.
        drops: connections dropped on purpose.
    """

    def __init__(self, inner: Fetcher, clock: FleetClock) -> None:
        self.inner = inner
        self.clock = clock
        self.link = Link()
        self.firmware_bytes = 0
        self.requests = 0
        self.drops = 0

    def open(self, request: Request) -> Response:
        """Send ``request`` after the link's latency; its body streams at the link's rate."""
        self.requests += 1
        self.clock.advance(self.link.latency_s)
        response = self.inner.open(request)
        if FIRMWARE_PATH in request.url:
            response.chunks = self._firmware(response, response.chunks)
        return response

    def _firmware(self, response: Response, chunks: Iterator[bytes]) -> Iterator[bytes]:
        link = self.link
        for chunk in chunks:
            if link.drop_after is not None and len(chunk) >= link.drop_after:
                part = chunk[: link.drop_after]
                link.drop_after = None
                self.drops += 1
                self._count(len(part))
                if part:
                    yield part
                response.close()
                raise ConnectionLost("connection dropped mid-download (simulated fault)")
            if link.drop_after is not None:
                link.drop_after -= len(chunk)
            self._count(len(chunk))
            yield chunk

    def _count(self, n: int) -> None:
        self.firmware_bytes += n
        if self.link.bandwidth != float("inf"):
            self.clock.advance(n / self.link.bandwidth)
