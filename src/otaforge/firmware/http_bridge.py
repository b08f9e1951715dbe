"""The emulated ESP32's network: esp_http_client requests made for real with httpx.

As mbedTLS does for ``esp_http_client``, an https request trusts only the ``cert_pem`` the
firmware passed (no system CAs); without it, or with a certificate that does not verify, the
connection fails (ESP_ERR_HTTP_CONNECT to the firmware). ``--host NAME=IP`` entries act as the
device's DNS: the connection goes to IP while TLS still checks NAME.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import httpx

from otaforge.device.esp_err import raise_esp

READ_CHUNK = 16 * 1024


@dataclass
class _Stream:
    client: httpx.Client
    response: httpx.Response
    chunks: Iterator[bytes]
    buffer: bytearray = field(default_factory=bytearray)
    eof: bool = False


@dataclass(frozen=True)
class HttpReply:
    """What ``esp_http_client_fetch_headers`` learns."""

    status: int
    content_length: int
    range_total: int
    chunked: bool
    stream: int
    headers: bytes
    url: str


def _content_range_total(value: str | None) -> int:
    if value is None or "/" not in value:
        return -1
    total = value.rsplit("/", 1)[1].strip()
    return int(total) if total.isdigit() else -1


def _ssl_context(cert_pem: str, skip_cn: bool) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = not skip_cn
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_verify_locations(cadata=cert_pem)
    except (ssl.SSLError, ValueError) as err:
        raise_esp("ESP_ERR_HTTP_CONNECT", f"cert_pem is not a PEM certificate ({err})")
    return ctx


class HttpBridge:
    """Open requests of one firmware process, by stream id."""

    def __init__(self, hosts: Mapping[str, str] | None = None) -> None:
        self.hosts = dict(hosts or {})
        self._streams: dict[int, _Stream] = {}
        self._next = 1
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    def _route(self, url: str, headers: dict[str, str]) -> tuple[str, dict[str, object]]:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if host not in self.hosts:
            return url, {}
        netloc = self.hosts[host] + (f":{parts.port}" if parts.port else "")
        headers.setdefault("Host", parts.netloc)
        return urlunsplit(parts._replace(netloc=netloc)), {"sni_hostname": host}

    def request(self, method: str, url: str, headers: dict[str, str], body: bytes,
                cert_pem: str, timeout_ms: int, max_redirects: int, skip_cn: bool) -> HttpReply:
        """Send the request and read the headers (the body is read by :meth:`read`).

        Raises:
            EspError: ESP_ERR_HTTP_CONNECT (bad URL, no server verification for https, TLS
                or connection failure), ESP_ERR_HTTP_MAX_REDIRECT.
        """
        scheme = urlsplit(url).scheme
        if scheme not in ("http", "https"):
            raise_esp("ESP_ERR_HTTP_INVALID_TRANSPORT", f"{url}: no transport for {scheme!r}")
        verify: ssl.SSLContext | bool = False
        if scheme == "https":
            if not cert_pem:
                raise_esp("ESP_ERR_HTTP_CONNECT", "https without cert_pem: no server "
                          "verification option set in esp_http_client_config_t")
            verify = _ssl_context(cert_pem, skip_cn)
        self.requests.append((method, url, dict(headers)))
        target, extensions = self._route(url, headers)
        client = httpx.Client(verify=verify, timeout=max(timeout_ms, 1) / 1000,
                              follow_redirects=max_redirects > 0,
                              max_redirects=max(max_redirects, 1))
        try:
            request = client.build_request(method, target, headers=headers,
                                           content=body or None, extensions=extensions)
            response = client.send(request, stream=True)
        except httpx.TooManyRedirects:
            client.close()
            raise_esp("ESP_ERR_HTTP_MAX_REDIRECT", url)
        except (httpx.HTTPError, ssl.SSLError, OSError) as err:
            client.close()
            raise_esp("ESP_ERR_HTTP_CONNECT", f"{method} {url}: {err}")
        stream_id = self._next
        self._next += 1
        self._streams[stream_id] = _Stream(client, response, response.iter_raw(READ_CHUNK))
        length = response.headers.get("content-length")
        text = "".join(f"{k}: {v}\n" for k, v in response.headers.items()).encode()
        return HttpReply(response.status_code, int(length) if length and length.isdigit() else -1,
                         _content_range_total(response.headers.get("content-range")),
                         response.headers.get("transfer-encoding", "") == "chunked",
                         stream_id, text, str(response.url) if response.history else "")

    def read(self, stream_id: int, n: int) -> bytes:
        """Up to ``n`` body bytes (empty at the end).

        Raises:
            EspError: ESP_ERR_HTTP_CONNECTION_CLOSED when the connection breaks mid-body.
        """
        stream = self._streams.get(stream_id)
        if stream is None:
            raise_esp("ESP_ERR_INVALID_ARG", f"no open HTTP stream {stream_id}")
        if not stream.buffer and not stream.eof:
            try:
                stream.buffer += next(stream.chunks)
            except StopIteration:
                stream.eof = True
            except (httpx.HTTPError, OSError) as err:
                stream.eof = True
                raise_esp("ESP_ERR_HTTP_CONNECTION_CLOSED", str(err))
        out = bytes(stream.buffer[:n])
        del stream.buffer[:n]
        return out

    def close(self, stream_id: int) -> None:
        """Close one stream (unknown ids are ignored, as a second close is in C)."""
        stream = self._streams.pop(stream_id, None)
        if stream is not None:
            stream.response.close()
            stream.client.close()

    def close_all(self) -> None:
        """Close everything (the process ended)."""
        for stream_id in list(self._streams):
            self.close(stream_id)


def parse_headers(text: str) -> dict[str, str]:
    """``Key: value`` lines (as the C side sends them) as a dict."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            out[key.strip()] = value.strip()
    return out
