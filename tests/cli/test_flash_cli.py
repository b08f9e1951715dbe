"""``otaforge flash compose | inspect | erase-otadata`` as a user runs them (subprocesses)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from otaforge.formats.image_builder import build_image
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
    report = json.loads(result.stdout)
    assert isinstance(report, dict)
    boots = report["boot"]["partition"] is not None
    assert result.returncode == (0 if boots else 1), result.stderr  # 1: nothing boots
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
    assert result.returncode == 1  # nothing boots
    assert "NOTHING BOOTS" in result.stdout
    assert json.loads(run_cli("flash", "inspect", str(blank), "--json").stdout)["boot"][
        "partition"] is None
    report_only = run_cli("flash", "inspect", str(blank), "--report-only")
    assert report_only.returncode == 0 and "NOTHING BOOTS" in report_only.stdout


def test_inspect_garbage_flash_exits_1_not_0(work: Path) -> None:
    garbage = work / "garbage.bin"
    garbage.write_bytes(bytes(range(256)) * 256)
    result = run_cli("flash", "inspect", str(garbage))
    assert result.returncode == 1 and "NOTHING BOOTS" in result.stdout
    assert "Traceback" not in result.stderr


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


# --- acceptance: the Done-when categories, each checked against ESP-IDF's bootloader rules ----

_SEED = "nvs,data,nvs,0x9000,0x6000,\notadata,data,ota,0xf000,0x2000,\n" \
    "phy_init,data,phy,0x11000,0x1000,\nfactory,app,factory,0x20000,0x100000,\n" \
    "ota_0,app,ota_0,0x120000,0x100000,\nota_1,app,ota_1,0x220000,0x100000,\n"
_NO_FACTORY = "nvs,data,nvs,0x9000,0x6000,\notadata,data,ota,0xf000,0x2000,\n" \
    "phy_init,data,phy,0x11000,0x1000,\nota_0,app,ota_0,0x20000,0x100000,\n" \
    "ota_1,app,ota_1,0x120000,0x100000,\n"
V, P, N, INV, A = (OtaImgState.VALID, OtaImgState.PENDING_VERIFY, OtaImgState.NEW,
                 OtaImgState.INVALID, OtaImgState.ABORTED)


def _e(seq: int, state: int, crc: bool = True) -> OtaSelectEntry:
    entry = OtaSelectEntry.make(seq, state)
    return entry if crc else OtaSelectEntry(seq, entry.seq_label, state, 0)


# name -> (table, apps {slot: (version, secure_version, damage)}, otadata, options,
#          boots, phrase in the reason, otadata entries written by the bootloader)
INSPECT_CASES: dict[str, tuple[str, dict[str, tuple[str, int, str]],
                               tuple[OtaSelectEntry | None, OtaSelectEntry | None],
                               tuple[str, ...], str | None, str, int]] = {
    "blank otadata boots factory": (
        _SEED, {"factory": ("f", 0, ""), "ota_0": ("a", 0, "")}, (None, None), (),
        "factory", "Defaulting to factory image", 0),
    "blank otadata without factory writes seq 1 VALID": (
        _NO_FACTORY, {"ota_0": ("a", 0, ""), "ota_1": ("b", 0, "")}, (None, None), (),
        "ota_0", "Set actual ota_seq=1", 2),
    "highest valid seq wins": (
        _SEED, {"factory": ("f", 0, ""), "ota_0": ("a", 0, ""), "ota_1": ("b", 0, "")},
        (_e(3, V), _e(2, V)), (), "ota_0", "seq 3", 0),
    "zeroed CRC of sector 0: sector 1 decides": (
        _SEED, {"factory": ("f", 0, ""), "ota_0": ("a", 0, ""), "ota_1": ("b", 0, "")},
        (_e(3, V, crc=False), _e(2, V)), (), "ota_1", "otadata[1] active", 0),
    "both CRCs zeroed: factory": (
        _SEED, {"factory": ("f", 0, ""), "ota_0": ("a", 0, ""), "ota_1": ("b", 0, "")},
        (_e(1, V, crc=False), _e(2, V, crc=False)), (), "factory", "falling back to factory",
        0),
    "both CRCs zeroed, no factory: tries all, writes nothing": (
        _NO_FACTORY, {"ota_0": ("a", 0, ""), "ota_1": ("b", 0, "")},
        (_e(1, V, crc=False), _e(2, V, crc=False)), (), "ota_0", "will try all partitions",
        0),
    "rollback: NEW becomes PENDING_VERIFY": (
        _SEED, {"factory": ("f", 0, ""), "ota_0": ("a", 0, "")}, (_e(1, N), None),
        ("--rollback",), "ota_0", "NEW -> PENDING_VERIFY", 2),
    "rollback: PENDING_VERIFY becomes ABORTED, old slot boots": (
        _SEED, {"factory": ("f", 0, ""), "ota_0": ("a", 0, ""), "ota_1": ("b", 0, "")},
        (_e(1, V), _e(2, P)), ("--rollback",), "ota_0", "PENDING_VERIFY -> ABORTED", 2),
    "no rollback: PENDING_VERIFY still boots": (
        _SEED, {"factory": ("f", 0, ""), "ota_0": ("a", 0, ""), "ota_1": ("b", 0, "")},
        (_e(1, V), _e(2, P)), (), "ota_1", "otadata[1] active", 0),
    "INVALID and ABORTED entries: default boot": (
        _SEED, {"factory": ("f", 0, ""), "ota_0": ("a", 0, ""), "ota_1": ("b", 0, "")},
        (_e(1, A), _e(2, INV)), (), "factory", "Defaulting to factory image", 0),
    "corrupt selected slot falls back down": (
        _SEED, {"factory": ("f", 0, ""), "ota_0": ("a", 0, ""), "ota_1": ("b", 0, "corrupt")},
        (_e(1, V), _e(2, V)), (), "ota_0", "not bootable", 0),
    "foreign-chip image is refused": (
        _NO_FACTORY, {"ota_0": ("a", 0, ""), "ota_1": ("b", 0, "esp32c3")},
        (_e(1, V), _e(2, V)), (), "ota_0", "mismatch chip ID", 0),
    "nothing bootable is bricked": (
        _NO_FACTORY, {"ota_0": ("a", 0, "corrupt"), "ota_1": ("b", 0, "esp32c3")},
        (_e(1, V), _e(2, V)), (), None, "No bootable app partitions", 0),
    "anti-rollback ignores the lower-version entry and burns for VALID": (
        _NO_FACTORY, {"ota_0": ("a", 3, ""), "ota_1": ("b", 1, "")}, (_e(1, V), _e(2, V)),
        ("--anti-rollback", "--efuse-secure-version", "2"), "ota_0", "ignored", 0),
    "anti-rollback burn, then the fallback slot is too old: bricked": (
        _NO_FACTORY, {"ota_0": ("a", 2, ""), "ota_1": ("b", 3, "corrupt")},
        (_e(1, V), _e(2, V)), ("--anti-rollback", "--efuse-secure-version", "1"), None,
        "secure_version 2 < eFuse secure version 3", 0),
}


@pytest.mark.parametrize("name", list(INSPECT_CASES))
def test_inspect_agrees_with_the_bootloader(tmp_path: Path, name: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from otaforge.cli.main import main
    from otaforge.device.flash_image import compose
    from otaforge.formats.partition_table import PartitionTable

    csv, apps, otadata, options, boots, why, writes = INSPECT_CASES[name]
    images = {}
    for slot, (version, sv, damage) in apps.items():
        chip = damage if damage.startswith("esp32") else "esp32"
        img = bytearray(build_image(version=version, secure_version=sv, seed=len(images),
                                    chip=chip))
        if damage == "corrupt":
            img[0x2000] ^= 0x5A
        images[slot] = bytes(img)
    flash = tmp_path / "flash.bin"
    flash.write_bytes(compose(PartitionTable.from_csv(csv), images, flash_size=0x400000,
                              otadata=otadata))
    code = main(["flash", "inspect", str(flash), "--json", *options])
    out, err = capsys.readouterr()
    assert code == (0 if boots else 1), out + err  # 1: nothing boots
    report = json.loads(out)
    boot = report["boot"]
    assert boot["partition"] == boots, boot["reason"]
    assert why in boot["reason"]
    assert len(boot["otadata_writes"]) == writes
    assert [o["sector"] for o in report["otadata"]] == [0, 1]
    for got, want in zip(report["otadata"], otadata, strict=True):
        if want is not None:
            assert (got["seq"], got["state"], got["crc_ok"]) == (
                want.ota_seq, OtaImgState(want.ota_state).name, want.crc_ok)
