"""esp_ota_* on the emulated device: ESP-IDF's own on-target cases (test_switch_ota.c,
test_ota_ops.c), the exact otadata bytes of reference §2.7, error codes and anti-rollback."""

from __future__ import annotations

import pytest

from otaforge.device.config import DeviceConfig
from otaforge.device.efuse import Efuses
from otaforge.device.emulator import AppRegistry, Device
from otaforge.device.esp_err import CODES
from otaforge.errors import EspError
from otaforge.formats.otadata import OtaImgState, OtaSelectEntry, read_otadata
from otaforge.formats.partition_table import PartitionTable
from tests.device._emu_helpers import NO_FACTORY_CSV, image, install, make_device

OTADATA = 0xF000


def entries(dev: Device) -> tuple[OtaSelectEntry, OtaSelectEntry]:
    return read_otadata(dev.flash.read(OTADATA, 0x2000))


def esp_err(name: str) -> pytest.RaisesContext[EspError]:
    return pytest.raises(EspError, match=name)


@pytest.fixture
def dev() -> Device:
    d = make_device(factory=image("1.0"))
    assert d.power_on().partition.name == "factory"  # type: ignore[union-attr]
    return d


def update_and_reboot(dev: Device, *versions: str) -> None:
    """Install each version in turn (:func:`install`) and reboot into it."""
    for version in versions:
        install(dev, image(version))
        dev.reboot()


def names(dev: Device) -> tuple[str | None, str | None]:
    boot = dev.ota.esp_ota_get_boot_partition()
    return (dev.running_partition.name if dev.running_partition else None,
            boot.name if boot else None)


def test_factory_ota0_ota1_ota0_switching_writes_otadata_as_esp_ota_ops(dev: Device) -> None:
    """test_switch_ota.c case 1 with reference §2.7's bytes (seq, sector, CRC, state)."""
    assert dev.ota.esp_ota_get_next_update_partition().name == "ota_0"  # type: ignore[union-attr]
    install(dev, image("2.0"))
    e0, e1 = entries(dev)
    assert e0.to_bytes() == bytes.fromhex("01000000") + b"\xff" * 20 + bytes(4) + \
        bytes.fromhex("9a984347")
    assert e1.ota_seq == 0xFFFFFFFF
    result = dev.reboot()
    assert result.partition.name == "ota_0"  # type: ignore[union-attr]
    assert result.boot_state == OtaImgState.PENDING_VERIFY
    assert result.ota_state == OtaImgState.VALID  # the healthy app confirmed itself
    install(dev, image("3.0"))
    e0, e1 = entries(dev)
    assert (e0.ota_seq, e0.ota_state) == (1, OtaImgState.VALID)
    assert (e1.ota_seq, e1.ota_state, e1.crc) == (2, OtaImgState.NEW, 0x55F63774)
    assert dev.reboot().partition.name == "ota_1"  # type: ignore[union-attr]
    install(dev, image("4.0"))
    e0, e1 = entries(dev)
    assert (e0.ota_seq, e0.crc, e0.ota_state) == (3, 0xED4A5011, OtaImgState.NEW)
    assert dev.reboot().partition.name == "ota_0"  # type: ignore[union-attr]
    assert dev.running_desc.version == "4.0"  # type: ignore[union-attr]
    assert dev.flash.read(OTADATA + 32, 0x1000 - 32) == b"\xff" * (0x1000 - 32)


def test_zeroed_crc_of_sector_0_boots_factory(dev: Device) -> None:
    """test_switch_ota.c case 2 / matrix row 10."""
    update_and_reboot(dev, "2.0")
    dev.flash.program(OTADATA + 28, bytes(4))
    assert dev.reboot().partition.name == "factory"  # type: ignore[union-attr]


def test_zeroed_crc_of_sector_1_boots_ota_0(dev: Device) -> None:
    """test_switch_ota.c case 3: the other sector's entry still counts."""
    update_and_reboot(dev, "2.0", "3.0")
    dev.flash.program(OTADATA + 0x1000 + 28, bytes(4))
    assert dev.reboot().partition.name == "ota_0"  # type: ignore[union-attr]


def test_rollback_1_mark_invalid_returns_to_factory(dev: Device) -> None:
    """test_switch_ota.c rollback 1."""
    install(dev, image("2.0"))
    assert dev.ota.esp_ota_get_state_partition(dev.partition("ota_0")) == OtaImgState.NEW
    dev.reboot()
    ota_0 = dev.partition("ota_0")
    assert dev.ota.esp_ota_get_state_partition(ota_0) == OtaImgState.VALID
    dev.ota.esp_ota_mark_app_invalid_rollback_and_reboot()
    assert dev.running_partition.name == "factory"  # type: ignore[union-attr]
    assert dev.ota.esp_ota_get_last_invalid_partition() == ota_0
    assert dev.ota.esp_ota_get_next_update_partition() == ota_0
    assert dev.ota.esp_ota_get_state_partition(ota_0) == OtaImgState.INVALID


def test_rollback_2_reset_before_confirm_aborts_the_new_app() -> None:
    """test_switch_ota.c rollback 2 / matrix row 15."""
    apps = AppRegistry({"3.0": "never_confirms"})
    dev = make_device(factory=image("1.0"), apps=apps)
    dev.power_on()
    update_and_reboot(dev, "2.0")
    install(dev, image("3.0"))
    first = dev.reboot()
    assert first.partition.name == "ota_1" and first.ota_state == OtaImgState.PENDING_VERIFY  # type: ignore[union-attr]
    again = dev.reboot()
    assert again.partition.name == "ota_0"  # type: ignore[union-attr]
    ota_1 = dev.partition("ota_1")
    assert dev.ota.esp_ota_get_state_partition(ota_1) == OtaImgState.ABORTED
    assert dev.ota.esp_ota_get_last_invalid_partition() == ota_1


def test_rollback_3_begin_invalidates_the_target_entry_and_end_alone_switches_nothing(
        dev: Device) -> None:
    """test_switch_ota.c rollback 3 (v5.5+ esp_ota_invalidate_inactive_ota_data_slot)."""
    update_and_reboot(dev, "2.0", "3.0")  # running ota_1, otadata[0] -> ota_0
    ota_0 = dev.partition("ota_0")
    assert dev.ota.esp_ota_get_state_partition(ota_0) == OtaImgState.VALID
    handle = dev.ota.esp_ota_begin(ota_0, 0xFFFFFFFE)
    with esp_err("ESP_ERR_NOT_FOUND"):
        dev.ota.esp_ota_get_state_partition(ota_0)
    img = image("4.0")
    for pos in range(0, len(img), 4096):
        dev.ota.esp_ota_write(handle, img[pos : pos + 4096])
    dev.ota.esp_ota_end(handle)
    assert dev.reboot().partition.name == "ota_1"  # type: ignore[union-attr]


def test_rollback_4_two_updates_without_reboot_touch_only_the_non_running_entry(
        dev: Device) -> None:
    """test_switch_ota.c rollback 4."""
    update_and_reboot(dev, "2.0")  # ota_0 valid, otadata[0]
    install(dev, image("3.0"))
    before = entries(dev)
    install(dev, image("4.0"))
    after = entries(dev)
    assert after[0] == before[0]  # the running app's entry is untouched and readable
    assert (after[1].ota_seq, after[1].ota_state) == (2, OtaImgState.NEW)
    ota_0 = dev.partition("ota_0")
    assert dev.ota.esp_ota_get_state_partition(ota_0) == OtaImgState.VALID
    assert dev.reboot().desc.version == "4.0"  # type: ignore[union-attr]


def test_erase_last_boot_app_partition_then_rollback_to_factory(dev: Device) -> None:
    """test_switch_ota.c case 8."""
    update_and_reboot(dev, "2.0", "3.0")
    dev.ota.esp_ota_erase_last_boot_app_partition()
    ota_0 = dev.partition("ota_0")
    assert dev.flash.read(ota_0.offset, 4096) == b"\xff" * 4096
    assert entries(dev)[0].ota_seq == 0xFFFFFFFF
    dev.ota.esp_ota_mark_app_invalid_rollback_and_reboot()
    assert dev.running_partition.name == "factory"  # type: ignore[union-attr]
    with esp_err("ESP_FAIL"):
        dev.ota.esp_ota_erase_last_boot_app_partition()


def test_write_with_offset_path(dev: Device) -> None:
    """test_switch_ota.c case 9: random-access writes into a pre-erased slot."""
    img = image("2.0")
    ota_0 = dev.partition("ota_0")
    handle = dev.ota.esp_ota_begin(ota_0, len(img))
    chunks = list(range(0, len(img), 4096))
    for pos in reversed(chunks):
        dev.ota.esp_ota_write_with_offset(handle, img[pos : pos + 4096], pos)
    dev.ota.esp_ota_end(handle)
    dev.ota.esp_ota_set_boot_partition(ota_0)
    assert dev.reboot().partition == ota_0


def test_begin_refusals(dev: Device) -> None:
    """test_ota_ops.c: the running partition, a partition not in the table, non-OTA apps."""
    with esp_err("ESP_ERR_INVALID_ARG"):
        dev.ota.esp_ota_begin(dev.running_partition)  # factory: not an OTA slot
    update_and_reboot(dev, "2.0")
    ota = dev.ota
    with esp_err("ESP_ERR_OTA_PARTITION_CONFLICT"):
        ota.esp_ota_begin(dev.running_partition)  # matrix row 18
    with esp_err("ESP_ERR_NOT_FOUND"):
        ota.esp_ota_begin(dev.partition("ota_0").__class__("ghost", 0, 0x10, 0x700000, 0x10000))
    with esp_err("ESP_ERR_INVALID_ARG"):
        ota.esp_ota_begin(None)
    with esp_err("ESP_ERR_INVALID_SIZE"):
        ota.esp_ota_begin(dev.partition("ota_1"), 0x1C0001)
    handle = ota.esp_ota_begin(dev.partition("ota_1"))
    with esp_err("ESP_ERR_OTA_ALREADY_IN_PROGRESS"):
        ota.esp_ota_begin(dev.partition("ota_1"))
    ota.esp_ota_abort(handle)
    with esp_err("ESP_ERR_NOT_FOUND"):
        ota.esp_ota_abort(handle)


def test_begin_while_pending_verify_is_rollback_invalid_state() -> None:
    """matrix row 17 / esphome#13195."""
    dev = make_device(factory=image("1.0"), apps=AppRegistry({"2.0": "never_confirms"}))
    dev.power_on()
    update_and_reboot(dev, "2.0")
    with esp_err("ESP_ERR_OTA_ROLLBACK_INVALID_STATE") as err:
        dev.ota.esp_ota_begin(dev.ota.esp_ota_get_next_update_partition())
    assert err.value.code == CODES["ESP_ERR_OTA_ROLLBACK_INVALID_STATE"] == 0x1506


def test_next_update_partition_cycles(dev: Device) -> None:
    ota = dev.ota
    assert ota.esp_ota_get_next_update_partition().name == "ota_0"  # type: ignore[union-attr]
    ota_0 = dev.partition("ota_0")
    assert ota.esp_ota_get_next_update_partition(ota_0).name == "ota_1"  # type: ignore[union-attr]
    ota_1 = dev.partition("ota_1")
    assert ota.esp_ota_get_next_update_partition(ota_1).name == "ota_0"  # type: ignore[union-attr]


def test_write_checks_magic_size_and_end_validates(dev: Device) -> None:
    ota = dev.ota
    ota_0 = dev.partition("ota_0")
    handle = ota.esp_ota_begin(ota_0, 0xFFFFFFFE)
    with esp_err("ESP_ERR_OTA_VALIDATE_FAILED") as err:
        ota.esp_ota_write(handle, b"<html>")  # pitfall #2: HTML instead of the image
    assert "saw 0x3c" in str(err.value)
    img = image("2.0")
    ota.esp_ota_write(handle, img[: len(img) // 2])  # truncated (matrix row 20)
    with esp_err("ESP_ERR_OTA_VALIDATE_FAILED"):
        ota.esp_ota_end(handle)
    with esp_err("ESP_ERR_NOT_FOUND"):
        ota.esp_ota_end(handle)  # freed even on failure
    empty = ota.esp_ota_begin(ota_0, 0xFFFFFFFE)
    with esp_err("ESP_ERR_INVALID_ARG"):
        ota.esp_ota_end(empty)
    big = ota.esp_ota_begin(ota_0)
    with esp_err("ESP_ERR_INVALID_SIZE"):
        ota.esp_ota_write_with_offset(big, b"\xe9" * 16, ota_0.size - 8)
    assert entries(dev)[0].ota_seq == 0xFFFFFFFF  # otadata untouched throughout


def test_set_boot_partition_refuses_a_corrupt_image_and_leaves_otadata(dev: Device) -> None:
    ota_0 = dev.partition("ota_0")
    img = bytearray(image("2.0"))
    img[0x400] ^= 0xFF
    dev.flash.erase_range(ota_0.offset, 0x40000)
    dev.flash.program(ota_0.offset, bytes(img))
    with esp_err("ESP_ERR_OTA_VALIDATE_FAILED"):
        dev.ota.esp_ota_set_boot_partition(ota_0)
    assert entries(dev)[0].ota_seq == 0xFFFFFFFF


def test_set_boot_partition_factory_erases_otadata(dev: Device) -> None:
    update_and_reboot(dev, "2.0")
    dev.ota.esp_ota_set_boot_partition(dev.partition("factory"))
    assert dev.flash.read(OTADATA, 0x2000) == b"\xff" * 0x2000
    assert dev.reboot().partition.name == "factory"  # type: ignore[union-attr]


def test_mark_valid_on_factory_is_esp_fail(dev: Device) -> None:
    with esp_err("ESP_FAIL"):
        dev.ota.esp_ota_mark_app_valid_cancel_rollback()
    assert not dev.ota.esp_ota_check_rollback_is_possible()


def test_mark_invalid_without_another_app_is_rollback_failed() -> None:
    """matrix row 16: no factory, only one valid slot."""
    table = PartitionTable.from_csv(NO_FACTORY_CSV)
    dev = make_device(table, images={"ota_0": image("1.0")})
    first = dev.power_on()
    assert first.partition.name == "ota_0"  # type: ignore[union-attr]
    assert (entries_at(dev, 0xD000)[0].ota_seq, entries_at(dev, 0xD000)[0].ota_state) == \
        (1, OtaImgState.VALID)  # set_actual_ota_seq (matrix row 11)
    with esp_err("ESP_ERR_OTA_ROLLBACK_FAILED"):
        dev.ota.esp_ota_mark_app_invalid_rollback_and_reboot()
    assert dev.status == "running" and dev.running_partition.name == "ota_0"  # type: ignore[union-attr]


def entries_at(dev: Device, offset: int) -> tuple[OtaSelectEntry, OtaSelectEntry]:
    return read_otadata(dev.flash.read(offset, 0x2000))


def test_partition_description(dev: Device) -> None:
    desc = dev.ota.esp_ota_get_partition_description(dev.partition("factory"))
    assert desc.version == "1.0"
    with esp_err("ESP_ERR_NOT_FOUND"):
        dev.ota.esp_ota_get_partition_description(dev.partition("ota_0"))
    with esp_err("ESP_ERR_NOT_SUPPORTED"):
        dev.ota.esp_ota_get_partition_description(dev.partition("nvs"))


# --- anti-rollback ---------------------------------------------------------------------------


def test_anti_rollback_burns_on_confirm_and_refuses_lower_versions() -> None:
    """reference §5 / matrix row 30: SMALL_SEC_VER erases the slot; eFuse raised on VALID."""
    config = DeviceConfig(rollback=True, anti_rollback=True)
    dev = make_device(factory=image("1.0"), config=config)
    dev.power_on()
    install(dev, image("2.0", secure_version=2))
    assert dev.efuses.secure_version == 0  # not on set_boot_partition
    result = dev.reboot()
    assert result.ota_state == OtaImgState.VALID
    assert dev.efuses.secure_version == 2  # burned by mark_app_valid
    ota_1 = dev.partition("ota_1")
    with esp_err("ESP_ERR_OTA_SMALL_SEC_VER") as err:
        install(dev, image("3.0", secure_version=1))
    assert "1 < 2" in str(err.value)
    assert dev.flash.read(ota_1.offset, 0x1000) == b"\xff" * 0x1000
    assert not dev.ota.esp_ota_check_rollback_is_possible()  # factory (sv 0) is too old
    install(dev, image("4.0", secure_version=2))  # equal is allowed
    assert dev.reboot().partition == ota_1


def test_anti_rollback_secure_version_beyond_field_width_fails_on_confirm() -> None:
    """matrix row 31 on ESP32-C2 width (4 bits) configured on an ESP32 field of 4."""
    config = DeviceConfig(rollback=True, anti_rollback=True, secure_version_bits=4)
    dev = make_device(factory=image("1.0"), config=config,
                      efuses=Efuses("esp32", secure_version_bits=4))
    dev.power_on()
    install(dev, image("2.0", secure_version=5))
    result = dev.reboot()
    assert result.status == "running" and "Max secure version is 4" in str(result.app_error)
    assert result.ota_state == OtaImgState.VALID  # written before the burn was refused
    assert dev.efuses.secure_version == 0


def test_begin_on_the_running_slot_is_partition_conflict_and_writes_nothing(dev: Device) -> None:
    """Matrix row 18 / test_ota_ops.c: refused before any erase; otadata and slot untouched."""
    update_and_reboot(dev, "2.0")
    running = dev.running_partition
    assert running is not None and running.name == "ota_0"
    before = dev.flash.read(running.offset, running.size), dev.flash.read(OTADATA, 0x2000)
    ops = dev.flash.op_count  # type: ignore[attr-defined]
    for size in (0, 0xFFFFFFFE, 0xFFFFFFFF, 4096):
        with esp_err("ESP_ERR_OTA_PARTITION_CONFLICT"):
            dev.ota.esp_ota_begin(running, size)
    assert dev.flash.op_count == ops  # type: ignore[attr-defined]
    assert (dev.flash.read(running.offset, running.size), dev.flash.read(OTADATA, 0x2000)) == \
        before


def test_corrupting_four_bytes_at_0x50_fails_validation(dev: Device) -> None:
    """test_switch_ota.c case 10 (bootloader_common_get_sha256_of_partition after 4 bytes at
    +0x50 are overwritten): the image no longer verifies, so it can neither be selected nor
    booted."""
    install(dev, image("2.0"))
    ota_0 = dev.partition("ota_0")
    dev.flash.program(ota_0.offset + 0x50, bytes(4))
    with esp_err("ESP_ERR_OTA_VALIDATE_FAILED"):
        dev.ota.esp_ota_set_boot_partition(ota_0)
    result = dev.reboot()  # otadata still selects ota_0 (NEW): the bootloader falls back
    assert result.partition.name == "factory"  # type: ignore[union-attr]
    assert dev.ota.esp_ota_get_boot_partition() == ota_0


_SEQS = (0, 1, 2, 3, 4, 5, 0xFFFFFFFE, 0xFFFFFFFF)
_STATES = (0, 1, 2, 3, 4, 7, 0xFFFFFFFF)


def _entry(seq: int, state: int, crc_ok: bool) -> OtaSelectEntry:
    entry = OtaSelectEntry.make(seq, state)
    return entry if crc_ok else OtaSelectEntry(seq, entry.seq_label, state, entry.crc ^ 1)


@pytest.mark.parametrize("layout", ["factory", "no factory"])
@pytest.mark.parametrize("rollback", [False, True])
def test_get_boot_partition_mirrors_the_bootloader(layout: str, rollback: bool) -> None:
    """Reference §2.4 'App-side mirror': with every image valid, whatever otadata holds (seq 0
    and near-wrap seqs, unknown states, bad CRCs, blank sectors), the partition the bootloader
    boots is the one ``esp_ota_get_boot_partition()`` names after boot."""
    import random

    table = PartitionTable.from_csv(NO_FACTORY_CSV) if layout == "no factory" else None
    offset = 0xD000 if table is not None else OTADATA
    rng = random.Random(f"{layout}{rollback}")
    apps = {"ota_0": image("1.0"), "ota_1": image("2.0")}
    pool: list[OtaSelectEntry | None] = [None] + [
        _entry(s, st, ok) for s in _SEQS for st in _STATES for ok in (True, False)]
    for _ in range(150):
        dev = make_device(table, factory=None if table else image("0.9"), images=apps,
                          config=DeviceConfig(rollback=rollback))
        for sector, entry in enumerate((rng.choice(pool), rng.choice(pool))):
            if entry is not None:
                dev.flash.program(offset + sector * 0x1000, entry.to_bytes())
        result = dev.power_on()
        assert result.status == "running"
        assert dev.ota.esp_ota_get_boot_partition() == result.partition, entries_at(dev, offset)
