"""A server for a network: settings from a TOML file, ``OTAFORGE_*`` and the command line (in
that order of strength) with the former code constants configurable, a certificate for the
names and addresses devices use, reissued from the same CA, and API docs that need no CDN."""

from __future__ import annotations

import re
import socket
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from starlette.testclient import TestClient

from otaforge.errors import InputError
from otaforge.server.app import create_app
from otaforge.server.config import load_config
from otaforge.server.lifecycle import reissue_cert
from otaforge.server.pki import cert_names
from tests.conftest import run_cli
from tests.server.conftest import auth, serve_https


def test_command_line_beats_env_beats_file(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "otaforge.toml").write_text(
        'host = "0.0.0.0"\nmax_failures = 7\nstale_deployment_s = 600\nport = 9000\n')
    monkeypatch.setenv("OTAFORGE_PORT", "9100")
    monkeypatch.setenv("OTAFORGE_MAX_UPLOAD_BYTES", "4096")
    cfg = load_config(tmp_path, port=None, max_failures=None)
    assert (cfg.host, cfg.port, cfg.max_failures, cfg.max_upload_bytes) == ("0.0.0.0", 9100, 7,
                                                                            4096)
    assert load_config(tmp_path, port=9200, max_failures=2).port == 9200
    settings = cfg.to_settings(tmp_path)
    assert (settings.max_failures, settings.stale_deployment_s) == (7, 600)


@pytest.mark.parametrize(("name", "toml", "env", "words"), [
    ("misspelt key", "max_failurs = 3\n", {}, "max_failurs"),
    ("out of range", "max_failures = 0\n", {}, "max_failures"),
    ("malformed file", "max_failures = [\n", {}, "TOML"),
    ("bad env value", "", {"OTAFORGE_PORT": "eighty"}, "port"),
])
def test_bad_settings_are_one_line_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          name: str, toml: str, env: dict[str, str],
                                          words: str) -> None:
    (tmp_path / "otaforge.toml").write_text(toml)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(InputError, match=words):
        load_config(tmp_path)


def test_configured_upload_limit_applies(tmp_path: Path, image_v1: bytes,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_cli("server", "init", "--dir", str(tmp_path / "d")).returncode == 0
    (tmp_path / "d" / "otaforge.toml").write_text("max_upload_bytes = 65536\n")
    settings = load_config(tmp_path / "d").to_settings(tmp_path / "d")
    with TestClient(create_app(settings), base_url="https://testserver") as api:
        api.headers["authorization"] = f"Bearer {settings.admin_token()}"
        from tests.server.conftest import PARTITIONS_CSV

        api.post("/api/v1/fleets", json={"name": "f1", "chip": "esp32",
                                         "partition_csv": PARTITIONS_CSV})
        r = api.post("/api/v1/fleets/f1/releases", content=image_v1)
        assert (r.status_code, r.json()["reason"]) == (413, "too_large")


def test_server_run_with_a_bad_config_exits_2(tmp_path: Path) -> None:
    assert run_cli("server", "init", "--dir", str(tmp_path / "d")).returncode == 0
    (tmp_path / "d" / "otaforge.toml").write_text("max_in_flight = -1\n")
    r = run_cli("server", "run", "--dir", str(tmp_path / "d"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "max_in_flight" in r.stderr


def _handshake(port: int, ca: Path, name: str) -> None:
    ctx = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname=name):
        pass


def test_init_names_and_reissue_keeps_the_ca(tmp_path: Path) -> None:
    data = tmp_path / "d"
    r = run_cli("server", "init", "--dir", str(data), "--hostname", "localhost",
                "--ip", "127.0.0.1", "--ip", "10.0.0.5")
    assert r.returncode == 0, r.stderr
    assert cert_names((data / "tls" / "server.pem").read_bytes()) == [
        "localhost", "127.0.0.1", "10.0.0.5"]
    assert run_cli("server", "init", "--dir", str(tmp_path / "e"), "--ip",
                   "updates.lan").returncode == 2
    ca_before = (data / "server_cert.pem").read_bytes()
    from otaforge.server.settings import Settings

    settings = Settings(data_dir=data)
    with serve_https(settings) as url:
        port = int(url.rsplit(":", 1)[1])
        with pytest.raises(ssl.SSLCertVerificationError):
            _handshake(port, data / "server_cert.pem", "updates.lan")
    result = reissue_cert(data, ["updates.lan", "127.0.0.1"], days=30)
    assert result.hostnames == ("updates.lan", "127.0.0.1")
    assert (data / "server_cert.pem").read_bytes() == ca_before
    leaf = x509.load_pem_x509_certificate((data / "tls" / "server.pem").read_bytes())
    leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_before))
    assert 29 <= (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days <= 31
    with serve_https(settings) as url:
        _handshake(int(url.rsplit(":", 1)[1]), data / "server_cert.pem", "updates.lan")
    r = run_cli("server", "cert", "reissue", "--dir", str(data), "--days", "90")
    assert r.returncode == 0 and "updates.lan, 127.0.0.1" in r.stdout, r.stderr


def test_api_docs_load_only_packaged_assets(api: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        html = api.get(page, headers={"authorization": ""}).text
        refs = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert refs and all(ref.startswith("/docs/static/") for ref in refs), refs
        assert "cdn" not in html.lower() and "googleapis" not in html
        for ref in refs:
            assert api.get(ref, headers={"authorization": ""}).status_code == 200, ref
    assert api.get("/openapi.json", headers=auth("")).status_code == 200
