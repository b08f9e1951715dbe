"""The transport against a real uvicorn HTTPS server on loopback with the pinned CA: Range as
esp_https_ota uses it (probe, partial chunks, clamped end, resume, 416), If-Range, HEAD,
keep-alive, and TLS refusals (wrong CA, hostname mismatch)."""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from otaforge.server.lifecycle import init_server
from otaforge.server.settings import Settings
from tests.server.conftest import PARTITIONS_CSV, auth, serve_https

IMAGE_SIZE = 300_000


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings, bytes,
                                                                     str]]:
    """A running server with one published release; yields (url, settings, image, token)."""
    from otaforge.formats.image_builder import build_image

    data = tmp_path_factory.mktemp("live") / "data"
    init_server(data)
    settings = Settings(data_dir=data)
    image = build_image(version="1.2.3", size=IMAGE_SIZE, seed=7)
    with serve_https(settings) as url:
        admin = httpx.Client(base_url=url, verify=ssl.create_default_context(
            cafile=str(settings.ca_cert_path)), headers=auth(settings.admin_token()))
        enroll = admin.post("/api/v1/fleets", json={
            "name": "f1", "chip": "esp32", "partition_csv": PARTITIONS_CSV}).json()
        assert admin.post("/api/v1/fleets/f1/releases", params={"channel": "stable"},
                          content=image).status_code == 201
        admin.close()
        yield url, settings, image, enroll["enrollment_token"]


@pytest.fixture
def device(live: tuple[str, Settings, bytes, str]) -> Iterator[httpx.Client]:
    url, settings, _, token = live
    ctx = ssl.create_default_context(cafile=str(settings.ca_cert_path))
    with httpx.Client(base_url=url, verify=ctx, headers=auth(token)) as client:
        yield client


def _url(live: tuple[str, Settings, bytes, str]) -> str:
    return f"/firmware/{hashlib.sha256(live[2]).hexdigest()}.bin"


def test_healthz(device: httpx.Client) -> None:
    assert device.get("/healthz").status_code == 200


def test_full_download_byte_identical(device: httpx.Client, live: tuple) -> None:
    r = device.get(_url(live))
    assert r.status_code == 200
    assert r.content == live[2]
    assert r.headers["content-length"] == str(IMAGE_SIZE)
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["etag"] == f'"{hashlib.sha256(live[2]).hexdigest()}"'


@pytest.mark.parametrize(("name", "header", "status", "content_range", "piece"), [
    ("esp_https_ota probe bytes=0-", "bytes=0-", 206, f"bytes 0-{IMAGE_SIZE - 1}/{IMAGE_SIZE}",
     slice(0, IMAGE_SIZE)),
    ("size probe bytes=0-0", "bytes=0-0", 206, f"bytes 0-0/{IMAGE_SIZE}", slice(0, 1)),
    ("resume from an offset", "bytes=1024-", 206, f"bytes 1024-{IMAGE_SIZE - 1}/{IMAGE_SIZE}",
     slice(1024, IMAGE_SIZE)),
    ("end one past the image is clamped", f"bytes=262144-{IMAGE_SIZE}", 206,
     f"bytes 262144-{IMAGE_SIZE - 1}/{IMAGE_SIZE}", slice(262144, IMAGE_SIZE)),
    ("suffix range", "bytes=-1000", 206,
     f"bytes {IMAGE_SIZE - 1000}-{IMAGE_SIZE - 1}/{IMAGE_SIZE}", slice(IMAGE_SIZE - 1000, None)),
    ("start at the end", f"bytes={IMAGE_SIZE}-", 416, f"bytes */{IMAGE_SIZE}", None),
    ("start past the end", f"bytes={IMAGE_SIZE + 5}-{IMAGE_SIZE + 9}", 416,
     f"bytes */{IMAGE_SIZE}", None),
    ("unparseable range ignored", "bytes=abc", 200, None, slice(0, IMAGE_SIZE)),
])
def test_range(device: httpx.Client, live: tuple, name: str, header: str, status: int,
               content_range: str | None, piece: slice | None) -> None:
    r = device.get(_url(live), headers={"range": header})
    assert r.status_code == status, name
    assert r.headers.get("content-range") == content_range
    if piece is not None:
        assert r.content == live[2][piece]
        assert r.headers["content-length"] == str(len(r.content))


def test_partial_download_chunks_reassemble(device: httpx.Client, live: tuple) -> None:
    """esp_https_ota partial mode: 64 KiB requests on one kept-alive connection."""
    step, parts, offset = 65536, [], 0
    while offset < IMAGE_SIZE:
        end = min(offset + step - 1, IMAGE_SIZE)  # last request ends one past the image
        r = device.get(_url(live), headers={"range": f"bytes={offset}-{end}"})
        assert r.status_code == 206
        assert "close" not in r.headers.get("connection", "")
        parts.append(r.content)
        offset += len(r.content)
    assert b"".join(parts) == live[2]


def test_resume_after_dropped_connection(device: httpx.Client, live: tuple) -> None:
    got = bytearray()
    with device.stream("GET", _url(live), headers={"range": "bytes=0-"}) as r:
        for chunk in r.iter_bytes(4096):
            got += chunk
            if len(got) >= 100_000:
                break  # the device lost Wi-Fi
    resumed = device.get(_url(live), headers={"range": f"bytes={len(got)}-"})
    assert resumed.status_code == 206
    assert bytes(got) + resumed.content == live[2]


def test_if_range(device: httpx.Client, live: tuple) -> None:
    etag = f'"{hashlib.sha256(live[2]).hexdigest()}"'
    same = device.get(_url(live), headers={"range": "bytes=10-19", "if-range": etag})
    changed = device.get(_url(live), headers={"range": "bytes=10-19", "if-range": '"other"'})
    assert (same.status_code, same.content) == (206, live[2][10:20])
    assert (changed.status_code, len(changed.content)) == (200, IMAGE_SIZE)


def test_head(device: httpx.Client, live: tuple) -> None:
    r = device.head(_url(live))
    assert r.status_code == 200 and r.headers["content-length"] == str(IMAGE_SIZE)
    assert r.content == b""


def test_wrong_ca_refused(live: tuple, tmp_path: Path) -> None:
    init_server(tmp_path / "other")
    ctx = ssl.create_default_context(cafile=str(tmp_path / "other" / "server_cert.pem"))
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(live[0] + "/healthz", verify=ctx)


def test_hostname_mismatch_refused(tmp_path: Path) -> None:
    init_server(tmp_path / "data", ["updates.example.com"])
    settings = Settings(data_dir=tmp_path / "data")
    ctx = ssl.create_default_context(cafile=str(settings.ca_cert_path))
    with serve_https(settings) as url, pytest.raises(httpx.ConnectError,
                                                     match=r"mismatch|doesn't match"):
        httpx.get(url + "/healthz", verify=ctx)


def test_concurrent_reports_no_lost_updates(live: tuple) -> None:
    """Matrix row 52: many devices report at once; nothing lost, no 5xx."""
    import asyncio

    url, settings, _, token = live
    ctx = ssl.create_default_context(cafile=str(settings.ca_cert_path))

    async def storm() -> list[int]:
        async with httpx.AsyncClient(base_url=url, verify=ctx, headers=auth(token),
                                     limits=httpx.Limits(max_connections=50),
                                     # correctness, not latency: on a loaded machine the
                                     # 400 requests may wait longer than httpx's 5 s for
                                     # one of the 50 connections
                                     timeout=httpx.Timeout(30.0, pool=None)) as client:
            async def one(i: int) -> int:
                r = await client.post(f"/api/v1/devices/storm{i % 40}/events", json={
                    "event_id": f"ev{i}", "state": "downloading", "bytes": i})
                return r.status_code
            return await asyncio.gather(*(one(i) for i in range(400)))

    codes = asyncio.run(storm())
    assert set(codes) == {201}
    with httpx.Client(base_url=url, verify=ctx,
                      headers=auth(settings.admin_token())) as admin:
        counts = [len(admin.get(f"/api/v1/devices/storm{d}").json()["events"])
                  for d in range(40)]
    assert counts == [10] * 40


def test_resume_across_server_restart(tmp_path: Path) -> None:
    """Matrix row 55: the server restarts mid-download; the ETag is unchanged and the
    download resumes from the offset the device kept."""
    from otaforge.formats.image_builder import build_image

    init_server(tmp_path / "data")
    settings = Settings(data_dir=tmp_path / "data")
    image = build_image(version="9.9.9", size=250_000, seed=9)
    ctx = ssl.create_default_context(cafile=str(settings.ca_cert_path))
    path = f"/firmware/{hashlib.sha256(image).hexdigest()}.bin"
    with serve_https(settings) as url:
        admin = httpx.Client(base_url=url, verify=ctx, headers=auth(settings.admin_token()))
        enroll = admin.post("/api/v1/fleets", json={"name": "f1", "chip": "esp32",
                                                    "partition_csv": PARTITIONS_CSV}).json()
        assert admin.post("/api/v1/fleets/f1/releases", content=image).status_code == 201
        admin.close()
        first = httpx.get(url + path, verify=ctx, headers={
            **auth(enroll["enrollment_token"]), "range": "bytes=0-99999"})
    with serve_https(settings) as url:
        rest = httpx.get(url + path, verify=ctx, headers={
            **auth(enroll["enrollment_token"]), "range": "bytes=100000-",
            "if-range": first.headers["etag"]})
    assert rest.status_code == 206
    assert rest.headers["etag"] == first.headers["etag"]
    assert first.content + rest.content == image


@pytest.mark.parametrize(("name", "raw", "status"), [
    ("latin-1 superscript two (byte 0xB2) as start", b"bytes=\xb2-", 200),
    ("latin-1 superscript two as end", b"bytes=0-\xb2", 200),
    ("5000-digit start", b"bytes=" + b"1" * 5000 + b"-", 416),
])
def test_raw_range_bytes_never_5xx(device: httpx.Client, live: tuple, name: str, raw: bytes,
                                   status: int) -> None:
    """Servers decode headers as latin-1: byte 0xB2 became "²", which isdigit() accepted and
    int() refused (a 500 before the fix)."""
    r = device.get(_url(live), headers={"range": raw})  # type: ignore[dict-item]
    assert r.status_code == status, name
    if status == 200:
        assert r.content == live[2]
