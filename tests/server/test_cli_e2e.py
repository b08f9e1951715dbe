"""From a fresh ``server init`` + ``server run`` (separate processes, as a user runs them):
fleet create, release publish (good and bad), channel set, device list/show, and a download
over HTTPS with the pinned CA, in ranges, byte-identical."""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from otaforge.formats.image_builder import build_image
from tests.conftest import run_cli
from tests.server.conftest import PARTITIONS_CSV, free_port


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """``server init`` then ``server run`` in a subprocess; yields (data dir, CLI env)."""
    root = tmp_path_factory.mktemp("cli")
    data = root / "data"
    init = run_cli("server", "init", "--dir", str(data))
    assert init.returncode == 0, init.stderr
    assert (data / "server_cert.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")
    again = run_cli("server", "init", "--dir", str(data))
    assert again.returncode != 0 and "refusing to overwrite" in again.stderr
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "otaforge", "server", "run", "--dir",
                             str(data), "--port", str(port), "--header-timeout", "5",
                             "--body-timeout", "10", "--upload-timeout", "60",
                             "--max-connections-per-client", "32"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ctx = ssl.create_default_context(cafile=str(data / "server_cert.pem"))
    url = f"https://localhost:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/healthz", verify=ctx).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail(f"server did not start: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.1)
    env = {"OTAFORGE_SERVER": url, "OTAFORGE_CA": str(data / "server_cert.pem"),
           "OTAFORGE_TOKEN": f"@{data / 'admin.token'}"}
    try:
        yield data, env
    finally:
        proc.terminate()
        proc.wait(10)


def test_publish_and_download_in_ranges(running: tuple[Path, dict[str, str]],
                                        tmp_path: Path) -> None:
    _, env = running
    csv = tmp_path / "partitions.csv"
    csv.write_text(PARTITIONS_CSV)
    made = run_cli("fleet", "create", "f1", "--chip", "esp32", "--partitions", str(csv),
                   "--json", env=env)
    assert made.returncode == 0, made.stderr
    enroll = json.loads(made.stdout)["enrollment_token"]

    image = build_image(version="7.1.0", size=400_000, seed=3)
    (tmp_path / "app.bin").write_bytes(image)
    pub = run_cli("release", "publish", str(tmp_path / "app.bin"), "--fleet", "f1",
                  "--channel", "stable", "--json", env=env)
    assert pub.returncode == 0, pub.stderr
    out = json.loads(pub.stdout)
    assert out["sha256"] == hashlib.sha256(image).hexdigest()
    assert out["version"] == "7.1.0"

    ctx = ssl.create_default_context(cafile=env["OTAFORGE_CA"])
    with httpx.Client(base_url=env["OTAFORGE_SERVER"], verify=ctx,
                      headers={"authorization": f"Bearer {enroll}"}) as dev:
        manifest = dev.post("/api/v1/devices/board-1/check-in",
                            json={"fleet": "f1", "chip": "esp32", "version": "7.0.0"}).json()
        got, offset = b"", 0
        while offset < manifest["size"]:
            r = dev.get(manifest["url"],
                        headers={"range": f"bytes={offset}-{offset + 65535}"})
            assert r.status_code == 206
            got += r.content
            offset += len(r.content)
        assert got == image
        assert dev.post("/api/v1/devices/board-1/events", json={
            "event_id": "ev-1", "deployment_id": manifest["deployment_id"],
            "state": "confirmed"}).status_code == 201

    listed = run_cli("release", "list", "--fleet", "f1", env=env)
    assert "7.1.0" in listed.stdout
    header, rule, *rows = listed.stdout.splitlines()  # a table, not tab-separated values
    assert header.split() == ["ID", "VERSION", "SECURE", "VERSION", "SIZE", "FILE", "SHA256"]
    assert set(rule) == {"-", " "} and "\t" not in listed.stdout
    assert any(r.split()[1:2] == ["7.1.0"] and out["sha256"] in r for r in rows)
    fleets = run_cli("fleet", "list", env=env)
    header, rule, *rows = fleets.stdout.splitlines()
    assert header.split() == ["NAME", "CHIP", "OTA", "SLOT", "SIGNATURES", "CHANNELS"]
    assert any(r.split()[:2] == ["f1", "esp32"] and "stable->" in r for r in rows), rows
    assert "{" not in fleets.stdout  # never a Python dict
    chan = run_cli("channel", "set", "beta", "7.1.0", "--fleet", "f1", env=env)
    assert chan.returncode == 0 and "beta" in chan.stdout


def test_bad_upload_refused_by_cli(running: tuple[Path, dict[str, str]],
                                   tmp_path: Path) -> None:
    _, env = running
    csv = tmp_path / "p.csv"
    csv.write_text(PARTITIONS_CSV)
    run_cli("fleet", "create", "f2", "--chip", "esp32s3", "--partitions", str(csv), env=env)
    (tmp_path / "wrong.bin").write_bytes(build_image(version="1", chip="esp32"))
    r = run_cli("release", "publish", str(tmp_path / "wrong.bin"), "--fleet", "f2", env=env)
    assert r.returncode == 1
    assert "422" in r.stderr and "chip" in r.stderr.lower()


def test_cli_refuses_wrong_ca(running: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    _, env = running
    assert run_cli("server", "init", "--dir", str(tmp_path / "x")).returncode == 0
    r = run_cli("release", "list", "--fleet", "f1",
                env={**env, "OTAFORGE_CA": str(tmp_path / "x" / "server_cert.pem")})
    assert r.returncode == 3
    assert "certificate" in r.stderr.lower()


def test_cli_bad_token(running: tuple[Path, dict[str, str]]) -> None:
    _, env = running
    r = run_cli("release", "list", "--fleet", "f1", env={**env, "OTAFORGE_TOKEN": "nope"})
    assert r.returncode == 1 and "401" in r.stderr


def test_device_admin_commands(running: tuple[Path, dict[str, str]],
                               capsys: pytest.CaptureFixture[str]) -> None:
    """``device add/list/show`` (cli/manage.py), run in process through the CLI's main()."""
    from otaforge.cli.main import main

    old = dict(os.environ)
    os.environ.update(running[1])
    try:
        assert main(["device", "add", "board-9", "--fleet", "f1"]) == 0
        added = capsys.readouterr().out
        assert "device token: otfd_" in added
        url = added.split("download URL (no header needed; keep it secret): ")[1].split()[0]
        assert url.startswith(running[1]["OTAFORGE_SERVER"] + "/dl/otfs_")
        ctx = ssl.create_default_context(cafile=running[1]["OTAFORGE_CA"])
        assert httpx.head(url, verify=ctx).status_code == 200  # no header at all
        assert main(["device", "download-url", "board-9", "--json"]) == 0
        new_url = json.loads(capsys.readouterr().out)["download_url"]
        assert httpx.head(url, verify=ctx).status_code == 404
        assert httpx.head(new_url, verify=ctx).status_code == 200
        assert main(["device", "download-url", "board-9", "--revoke"]) == 0
        assert "revoked" in capsys.readouterr().out
        assert httpx.head(new_url, verify=ctx).status_code == 404
        assert main(["device", "list", "--json"]) == 0
        assert "board-9" in {d["id"] for d in json.loads(capsys.readouterr().out)}
        assert main(["device", "list"]) == 0
        header, rule, *rows = capsys.readouterr().out.splitlines()
        assert header.split()[:3] == ["ID", "FLEET", "CHANNEL"] and set(rule) <= {"-", " "}
        assert any(row.split()[:2] == ["board-9", "f1"] for row in rows)
        assert main(["device", "show", "board-9"]) == 0
        assert "fleet: f1" in capsys.readouterr().out
    finally:
        os.environ.clear()
        os.environ.update(old)


def test_publish_a_release_the_channel_would_refuse(running: tuple[Path, dict[str, str]],
                                                    tmp_path: Path) -> None:
    """Issue 9 §2.2: refused (exit 1, one line naming --force) while a device of the channel
    burned a higher secure_version; --force publishes it."""
    _, env = running
    csv = tmp_path / "p.csv"
    csv.write_text(PARTITIONS_CSV)
    made = run_cli("fleet", "create", "f3", "--chip", "esp32", "--partitions", str(csv),
                   "--json", env=env)
    enroll = json.loads(made.stdout)["enrollment_token"]
    ctx = ssl.create_default_context(cafile=env["OTAFORGE_CA"])
    r = httpx.post(env["OTAFORGE_SERVER"] + "/api/v1/devices/burned-1/check-in", verify=ctx,
                   headers={"authorization": f"Bearer {enroll}"},
                   json={"fleet": "f3", "chip": "esp32", "version": "9", "secure_version": 4})
    assert r.status_code == 204
    (tmp_path / "old.bin").write_bytes(build_image(version="1.0.0", secure_version=2, seed=8))
    args = ["release", "publish", str(tmp_path / "old.bin"), "--fleet", "f3", "--channel",
            "stable"]
    refused = run_cli(*args, env=env)
    assert refused.returncode == 1, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "secure_version" in refused.stderr and "--force" in refused.stderr
    assert "burned-1 has 4" in refused.stderr
    assert "1.0.0" not in run_cli("release", "list", "--fleet", "f3", env=env).stdout
    forced = run_cli(*args, "--force", env=env)
    assert forced.returncode == 0, forced.stderr
    chan = run_cli("channel", "set", "beta", "1.0.0", "--fleet", "f3", env=env)
    assert chan.returncode == 0, chan.stderr  # beta has no such device


@pytest.mark.postgres
def test_server_run_on_postgres(postgres: str, tmp_path: Path) -> None:
    """``server run --database-url postgresql://...``: publish, check in, download, report."""
    from tests.server.conftest import _new_pg_database

    url_db = _new_pg_database(postgres).replace("postgresql+psycopg://", "postgresql://")
    data = tmp_path / "data"
    assert run_cli("server", "init", "--dir", str(data)).returncode == 0
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "otaforge", "server", "run", "--dir",
                             str(data), "--port", str(port), "--database-url", url_db],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        ctx = ssl.create_default_context(cafile=str(data / "server_cert.pem"))
        base = f"https://localhost:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(base + "/healthz", verify=ctx)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("server on PostgreSQL did not start")
                time.sleep(0.1)
        env = {"OTAFORGE_SERVER": base, "OTAFORGE_CA": str(data / "server_cert.pem"),
               "OTAFORGE_TOKEN": f"@{data / 'admin.token'}"}
        (tmp_path / "p.csv").write_text(PARTITIONS_CSV)
        made = run_cli("fleet", "create", "pg", "--chip", "esp32", "--partitions",
                       str(tmp_path / "p.csv"), "--json", env=env)
        assert made.returncode == 0, made.stderr
        image = build_image(version="3.3.3", size=150_000)
        (tmp_path / "a.bin").write_bytes(image)
        pub = run_cli("release", "publish", str(tmp_path / "a.bin"), "--fleet", "pg",
                      "--channel", "stable", env=env)
        assert pub.returncode == 0, pub.stderr
        token = json.loads(made.stdout)["enrollment_token"]
        with httpx.Client(base_url=base, verify=ctx,
                          headers={"authorization": f"Bearer {token}"}) as dev:
            m = dev.post("/api/v1/devices/pg-1/check-in",
                         json={"fleet": "pg", "chip": "esp32", "version": "0"}).json()
            assert dev.get(m["url"], headers={"range": "bytes=0-"}).content == image
        import psycopg

        with psycopg.connect(url_db) as conn:
            assert conn.execute("SELECT count(*) FROM releases").fetchone() == (1,)
            assert (data / "otaforge.db").exists()  # made by init, unused by this run
    finally:
        proc.terminate()
        proc.wait(10)


def test_server_run_refuses_an_impossible_port(tmp_path: Path) -> None:
    """Port 99999 made uvicorn hang forever without listening; now a usage error."""
    assert run_cli("server", "init", "--dir", str(tmp_path / "d")).returncode == 0
    r = subprocess.run([sys.executable, "-m", "otaforge", "server", "run", "--dir",
                        str(tmp_path / "d"), "--port", "99999"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--port" in r.stderr


def test_server_init_with_unreachable_database_is_clean(tmp_path: Path) -> None:
    """A one-line error (exit 3, no traceback) and no half setup left behind."""
    data = tmp_path / "d"
    r = run_cli("server", "init", "--dir", str(data), "--database-url",
                "postgresql://nobody:secret@127.0.0.1:1/x")
    assert r.returncode == 3, r.stderr
    assert "Traceback" not in r.stderr and "secret" not in r.stderr
    assert not data.exists()
