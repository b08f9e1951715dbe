"""The simulated devices' HTTPS client: kept-alive TLS connections, pinned to the CA.

A lean :class:`~otaforge.agent.fetcher.Fetcher` over :mod:`http.client` for a fleet of
thousands of devices that take turns on one loopback connection: the same TLS (1.2+, the
server's CA pinned, hostname checked, :func:`~otaforge.agent.httpx_fetcher.pinned_ssl_context`)
and the same contract as the agent's httpx fetcher (transport failures are
:class:`~otaforge.errors.ConnectionLost`, HTTP statuses are values), without httpx's per
request machinery, which costs more than the server's check-in itself. Only ``https://`` URLs
of the one server are fetched; no redirects are followed (the device API sends none).
"""

from __future__ import annotations

import http.client
import ssl
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

from otaforge.agent.fetcher import Request, Response
from otaforge.agent.httpx_fetcher import pinned_ssl_context
from otaforge.errors import ConnectionLost, TransportError

CHUNK = 64 * 1024
TIMEOUT_S = 10.0  # esp_http_client's timeout_ms = 10000
FAILURES = (OSError, http.client.HTTPException, ssl.SSLError)
MAX_IDLE = 2
HEADERS = {"Accept-Encoding": "identity", "User-Agent": "otaforge-agent"}


class WireFetcher:
    """Fetcher over kept-alive :class:`http.client.HTTPSConnection` s to ``base_url``.

    Args:
        base_url: ``https://host:port`` of the server.
        ca_pem: PEM bytes of the CA to trust.
        timeout: seconds for connect and each read.
    """

    def __init__(self, base_url: str, ca_pem: bytes, timeout: float = TIMEOUT_S) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "https" or not parts.hostname:
            raise TransportError(f"{base_url}: refused: only https:// servers are fetched")
        self.host, self.port = parts.hostname, parts.port or 443
        self.origin = f"https://{parts.netloc}"
        self.context = pinned_ssl_context(ca_pem)
        self.timeout = timeout
        self._idle: list[http.client.HTTPSConnection] = []

    def _take(self) -> http.client.HTTPSConnection:
        """An idle kept-alive connection, or a new one (the agent reports progress while a
        download is open, so two can be in use, as with esp_http_client's two handles)."""
        if self._idle:
            return self._idle.pop()
        return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                           context=self.context)

    def _give_back(self, conn: http.client.HTTPSConnection, reusable: bool) -> None:
        if reusable and len(self._idle) < MAX_IDLE:
            self._idle.append(conn)
        else:
            conn.close()

    def open(self, request: Request) -> Response:
        """Send ``request``; the body streams from :attr:`Response.chunks`.

        Raises:
            ConnectionLost: refused, reset or timed out before the headers arrived.
            TransportError: not a URL of this server, or TLS verification failed.
        """
        what = f"{request.method} {request.url}"
        if not request.url.startswith(self.origin + "/"):
            raise TransportError(f"{what}: refused: not a URL of {self.origin}")
        path = request.url[len(self.origin):]
        headers = {**HEADERS, **request.headers}
        for attempt in (0, 1):  # a kept-alive connection the server closed: reconnect once
            fresh = not self._idle
            conn = self._take()
            try:
                conn.request(request.method, path, body=request.body, headers=headers)
                resp = conn.getresponse()
                break
            except ssl.SSLCertVerificationError as err:
                conn.close()
                raise TransportError(f"{what}: TLS verification failed ({err})") from err
            except FAILURES as err:
                conn.close()
                if attempt or fresh:
                    raise ConnectionLost(f"{what}: {err or type(err).__name__}") from err
        headers_out = {k.lower(): v for k, v in resp.getheaders()}
        done = [False]

        def close() -> None:
            if not done[0]:
                done[0] = True
                # an unread body: this connection cannot carry another request
                self._give_back(conn, resp.isclosed() and not resp.will_close)

        return Response(resp.status, headers_out, self._chunks(resp, what, close), close)

    @staticmethod
    def _chunks(resp: http.client.HTTPResponse, what: str,
                close: Callable[[], None]) -> Iterator[bytes]:
        try:
            while not resp.isclosed():
                if resp.length is not None and resp.length <= 0:
                    resp.close()  # the whole body is in: the connection can be reused
                    break
                chunk = resp.read1(CHUNK)
                if not chunk:
                    break
                yield chunk
        except FAILURES as err:  # timeouts are OSErrors too
            close()
            raise ConnectionLost(f"{what}: {err or type(err).__name__}") from err

    def close(self) -> None:
        """Close the kept-alive connections."""
        while self._idle:
            self._idle.pop().close()

    def __enter__(self) -> WireFetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
