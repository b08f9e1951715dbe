"""Server fixtures: a data directory, the app on SQLite or a real PostgreSQL, images, keys.

PostgreSQL is started once per session from Debian's server binaries (``.ci/run`` installs
them); tests marked ``postgres`` fail loudly when they are missing.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

with warnings.catch_warnings():  # starlette 1.x nudges towards httpx2; httpx is what we ship
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from otaforge.crypto import keys as k
from otaforge.demo.local_server import free_port as free_port  # re-exported for tests
from otaforge.formats.image_builder import build_image
from otaforge.server.app import create_app
from otaforge.server.lifecycle import init_server, uvicorn_config
from otaforge.server.settings import Settings
from tests.server.seaweedfs import seaweedfs as seaweedfs  # re-exported fixtures
from tests.server.seaweedfs import seaweedfs_up as seaweedfs_up

PARTITIONS_CSV = """\
# Name,   Type, SubType, Offset,  Size, Flags
nvs,      data, nvs,     0x9000,  0x4000,
otadata,  data, ota,     0xd000,  0x2000,
phy_init, data, phy,     0xf000,  0x1000,
factory,  app,  factory, 0x10000, 0x100000,
ota_0,    app,  ota_0,   ,        0x100000,
ota_1,    app,  ota_1,   ,        0x100000,
"""
SLOT = 0x100000
STORES = ["local", "s3"]  # parametrise blob_store indirectly: DATA/blobs and SeaweedFS


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) are missing: install Debian's "
                    "postgresql package (.ci/run does)")
    return Path(found[-1]).parent


def _as_pg_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL on a free loopback port; yields the server URL (no database)."""
    bindir = _pg_bin()
    root = Path(tempfile.mkdtemp(prefix="otaforge-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", free_port()
    subprocess.run(_as_pg_user([str(bindir / "initdb"), "-D", str(data), "-U", "otaforge",
                                "--auth=trust", "-E", "UTF8", "--no-sync"]),
                   check=True, capture_output=True)
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(_as_pg_user([str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-w",
                                "-l", str(root / "log"), "start"]),
                   check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://otaforge@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_pg_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                                    "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _new_pg_database(server_url: str) -> str:
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    dsn = server_url.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{server_url}/{name}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """Database backend name; tests using it run on both."""
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest) -> str | None:
    if backend == "sqlite":
        return None
    return _new_pg_database(request.getfixturevalue("postgres"))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    init_server(tmp_path / "data")
    return tmp_path / "data"


@pytest.fixture
def blob_store(request: pytest.FixtureRequest) -> str | None:
    """The ``--blob-store`` of :func:`settings`: None (``DATA/blobs``), or with
    ``@pytest.mark.parametrize("blob_store", STORES, indirect=True)`` and ``"s3"``, a fresh
    prefix in a bucket of the session's real SeaweedFS."""
    if getattr(request, "param", "local") == "local":
        return None
    bucket, prefix = request.getfixturevalue("seaweedfs_up").new_store()
    return f"s3://{bucket}/{prefix}"


@pytest.fixture
def settings(data_dir: Path, database_url: str | None, blob_store: str | None) -> Settings:
    return Settings(data_dir=data_dir, database_url=database_url, blob_store=blob_store)


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    """The app in-process (httpx over an ASGI transport); admin token preset."""
    app = create_app(settings)
    with TestClient(app, base_url="https://testserver") as client:
        client.headers["authorization"] = f"Bearer {settings.admin_token()}"
        yield client


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
def fleet(api: TestClient) -> str:
    """A fleet ``f1`` (esp32, 1 MiB slots); returns its enrollment token."""
    r = api.post("/api/v1/fleets", json={"name": "f1", "chip": "esp32",
                                         "partition_csv": PARTITIONS_CSV})
    assert r.status_code == 201, r.text
    return str(r.json()["enrollment_token"])


@pytest.fixture(scope="session")
def image_v1() -> bytes:
    return build_image(version="1.0.0", size=200_000, seed=1)


@pytest.fixture(scope="session")
def image_v2() -> bytes:
    return build_image(version="2.0.0", size=300_000, seed=2, secure_version=1)


@pytest.fixture(scope="session")
def ec_key() -> k.PrivateKey:
    return k.generate_key("ecdsa256")


@pytest.fixture(scope="session")
def other_ec_key() -> k.PrivateKey:
    return k.generate_key("ecdsa256")


def publish(api: TestClient, image: bytes, fleet: str = "f1",
            channel: str | None = "stable") -> dict[str, object]:
    params = {"channel": channel} if channel else {}
    r = api.post(f"/api/v1/fleets/{fleet}/releases", content=image, params=params)
    assert r.status_code in (200, 201), r.text
    result: dict[str, object] = r.json()
    return result


@contextlib.contextmanager
def serve_https(settings: Settings, log_level: str = "warning") -> Iterator[str]:
    """A real uvicorn HTTPS server for ``settings`` on a free loopback port, in a thread."""
    import threading
    import time

    import uvicorn

    app = create_app(settings)
    port = free_port()
    config = uvicorn_config(app, settings, "127.0.0.1", port, log_level)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
