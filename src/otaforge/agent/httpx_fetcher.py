"""The real :class:`~otaforge.agent.fetcher.Fetcher`: httpx over TLS pinned to one CA.

Like ``esp_http_client`` configured with ``cert_pem = server_cert.pem``, ``timeout_ms = 10000``
and ``keep_alive_enable = true``: only certificates chaining to the given CA are accepted (no
system trust store), every connect/read/write has a 10 s timeout, and one connection is kept
alive and reused across requests. httpx exceptions become
:class:`~otaforge.errors.TransportError` values through the one mapping in
:mod:`otaforge.protocol.http_errors`.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx

from otaforge.agent.fetcher import Request, Response
from otaforge.errors import InputError, TransportError
from otaforge.protocol.httpx_errors import HTTPX_FAILURES, transport_error

DEFAULT_TIMEOUT = 10.0


def pinned_ssl_context(ca_pem: bytes) -> ssl.SSLContext:
    """An SSL context that trusts exactly the certificates in ``ca_pem`` (hostname checked).

    Raises:
        InputError: ``ca_pem`` holds no usable certificate.
    """
    fresh = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    fresh.minimum_version = ssl.TLSVersion.TLSv1_2
    fresh.check_hostname = True
    fresh.verify_mode = ssl.CERT_REQUIRED
    try:
        fresh.load_verify_locations(cadata=ca_pem.decode("ascii", errors="replace"))
    except (ssl.SSLError, ValueError, TypeError) as err:  # TypeError: not ASCII text at all
        raise InputError(f"CA certificate: not a usable PEM certificate ({err})") from None
    return fresh


def _https_only(request: httpx.Request) -> None:
    """Every request, redirects included, goes over TLS to the pinned CA: never plain HTTP."""
    if request.url.scheme != "https":
        raise TransportError(f"{request.method} {request.url}: refused: only https:// URLs "
                             "are fetched (TLS pinned to the server's CA)")


class HttpxFetcher:
    """Fetcher over one keep-alive httpx client with a pinned CA and 10 s timeouts.

    Args:
        ca_pem: PEM bytes of the CA (or self-signed server certificate) to trust.
        timeout: seconds for connect, read, write and pool waits.
    """

    def __init__(self, ca_pem: bytes, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._client = httpx.Client(
            verify=pinned_ssl_context(ca_pem),
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=2, max_keepalive_connections=1),
            follow_redirects=True,
            trust_env=False,
            event_hooks={"request": [_https_only]},
            # as esp_http_client: no compressed bodies, so Content-Length is the image size
            headers={"Accept-Encoding": "identity", "User-Agent": "otaforge-agent"},
        )

    @classmethod
    def from_file(cls, ca_path: str | Path, timeout: float = DEFAULT_TIMEOUT) -> HttpxFetcher:
        """Build from a PEM file such as ``server_cert.pem``.

        Raises:
            InputError: the file is missing or holds no certificate.
        """
        path = Path(ca_path)
        try:
            pem = path.read_bytes()
        except FileNotFoundError:
            raise InputError(f"{path}: CA certificate file not found") from None
        except OSError as err:  # a directory, permission denied
            raise InputError(f"{path}: cannot read the CA certificate ({err.strerror})") from None
        try:
            return cls(pem, timeout)
        except InputError as err:
            raise InputError(f"{path}: {err}") from None

    def open(self, request: Request) -> Response:
        """Send ``request``; the body streams from :attr:`Response.chunks`.

        Raises:
            ConnectionLost: refused, reset or timed out before the headers arrived.
            TransportError: TLS verification failed.
        """
        what = f"{request.method} {request.url}"
        try:
            req = self._client.build_request(
                request.method, request.url, headers=dict(request.headers), content=request.body
            )
            resp = self._client.send(req, stream=True)
        except HTTPX_FAILURES as err:
            raise transport_error(err, what) from err
        headers = {k.lower(): v for k, v in resp.headers.items()}
        return Response(resp.status_code, headers, self._chunks(resp, what), resp.close)

    @staticmethod
    def _chunks(resp: httpx.Response, what: str) -> Iterator[bytes]:
        try:
            for chunk in resp.iter_bytes():
                if chunk:
                    yield chunk
        except HTTPX_FAILURES as err:
            resp.close()
            raise transport_error(err, what) from err

    def close(self) -> None:
        """Close the kept-alive connection."""
        self._client.close()

    def __enter__(self) -> HttpxFetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
