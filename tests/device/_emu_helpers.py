"""Shared builders for the device emulator tests (seed partition table, images, devices)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from otaforge.device.efuse import Efuses
from otaforge.device.emulator import AppRegistry, Device, DeviceConfig, compose_flash
from otaforge.device.flash import MemoryFlash
from otaforge.formats.image_builder import build_image
from otaforge.formats.partition_table import PartitionTable
from tests.conftest import SHARED_FIXTURES

MB = 1024 * 1024
SEED_CSV = SHARED_FIXTURES / "partitions" / "seed.csv"
NO_FACTORY_CSV = """\
nvs, data, nvs, 0x9000, 0x4000,
otadata, data, ota, 0xd000, 0x2000,
phy_init, data, phy, 0xf000, 0x1000,
ota_0, app, ota_0, 0x10000, 0x100000,
ota_1, app, ota_1, 0x110000, 0x100000,
"""


@cache
def seed_table(shared: Path | None = None) -> PartitionTable:
    path = (shared / "partitions" / "seed.csv") if shared else SEED_CSV
    return PartitionTable.from_csv(path.read_text())


@cache
def image(version: str, size: int = 48 * 1024, secure_version: int = 0,
          chip: str = "esp32") -> bytes:
    seed = sum(version.encode()) + 7 * secure_version
    return build_image(version=version, size=size, seed=seed, secure_version=secure_version,
                       chip=chip)


def make_device(table: PartitionTable | None = None, *, factory: bytes | None = None,
                images: dict[str, bytes] | None = None, config: DeviceConfig | None = None,
                apps: AppRegistry | None = None, efuses: Efuses | None = None,
                strict: bool = False, flash_size: int = 8 * MB, chip: str = "esp32") -> Device:
    table = table or seed_table()
    placed = dict(images or {})
    if factory is not None:
        placed["factory"] = factory
    base = compose_flash(table, placed)
    flash = MemoryFlash(flash_size, base, strict=strict)
    return Device(flash, chip, config or DeviceConfig(rollback=True), efuses, apps)


def install(dev: Device, img: bytes, chunk: int = 4096) -> None:
    """esp_https_ota-style update into the next slot and set it to boot (no reboot)."""
    ota = dev.ota
    part = ota.esp_ota_get_next_update_partition()
    handle = ota.esp_ota_begin(part, 0xFFFFFFFE)
    for pos in range(0, len(img), chunk):
        ota.esp_ota_write(handle, img[pos : pos + chunk])
    ota.esp_ota_end(handle)
    ota.esp_ota_set_boot_partition(part)
