"""``otaforge firmware sweep``: power cut at recorded flash operations of real firmware.

The example app updating itself from a real otaforge server survives every sampled cut; a
case is the device after a real power cut there; an in-place updater that overwrites its only
app is caught bricking.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from otaforge.client.management import ManagementClient
from otaforge.device.config import DeviceConfig
from otaforge.device.efuse import Efuses
from otaforge.device.flash import MemoryFlash
from otaforge.device.flash_image import compose
from otaforge.device.powercut import PowerCutPlan
from otaforge.errors import PowerCut
from otaforge.firmware.build import build
from otaforge.firmware.sweep import DeviceSetup, iter_cases, record, run_case
from otaforge.formats.partition_table import PartitionTable
from otaforge.fsutil import atomic_write
from tests.conftest import run_cli
from tests.firmware.conftest import FLASH_SIZE
from tests.firmware.test_build import project


def _example_flash(example: dict[str, Any], admin: ManagementClient, tmp_path: Path,
                   ) -> tuple[Path, bytes]:
    """FLASH.bin with the example 1.0.0 in factory, and 1.1.0 published for it."""
    factory = build(example["project"], version="1.0.0", defines=example["defines"])
    update = build(example["project"], version="1.1.0", defines=example["defines"])
    admin.publish(example["fleet"], update.image, channel="stable")
    flash = tmp_path / "FLASH.bin"
    atomic_write(flash, compose(PartitionTable.from_csv(example["csv"]),
                                {"factory": factory.image}, flash_size=FLASH_SIZE))
    return flash, update.image


def test_example_update_survives_cuts_at_sampled_ops(example: dict[str, Any],
                                                     admin: ManagementClient,
                                                     tmp_path: Path) -> None:
    flash, _update = _example_flash(example, admin, tmp_path)
    before = flash.read_bytes()
    # a few ops of every phase: first NVS writes, slot erase/write, the otadata writes, the
    # reports after the reboot (indices past the end of the run are refused, so read them)
    listing = run_cli("firmware", "sweep", "--flash", str(flash), "--ops", "0", "--json",
                      "--jobs", "1", "--modes", "after")
    assert listing.returncode == 0, listing.stderr
    total = json.loads(listing.stdout)["ops"]
    sample = sorted({1, 2, total // 4, total // 2, total - 40, total - 12, total - 1})
    done = run_cli("firmware", "sweep", "--flash", str(flash), "--json", "--jobs", "2",
                   "--ops", ",".join(map(str, sample)))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["cases"] == 3 * len(sample) and report["bricked"] == 0, report["failures"]
    assert report["run"] < report["cases"]  # before #N is after #N-1: run once
    assert [b["ended"] for b in report["recorded_boots"]] == ["software reset", "idle"]
    assert any(o.startswith("ended on new") for o in report["outcomes"]), report["outcomes"]
    assert flash.read_bytes() == before  # the sweep never writes FLASH.bin
    text = run_cli("firmware", "sweep", "--flash", str(flash), "--jobs", "1", "--ops",
                   str(total // 2))
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[-1].startswith("3 cases, 0 bricked")


@pytest.mark.parametrize("mode", ["before", "after", "torn"])
def test_a_case_is_the_device_after_a_real_power_cut(example: dict[str, Any],
                                                     admin: ManagementClient,
                                                     tmp_path: Path, mode: str) -> None:
    flash_path, _update = _example_flash(example, admin, tmp_path)
    base = flash_path.read_bytes()
    config = DeviceConfig(rollback=True, anti_rollback=True, max_boots=4)
    setup = DeviceSetup(base, "esp32", config, Efuses("esp32"), {}, 5.0)
    op_index = 60  # inside the slot download (past the first NVS writes)
    real = setup.device(MemoryFlash(len(base), base))
    assert isinstance(real.flash, MemoryFlash)
    real.flash.arm(PowerCutPlan(op_index, mode, seed=0))  # type: ignore[arg-type]
    with pytest.raises(PowerCut):
        real.power_on()
    recording = record(setup)
    rebuilt = setup.flash()
    for op in recording.ops[:op_index]:
        op.apply(rebuilt)
    rebuilt.plan = PowerCutPlan(op_index, mode, seed=0)  # type: ignore[arg-type]
    rebuilt.op_count = op_index
    with pytest.raises(PowerCut):
        recording.ops[op_index].apply(rebuilt)
    assert rebuilt.to_bytes() == real.flash.to_bytes()
    case = next(iter_cases(setup, recording, ("torn",), ops=[op_index]))
    assert case.ok, case


UNSAFE_MAIN = """\
#include <string.h>
#include "esp_app_desc.h"
#include "esp_log.h"
#include "esp_partition.h"
#include "esp_system.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
extern const uint8_t new_bin_start[] asm("_binary_new_bin_start");
extern const uint8_t new_bin_end[] asm("_binary_new_bin_end");
/* an updater that overwrites the only app it has, in place: a cut there bricks the device */
void app_main(void)
{
    if (strcmp(esp_app_get_description()->version, "1") == 0) {
        const esp_partition_t *me = esp_partition_find_first(ESP_PARTITION_TYPE_APP,
            ESP_PARTITION_SUBTYPE_APP_FACTORY, NULL);
        size_t n = (size_t)(new_bin_end - new_bin_start);
        ESP_ERROR_CHECK(esp_partition_erase_range(me, 0, (n + 4095) & ~(size_t)4095));
        for (size_t off = 0; off < n; off += 4096) {
            size_t chunk = n - off < 4096 ? n - off : 4096;
            ESP_ERROR_CHECK(esp_partition_write(me, off, new_bin_start + off, chunk));
        }
        esp_restart();
    }
    ESP_LOGI("unsafe", "running %s", esp_app_get_description()->version);
    vTaskDelay(pdMS_TO_TICKS(600000));
}
"""
UNSAFE_TABLE = """\
nvs, data, nvs, 0x9000, 0x6000,
factory, app, factory, 0x10000, 0x60000,
"""


def test_an_in_place_updater_is_caught_bricking(tmp_path: Path) -> None:
    root = project(tmp_path / "unsafe", UNSAFE_MAIN,
                   'SRCS "main.c" INCLUDE_DIRS "." EMBED_FILES "new.bin"',
                   files={"new.bin": b"placeholder"})
    new = build(root, version="2").image
    (root / "main" / "new.bin").write_bytes(new)
    old = build(root, version="1").image
    flash = tmp_path / "FLASH.bin"
    atomic_write(flash, compose(PartitionTable.from_csv(UNSAFE_TABLE), {"factory": old},
                                flash_size=4 * 1024 * 1024))
    done = run_cli("firmware", "sweep", "--flash", str(flash), "--ops", "0-2", "--json",
                   "--jobs", "1")
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["cases"] == 9 and report["bricked"] > 0
    assert {f["outcome"] for f in report["failures"]} == {"bricked"}
    assert all(f["op"] > 0 or f["mode"] != "before" for f in report["failures"])


def test_a_known_boot_state_gives_the_outcome_of_running_it(example: dict[str, Any],
                                                            admin: ManagementClient,
                                                            tmp_path: Path) -> None:
    flash_path, _update = _example_flash(example, admin, tmp_path)
    base = flash_path.read_bytes()
    config = DeviceConfig(rollback=True, anti_rollback=True, max_boots=6)
    setup = DeviceSetup(base, "esp32", config, Efuses("esp32"), {}, 5.0)
    recording = record(setup)
    slot = PartitionTable.from_csv(example["csv"]).find("ota_0")
    assert slot is not None
    # erasing a still-erased sector of the slot, fully or torn, leaves the same flash: the
    # torn case powers on into the state the "after" case started from
    erase = next(op for op in recording.ops if op.kind == "erase"
                 and slot.offset <= op.addr < slot.offset + slot.size)
    after, torn = iter_cases(setup, recording, ("after", "torn"), ops=[erase.index])
    assert after.ok and not after.known_at_boot
    assert torn.known_at_boot == 1, torn
    before = setup.flash()
    for op in recording.ops[: erase.index]:
        op.apply(before)
    full = run_case(setup, recording.images, before, erase, "torn")
    assert not full.known_at_boot
    assert (full.outcome, full.ok, full.boots) == (torn.outcome, torn.ok, torn.boots)
