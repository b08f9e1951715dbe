"""The URL the seed's ``start_ota(url)`` downloads from: one that needs no request header.

The seed sets only ``url`` and ``cert_pem``. The server's per-device download URL
(``GET /dl/{secret}.bin``, branch ``server``) is not merged yet; until it is,
:func:`start_device_url` serves that role with a loopback HTTPS front that adds the device's
bearer token and forwards to the real server's stock route ``/ota/{fleet}/{device}.bin``
(status, Range, ETag and 304 come from the real server). It presents the server's own TLS
certificate, so the firmware pins the real server CA. When ``/dl/`` lands, make
:func:`start_device_url` return that URL and drop the front.
"""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from otaforge.demo.local_server import ServerInfo
from otaforge.server.settings import Settings

_FORWARD = ("range", "if-range", "if-none-match", "user-agent")


class DeviceUrl:
    """A running front; ``url`` is what the firmware is given."""

    def __init__(self, server: ServerInfo, fleet: str, device_id: str, token: str) -> None:
        settings = Settings(data_dir=server.data_dir)
        self.path = f"/ota/{fleet}/{device_id}.bin"
        self.upstream = httpx.Client(base_url=server.url, timeout=30.0,
                                     verify=ssl.create_default_context(
                                         cadata=server.ca_pem.decode()),
                                     headers={"Authorization": f"Bearer {token}"})
        self.requests: list[dict[str, str]] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(settings.tls_cert_path, settings.tls_key_path)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,),
                                       daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.httpd.server_address[1]}/firmware.bin"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.upstream.close()


def _handler(front: DeviceUrl) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return None

        def do_GET(self) -> None:
            self._forward("GET")

        def do_HEAD(self) -> None:
            self._forward("HEAD")

        def _forward(self, method: str) -> None:
            headers = {k: v for k, v in self.headers.items() if k.lower() in _FORWARD}
            front.requests.append({"method": method, **{k.lower(): v for k, v in
                                                       headers.items()}})
            with front.upstream.stream(method, front.path, headers=headers) as resp:
                self.send_response(resp.status_code)
                for key, value in resp.headers.items():
                    if key.lower() not in ("connection", "transfer-encoding", "keep-alive"):
                        self.send_header(key, value)
                self.end_headers()
                if method == "GET":
                    for chunk in resp.iter_raw(64 * 1024):
                        self.wfile.write(chunk)

    return Handler


def start_device_url(server: ServerInfo, fleet: str, device_id: str, token: str) -> DeviceUrl:
    """The device's header-free download URL (see the module doc); close it when done."""
    return DeviceUrl(server, fleet, device_id, token)
