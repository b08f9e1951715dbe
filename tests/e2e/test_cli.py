"""``otaforge demo`` and ``otaforge device run`` as a user runs them (separate processes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from otaforge.client.management import ManagementClient
from otaforge.demo.local_server import ServerInfo
from otaforge.device.flash_image import compose
from otaforge.formats.partition_table import PartitionTable
from tests.conftest import run_cli
from tests.e2e.conftest import PARTITIONS, image

DEMO_STEPS = ("Boot an emulated ESP32 from factory", "Update to v1.1.0",
              "fails its self-test", "downgrade below the burned secure_version",
              "Cut the power mid-download", "/ota/{fleet}/{device}.bin", "updated by delta",
              "bytes saved by deltas", "erase-otadata",
              "What the server learned", "The seed's own C code",
              "seed_app: OTA firmware validated")


def test_demo_exits_0_and_shows_every_step() -> None:
    proc = run_cli("demo")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = " ".join(proc.stdout.split())
    for title in DEMO_STEPS:
        assert title in out
    assert "FAIL" not in out
    assert out.count("PASS") == 13
    for seen in ("confirmed", "rolled_back", "refused", "resuming", "304 Not Modified",
                 "booting factory"):
        assert seen in out, seen


def _env(server: ServerInfo, token: str) -> dict[str, str]:
    return {"OTAFORGE_SERVER": server.url, "OTAFORGE_CA": str(server.ca_path),
            "OTAFORGE_TOKEN": token, "COLUMNS": "200"}


def test_device_run_updates_and_keeps_flash_between_runs(tmp_path: Path, server: ServerInfo,
                                                         admin: ManagementClient) -> None:
    fleet = admin.create_fleet("cli-fleet", "esp32", PARTITIONS)
    flash = tmp_path / "dev-cli.bin"
    flash.write_bytes(compose(PartitionTable.from_csv(PARTITIONS), {"factory": image("1.0.0")},
                              flash_size=4 * 1024 * 1024))
    env = _env(server, fleet["enrollment_token"])
    args = ("device", "run", "--flash", str(flash), "--fleet", "cli-fleet",
            "--app", "1.2.0=fails_self_test")
    first = run_cli(*args, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "running 1.0.0 from factory: no_update" in " ".join(first.stdout.split())
    admin.publish("cli-fleet", image("1.1.0", seed=1), channel="stable")
    second = run_cli(*args, "--partial-download", "16384", env=env)
    out = " ".join(second.stdout.split())
    assert second.returncode == 0, out + second.stderr
    assert "running 1.1.0 from ota_0: 1.1.0 confirmed" in out
    assert "download" in out  # the progress bar
    admin.publish("cli-fleet", image("1.2.0", seed=2), channel="stable")
    third = run_cli(*args, env=env)
    out = " ".join(third.stdout.split())
    assert third.returncode == 1
    assert "running 1.1.0 from ota_0: 1.2.0 rolled_back" in out
    assert (tmp_path / "dev-cli.bin.efuse.json").is_file()


def test_device_run_without_flash_file_is_bad_input(tmp_path: Path, server: ServerInfo) -> None:
    proc = run_cli("device", "run", "--flash", str(tmp_path / "missing.bin"), "--fleet", "x",
                   env=_env(server, "otfd_nothing"))
    assert proc.returncode == 2
    assert "flash compose" in proc.stderr


def test_device_run_with_wrong_ca_is_transport_error(tmp_path: Path, server: ServerInfo,
                                                     rig_factory: Any) -> None:
    import trustme

    other = tmp_path / "other-ca.pem"
    other.write_bytes(trustme.CA().cert_pem.bytes())
    flash = tmp_path / "dev-ca.bin"
    flash.write_bytes(compose(PartitionTable.from_csv(PARTITIONS), {"factory": image("1.0.0")},
                              flash_size=4 * 1024 * 1024))
    env = {**_env(server, "otfd_nothing"), "OTAFORGE_CA": str(other)}
    proc = run_cli("device", "run", "--flash", str(flash), "--fleet", "x", env=env)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "pinned CA" in proc.stderr


# fmt: off
BAD_RUNS = {
    "missing CA file":     ({"OTAFORGE_CA": "/nonexistent/server_cert.pem"}, 2,
                            "CA certificate file not found"),
    "plain http server":   ({"OTAFORGE_SERVER": "http://127.0.0.1:9"}, 2, "https:// URL"),
    "wrong token":         ({"OTAFORGE_TOKEN": "otfe_wrong"}, 1, "unknown token"),
    "server unreachable":  ({"OTAFORGE_SERVER": "https://127.0.0.1:9"}, 3, "cannot connect"),
}
# fmt: on


@pytest.mark.parametrize("env,code,message", BAD_RUNS.values(), ids=BAD_RUNS.keys())
def test_device_run_bad_input_is_a_clear_message(tmp_path: Path, server: ServerInfo,
                                                 env: dict[str, str], code: int,
                                                 message: str) -> None:
    flash = tmp_path / "dev-bad.bin"
    flash.write_bytes(compose(PartitionTable.from_csv(PARTITIONS), {"factory": image("1.0.0")},
                              flash_size=4 * 1024 * 1024))
    before = flash.read_bytes()
    proc = run_cli("device", "run", "--flash", str(flash), "--fleet", "x",
                   env={**_env(server, "otfd_nothing"), **env})
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    if code == 2:  # refused before the device powered on: flash untouched
        assert flash.read_bytes() == before


def test_device_run_json(tmp_path: Path, server: ServerInfo, admin: ManagementClient) -> None:
    """``--json``: one JSON object on stdout (no timeline, no progress bar)."""
    import json

    fleet = admin.create_fleet("cli-json", "esp32", PARTITIONS)
    flash = tmp_path / "dev-json.bin"
    flash.write_bytes(compose(PartitionTable.from_csv(PARTITIONS), {"factory": image("1.0.0")},
                              flash_size=4 * 1024 * 1024))
    env = _env(server, fleet["enrollment_token"])
    args = ("device", "run", "--flash", str(flash), "--fleet", "cli-json", "--json")
    first = run_cli(*args, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    report = json.loads(first.stdout)
    assert (report["device_id"], report["running_version"], report["outcome"]) == (
        "dev-json", "1.0.0", "no_update")
    assert report["ok"] is True and report["after_reboot"] is None and report["events"]
    admin.publish("cli-json", image("1.1.0", seed=1), channel="stable")
    second = run_cli(*args, env=env)
    report = json.loads(second.stdout)
    assert second.returncode == 0, second.stderr
    assert (report["running_version"], report["running_partition"], report["version"]) == (
        "1.1.0", "ota_0", "1.1.0")
    assert report["after_reboot"] == "confirmed" and report["ok"] is True
