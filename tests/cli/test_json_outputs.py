"""``--json`` on partitions check, keys generate, device sweep (image verify: test_sign_cli;
device run: tests/e2e/test_cli.py), and the two hashes ``image build``/``image info`` name."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from otaforge.crypto import keys as k
from otaforge.formats.image_builder import build_image
from tests.conftest import run_cli


def test_partitions_check_json(shared_fixtures: Path, tmp_path: Path) -> None:
    table = shared_fixtures / "partitions" / "seed.csv"
    text = run_cli("partitions", "check", str(table), "--flash-size", "8MB")
    proc = run_cli("partitions", "check", str(table), "--flash-size", "8MB", "--json")
    assert proc.returncode == text.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    names = [p["name"] for p in report["partitions"]]
    assert names[:2] == ["nvs", "otadata"] and {"factory", "ota_0", "ota_1"} <= set(names)
    for part in report["partitions"]:
        assert f"0x{part['offset']:x}" in text.stdout and part["end"] == part["offset"] + part[
            "size"]
    assert report["flash_size"] == 8 * 1024 * 1024 and report["free"] == (
        report["flash_size"] - report["end"])
    assert report["ok"] is True and report["image"] is None
    assert [f["severity"] for f in report["findings"]].count("critical") == 0
    for finding in report["findings"]:
        assert finding["message"] in text.stdout


def test_partitions_check_json_critical_and_image(shared_fixtures: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(build_image(version="big", size=0x1C1000))  # larger than a seed slot
    proc = run_cli("partitions", "check", str(shared_fixtures / "partitions" / "seed.csv"),
                   "--image", str(big), "--json")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is False and report["image"] == {"path": str(big),
                                                         "size": big.stat().st_size}
    assert any(f["severity"] == "critical" for f in report["findings"])


def test_keys_generate_json(tmp_path: Path) -> None:
    out = tmp_path / "k.pem"
    proc = run_cli("keys", "generate", "--scheme", "ecdsa256", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    key = k.load_private_key(out.read_bytes())
    assert report == {"keyfile": str(out), "scheme": "ecdsa256", "version": 2, "mode": "0600",
                      "key_digest": k.public_key_digest(key).hex()}
    assert "PRIVATE" not in proc.stdout and "KEEP IT SAFE" in proc.stderr


def test_device_sweep_json(shared_fixtures: Path, tmp_path: Path) -> None:
    old, new = tmp_path / "old.bin", tmp_path / "new.bin"
    old.write_bytes(build_image(version="1.0.0", size=0x3000))
    new.write_bytes(build_image(version="1.1.0", size=0x3000, seed=1))
    args = ["device", "sweep", "--partitions", str(shared_fixtures / "partitions" / "seed.csv"),
            "--from", str(old), "--to", str(new), "--modes", "before"]
    text = run_cli(*args)
    proc = run_cli(*args, "--json")
    assert proc.returncode == text.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["bricked"] == 0 and report["failures"] == []
    assert text.stdout.strip().splitlines()[-1] == f"{report['cases']} cases, 0 bricked"
    assert sum(report["outcomes"].values()) == report["cases"] > 0
    replay = run_cli(*args, "--json", "--replay", "0")
    case = json.loads(replay.stdout)
    assert replay.returncode == 0 and case["ok"] is True and case["op_index"] == 0


def test_build_and_info_name_their_two_hashes(tmp_path: Path) -> None:
    out = tmp_path / "app.bin"
    built = run_cli("image", "build", "-o", str(out), "--version", "1.0.0")
    assert built.returncode == 0, built.stderr
    data = out.read_bytes()
    file_hash = hashlib.sha256(data).hexdigest()
    assert f"file sha256 {file_hash}" in built.stdout and " sha256 " not in built.stdout.replace(
        "file sha256 ", "")
    report = json.loads(run_cli("image", "info", "--json", str(out)).stdout)
    assert report["file_sha256"] == file_hash
    assert report["image_hash"] == data[-32:].hex() != file_hash  # the appended SHA-256
    assert "sha256" not in report and "calc_sha256" not in report
