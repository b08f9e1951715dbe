"""The seed's three C snippets, compiled unchanged, updating the emulated ESP32 from a real
otaforge server: update and confirm, failed self-test, hung self-test, secure_version downgrade;
the seed's every-boot ``esp_https_ota()`` gets 304 once it has the release, and a release it
rolled back is never offered again.
"""

from __future__ import annotations

import logging

import pytest

from otaforge.demo.seed_firmware import SEED_DIR, SEED_FILES, seed_text
from otaforge.device.config import DeviceConfig
from otaforge.firmware.runner import BootRecord
from otaforge.formats.otadata import OtaImgState
from tests.firmware.conftest import SeedRig
from tests.firmware.seed_source import Seed


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


def _flashed(boot: BootRecord) -> bool:
    return any(line.endswith("ota: OTA succeeded, rebooting...") for line in boot.console)


def _not_modified(boot: BootRecord) -> bool:
    return any(line.endswith("ota: OTA failed: ESP_ERR_HTTP_NOT_MODIFIED")
               for line in boot.console)


def test_a_complete_download_is_answered_304_at_every_later_boot(
        seed_rig: SeedRig, caplog: pytest.LogCaptureFixture) -> None:
    # both images call the seed's start_ota() at every boot without comparing versions
    url = f'"{seed_rig.url}"'
    factory = seed_rig.build("1.0.0", CONFIG_SEED_OTA_URL=url)
    update = seed_rig.build("2.0.0", CONFIG_SEED_OTA_URL=url)
    seed_rig.publish(update.image)
    device = seed_rig.device(factory.image)
    with caplog.at_level(logging.WARNING, logger="otaforge.server"):
        device.power_on()
    # a download counts once TCP says the device acknowledged its end; one the server saw
    # the device close before that is offered again (server.delivery), never more
    taken_back = sum("did not acknowledge the end of its download" in r.getMessage()
                     for r in caplog.records)
    assert 1 <= sum(map(_flashed, device.boots)) <= 1 + taken_back
    last = device.boots[-1]
    assert (last.version, last.ended, last.state_after) == ("2.0.0", "idle", OtaImgState.VALID)
    assert _not_modified(last)
    for _ in range(3):  # later power-ons: 304 every time, nothing flashed: no re-flash loop
        boots = len(device.boots)
        device.power_on()
        assert len(device.boots) == boots + 1
        assert device.boots[-1].ended == "idle" and _not_modified(device.boots[-1])
        assert not _flashed(device.boots[-1])


def test_a_rolled_back_release_is_never_offered_again(
        seed_rig: SeedRig, caplog: pytest.LogCaptureFixture) -> None:
    url = f'"{seed_rig.url}"'
    factory = seed_rig.build("1.0.0", CONFIG_SEED_OTA_URL=url)
    bad = seed_rig.build("2.0.0", CONFIG_SEED_OTA_URL=url, CONFIG_SEED_SELF_TEST_FAIL="y")
    seed_rig.publish(bad.image)
    device = seed_rig.device(factory.image, DeviceConfig(rollback=True, max_boots=10))
    with caplog.at_level(logging.WARNING, logger="otaforge.server"):
        device.power_on()
    # as above: a download the server saw closed before TCP acknowledged its end is offered
    # once more (a loaded machine can starve the server's check), never otherwise
    taken_back = sum("did not acknowledge the end of its download" in r.getMessage()
                     for r in caplog.records)
    flashed = sum(map(_flashed, device.boots))
    assert 1 <= flashed <= 1 + taken_back
    assert [(b.partition, b.version, b.ended) for b in device.boots] == \
        [("factory", "1.0.0", "software reset"), ("ota_0", "2.0.0", "rollback restart")] \
        * flashed + [("factory", "1.0.0", "idle")]
    back = device.boots[-1]
    assert back.slots["ota_0"] == OtaImgState.INVALID
    assert _not_modified(back) and not _flashed(back)
    device.power_on()
    assert device.boots[-1].partition == "factory" and device.boots[-1].ended == "idle"
    assert _not_modified(device.boots[-1])


def test_the_demo_ships_the_seed_verbatim(seed: Seed) -> None:
    # the demo runs where ../shared is absent, so it ships the snippets: exactly the seed's
    assert seed_text("ota.c") == seed.start_ota + seed.start_ota_with_progress
    assert seed_text("app_main.c") == seed.app_main
    assert seed_text("CMakeLists.txt") == seed.component_register
    assert seed_text("partitions.csv") == seed.partitions_csv
    assert seed_text("sdkconfig.defaults") == seed.sdkconfig
    assert sorted(p.name for p in SEED_DIR.iterdir()) == sorted(SEED_FILES)
