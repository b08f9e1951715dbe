"""Issue 9 §2.1 on a real uvicorn HTTPS server: hundreds of stalled-body and slowloris
clients, and one address opening too many connections, while real devices keep checking in.

Before the fix, 260 connections sending ``POST .../events`` with ``Content-Length: 100`` and
one byte, without a token, made every check-in get 503 for as long as they stayed open.
Attackers connect from other loopback addresses (127.0.0.0/8 is all local on Linux), so the
per-address connection limit is exercised without touching the devices' 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from otaforge.formats.image_builder import build_image
from otaforge.server.lifecycle import init_server
from otaforge.server.settings import Settings
from tests.server.conftest import PARTITIONS_CSV, auth, serve_https

HEADER_TIMEOUT_S = 6.0
BODY_TIMEOUT_S = 6.0
PER_CLIENT = 20
DEVICES = 8


@pytest.fixture
def attacked(tmp_path: Path) -> Iterator[tuple[str, ssl.SSLContext, str]]:
    """A server with short read deadlines; yields (url, CA context, enrollment token)."""
    init_server(tmp_path / "data")
    settings = Settings(data_dir=tmp_path / "data", header_timeout_s=HEADER_TIMEOUT_S,
                        body_timeout_s=BODY_TIMEOUT_S, max_connections_per_client=PER_CLIENT)
    ctx = ssl.create_default_context(cafile=str(settings.ca_cert_path))
    with serve_https(settings) as url, httpx.Client(
            base_url=url, verify=ctx, headers=auth(settings.admin_token())) as admin:
        enroll = admin.post("/api/v1/fleets", json={"name": "f1", "chip": "esp32",
                                                    "partition_csv": PARTITIONS_CSV}).json()
        image = build_image(version="2.0.0", size=50_000, seed=3)
        assert admin.post("/api/v1/fleets/f1/releases", params={"channel": "stable"},
                          content=image).status_code == 201
        yield url, ctx, enroll["enrollment_token"]


class Attacker:
    """One raw TLS connection that sends part of a request and then stalls."""

    def __init__(self, port: int, ctx: ssl.SSLContext, source: str) -> None:
        self.port, self.ctx, self.source = port, ctx, source
        self.status: int | None = None  # the status the server answered, if any
        self.answered_at: float | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader: asyncio.StreamReader | None = None

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(
            "127.0.0.1", self.port, ssl=self.ctx, server_hostname="127.0.0.1",
            local_addr=(self.source, 0))

    def send(self, data: bytes) -> None:
        assert self._writer is not None
        self._writer.write(data)

    async def answer(self, within: float) -> None:
        """Wait for the server's status line (or the connection to close)."""
        assert self._reader is not None
        try:
            line = await asyncio.wait_for(self._reader.readline(), within)
        except (TimeoutError, ConnectionError, ssl.SSLError):
            return
        self.answered_at = asyncio.get_running_loop().time()
        if line.startswith(b"HTTP/1.1 "):
            self.status = int(line.split()[1])

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def _stalled_body(token: str | None) -> bytes:
    head = (b"POST /api/v1/devices/d1/events HTTP/1.1\r\nhost: 127.0.0.1\r\n"
            b"content-type: application/json\r\ncontent-length: 100\r\n")
    if token:
        head += f"authorization: Bearer {token}\r\n".encode()
    return head + b"\r\n{"


async def _slowloris(attacker: Attacker, stop: asyncio.Event) -> None:
    """Headers one line every 0.25 s, never finished."""
    attacker.send(b"POST /api/v1/devices/d1/check-in HTTP/1.1\r\n")
    n = 0
    while not stop.is_set():
        await asyncio.sleep(0.25)
        try:
            attacker.send(f"x-pad-{n}: {n}\r\n".encode())
        except (ConnectionError, RuntimeError):
            return
        n += 1


async def _devices_check_in(url: str, ctx: ssl.SSLContext, token: str) -> Counter[int]:
    async with httpx.AsyncClient(base_url=url, verify=ctx, headers=auth(token),
                                 timeout=10) as client:
        async def one(i: int) -> int:
            r = await client.post(f"/api/v1/devices/real{i}/check-in",
                                  json={"fleet": "f1", "chip": "esp32", "version": "1.0.0"})
            return r.status_code
        codes = await asyncio.gather(*(one(i) for i in range(DEVICES)))
    return Counter(codes)


async def _attack(url: str, ctx: ssl.SSLContext, token: str) -> dict[str, object]:
    port = int(url.rsplit(":", 1)[1])
    # 30 addresses x 10: 300 stalled bodies without a token (the 260, and more)
    anonymous = [Attacker(port, ctx, f"127.0.1.{i // 10 + 1}") for i in range(300)]
    # 60 stalled bodies with a valid enrollment token: they pass authentication
    enrolled = [Attacker(port, ctx, f"127.0.2.{i // 10 + 1}") for i in range(60)]
    slow = [Attacker(port, ctx, f"127.0.3.{i // 10 + 1}") for i in range(100)]
    hog = [Attacker(port, ctx, "127.0.4.1") for _ in range(PER_CLIENT + 10)]
    everyone = anonymous + enrolled + slow + hog
    await asyncio.gather(*(a.connect() for a in everyone))
    for a in anonymous:
        a.send(_stalled_body(None))
    for a in enrolled:
        a.send(_stalled_body(token))
    stop = asyncio.Event()
    trickles = [asyncio.ensure_future(_slowloris(a, stop)) for a in slow]
    answers = [asyncio.ensure_future(a.answer(HEADER_TIMEOUT_S + BODY_TIMEOUT_S + 10))
               for a in everyone]
    await asyncio.sleep(0.3)
    codes = await _devices_check_in(url, ctx, token)  # while the attack holds its connections
    done = asyncio.get_running_loop().time()
    holding = enrolled + slow + hog
    held = sum(1 for a in holding if a.answered_at is None or a.answered_at > done)
    await asyncio.gather(*answers)
    stop.set()
    await asyncio.gather(*trickles)
    for a in everyone:
        a.close()
    return {"codes": codes, "held": held,
            "anonymous": Counter(a.status for a in anonymous),
            "enrolled": Counter(a.status for a in enrolled),
            "slow": Counter(a.status for a in slow),
            "hog": Counter(a.status for a in hog)}


def test_stalled_and_slowloris_clients_cannot_lock_devices_out(
        attacked: tuple[str, ssl.SSLContext, str]) -> None:
    url, ctx, token = attacked
    result = asyncio.run(_attack(url, ctx, token))
    # every real device was answered normally during the attack: an update (200), no 503
    assert result["codes"] == Counter({200: DEVICES}), result
    # ... while most of the 180 stalled connections that got past the door still held on
    assert result["held"] >= 150, result
    # unauthenticated stalled bodies are refused at once, before their body is read
    assert result["anonymous"] == Counter({401: 300}), result
    # authenticated but stalled: cut at the body deadline
    assert result["enrolled"] == Counter({408: 60}), result
    # headers never completed: cut at the header deadline
    assert result["slow"] == Counter({408: 100}), result
    # one address: PER_CLIENT connections held (then cut at the header deadline), the rest 429
    assert result["hog"] == Counter({408: PER_CLIENT, 429: 10}), result


def test_devices_check_in_after_the_attack_ends(
        attacked: tuple[str, ssl.SSLContext, str]) -> None:
    """Deadlines and counters are released: the server is whole again afterwards."""
    url, ctx, token = attacked
    asyncio.run(_attack(url, ctx, token))
    assert asyncio.run(_devices_check_in(url, ctx, token)) == Counter({200: DEVICES})

    async def again_from_the_hog() -> int:
        async with httpx.AsyncClient(
                base_url=url, verify=ctx, headers=auth(token),
                transport=httpx.AsyncHTTPTransport(verify=ctx,
                                                   local_address="127.0.4.1")) as client:
            r = await client.post("/api/v1/devices/hog/check-in",
                                  json={"fleet": "f1", "chip": "esp32", "version": "2.0.0"})
            return r.status_code

    assert asyncio.run(again_from_the_hog()) == 204


async def _trickle(port: int, ctx: ssl.SSLContext, head: bytes, body: bytes,
                   seconds: float) -> int | None:
    """Send ``head``, then ``body`` spread over ``seconds``; the answer's status."""
    a = Attacker(port, ctx, "127.0.5.1")
    await a.connect()
    a.send(head)
    pieces = 6
    step = -(-len(body) // pieces)
    for i in range(pieces):
        await asyncio.sleep(seconds / pieces)
        try:
            a.send(body[i * step:(i + 1) * step])
        except (ConnectionError, RuntimeError):
            break
    await a.answer(10)
    a.close()
    return a.status


def test_release_uploads_get_the_longer_upload_deadline(tmp_path: Path) -> None:
    """A body that takes 2.4 s: cut (408) on a device route whose body deadline is 1.2 s,
    accepted (201) as a release upload, whose deadline is 6 s."""
    init_server(tmp_path / "data")
    settings = Settings(data_dir=tmp_path / "data", body_timeout_s=1.2, upload_timeout_s=6)
    ctx = ssl.create_default_context(cafile=str(settings.ca_cert_path))
    image = build_image(version="2.1.0", size=60_000, seed=4)
    with serve_https(settings) as url, httpx.Client(
            base_url=url, verify=ctx, headers=auth(settings.admin_token())) as admin:
        enroll = admin.post("/api/v1/fleets", json={"name": "f1", "chip": "esp32",
                                                    "partition_csv": PARTITIONS_CSV}).json()
        port = int(url.rsplit(":", 1)[1])
        report = b'{"event_id":"slow-1","state":"downloading","bytes":1}'
        head = (f"POST /api/v1/devices/d1/events HTTP/1.1\r\nhost: 127.0.0.1\r\n"
                f"authorization: Bearer {enroll['enrollment_token']}\r\n"
                f"content-type: application/json\r\ncontent-length: {len(report)}\r\n\r\n")
        assert asyncio.run(_trickle(port, ctx, head.encode(), report, 2.4)) == 408
        head = (f"POST /api/v1/fleets/f1/releases HTTP/1.1\r\nhost: 127.0.0.1\r\n"
                f"authorization: Bearer {settings.admin_token()}\r\n"
                f"content-type: application/octet-stream\r\n"
                f"content-length: {len(image)}\r\n\r\n")
        assert asyncio.run(_trickle(port, ctx, head.encode(), image, 2.4)) == 201
        assert [r["version"] for r in admin.get("/api/v1/fleets/f1/releases").json()] == \
            ["2.1.0"]
