"""The operations commands as a user runs them (separate processes) against a real HTTPS
server: ``user add`` prints a generated password once or reads one from stdin, ``user token``
gives a colleague view-only CLI access that is refused on publish, ``audit list`` shows who
published what, ``device revoke`` and ``channel pause`` act, ``user revoke`` ends access."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from otaforge.formats.image_builder import build_image
from otaforge.server.lifecycle import init_server
from otaforge.server.settings import Settings
from tests.conftest import run_cli
from tests.server.conftest import PARTITIONS_CSV, serve_https


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], Path]]:
    root = tmp_path_factory.mktemp("ops")
    init_server(root / "data")
    settings = Settings(data_dir=root / "data")
    (root / "p.csv").write_text(PARTITIONS_CSV)
    (root / "app.bin").write_bytes(build_image(version="2.0.0", size=80_000, seed=5))
    with serve_https(settings) as url:
        yield {"OTAFORGE_SERVER": url, "OTAFORGE_CA": str(settings.ca_cert_path),
               "OTAFORGE_TOKEN": f"@{settings.admin_token_path}"}, root


def _ok(*args: str, env: dict[str, str], stdin: bytes | None = None) -> str:
    r = run_cli(*args, env=env, input=stdin)
    assert r.returncode == 0, (args, r.stderr)
    return r.stdout


def test_a_colleague_gets_view_only_access(env: tuple[dict[str, str], Path]) -> None:
    admin, root = env
    _ok("fleet", "create", "lab", "--chip", "esp32", "--partitions", str(root / "p.csv"),
        env=admin)
    shown = _ok("user", "add", "vera", "--role", "viewer", env=admin)
    assert "password (shown once): " in shown
    _ok("user", "add", "otto", "--role", "operator", "--password-stdin", env=admin,
        stdin=b"a-long-enough-password\n")
    token = json.loads(_ok("user", "token", "vera", "--json", env=admin))["token"]
    viewer = {**admin, "OTAFORGE_TOKEN": token}
    assert "lab" in _ok("fleet", "list", env=viewer)
    refused = run_cli("release", "publish", str(root / "app.bin"), "--fleet", "lab",
                      env=viewer)
    assert refused.returncode == 1 and "operator role" in refused.stderr
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    otto = {**admin, "OTAFORGE_TOKEN": json.loads(_ok("user", "token", "otto", "--json",
                                                       env=admin))["token"]}
    _ok("release", "publish", str(root / "app.bin"), "--fleet", "lab", "--channel", "stable",
        env=otto)
    entries = json.loads(_ok("audit", "list", "--action", "publish", "--json", env=admin))
    assert [(e["actor"], e["result"]) for e in entries] == [("otto", "ok"), ("vera", "refused")]
    table = _ok("audit", "list", "--actor", "otto", env=admin)
    assert "publish" in table and "lab" in table
    users = _ok("user", "list", env=admin)
    assert "vera" in users and "viewer" in users
    _ok("user", "revoke", "vera", env=admin)
    assert run_cli("fleet", "list", env=viewer).returncode == 1


def test_device_revoke_and_channel_pause(env: tuple[dict[str, str], Path]) -> None:
    admin, root = env
    if run_cli("fleet", "list", env=admin).stdout.count("lab") == 0:
        _ok("fleet", "create", "lab", "--chip", "esp32", "--partitions", str(root / "p.csv"),
            env=admin)
    _ok("device", "add", "b1", "--fleet", "lab", env=admin)
    assert "token revoked" in _ok("device", "revoke", "b1", env=admin)
    assert "PAUSED: maintenance" in _ok("channel", "pause", "stable", "--fleet", "lab",
                                         "--reason", "maintenance", env=admin)
    assert "running" in _ok("channel", "resume", "stable", "--fleet", "lab", env=admin)
    bad = run_cli("user", "add", "x", "--role", "viewer", "--password-stdin", env=admin,
                  input=b"short\n")
    assert bad.returncode == 2 and "at least 10" in bad.stderr
