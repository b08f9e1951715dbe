"""firmware/examples/ota_app with the otaforge_client component, built for the emulator, against
a real otaforge server: check in, download, reboot, self-test under the task watchdog, confirm,
report every state; a failing self-test rolls back and is reported.
"""

from __future__ import annotations

from typing import Any

import pytest

from otaforge.client.management import ManagementClient
from otaforge.device.config import DeviceConfig
from otaforge.device.flash import MemoryFlash
from otaforge.device.flash_image import compose
from otaforge.device.powercut import PowerCutPlan
from otaforge.errors import PowerCut
from otaforge.firmware.build import build
from otaforge.firmware.runner import FirmwareDevice
from otaforge.formats.otadata import OtaImgState
from otaforge.formats.partition_table import PartitionTable
from tests.firmware.conftest import FLASH_SIZE


def _device(example: dict[str, Any], factory: bytes, lines: list[str]) -> FirmwareDevice:
    image = compose(PartitionTable.from_csv(example["csv"]), {"factory": factory},
                    flash_size=FLASH_SIZE)
    return FirmwareDevice(MemoryFlash(FLASH_SIZE, image), "esp32",
                          DeviceConfig(rollback=True, anti_rollback=True, max_boots=4),
                          wall_timeout_s=5.0, console=lines.append)


def _states(admin: ManagementClient, device_id: str) -> list[str]:
    return [e["state"] for e in admin.device(device_id)["events"]]


def test_example_updates_confirms_and_reports(example: dict[str, Any],
                                              admin: ManagementClient) -> None:
    factory = build(example["project"], version="1.0.0", defines=example["defines"])
    update = build(example["project"], version="1.1.0", defines=example["defines"])
    admin.publish(example["fleet"], update.image, channel="stable")
    lines: list[str] = []
    device = _device(example, factory.image, lines)
    result = device.power_on()
    assert result.status == "running", "\n".join(lines)
    first, second = device.boots
    assert (first.partition, first.ended) == ("factory", "software reset")
    assert (second.partition, second.version) == ("ota_0", "1.1.0")
    assert second.boot_state == OtaImgState.PENDING_VERIFY
    assert second.state_after == OtaImgState.VALID
    assert second.ended == "idle"  # checked in again, nothing new: sleeps until the next one
    states = _states(admin, example["device_id"])
    for state in ("downloading", "downloaded", "rebooting", "pending_verify", "confirmed"):
        assert state in states, states


def test_example_failing_self_test_rolls_back_and_reports(example: dict[str, Any],
                                                          admin: ManagementClient) -> None:
    factory = build(example["project"], version="1.0.0", defines=example["defines"])
    bad = build(example["project"], version="1.2.0",
                defines={**example["defines"], "CONFIG_OTA_APP_SELF_TEST_FAIL": "y"})
    admin.publish(example["fleet"], bad.image, channel="stable")
    lines: list[str] = []
    device = _device(example, factory.image, lines)
    device.power_on()
    assert len(device.boots) >= 3, "\n".join(lines)
    second, third = device.boots[1:3]
    assert second.version == "1.2.0", "\n".join(lines)
    # with anti-rollback esp_ota_ops does not count the factory app as a rollback target
    # (ESP_ERR_OTA_ROLLBACK_FAILED); the component restarts and the bootloader rolls back
    assert any("ESP_ERR_OTA_ROLLBACK_FAILED; restarting" in line for line in second.console)
    assert second.ended == "software reset"
    assert (third.partition, third.version) == ("factory", "1.0.0")
    assert third.slots["ota_0"] == OtaImgState.ABORTED
    assert "rolled_back" in _states(admin, example["device_id"])


def test_example_resumes_a_download_cut_by_a_power_failure(example: dict[str, Any],
                                                           admin: ManagementClient) -> None:
    defines = {**example["defines"], "CONFIG_OTAFORGE_PROGRESS_SAVE_BYTES": "16384"}
    factory = build(example["project"], version="1.0.0", defines=defines)
    update = build(example["project"], version="1.3.0", defines=defines)
    admin.publish(example["fleet"], update.image, channel="stable")
    lines: list[str] = []
    device = _device(example, factory.image, lines)
    flash = device.flash
    assert isinstance(flash, MemoryFlash)
    flash.arm(PowerCutPlan(op_index=300, mode="torn"))  # well into the download
    with pytest.raises(PowerCut):
        device.power_on()
    assert device.boots[0].ended == "power cut"  # the process died with the chip
    device.power_on()
    resumed = device.boots[1]
    assert resumed.partition == "factory"
    resume_lines = [line for line in resumed.console if "resuming 1.3.0 at byte" in line]
    assert resume_lines, "\n".join(resumed.console)
    assert int(resume_lines[0].rsplit(" ", 1)[1]) >= 16384
    final = device.boots[-1]
    assert (final.partition, final.version, final.state_after) == \
        ("ota_0", "1.3.0", OtaImgState.VALID)
    part = device.partition("ota_0")
    assert device.flash.read(part.offset, len(update.image)) == update.image
