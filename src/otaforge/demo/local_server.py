"""An update server on loopback HTTPS inside this process (for the demo and end-to-end tests).

It is the real thing: ``server init`` makes a CA, a server certificate, the database and the
admin token in a directory; uvicorn serves :func:`otaforge.server.app.create_app` over TLS on
127.0.0.1 and a free port, in a background thread.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import uvicorn

from otaforge.client.management import ManagementClient
from otaforge.errors import OtaforgeError
from otaforge.server.app import create_app
from otaforge.server.clock import Clock
from otaforge.server.lifecycle import init_server, uvicorn_config
from otaforge.server.settings import Settings

START_TIMEOUT_S = 20.0
LOOPBACK_CONNECTIONS = 100_000


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class ServerInfo:
    """How to reach a running local server.

    Attributes:
        url: ``https://127.0.0.1:PORT``.
        ca_path: the CA certificate devices pin (``server_cert.pem``).
        admin_token: the management token.
        data_dir: the server's data directory.
    """

    url: str
    ca_path: Path
    admin_token: str
    data_dir: Path

    @property
    def ca_pem(self) -> bytes:
        """The CA certificate (PEM bytes) devices pin."""
        return self.ca_path.read_bytes()

    def admin(self) -> ManagementClient:
        """A management client for this server (close it when done)."""
        return ManagementClient(self.url, self.admin_token, self.ca_path)


class LocalServer:
    """``server init`` in ``data_dir`` (unless already done) and serve it until closed.

    Args:
        data_dir: the server's data directory.
        settings: overrides (default: :class:`Settings` for ``data_dir``).
        clock: where the server reads the time (default: the wall clock; a simulator passes
            a :class:`~otaforge.server.clock.ManualClock` to run it in virtual time).
            The per-address connection limit is lifted by default.
    """

    def __init__(self, data_dir: Path, settings: Settings | None = None,
                 clock: Clock | None = None) -> None:
        self.data_dir = data_dir
        # every client of a loopback server is an emulated device on this machine, all from
        # 127.0.0.1 (a power-cut sweep leaves many connections half-open), so the
        # per-address connection limit meant for the internet is lifted here; and its
        # per-request access log would only interleave with the demo's own output
        self.settings = settings or Settings(data_dir=data_dir,
                                             max_connections_per_client=LOOPBACK_CONNECTIONS,
                                             access_log=False)
        self.clock = clock
        self.port = free_port()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> ServerInfo:
        """Initialise (when needed) and start serving; returns how to reach it.

        Raises:
            OtaforgeError: the server did not come up.
        """
        if not self.settings.ca_cert_path.exists():
            init_server(self.data_dir)
        app = create_app(self.settings, clock=self.clock)
        config = uvicorn_config(app, self.settings, "127.0.0.1", self.port, "error",
                                access_log=False, timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="otaforge-server",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise OtaforgeError(f"the update server did not start on port {self.port}")
            time.sleep(0.02)
        token = self.settings.admin_token_path.read_text().strip()
        return ServerInfo(f"https://127.0.0.1:{self.port}", self.settings.ca_cert_path, token,
                          self.data_dir)

    def stop(self) -> None:
        """Stop serving and wait for the server thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> ServerInfo:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
