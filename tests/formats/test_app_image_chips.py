"""The chip table against the installed esptool's targets (the source it was checked with)."""

from __future__ import annotations

import esptool.targets as esptool_targets  # a dependency: a missing esptool fails, not skips
import pytest

from otaforge.errors import InputError
from otaforge.formats.chips import CHIPS, CHIPS_BY_ID, chip, chip_by_id

# every image-capable target of the installed esptool (ESP8266 has no chip id: not an ESP32 image)
ESPTOOL_CHIPS = {name: target.IMAGE_CHIP_ID for name, target in esptool_targets.CHIP_DEFS.items()
                 if name != "esp8266"}


def test_every_chip_esptool_knows_with_its_id() -> None:
    assert {name: spec.chip_id for name, spec in CHIPS.items()} == ESPTOOL_CHIPS
    assert set(CHIPS_BY_ID) == set(ESPTOOL_CHIPS.values())
    assert {"esp32h4", "esp32h21", "esp32e22", "esp32s31"} <= set(CHIPS)


@pytest.mark.parametrize("name", sorted(ESPTOOL_CHIPS))
def test_chip_matches_esptool_target(name: str) -> None:
    target = esptool_targets.CHIP_DEFS[name]
    spec = CHIPS[name]
    assert spec.chip_id == target.IMAGE_CHIP_ID
    assert spec.display_name == target.CHIP_NAME
    assert spec.irom == (target.IROM_MAP_START, target.IROM_MAP_END)
    assert spec.drom == (target.DROM_MAP_START, target.DROM_MAP_END)
    assert spec.memory_map == tuple(tuple(row) for row in target.MEMORY_MAP)
    assert spec.flash_freq == tuple(target.FLASH_FREQUENCY.items())
    assert spec.mmu_page_sizes == target.BOOTLOADER_IMAGE.MMU_PAGE_SIZE_CONF
    assert spec.mmu_page_size == target.BOOTLOADER_IMAGE.IROM_ALIGN
    assert spec.bootloader_offset == target.BOOTLOADER_FLASH_OFFSET
    rows = {kind: (lo, hi) for lo, hi, kind in reversed(target.MEMORY_MAP)}
    assert (spec.iram, spec.dram) == (rows["IRAM"], rows["DRAM"])


def test_lookup_by_name_and_id() -> None:
    assert chip("ESP32-S3") is CHIPS["esp32s3"] and chip("esp32_c3") is CHIPS["esp32c3"]
    assert chip_by_id(0x17) is CHIPS["esp32c5"] and chip_by_id(0x99) is None
    with pytest.raises(InputError, match="unknown chip 'esp8266'"):
        chip("esp8266")


def test_page_size_follows_app_desc_only_on_configurable_chips() -> None:
    assert chip("esp32c6").page_size_for(15) == 0x8000
    assert chip("esp32c6").page_size_for(12) == 0x10000  # 4 KiB: not a C6 page size
    assert chip("esp32").page_size_for(15) == 0x10000
    assert chip("esp32c2").page_size_for(0) == 0x10000


@pytest.mark.parametrize("name", sorted(ESPTOOL_CHIPS))
def test_secure_version_width_matches_espefuse(name: str) -> None:
    import importlib.util
    import re
    from pathlib import Path

    spec = importlib.util.find_spec("espefuse")  # installed with esptool; found, not imported
    assert spec is not None and spec.submodule_search_locations
    defs = Path(next(iter(spec.submodule_search_locations))) / "efuse_defs" / f"{name}.yaml"
    found = re.search(r"^\s*SECURE_VERSION\s*:.*?len\s*:\s*(\d+)", defs.read_text(), re.M)
    assert found is not None, defs
    assert CHIPS[name].secure_version_bits == int(found.group(1))
