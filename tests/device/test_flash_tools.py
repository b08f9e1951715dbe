"""compose / inspect / erase-otadata on whole-flash images, with esptool and gen_esp32part output
as oracles."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from otaforge.device.bootloader import BootConfig, BootEfuses
from otaforge.device.flash_image import (
    compose,
    detect_chip,
    detect_flash_size,
    erase_otadata,
    erase_otadata_file,
    file_reader,
    inspect,
)
from otaforge.errors import FormatError, InputError, PartitionTableError
from otaforge.formats.chips import chip
from otaforge.formats.partition_table import PartitionTable
from tests.conftest import tool
from tests.device.test_bootloader import (
    NO_FACTORY,
    TWO_OTA,
    VALID,
    app,
    entry,
    full,
)

ESP32 = chip("esp32")


def two_ota_flash(**kw: object) -> bytes:
    return compose(PartitionTable.from_csv(TWO_OTA), full(), flash_size=0x400000,
                   **kw)  # type: ignore[arg-type]


# --- compose ----------------------------------------------------------------------------------


def test_compose_equals_esptool_merge_bin(tmp_path: Path, shared_fixtures: Path) -> None:
    table_bin = shared_fixtures / "partitions" / "partitions_two_ota.bin"
    table = PartitionTable.from_bytes(table_bin.read_bytes())
    apps = full()
    ours = compose(table, apps, flash_size=0x400000)
    args = [tool("esptool"), "--chip", "esp32", "merge-bin", "-o", str(tmp_path / "m.bin"),
            "--pad-to-size", "4MB", "0x8000", str(table_bin)]
    for name, data in apps.items():
        (tmp_path / name).write_bytes(data)
        part = table.find(name)
        assert part is not None
        args += [hex(part.offset), str(tmp_path / name)]
    subprocess.run(args, check=True, capture_output=True, timeout=120)
    assert ours == (tmp_path / "m.bin").read_bytes()


def test_compose_with_bootloader_equals_merge_bin_flash_size(tmp_path: Path,
                                                            shared_fixtures: Path) -> None:
    """The bootloader header gets the flash size (esptool patches it and its SHA-256)."""
    boot = shared_fixtures / "esptool" / "bootloader_esp32.bin"
    table_bin = shared_fixtures / "partitions" / "partitions_two_ota.bin"
    table = PartitionTable.from_bytes(table_bin.read_bytes())
    ours = compose(table, {}, flash_size=0x400000, bootloader=boot.read_bytes())
    subprocess.run([tool("esptool"), "--chip", "esp32", "merge-bin", "-o", str(tmp_path / "m"),
                    "--flash-size", "4MB", "--pad-to-size", "4MB", "0x1000", str(boot),
                    "0x8000", str(table_bin)], check=True, capture_output=True, timeout=120)
    assert ours == (tmp_path / "m").read_bytes()
    read = file_reader(ours)
    assert detect_flash_size(read, ESP32) == 0x400000


def test_compose_table_matches_gen_esp32part(shared_fixtures: Path) -> None:
    csv = (shared_fixtures / "partitions" / "partitions_two_ota.csv").read_text()
    image = compose(PartitionTable.from_csv(csv), {})
    expected = (shared_fixtures / "partitions" / "partitions_two_ota.bin").read_bytes()
    assert image[0x8000 : 0x8000 + len(expected)] == expected
    assert len(image) == 0x400000  # smallest standard size holding the table (ends at 3.1 MB)
    assert image[0xD000:0xF000] == b"\xff" * 0x2000  # ota_data_initial.bin


def test_compose_places_bootloader_and_otadata() -> None:
    boot = b"\xe9" + b"\x01" * 0x100
    image = two_ota_flash(bootloader=boot, otadata=(entry(1, VALID), None))
    assert image[0x1000:0x1101] == boot and image[:0x1000] == b"\xff" * 0x1000
    assert image[0xD000:0xD020] == entry(1, VALID).to_bytes()


@pytest.mark.parametrize(("apps", "kw", "error", "match"), [
    ({"ota_7": b"\xe9"}, {}, InputError, "no partition named 'ota_7'"),
    ({"ota_0": b"\xe9" * 0x100001}, {}, InputError, "holds 1048576"),
    ({}, {"bootloader": b"\xe9" * 0x7001}, InputError, "runs into the partition table"),
    ({}, {"flash_size": 0x200000}, PartitionTableError, "does not fit in a 2MB flash"),
])
def test_compose_refuses_bad_input(apps: dict[str, bytes], kw: dict[str, object],
                                   error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        compose(PartitionTable.from_csv(TWO_OTA), apps, **kw)  # type: ignore[arg-type]


# --- erase-otadata ----------------------------------------------------------------------------


def test_erase_otadata_erases_exactly_the_partition() -> None:
    image = two_ota_flash(otadata=(entry(1, VALID), entry(2, VALID)))
    erased = erase_otadata(image)
    assert erased[0xD000:0xF000] == b"\xff" * 0x2000
    assert erased[:0xD000] == image[:0xD000] and erased[0xF000:] == image[0xF000:]
    report = inspect(file_reader(erased), BootConfig(ESP32))
    assert report.boot.partition is not None and report.boot.partition.name == "factory"


def test_erase_otadata_on_partial_dump_keeps_length() -> None:
    image = two_ota_flash(otadata=(entry(1, VALID), entry(2, VALID)))[:0xE000]
    erased = erase_otadata(image)
    assert len(erased) == 0xE000 and erased[0xD000:] == b"\xff" * 0x1000


def test_erase_otadata_errors(shared_fixtures: Path) -> None:
    single = (shared_fixtures / "partitions" / "partitions_singleapp.bin").read_bytes()
    image = b"\xff" * 0x8000 + single
    with pytest.raises(InputError, match="No otadata partition"):
        erase_otadata(image)
    with pytest.raises(FormatError):
        erase_otadata(b"\x00" * 0x9000)


def test_erase_otadata_file_is_atomic_and_in_place(tmp_path: Path) -> None:
    path = tmp_path / "flash.bin"
    path.write_bytes(two_ota_flash(otadata=(entry(1, VALID), None)))
    part = erase_otadata_file(path)
    assert (part.offset, part.size) == (0xD000, 0x2000)
    assert path.read_bytes()[0xD000:0xD020] == b"\xff" * 32
    assert [p.name for p in tmp_path.iterdir()] == ["flash.bin"]  # no temp file left behind


# --- inspect ----------------------------------------------------------------------------------


def test_inspect_report_json_shape() -> None:
    image = two_ota_flash(otadata=(entry(1, VALID), entry(2, VALID, crc=0)))
    report = inspect(file_reader(image), BootConfig(ESP32, rollback=True)).to_json()
    assert [p["name"] for p in report["partitions"]] == [  # type: ignore[index]
        "nvs", "otadata", "phy_init", "factory", "ota_0", "ota_1"]
    assert report["otadata"] == [
        {"sector": 0, "seq": 1, "state": "VALID", "crc_ok": True, "valid": True,
         "partition": "ota_0"},
        {"sector": 1, "seq": 2, "state": "VALID", "crc_ok": False, "valid": False,
         "partition": None},
    ]
    boot = report["boot"]
    assert boot["partition"] == "ota_0" and "otadata[0] active" in boot["reason"]  # type: ignore
    apps = {a["partition"]: a for a in report["apps"]}  # type: ignore[union-attr]
    assert apps["ota_1"]["version"] == "v1" and apps["ota_1"]["valid"] is True
    json.dumps(report)


def test_inspect_bricked_and_no_table() -> None:
    report = inspect(file_reader(b"\xff" * 0x20000), BootConfig(ESP32))
    assert report.boot.partition is None and report.to_json()["boot"]["bricked"]  # type: ignore
    bad = bytearray(two_ota_flash())
    bad[0x8000] = 0
    broken = inspect(file_reader(bytes(bad)), BootConfig(ESP32))
    assert broken.table_error is not None and broken.boot.partition is None
    assert "load partition table error!" in broken.boot.reason


def test_inspect_short_dump_reads_erased_past_the_end() -> None:
    image = compose(PartitionTable.from_csv(NO_FACTORY), {"ota_0": app("v0")},
                    flash_size=0x400000, otadata=(entry(1, VALID), entry(2, VALID)))
    dump = image[:0x110000 + 0x40000]  # ota_0 complete, ota_1 (0x110000) partly, rest missing
    report = inspect(file_reader(dump), BootConfig(ESP32))
    assert report.boot.partition is not None and report.boot.partition.name == "ota_0"
    assert "OTA app partition slot 1 (ota_1) is not bootable" in report.boot.reason


def test_inspect_anti_rollback_reports_refused_slot() -> None:
    image = compose(PartitionTable.from_csv(NO_FACTORY),
                    {"ota_0": app("v0", 3), "ota_1": app("v1", 1)}, flash_size=0x400000,
                    otadata=(entry(1, VALID), entry(2, VALID)))
    config = BootConfig(ESP32, rollback=True, anti_rollback=True)
    report = inspect(file_reader(image), config, BootEfuses(secure_version=2))
    apps = {a.partition.name: a for a in report.apps}
    assert apps["ota_1"].valid is False and "anti-rollback" in (apps["ota_1"].error or "")
    assert report.boot.partition is not None and report.boot.partition.name == "ota_0"
    assert report.boot.burn_secure_version == 3


def test_detect_chip_and_flash_size_from_bootloader(shared_fixtures: Path) -> None:
    boot = (shared_fixtures / "esptool" / "bootloader_esp32.bin").read_bytes()
    table = PartitionTable.from_csv("factory, app, factory, 0x10000, 1M,\n")
    image = compose(table, {"factory": app("f")}, bootloader=boot, flash_size=0x200000)
    read = file_reader(image)
    spec = detect_chip(read)
    assert spec is not None and spec.name == "esp32"
    assert detect_flash_size(read, spec) == 0x200000  # header byte 3 = 0x10: 2MB
    assert detect_chip(file_reader(b"\xff" * 0x2000)) is None


def test_real_espressif_images(shared_fixtures: Path) -> None:
    """esptool-made app images: the ESP32 one boots, the ESP32-S2 one is a foreign chip."""
    esp = shared_fixtures / "esptool"
    table = PartitionTable.from_csv(TWO_OTA)
    image = compose(table, {"factory": (esp / "esp32-app-template.bin").read_bytes(),
                            "ota_0": (esp / "esp_idf_blink_esp32s2.bin").read_bytes()},
                    otadata=(entry(1, VALID), None))
    report = inspect(file_reader(image), BootConfig(ESP32, chip_rev=None))
    apps = {a.partition.name: a for a in report.apps}
    assert apps["factory"].valid and apps["factory"].version == "1cd5752"
    assert "mismatch chip ID, expected 0, found 2" in (apps["ota_0"].error or "")
    assert report.boot.partition is not None and report.boot.partition.name == "factory"
    s2 = inspect(file_reader(image), BootConfig(chip("esp32s2"), chip_rev=None))
    assert s2.boot.partition is not None and s2.boot.partition.name == "ota_0"


def test_unknown_chip_revision_skips_revision_checks_only() -> None:
    image = compose(PartitionTable.from_csv(NO_FACTORY),
                    {"ota_0": app("v0", min_chip_rev_full=300),
                     "ota_1": app("v1", chip_name="esp32c3")},
                    otadata=(entry(1, VALID), entry(2, VALID)))
    unknown = inspect(file_reader(image), BootConfig(ESP32, chip_rev=None))
    assert unknown.boot.partition is not None and unknown.boot.partition.name == "ota_0"
    rev1 = inspect(file_reader(image), BootConfig(ESP32, chip_rev=100))
    assert rev1.boot.partition is None
