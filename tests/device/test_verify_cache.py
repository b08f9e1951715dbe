"""Remembered image checks never hide a change: an image or eFuse change is verified again.

The device remembers what the bootloader and ``esp_image_verify`` concluded about an image
(:mod:`otaforge.device.verify_cache`), keyed on the image's bytes and the eFuses. These
scenarios change exactly one input after a successful check and show the next check runs again
and refuses; and that bytes after the image (which no check reads) do not cost a new check.
"""

from __future__ import annotations

import pytest

from otaforge.crypto.keys import generate_key, public_key_digest
from otaforge.crypto.sbv2 import sign_v2
from otaforge.device.config import DeviceConfig
from otaforge.device.efuse import Efuses
from otaforge.device.emulator import Device
from otaforge.device.flash import SECTOR_SIZE, MemoryFlash
from otaforge.errors import EspError
from otaforge.formats.partition_table import PartitionEntry
from tests.device._emu_helpers import MB, image, install, make_device


def _flash(dev: Device) -> MemoryFlash:
    assert isinstance(dev.flash, MemoryFlash)
    return dev.flash


def _updated_device() -> tuple[Device, PartitionEntry]:
    """Factory 1.0, then 2.0 installed into ota_0, booted and confirmed."""
    dev = make_device(factory=image("1.0"), config=DeviceConfig(rollback=True))
    dev.power_on()
    install(dev, image("2.0"))
    ota_0 = dev.partition("ota_0")
    dev.ota.esp_ota_set_boot_partition(ota_0)
    assert dev.reboot().partition == ota_0
    assert dev.power_on().partition == ota_0
    return dev, ota_0


def test_content_key_changes_with_every_write_and_is_shared_by_forks() -> None:
    flash = MemoryFlash(MB, base=b"\x00" * SECTOR_SIZE + b"\xff" * SECTOR_SIZE)
    before = flash.content_key(0, 3 * SECTOR_SIZE)
    twin = flash.fork()
    assert twin.content_key(0, 3 * SECTOR_SIZE) == before
    flash.program(SECTOR_SIZE + 5, b"\x7f")
    assert flash.content_key(0, 3 * SECTOR_SIZE) != before
    assert twin.content_key(0, 3 * SECTOR_SIZE) == before
    twin.program(SECTOR_SIZE + 5, b"\x7f")  # the same bytes reached another way: equal keys
    assert twin.content_key(0, 3 * SECTOR_SIZE) == flash.content_key(0, 3 * SECTOR_SIZE)
    twin.erase_sector(2 * SECTOR_SIZE)
    assert twin.content_key(0, 3 * SECTOR_SIZE) != flash.content_key(0, 3 * SECTOR_SIZE)
    other = MemoryFlash(MB, base=b"\x00" * SECTOR_SIZE + b"\xff" * SECTOR_SIZE)
    assert other.content_key(0, SECTOR_SIZE) != MemoryFlash(MB).content_key(0, SECTOR_SIZE)
    assert flash.content_key(MB - 4, 8) is None  # past the end: no key, no caching


def test_an_image_corrupted_after_it_booted_is_verified_again_and_refused() -> None:
    """One bit cleared inside the running image: the next boot must not take the old verdict."""
    dev, ota_0 = _updated_device()
    misses = dev.cache.misses
    _flash(dev).program(ota_0.offset + 0x2000, b"\x00")
    result = dev.power_on()
    assert dev.cache.misses > misses
    assert result.partition is not None and result.partition.name == "factory"
    assert "ota_0" in result.reason and "not bootable" in result.reason


def test_an_image_changed_on_flash_is_refused_by_set_boot_partition() -> None:
    """esp_ota_end verified the slot; a later change to it is caught by set_boot_partition."""
    dev = make_device(factory=image("1.0"))
    dev.power_on()
    install(dev, image("2.0"))
    ota_0 = dev.partition("ota_0")
    _flash(dev).program(ota_0.offset + 0x3000, b"\x00\x00\x00\x00")
    with pytest.raises(EspError, match="ESP_ERR_OTA_VALIDATE_FAILED"):
        dev.ota.esp_ota_set_boot_partition(ota_0)


def test_bytes_after_the_image_do_not_cost_a_new_check() -> None:
    """Erased flash after the image is programmed: the verdict on the image stands, no re-check
    (and the device still boots the image)."""
    dev, ota_0 = _updated_device()
    end = ota_0.offset + len(image("2.0"))
    tail = ota_0.offset + (end - ota_0.offset + 2 * SECTOR_SIZE) // SECTOR_SIZE * SECTOR_SIZE
    _flash(dev).program(tail, b"\x00" * 64)
    misses, hits = dev.cache.misses, dev.cache.hits
    assert dev.power_on().partition == ota_0
    assert dev.cache.misses == misses
    assert dev.cache.hits > hits


@pytest.fixture(scope="module")
def keys() -> tuple[object, object]:
    return generate_key("ecdsa256"), generate_key("ecdsa256")


def _secure_boot_device(keys: tuple[object, object]) -> Device:
    """ESP32-C6 with Secure Boot v2, digests of keys A and B burned, factory signed by A."""
    key_a, key_b = keys
    fuses = Efuses("esp32c6")
    fuses.burn_key_digest(public_key_digest(key_a))  # type: ignore[arg-type]
    fuses.burn_key_digest(public_key_digest(key_b))  # type: ignore[arg-type]
    factory = sign_v2(image("1.0", chip="esp32c6"), [key_a])  # type: ignore[list-item]
    dev = make_device(factory=factory, efuses=fuses, chip="esp32c6",
                      config=DeviceConfig(rollback=True, secure_boot_v2=True))
    assert dev.power_on().status == "running"
    assert dev.power_on().status == "running"
    return dev


def test_a_key_revoked_after_boot_makes_the_next_boot_refuse_its_image(
        keys: tuple[object, object]) -> None:
    """SECURE_BOOT_KEY_REVOKE0 burned (espefuse) after the image verified: it no longer boots."""
    dev = _secure_boot_device(keys)
    misses = dev.cache.misses
    dev.efuses.revoke_key(0)
    result = dev.power_on()
    assert dev.cache.misses > misses
    assert result.status == "bricked"


def test_a_key_revoked_after_esp_ota_end_makes_set_boot_partition_refuse(
        keys: tuple[object, object]) -> None:
    key_a, _key_b = keys
    dev = _secure_boot_device(keys)
    install(dev, sign_v2(image("2.0", chip="esp32c6"), [key_a]))  # type: ignore[list-item]
    ota_0 = dev.partition("ota_0")
    dev.efuses.revoke_key(0)
    with pytest.raises(EspError, match="ESP_ERR_OTA_VALIDATE_FAILED"):
        dev.ota.esp_ota_set_boot_partition(ota_0)


def test_another_chip_revision_is_a_new_check() -> None:
    """The same flash, a device config with another chip revision: checked again, not reused."""
    dev, ota_0 = _updated_device()
    twin = Device(_flash(dev).fork(), "esp32", DeviceConfig(rollback=True, chip_rev=300),
                  cache=dev.cache)
    misses = dev.cache.misses
    assert twin.power_on().partition == ota_0
    assert dev.cache.misses > misses


def test_a_device_keeps_one_result_per_check_and_slot_however_many_updates() -> None:
    """Overwritten images are not kept alive by the memo: one result per check and slot."""
    dev = make_device(factory=image("1.0"), config=DeviceConfig(rollback=True))
    dev.power_on()
    sizes = []
    for n in range(6):
        install(dev, image(f"2.{n}"))
        dev.ota.esp_ota_set_boot_partition(dev.ota.esp_ota_get_next_update_partition())
        assert dev.reboot().status == "running"
        sizes.append(len(dev.cache))
    # bootloader_load_image and esp_image_verify of ota_0/ota_1, bootloader of factory
    assert sizes[-1] == sizes[-3] == 5
