"""A tiny HTTPS server on 127.0.0.1 that serves firmware bytes with Range/If-Range/ETag and
injects the faults of the reliability matrix (drop mid-transfer, 200 instead of 206, HTML page,
truncated body, changed artifact). With ``upstream`` it is a reverse proxy: every path it does
not serve itself is forwarded to the real update server, and ``/firmware/*.bin`` downloads are
fetched whole from upstream and then served (with faults) by this server.

Real sockets and real TLS (trustme CA): the agent's httpx fetcher cannot tell it from a server.
"""

from __future__ import annotations

import functools
import hashlib
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import trustme


@dataclass
class Faults:
    """Knobs, changed by tests between requests.

    Attributes:
        drop_after: close the connection after sending this many body bytes (once per entry
            in the list; consumed first-in first-out).
        ignore_range: answer Range requests with 200 and the whole body.
        ignore_if_range: honour Range even when If-Range names another ETag (a broken server).
        replace_body: serve these bytes instead of the artifact (HTML page, garbage, prefix).
        content_type: Content-Type of served artifacts.
        no_etag: send no ETag.
        requests: every GET/HEAD seen (path and lower-cased headers), in order.
        status: answer every artifact request with this status and an empty body.
        stall_after: after this many body bytes, stop sending for ``stall_s`` seconds.
        stall_s: how long a stall lasts before the connection is closed.
        no_head: answer HEAD with 405 (a server or proxy without HEAD support).
        redirect_to: answer artifact requests with 302 to this URL.
        chunked: send bodies with ``Transfer-Encoding: chunked`` (no Content-Length).
    """

    drop_after: list[int] = field(default_factory=list)
    ignore_range: bool = False
    ignore_if_range: bool = False
    replace_body: bytes | None = None
    content_type: str = "application/octet-stream"
    no_etag: bool = False
    requests: list[dict[str, str]] = field(default_factory=list)
    status: int | None = None
    stall_after: int | None = None
    stall_s: float = 3.0
    no_head: bool = False
    redirect_to: str | None = None
    chunked: bool = False


def etag_of(data: bytes) -> str:
    return f'"{hashlib.sha256(data).hexdigest()}"'


class FaultServer:
    """Serve ``files`` (path -> bytes) over HTTPS, proxying anything else to ``upstream``."""

    def __init__(self, cert: trustme.LeafCert, files: dict[str, bytes] | None = None,
                 upstream: str | None = None, upstream_ca: bytes | None = None,
                 firmware_prefix: str = "/firmware/") -> None:
        self.files: dict[str, bytes] = dict(files or {})
        self.faults = Faults()
        self.upstream = upstream
        self.firmware_prefix = firmware_prefix
        self._upstream_client = (
            httpx.Client(base_url=upstream, verify=ssl.create_default_context(
                cadata=upstream_ca.decode()) if upstream_ca else True, timeout=10.0)
            if upstream else None)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.httpd.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(ctx)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> FaultServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._upstream_client is not None:
            self._upstream_client.close()

    def artifact(self, path: str, headers: dict[str, str]) -> bytes | None:
        if path in self.files:
            return self.files[path]
        if self._upstream_client is not None and path.startswith(self.firmware_prefix):
            auth = {k: v for k, v in headers.items() if k.lower() == "authorization"}
            resp = self._upstream_client.get(path, headers=auth)
            if resp.status_code == 200:
                return resp.content
        return None

    def forward(self, method: str, path: str, headers: dict[str, str],
                body: bytes) -> httpx.Response:
        assert self._upstream_client is not None
        keep = {k: v for k, v in headers.items() if k.lower() not in ("content-length",
                                                                       "connection")}
        return self._upstream_client.request(method, path, headers=keep, content=body)


def _parse_range(value: str, size: int) -> tuple[int, int] | None:
    if not value.startswith("bytes="):
        return None
    first, _, last = value[6:].partition("-")
    if not first.isdigit():
        return None
    start = int(first)
    end = int(last) if last.isdigit() else size - 1
    return start, min(end, size - 1)


def _handler_for(server: FaultServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return None

        def do_GET(self) -> None:
            self._serve(send_body=True)

        def do_HEAD(self) -> None:
            if server.faults.no_head:
                server.faults.requests.append({"path": self.path, "method": "HEAD"})
                self.send_response(405)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self._serve(send_body=False)

        def do_POST(self) -> None:
            self._proxy("POST")

        def do_PUT(self) -> None:
            self._proxy("PUT")

        def _proxy(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if server.upstream is None:
                self.send_error(404)
                return
            resp = server.forward(method, self.path, dict(self.headers.items()), body)
            self.send_response(resp.status_code)
            for k, v in resp.headers.items():
                if k.lower() not in ("content-length", "transfer-encoding", "connection",
                                     "content-encoding"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(resp.content)))
            self.end_headers()
            self.wfile.write(resp.content)

        def _serve(self, send_body: bool) -> None:
            faults = server.faults
            faults.requests.append({"path": self.path, "method": self.command,
                                    **{k.lower(): v for k, v in self.headers.items()}})
            data = server.artifact(self.path, dict(self.headers.items()))
            if data is None:
                if server.upstream is not None:
                    self._proxy("GET")
                else:
                    self.send_error(404)
                return
            if faults.redirect_to is not None and not faults.redirect_to.endswith(self.path):
                self.send_response(302)
                self.send_header("Location", faults.redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if faults.status is not None:
                self.send_response(faults.status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if faults.replace_body is not None:
                data = faults.replace_body
            etag = etag_of(data)
            status, start, end = 200, 0, len(data) - 1
            rng = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            if rng and not faults.ignore_range and (
                    if_range is None or if_range == etag or faults.ignore_if_range):
                parsed = _parse_range(rng, len(data))
                if parsed is None or parsed[0] >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status, (start, end) = 206, parsed
            body = data[start:end + 1]
            self.send_response(status)
            self.send_header("Content-Type", faults.content_type)
            if faults.chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            if not faults.no_etag:
                self.send_header("ETag", etag)
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.end_headers()
            if not send_body:
                return
            if faults.stall_after is not None and faults.stall_after < len(body):
                self.wfile.write(body[:faults.stall_after])
                self.wfile.flush()
                time.sleep(faults.stall_s)
                self.close_connection = True
                return
            limit = faults.drop_after.pop(0) if faults.drop_after else None
            if limit is not None and limit < len(body):
                self.wfile.write(body[:limit])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if faults.chunked:
                for at in range(0, len(body), 8192):
                    piece = body[at:at + 8192]
                    self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
                return
            self.wfile.write(body)

    return Handler


@functools.cache
def make_ca() -> tuple[trustme.CA, trustme.LeafCert, bytes]:
    """A CA, a leaf for 127.0.0.1/localhost, and the CA PEM bytes to pin (made once)."""
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    return ca, leaf, ca.cert_pem.bytes()


Factory = Callable[..., FaultServer]
