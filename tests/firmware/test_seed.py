"""The seed's three C snippets, compiled unchanged, updating the emulated ESP32 from a real
otaforge server: update and confirm, failed self-test, hung self-test, secure_version downgrade.
"""

from __future__ import annotations

from otaforge.device.config import DeviceConfig
from otaforge.formats.otadata import OtaImgState
from tests.firmware.conftest import SeedRig


def test_update_succeeds_and_is_marked_valid(seed_rig: SeedRig) -> None:
    factory = seed_rig.build("1.0.0", CONFIG_SEED_OTA_URL=f'"{seed_rig.url}"')
    update = seed_rig.build("2.0.0")
    seed_rig.publish(update.image)
    device = seed_rig.device(factory.image)
    result = device.power_on()
    assert result.status == "running"
    first, second = device.boots
    assert (first.partition, first.version, first.ended) == ("factory", "1.0.0", "software reset")
    assert (second.partition, second.version) == ("ota_0", "2.0.0")
    assert second.boot_state == OtaImgState.PENDING_VERIFY
    assert second.state_after == OtaImgState.VALID
    assert second.ended == "idle"
    assert any(line.endswith("ota: OTA succeeded, rebooting...") for line in first.console)
    assert any(line.endswith("seed_app: OTA firmware validated") for line in second.console)
    # the slot holds exactly the published image
    part = device.partition("ota_0")
    assert device.flash.read(part.offset, len(update.image)) == update.image


def test_update_with_progress_reports_every_chunk(seed_rig: SeedRig) -> None:
    factory = seed_rig.build("1.0.0", CONFIG_SEED_OTA_URL=f'"{seed_rig.url}"',
                             CONFIG_SEED_WITH_PROGRESS="y")
    update = seed_rig.build("2.1.0")
    seed_rig.publish(update.image)
    device = seed_rig.device(factory.image)
    device.power_on()
    progress = [line for line in device.boots[0].console if "OTA progress:" in line]
    assert progress and progress[-1].endswith(
        f"OTA progress: {len(update.image)}/{len(update.image)} bytes (100%)")
    assert any("OTA complete, rebooting..." in line for line in device.boots[0].console)
    assert device.boots[1].state_after == OtaImgState.VALID


def test_failing_self_test_rolls_back(seed_rig: SeedRig) -> None:
    factory = seed_rig.build("1.0.0", CONFIG_SEED_OTA_URL=f'"{seed_rig.url}"')
    bad = seed_rig.build("2.0.0", CONFIG_SEED_SELF_TEST_FAIL="y")
    seed_rig.publish(bad.image)
    device = seed_rig.device(factory.image, DeviceConfig(rollback=True, max_boots=3))
    device.power_on()
    second, third = device.boots[1:3]
    assert second.version == "2.0.0" and second.boot_state == OtaImgState.PENDING_VERIFY
    assert any("Self-test failed, rolling back!" in line for line in second.console)
    assert second.ended == "rollback restart"
    assert second.state_after == OtaImgState.INVALID
    assert (third.partition, third.version) == ("factory", "1.0.0")


def test_hanging_self_test_is_reset_by_the_watchdog_and_rolled_back(seed_rig: SeedRig) -> None:
    factory = seed_rig.build("1.0.0", CONFIG_SEED_OTA_URL=f'"{seed_rig.url}"')
    hung = seed_rig.build("2.0.0", CONFIG_SEED_SELF_TEST_HANG="y")
    seed_rig.publish(hung.image)
    device = seed_rig.device(factory.image, DeviceConfig(rollback=True, max_boots=3),
                             wall_timeout_s=1.0)
    device.power_on()
    second, third = device.boots[1:3]
    assert second.version == "2.0.0" and second.ended == "task watchdog"
    assert (third.partition, third.version) == ("factory", "1.0.0")
    assert second.state_after == OtaImgState.PENDING_VERIFY  # never confirmed
    assert third.slots["ota_0"] == OtaImgState.ABORTED  # the bootloader gave up on it


def test_downgrade_below_efuse_secure_version_is_refused(seed_rig: SeedRig) -> None:
    anti = {"CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK": "y"}
    factory = seed_rig.build("3.0.0", CONFIG_SEED_OTA_URL=f'"{seed_rig.url}"',
                             CONFIG_BOOTLOADER_APP_SECURE_VERSION="2", **anti)
    old = seed_rig.build("2.0.0", CONFIG_BOOTLOADER_APP_SECURE_VERSION="1", **anti)
    seed_rig.publish(old.image)
    device = seed_rig.device(factory.image, DeviceConfig(rollback=True, anti_rollback=True))
    device.efuses.burn_secure_version(2)
    result = device.power_on()
    assert result.status == "running" and len(device.boots) == 1
    boot = device.boots[0]
    assert (boot.partition, boot.ended) == ("factory", "idle")
    assert any(line.endswith("ota: OTA failed: ESP_ERR_OTA_SMALL_SEC_VER")
               for line in boot.console)
    assert device.ota.esp_ota_get_boot_partition() is None or \
        device.ota.esp_ota_get_boot_partition().name == "factory"
