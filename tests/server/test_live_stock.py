"""On a real uvicorn HTTPS server, on SQLite and PostgreSQL: the header-less download URL
as esp_https_ota uses it (resume after a dropped connection, then 304; a download the device
never acknowledged is offered again), download secrets kept out of the access log, and a
client that disconnects during an upload (one log line, no ASGI traceback)."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from otaforge.formats.image_builder import build_image
from otaforge.server.lifecycle import init_server
from otaforge.server.settings import Settings
from tests.server.conftest import PARTITIONS_CSV, STORES, auth, serve_https

IMAGE_SIZE = 400_000


class Records(logging.Handler):
    """Every record of the loggers it is attached to, formatted as handlers would see it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))


@pytest.fixture
def live(tmp_path: Path, database_url: str | None, blob_store: str | None
         ) -> Iterator[tuple[str, Settings, ssl.SSLContext, Records]]:
    """A real server on SQLite or PostgreSQL (and the local or S3 blob store), its loggers
    recorded."""
    init_server(tmp_path / "data")
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url,
                        chunk_size=32 * 1024, blob_store=blob_store)
    ctx = ssl.create_default_context(cafile=str(settings.ca_cert_path))
    records = Records()
    with serve_https(settings, log_level="info") as url:
        loggers = [logging.getLogger(n) for n in ("uvicorn", "uvicorn.access",
                                                  "otaforge.server")]
        saved = [(lg.level, lg.propagate) for lg in loggers]
        for lg in loggers:
            lg.addHandler(records)
            lg.setLevel(logging.DEBUG)
        try:
            with httpx.Client(base_url=url, verify=ctx,
                              headers=auth(settings.admin_token())) as admin:
                assert admin.post("/api/v1/fleets", json={
                    "name": "f1", "chip": "esp32",
                    "partition_csv": PARTITIONS_CSV}).status_code == 201
            yield url, settings, ctx, records
        finally:
            for lg, (level, propagate) in zip(loggers, saved, strict=True):
                lg.removeHandler(records)
                lg.setLevel(level)
                lg.propagate = propagate


def _admin(url: str, settings: Settings, ctx: ssl.SSLContext) -> httpx.Client:
    return httpx.Client(base_url=url, verify=ctx, headers=auth(settings.admin_token()))


@pytest.mark.parametrize("blob_store", STORES, indirect=True)
def test_download_url_resumes_after_a_dropped_connection_then_304(
        live: tuple[str, Settings, ssl.SSLContext, Records]) -> None:
    url, settings, ctx, records = live
    image = build_image(version="3.0.0", size=IMAGE_SIZE, seed=11)
    with _admin(url, settings, ctx) as admin:
        assert admin.post("/api/v1/fleets/f1/releases", params={"channel": "stable"},
                          content=image).status_code == 201
        download_url = admin.post("/api/v1/fleets/f1/devices",
                                  json={"id": "seed1"}).json()["download_url"]
    secret = urlsplit(download_url).path.removeprefix("/dl/").removesuffix(".bin")
    got = bytearray()
    with httpx.Client(verify=ctx) as device:  # no Authorization header at all
        with device.stream("GET", download_url, headers={"range": "bytes=0-"}) as r:
            assert r.status_code == 206
            for chunk in r.iter_bytes(4096):
                got += chunk
                if len(got) >= 150_000:
                    break  # the device lost Wi-Fi
        # the boot after the cut: ota_resumption asks for the rest
        rest = device.get(download_url, headers={"range": f"bytes={len(got)}-"})
        assert rest.status_code == 206
        assert bytes(got) + rest.content == image
        # every later boot: esp_https_ota() gets 304, the seed's loop ends
        assert device.get(download_url).status_code == 304
        assert device.head(download_url).status_code == 304
    with _admin(url, settings, ctx) as admin:
        deps = admin.get("/api/v1/devices/seed1").json()["deployments"]
    assert [(d["state"], d["bytes"]) for d in deps] == [("downloaded", IMAGE_SIZE)]
    access = [line for rec, line in zip(records.records, records.lines, strict=True)
              if rec.name == "uvicorn.access"]
    assert sum("/dl/<redacted>.bin" in line for line in access) == 4, access
    assert not any(secret in line for line in records.lines)


def test_secret_never_logged_even_when_refused(
        live: tuple[str, Settings, ssl.SSLContext, Records]) -> None:
    url, _settings, ctx, records = live
    with httpx.Client(verify=ctx) as device:
        for path, status in (("/dl/otfs_guessed-secret.bin", 404),
                             ("/dl/otfs_guessed-secret.bin?x=1", 404),
                             ("/dl/otfs_guessed-secret", 401)):  # not a download URL
            assert device.get(url + path).status_code == status, path
    assert records.lines
    assert not any("guessed-secret" in line for line in records.lines), records.lines


async def _small_window_download(url: str, ctx: ssl.SSLContext, read: int) -> int:
    """GET the whole image over a socket with an ESP32-sized receive window (lwIP's default
    TCP_WND is 5760 bytes), read ``read`` bytes of it, then reset the connection."""
    host, port = urlsplit(url).hostname, urlsplit(url).port
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    reader, writer = await asyncio.open_connection(sock=sock, ssl=ctx, server_hostname=host)
    writer.write(f"GET {urlsplit(url).path} HTTP/1.1\r\nhost: {host}\r\n\r\n".encode())
    got = 0
    while got < read:
        chunk = await reader.read(1024)
        if not chunk:
            break
        got += len(chunk)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
    writer.transport.abort()  # the device lost power: unread data, a reset
    return got


@pytest.mark.parametrize("size", [60_000, IMAGE_SIZE], ids=["fits-in-buffers", "large"])
def test_download_the_device_never_received_is_offered_again(
        live: tuple[str, Settings, ssl.SSLContext, Records], size: int) -> None:
    """Handing bytes to the kernel is not delivering them: a device that reset the
    connection after 20 KB is not recorded as having the image; at its next boot it gets
    the whole image again (200), and only then 304."""
    url, settings, ctx, _ = live
    image = build_image(version="3.1.0", size=size, seed=12)
    with _admin(url, settings, ctx) as admin:
        assert admin.post("/api/v1/fleets/f1/releases", params={"channel": "stable"},
                          content=image).status_code == 201
        download_url = admin.post("/api/v1/fleets/f1/devices",
                                  json={"id": "cut1"}).json()["download_url"]
        assert asyncio.run(_small_window_download(download_url, ctx, 20_000)) >= 20_000
        for _ in range(200):  # the server settles the first download
            deps = admin.get("/api/v1/devices/cut1").json()["deployments"]
            if deps and deps[0]["state"] == "downloading":
                break
            time.sleep(0.05)
        assert deps[0]["state"] == "downloading", deps
        assert deps[0]["bytes"] < size
    with httpx.Client(verify=ctx) as device:
        again = device.get(download_url)
        assert (again.status_code, again.content == image) == (200, True)
        assert device.get(download_url).status_code == 304


async def _upload_then_vanish(url: str, ctx: ssl.SSLContext, token: str) -> None:
    host, port = urlsplit(url).hostname, urlsplit(url).port
    _reader, writer = await asyncio.open_connection(host, port, ssl=ctx,
                                                   server_hostname=host)
    writer.write(f"POST /api/v1/fleets/f1/releases?channel=stable HTTP/1.1\r\n"
                 f"host: {host}\r\nauthorization: Bearer {token}\r\n"
                 f"content-type: application/octet-stream\r\ncontent-length: 600000\r\n"
                 f"\r\n".encode() + b"\xe9" * 100_000)
    await writer.drain()
    await asyncio.sleep(0.3)
    writer.transport.abort()  # the client is gone mid-upload


def test_client_disconnect_during_upload_is_one_quiet_line(
        live: tuple[str, Settings, ssl.SSLContext, Records]) -> None:
    url, settings, ctx, records = live
    asyncio.run(_upload_then_vanish(url, ctx, settings.admin_token()))
    with _admin(url, settings, ctx) as admin:  # the server is fine and stored nothing
        deadline = 50
        while not any("disconnected" in line for line in records.lines) and deadline:
            admin.get("/healthz")
            deadline -= 1
        assert admin.get("/api/v1/fleets/f1/releases").json() == []
    assert not any(r.exc_info for r in records.records), records.lines
    assert not any("Traceback" in line or "Exception in ASGI" in line
                   for line in records.lines), records.lines
    gone = [line for line in records.lines if "disconnected" in line]
    assert len(gone) == 1, records.lines
    assert "POST /api/v1/fleets/f1/releases" in gone[0]
    assert not list(settings.blob_dir.rglob("*.bin"))
