"""``otaforge delta create|apply|info`` as a user runs them: exit codes, nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

from otaforge.delta import variants
from tests.conftest import run_cli


def test_create_info_apply_round_trip(hello_world: bytes, tmp_path: Path) -> None:
    (tmp_path / "base.bin").write_bytes(hello_world)
    new = variants.code_change(hello_world)
    (tmp_path / "new.bin").write_bytes(new)
    done = run_cli("delta", "create", "base.bin", "new.bin", "-o", "p.bin", "--json",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["patch_size"] == (tmp_path / "p.bin").stat().st_size
    assert report["saved_bytes"] == len(new) - report["patch_size"]
    done = run_cli("delta", "info", "p.bin", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["stock_esp_delta_ota"] is True and info["new_size"] == len(new)
    assert info["base_sha256"] == report["base_sha256"]
    done = run_cli("delta", "apply", "base.bin", "p.bin", "-o", "out.bin", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.bin").read_bytes() == new


def test_wrong_base_exits_1_and_writes_nothing(hello_world: bytes, tmp_path: Path) -> None:
    new = variants.version_change(hello_world)
    (tmp_path / "base.bin").write_bytes(hello_world)
    (tmp_path / "new.bin").write_bytes(new)
    assert run_cli("delta", "create", "base.bin", "new.bin", "-o", "p.bin",
                   cwd=tmp_path).returncode == 0
    done = run_cli("delta", "apply", "new.bin", "p.bin", "-o", "out.bin", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("error: delta patch is for a base image with validation hash")
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out.bin").exists()


def test_bad_input_exits_2(hello_world: bytes, tmp_path: Path) -> None:
    (tmp_path / "base.bin").write_bytes(hello_world)
    (tmp_path / "junk.bin").write_bytes(b"\x00" * 300)
    done = run_cli("delta", "create", "base.bin", "junk.bin", "-o", "p.bin", cwd=tmp_path)
    assert done.returncode == 2 and "new image" in done.stderr
    assert not (tmp_path / "p.bin").exists()
    done = run_cli("delta", "info", "junk.bin", cwd=tmp_path)
    assert done.returncode == 2 and "magic" in done.stderr
    done = run_cli("delta", "apply", "base.bin", "missing.bin", "-o", "o.bin", cwd=tmp_path)
    assert done.returncode == 2 and "missing.bin" in done.stderr
