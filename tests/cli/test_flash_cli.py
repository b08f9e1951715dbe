"""``otaforge flash compose | inspect | erase-otadata`` as a user runs them (subprocesses)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from otaforge.formats.app_image import build_image
from otaforge.formats.otadata import OtaImgState, OtaSelectEntry
from tests.conftest import run_cli

THREE_SLOTS = """nvs, data, nvs, , 0x4000,
otadata, data, ota, , 0x2000,
ota_0, app, ota_0, 0x10000, 1M,
ota_1, app, ota_1, , 1M,
ota_2, app, ota_2, , 1M,
"""


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("flash_cli")
    (root / "parts.csv").write_text(THREE_SLOTS)
    for name in ("a", "b", "c"):
        (root / f"{name}.bin").write_bytes(build_image(version=f"app-{name}", seed=ord(name)))
    return root


def _inspect(path: Path, *extra: str) -> dict[str, object]:
    result = run_cli("flash", "inspect", str(path), "--json", *extra)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert isinstance(report, dict)
    return report


def test_compose_inspect_erase_roundtrip(work: Path) -> None:
    out = work / "flash.bin"
    made = run_cli("flash", "compose", "--partitions", str(work / "parts.csv"),
                   "--ota-0", str(work / "a.bin"), "--ota-2", str(work / "c.bin"),
                   "--flash-size", "4MB", "-o", str(out))
    assert made.returncode == 0, made.stderr
    assert out.stat().st_size == 0x400000
    report = _inspect(out)
    assert report["boot"] == {**report["boot"], "partition": "ota_0"}  # type: ignore[dict-item]
    apps = {a["partition"]: a for a in report["apps"]}  # type: ignore[union-attr]
    assert apps["ota_2"]["version"] == "app-c" and apps["ota_1"]["valid"] is False

    data = bytearray(out.read_bytes())  # esp_ota_set_boot_partition(ota_2), app side
    data[0xD000 + 0x1000 : 0xD000 + 0x1020] = OtaSelectEntry.make(3, OtaImgState.NEW).to_bytes()
    out.write_bytes(bytes(data))
    report = _inspect(out, "--rollback")
    boot = report["boot"]
    assert boot["partition"] == "ota_2" and boot["ota_state_after"] == "PENDING_VERIFY"  # type: ignore
    assert report["otadata"][1] == {  # type: ignore[index]
        "sector": 1, "seq": 3, "state": "NEW", "crc_ok": True, "valid": True,
        "partition": "ota_2"}
    assert out.read_bytes() == bytes(data)  # inspect never writes

    erased = run_cli("flash", "erase-otadata", str(out))
    assert erased.returncode == 0, erased.stderr
    assert _inspect(out)["boot"]["partition"] == "ota_0"  # type: ignore[index]


def test_inspect_human_output_names_the_bricked_device(work: Path) -> None:
    blank = work / "blank.bin"
    blank.write_bytes(b"\xff" * 0x10000)
    result = run_cli("flash", "inspect", str(blank))
    assert result.returncode == 0
    assert "NOTHING BOOTS" in result.stdout
    assert json.loads(run_cli("flash", "inspect", str(blank), "--json").stdout)["boot"][
        "partition"] is None


@pytest.mark.parametrize(("args", "message"), [
    (("--ota-1", "missing.bin"), "missing.bin"),
    (("--factory", "{a}"), "no such app partition"),
    (("--ota-9", "{a}"), "no such app partition"),
    (("--ota-x", "{a}"), "unknown option"),
])
def test_compose_bad_input_exits_2_and_writes_nothing(work: Path, args: tuple[str, ...],
                                                     message: str) -> None:
    out = work / "never.bin"
    filled = [a.format(a=work / "a.bin") for a in args]
    result = run_cli("flash", "compose", "--partitions", str(work / "parts.csv"), *filled,
                     "-o", str(out))
    assert result.returncode == 2, result.stdout
    assert message in result.stderr and not out.exists()


def test_erase_otadata_bad_input(work: Path) -> None:
    missing = run_cli("flash", "erase-otadata", str(work / "nope.bin"))
    assert missing.returncode == 2 and "nope.bin" in missing.stderr
    junk = work / "junk.bin"
    junk.write_bytes(b"\x00" * 0x9000)
    bad = run_cli("flash", "erase-otadata", str(junk))
    assert bad.returncode == 2 and "invalid magic number" in bad.stderr
    assert junk.read_bytes() == b"\x00" * 0x9000


def test_inspect_pins_and_anti_rollback_options(work: Path) -> None:
    from otaforge.device.flash_image import compose
    from otaforge.formats.partition_table import PartitionTable

    table = PartitionTable.from_csv("nvs, data, nvs, , 0x4000,\notadata, data, ota, , 0x2000,\n"
                                    "factory, app, factory, , 1M,\nota_0, app, ota_0, , 1M,\n")
    flash = work / "pins.bin"
    flash.write_bytes(compose(
        table, {"factory": build_image(version="f"),
                "ota_0": build_image(version="o", secure_version=2)},
        otadata=(OtaSelectEntry.make(1, OtaImgState.VALID), None)))
    before = flash.read_bytes()
    assert _inspect(flash)["boot"]["partition"] == "ota_0"  # type: ignore[index]
    reset = _inspect(flash, "--factory-reset")["boot"]
    assert reset["partition"] == "factory"  # type: ignore[index]
    assert "factory reset erased otadata" in reset["reason"]  # type: ignore[index]
    refused = _inspect(flash, "--anti-rollback", "--efuse-secure-version", "3")["boot"]
    assert refused["partition"] is None  # factory (0) and ota_0 (2) both below 3: bricked
    burned = _inspect(flash, "--anti-rollback", "--efuse-secure-version", "1")["boot"]
    assert burned["partition"] == "ota_0" and burned["burn_secure_version"] == 2  # type: ignore
    assert flash.read_bytes() == before
