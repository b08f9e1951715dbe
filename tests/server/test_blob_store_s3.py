"""The S3 blob store on a real SeaweedFS (``weed server -s3``), on SQLite and PostgreSQL:
releases stored in S3 download byte-identical with every Range answered exactly as from the
local store; an upload that fails mid-stream, or whose bytes do not match their digest,
leaves nothing visible and nothing orphaned; a store that is down answers 503 with
Retry-After, corrupts nothing, and serves again when it returns; wrong credentials refuse."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.testclient import TestClient

from otaforge.errors import DigestMismatch, StoreUnavailable
from otaforge.formats.image_builder import build_image
from otaforge.server import blobs_s3
from otaforge.server.app import create_app
from otaforge.server.blobs import LocalBlobStore, open_blob_store
from otaforge.server.blobs_s3 import S3BlobStore
from otaforge.server.lifecycle import init_server
from otaforge.server.settings import Settings
from tests.conftest import run_cli
from tests.server.conftest import PARTITIONS_CSV, _new_pg_database, auth, free_port, publish
from tests.server.seaweedfs import SeaweedFS, SlowLink

MIB = 1024 * 1024


def _s3(weed: SeaweedFS, part_size: int = 5 * MIB) -> S3BlobStore:
    bucket, prefix = weed.new_store()
    return S3BlobStore(bucket, prefix, weed.endpoint, part_size=part_size)


def _app(tmp_path: Path, name: str, database_url: str | None,
         blob_store: str | None) -> Iterator[TestClient]:
    init_server(tmp_path / name)
    settings = Settings(data_dir=tmp_path / name, database_url=database_url,
                        blob_store=blob_store)
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        client.headers["authorization"] = f"Bearer {settings.admin_token()}"
        assert client.post("/api/v1/fleets", json={
            "name": "f1", "chip": "esp32", "partition_csv": PARTITIONS_CSV}).status_code == 201
        yield client


@pytest.fixture
def s3_api(tmp_path: Path, database_url: str | None,
           seaweedfs_up: SeaweedFS) -> Iterator[tuple[TestClient, str, str]]:
    """The app on an S3 prefix (endpoint and credentials from the environment):
    (client, bucket, prefix)."""
    bucket, prefix = seaweedfs_up.new_store()
    for client in _app(tmp_path, "s3", database_url, f"s3://{bucket}/{prefix}"):
        yield client, bucket, prefix


def _device_token(api: TestClient) -> str:
    r = api.post("/api/v1/fleets/f1/devices", json={"id": "dev1"})
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def test_release_published_through_s3_downloads_byte_identical_from_the_bucket(
        s3_api: tuple[TestClient, str, str], seaweedfs_up: SeaweedFS, image_v1: bytes,
        tmp_path: Path) -> None:
    api, bucket, prefix = s3_api
    sha = publish(api, image_v1)["sha256"]
    assert sha == hashlib.sha256(image_v1).hexdigest()
    key = f"{prefix}/{sha[:2]}/{sha}.bin"
    assert seaweedfs_up.keys(bucket, prefix) == [key]
    stored = seaweedfs_up.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    assert stored == image_v1
    assert not list((tmp_path / "s3" / "blobs").rglob("*.bin"))  # nothing kept locally
    token = _device_token(api)
    r = api.get(f"/firmware/{sha}.bin", headers=auth(token))
    assert r.status_code == 200 and r.content == image_v1
    assert r.headers["etag"] == f'"{sha}"'


RANGES = ["", "bytes=0-", "bytes=0-0", "bytes=1000-", "bytes=100-16483",
          "bytes=199000-200000", "bytes=-500", "bytes=10-20,21-40", "bytes=10-20,100-200",
          "bytes=200000-", "bytes=999999-", "bytes=5-2", "items=0-9"]


def test_every_range_is_answered_exactly_as_from_the_local_store(
        tmp_path: Path, seaweedfs_up: SeaweedFS, image_v1: bytes) -> None:
    """esp_https_ota's probes (bytes=0-, 0-0), resumes, clamped ends, suffixes, coalesced
    and disjoint ranges, 416 past the end, ignored junk: same status, headers and body."""
    bucket, prefix = seaweedfs_up.new_store()
    answers: dict[str, list[tuple[int, dict[str, str], bytes]]] = {}
    for name, spec in (("local", None), ("s3", f"s3://{bucket}/{prefix}")):
        for api in _app(tmp_path, name, None, spec):
            sha = str(publish(api, image_v1)["sha256"])
            token = _device_token(api)
            got = []
            for header in RANGES:
                r = api.get(f"/firmware/{sha}.bin",
                            headers={**auth(token), **({"range": header} if header else {})})
                keep = {k: r.headers[k] for k in ("content-range", "content-length", "etag",
                                                  "accept-ranges") if k in r.headers}
                got.append((r.status_code, keep, r.content))
            head = api.head(f"/firmware/{sha}.bin", headers=auth(token))
            got.append((head.status_code, {"content-length": head.headers["content-length"]},
                        head.content))
            answers[name] = got
    assert answers["s3"] == answers["local"]
    statuses = [status for status, _, _ in answers["s3"]]
    assert statuses == [200, 206, 206, 206, 206, 206, 206, 206, 200, 416, 416, 200, 200, 200]
    assert answers["s3"][4][2] == image_v1[100:16484]


def test_upload_failing_mid_stream_leaves_nothing_visible_and_no_parts_behind(
        seaweedfs_up: SeaweedFS) -> None:
    """The store dies after two parts of a three-part upload: no object, and the upload's
    parts, left while the store was down, are aborted before the next upload."""
    store = _s3(seaweedfs_up)
    blob = os.urandom(12 * MIB)
    sha = hashlib.sha256(blob).hexdigest()

    def chunks() -> Iterator[bytes]:
        yield blob[:5 * MIB]
        yield blob[5 * MIB:10 * MIB]
        seaweedfs_up.kill()  # part 3 never arrives
        yield blob[10 * MIB:]

    with pytest.raises(StoreUnavailable):
        store.put_stream(chunks(), sha)
    seaweedfs_up.start()
    assert not store.exists(sha)
    assert seaweedfs_up.keys(store.bucket, store.prefix) == []
    assert seaweedfs_up.uploads(store.bucket, store.prefix) == [store.key(sha)]  # invisible
    small = b"next upload"
    store.put(small)  # aborts what it could not abort before
    assert seaweedfs_up.uploads(store.bucket, store.prefix) == []
    assert store.put(blob) == sha and store.read_bytes(sha) == blob


@pytest.mark.parametrize("size", [100_000, 11 * MIB], ids=["single-put", "multipart"])
def test_bytes_not_matching_their_digest_are_never_stored(seaweedfs_up: SeaweedFS,
                                                          size: int) -> None:
    store = _s3(seaweedfs_up)
    blob = os.urandom(size)
    claimed = hashlib.sha256(blob + b"x").hexdigest()
    with pytest.raises(DigestMismatch):
        store.put_stream(iter([blob[: size // 2], blob[size // 2:]]), claimed)
    assert not store.exists(claimed)
    assert seaweedfs_up.keys(store.bucket, store.prefix) == []
    assert seaweedfs_up.uploads(store.bucket, store.prefix) == []


def test_multipart_blob_is_byte_identical_and_ranged_reads_pass_through(
        seaweedfs_up: SeaweedFS) -> None:
    store = _s3(seaweedfs_up)
    blob = os.urandom(11 * MIB + 123)
    sha = store.put(blob)
    assert store.size(sha) == len(blob) and store.read_bytes(sha) == blob
    handle = store.open(sha)
    try:
        end = 6 * MIB
        assert handle.read(5 * MIB - 7, 1000, end) == blob[5 * MIB - 7:5 * MIB + 993]
        assert handle.read(5 * MIB + 993, 7, end) == blob[5 * MIB + 993:5 * MIB + 1000]
        assert handle.read(0, 10, 10) == blob[:10]  # a jump re-opens the range
    finally:
        handle.close()
    assert list(store.digests()) == [sha]


def test_store_down_is_503_with_retry_after_nothing_stored_then_recovers(
        s3_api: tuple[TestClient, str, str], seaweedfs_up: SeaweedFS, image_v1: bytes,
        image_v2: bytes) -> None:
    api, bucket, prefix = s3_api
    sha1 = str(publish(api, image_v1)["sha256"])
    token = _device_token(api)
    seaweedfs_up.kill()
    # check-ins never wait on the store: the manifest is offered, its download waits
    r = api.post("/api/v1/devices/dev1/check-in", headers=auth(token),
                 json={"fleet": "f1", "chip": "esp32", "version": "0.1"})
    assert r.status_code == 200 and r.json()["sha256"] == sha1, r.text
    r = api.get(f"/firmware/{sha1}.bin", headers={**auth(token), "range": "bytes=100-"})
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"].isdigit()
    assert r.json()["reason"] == "store_unavailable"
    # a server that never saw the blob (e.g. just started) says 503 too, never 404
    settings = api.app.state.store.settings  # type: ignore[attr-defined]
    with TestClient(create_app(settings), base_url="https://testserver") as fresh:
        r = fresh.get(f"/firmware/{sha1}.bin", headers=auth(token))
        assert r.status_code == 503 and r.json()["reason"] == "store_unavailable", r.text
    r = api.post("/api/v1/fleets/f1/releases", content=image_v2, params={"channel": "stable"})
    assert r.status_code == 503 and r.headers["retry-after"].isdigit(), r.text
    assert r.json()["reason"] == "store_unavailable"
    assert [rel["version"] for rel in api.get("/api/v1/fleets/f1/releases").json()] == ["1.0.0"]
    seaweedfs_up.start()
    r = api.get(f"/firmware/{sha1}.bin", headers={**auth(token), "range": "bytes=100-"})
    assert r.status_code == 206 and r.content == image_v1[100:], r.text
    sha2 = str(publish(api, image_v2)["sha256"])
    assert api.get(f"/firmware/{sha2}.bin", headers=auth(token)).content == image_v2
    assert len(seaweedfs_up.keys(bucket, prefix)) == 2


def test_wrong_credentials_are_refused_not_served(seaweedfs_up: SeaweedFS,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    good = _s3(seaweedfs_up)
    sha = good.put(b"firmware")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    bad = open_blob_store(good.url, Path("unused"))
    assert isinstance(bad, S3BlobStore)
    with pytest.raises(StoreUnavailable):
        bad.exists(sha)
    with pytest.raises(StoreUnavailable):
        bad.put(b"other firmware")
    assert good.exists(hashlib.sha256(b"other firmware").hexdigest()) is False


def test_local_store_refuses_a_stream_that_does_not_match_its_digest(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    with pytest.raises(DigestMismatch):
        store.put_stream(iter([b"abc"]), hashlib.sha256(b"abd").hexdigest())
    assert not [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]


def test_server_run_on_a_bucket_that_does_not_exist_is_one_line(
        tmp_path: Path, seaweedfs_up: SeaweedFS) -> None:
    """``OTAFORGE_BLOB_STORE`` names the store; a wrong bucket stops ``server run`` at once."""
    init_server(tmp_path / "data")
    done = run_cli("server", "run", "--dir", str(tmp_path / "data"), "--port", "1",
                   env={"OTAFORGE_BLOB_STORE": "s3://no-such-bucket-here/fw"})
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and "s3://no-such-bucket-here/fw" in done.stderr
    assert "store_unavailable" not in done.stderr and "Traceback" not in done.stderr


def test_store_link_breaking_mid_download_cuts_the_body_short_and_the_device_resumes(
        tmp_path: Path, seaweedfs_up: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> None:
    """The link to the store breaks after the first chunk of a stock download: the response
    ends short (no final body message: the device sees a truncated body, as after a dropped
    connection), the deployment counts only what was sent, and once the store answers again
    the device's Range resume completes the image byte-identical."""
    monkeypatch.setattr(blobs_s3, "READ_SIZE", 32 * 1024)
    bucket, prefix = seaweedfs_up.new_store()
    image = build_image(version="3.0.0", size=400_000, seed=11)
    link = SlowLink(seaweedfs_up.ports["s3.port"])
    init_server(tmp_path / "data")
    settings = Settings(data_dir=tmp_path / "data", chunk_size=32 * 1024,
                        blob_store=f"s3://{bucket}/{prefix}", s3_endpoint=link.endpoint)
    app = create_app(settings)
    with TestClient(app, base_url="https://testserver") as api:
        api.headers["authorization"] = f"Bearer {settings.admin_token()}"
        assert api.post("/api/v1/fleets", json={"name": "f1", "chip": "esp32",
                                                "partition_csv": PARTITIONS_CSV}
                        ).status_code == 201
        publish(api, image)
        path = urlsplit(api.post("/api/v1/fleets/f1/devices", json={"id": "seed1"}
                                 ).json()["download_url"]).path
        status, body, complete = asyncio.run(_download_cutting(app, path, link))
        assert status == 206 and not complete
        assert 0 < len(body) < len(image) and body == image[:len(body)]
        deps = api.get("/api/v1/devices/seed1").json()["deployments"]
        assert [(d["state"], d["bytes"]) for d in deps] == [("downloading", len(body))]
        bare = {"authorization": "", "range": f"bytes={len(body)}-"}
        down = api.get(path, headers=bare)
        assert down.status_code == 503 and down.headers["retry-after"].isdigit()
    settings = Settings(data_dir=settings.data_dir, blob_store=settings.blob_store)
    with TestClient(create_app(settings), base_url="https://testserver") as api:
        rest = api.get(path, headers=bare)  # the store reachable again
        assert rest.status_code == 206 and body + rest.content == image
        assert api.get(path, headers={"authorization": ""}).status_code == 304


async def _download_cutting(app: object, path: str, link: SlowLink) -> tuple[int, bytes, bool]:
    """GET ``path`` (bytes=0-) straight through ASGI; cut the store's link at the first body
    chunk. Returns (status, body received, whether the response completed)."""
    got: dict[str, object] = {"status": 0, "complete": False}
    body = bytearray()
    forever = asyncio.Event()

    async def receive() -> dict[str, object]:
        if not got.get("asked"):
            got["asked"] = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await forever.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.start":
            got["status"] = message["status"]
            return
        if message.get("body"):
            link.cut()
        body.extend(message.get("body", b""))  # type: ignore[arg-type]
        if not message.get("more_body", False):
            got["complete"] = True

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "https", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": [(b"range", b"bytes=0-"),
                                                              (b"host", b"testserver")],
             "client": ("127.0.0.1", 5000), "server": ("testserver", 443)}
    await app(scope, receive, send)  # type: ignore[operator]
    return int(got["status"]), bytes(body), bool(got["complete"])  # type: ignore[call-overload]


@pytest.mark.postgres
def test_release_published_through_one_server_downloads_byte_identical_through_another(
        tmp_path: Path, postgres: str, seaweedfs_up: SeaweedFS, image_v1: bytes) -> None:
    """Two servers (own data directories) on one PostgreSQL and one S3 prefix: what one
    stores the other serves, and a download started on one resumes on the other."""
    url = _new_pg_database(postgres)
    bucket, prefix = seaweedfs_up.new_store()
    spec = f"s3://{bucket}/{prefix}"
    apps = []
    for name in ("a", "b"):
        init_server(tmp_path / name, database_url=url)
        settings = Settings(data_dir=tmp_path / name, database_url=url, blob_store=spec)
        apps.append((TestClient(create_app(settings), base_url="https://testserver"),
                     settings))
    (a, a_settings), (b, _) = apps
    with a, b:
        a.headers["authorization"] = f"Bearer {a_settings.admin_token()}"
        assert a.post("/api/v1/fleets", json={"name": "f1", "chip": "esp32",
                                              "partition_csv": PARTITIONS_CSV}
                      ).status_code == 201
        sha = str(publish(a, image_v1)["sha256"])
        device = a.post("/api/v1/fleets/f1/devices", json={"id": "dev1"}).json()
        assert b.get(f"/firmware/{sha}.bin", headers=auth(device["token"])).content == image_v1
        path = urlsplit(device["download_url"]).path
        first = a.get(path, headers={"range": "bytes=0-99999"})
        rest = b.get(path, headers={"range": "bytes=100000-"})
        assert (first.status_code, rest.status_code) == (206, 206)
        assert first.content + rest.content == image_v1
        assert b.get(path).status_code == 304  # B knows the download completed
    assert not list((tmp_path / "a" / "blobs").rglob("*.bin"))
    assert not list((tmp_path / "b" / "blobs").rglob("*.bin"))


def test_server_run_with_otaforge_blob_store_serves_a_cli_published_release(
        tmp_path: Path, seaweedfs_up: SeaweedFS, image_v1: bytes) -> None:
    """As a user runs it: ``server run`` (own process, real TLS) with OTAFORGE_BLOB_STORE and
    the endpoint and credentials in the environment; ``release publish``; a ranged download
    with the pinned CA; the object in the bucket."""
    bucket, prefix = seaweedfs_up.new_store()
    data = tmp_path / "data"
    init_server(data)
    port = free_port()
    env = {**os.environ, "OTAFORGE_BLOB_STORE": f"s3://{bucket}/{prefix}"}
    proc = subprocess.Popen([sys.executable, "-m", "otaforge", "server", "run", "--dir",
                             str(data), "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ctx = ssl.create_default_context(cafile=str(data / "server_cert.pem"))
    url = f"https://localhost:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/healthz", verify=ctx).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "server did not start"
            time.sleep(0.1)
        cli = {"OTAFORGE_SERVER": url, "OTAFORGE_CA": str(data / "server_cert.pem"),
               "OTAFORGE_TOKEN": f"@{data / 'admin.token'}"}
        (tmp_path / "p.csv").write_text(PARTITIONS_CSV)
        (tmp_path / "app.bin").write_bytes(image_v1)
        assert run_cli("fleet", "create", "f1", "--chip", "esp32", "--partitions",
                       str(tmp_path / "p.csv"), env=cli).returncode == 0
        pub = run_cli("release", "publish", str(tmp_path / "app.bin"), "--fleet", "f1",
                      "--channel", "stable", "--json", env=cli)
        assert pub.returncode == 0, pub.stderr
        sha = json.loads(pub.stdout)["sha256"]
        added = run_cli("device", "add", "dev1", "--fleet", "f1", "--json", env=cli)
        token = json.loads(added.stdout)["token"]
        with httpx.Client(base_url=url, verify=ctx, headers=auth(token)) as device:
            head = device.get(f"/firmware/{sha}.bin", headers={"range": "bytes=0-0"})
            rest = device.get(f"/firmware/{sha}.bin", headers={"range": "bytes=1-"})
        assert head.headers["content-range"] == f"bytes 0-0/{len(image_v1)}"
        assert head.content + rest.content == image_v1
        assert seaweedfs_up.keys(bucket, prefix) == [f"{prefix}/{sha[:2]}/{sha}.bin"]
        assert not list((data / "blobs").rglob("*.bin"))
    finally:
        proc.terminate()
        proc.wait(10)


def test_blob_redirect_sends_trusting_clients_to_a_presigned_url_and_stock_routes_proxy(
        tmp_path: Path, seaweedfs_up: SeaweedFS, image_v1: bytes) -> None:
    bucket, prefix = seaweedfs_up.new_store()
    init_server(tmp_path / "data")
    settings = Settings(data_dir=tmp_path / "data", blob_store=f"s3://{bucket}/{prefix}",
                        blob_redirect_s=60)
    with TestClient(create_app(settings), base_url="https://testserver") as api:
        api.headers["authorization"] = f"Bearer {settings.admin_token()}"
        assert api.post("/api/v1/fleets", json={"name": "f1", "chip": "esp32",
                                                "partition_csv": PARTITIONS_CSV}
                        ).status_code == 201
        sha = str(publish(api, image_v1)["sha256"])
        device = api.post("/api/v1/fleets/f1/devices", json={"id": "dev1"}).json()
        r = api.get(f"/firmware/{sha}.bin", headers=auth(device["token"]),
                    follow_redirects=False)
        assert r.status_code == 307 and r.headers["location"].startswith(seaweedfs_up.endpoint)
        part = httpx.get(r.headers["location"], headers={"range": "bytes=1000-"})
        assert part.status_code == 206 and part.content == image_v1[1000:]
        other = api.get("/firmware/" + "0" * 64 + ".bin", headers=auth(device["token"]),
                        follow_redirects=False)
        assert other.status_code == 404  # access is decided before any redirect
        stock = api.get(urlsplit(device["download_url"]).path, headers={"authorization": ""})
        assert stock.status_code == 200 and stock.content == image_v1


def test_blob_redirect_without_an_s3_store_is_refused(tmp_path: Path) -> None:
    init_server(tmp_path / "data")
    done = run_cli("server", "run", "--dir", str(tmp_path / "data"), "--port", "1",
                   "--blob-redirect", "60")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "--blob-redirect needs an S3 --blob-store" in done.stderr
