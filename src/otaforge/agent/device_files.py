"""One emulated device kept in files between runs (``otaforge device run``).

``FLASH.bin`` is the whole flash as ``esptool read-flash`` would dump it; its eFuses (secure
version, Secure Boot key digests) live beside it in ``FLASH.bin.efuse.json``, because eFuses
are not in flash but must survive between runs just the same.
"""

from __future__ import annotations

import json
from pathlib import Path

from otaforge.agent.selftest import AgentFirmware
from otaforge.device.boot_table import require_partition_table
from otaforge.device.config import DeviceConfig
from otaforge.device.efuse import Efuses
from otaforge.device.emulator import BEHAVIOURS, Behaviour, Device
from otaforge.device.flash import FileFlash
from otaforge.errors import InputError
from otaforge.formats.chips import ChipSpec
from otaforge.fsutil import atomic_write


def efuse_path(flash_path: Path) -> Path:
    """Where the eFuses of the device whose flash is ``flash_path`` are kept."""
    return flash_path.with_name(flash_path.name + ".efuse.json")


def parse_behaviours(items: list[str]) -> dict[str, Behaviour]:
    """``VERSION=BEHAVIOUR`` items (e.g. ``1.2.0=fails_self_test``) as a mapping.

    Raises:
        InputError: malformed item or unknown behaviour.
    """
    out: dict[str, Behaviour] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or value not in BEHAVIOURS:
            raise InputError(f"--app {item!r}: expected VERSION=BEHAVIOUR with BEHAVIOUR one "
                             f"of {', '.join(BEHAVIOURS)}")
        out[key] = value  # type: ignore[assignment]
    return out


def load_device(flash_path: Path, chip: ChipSpec, config: DeviceConfig,
                apps: dict[str, Behaviour] | None = None,
                key_digests: list[bytes] | None = None) -> Device:
    """The device whose flash is in ``flash_path`` (eFuses from the sidecar file, if any).

    Args:
        flash_path: the flash image (e.g. from ``otaforge flash compose``).
        chip: the chip.
        config: bootloader/app configuration.
        apps: app behaviours by version or image SHA-256 (default: all healthy).
        key_digests: Secure Boot v2 key digests to burn (kept once burned).

    Raises:
        InputError: the flash file is missing or malformed, or the sidecar is.
    """
    if not flash_path.is_file():
        raise InputError(f"{flash_path}: no flash image; make one with 'otaforge flash "
                         "compose --partitions P.csv --factory app.bin -o FLASH.bin'")
    if flash_path.stat().st_size == 0:
        raise InputError(f"{flash_path}: empty file, not a flash image; make one with "
                         "'otaforge flash compose'")
    flash = FileFlash(flash_path)
    require_partition_table(flash.read, str(flash_path), config.partition_table_offset)
    sidecar = efuse_path(flash_path)
    efuses: Efuses | None = None
    if sidecar.is_file():
        try:
            efuses = Efuses.from_json(json.loads(sidecar.read_text()))
        except ValueError as err:
            raise InputError(f"{sidecar}: not an eFuse state file ({err})") from None
    device = Device(flash, chip, config, efuses=efuses, apps=AgentFirmware(apps or {}))
    for digest in key_digests or []:
        if digest not in device.efuses.key_digests:
            device.efuses.burn_key_digest(digest)
    return device


def save_device(device: Device, flash_path: Path) -> None:
    """Write the flash and the eFuses back (atomically)."""
    flash = device.flash
    if isinstance(flash, FileFlash):
        flash.save(flash_path)
    atomic_write(efuse_path(flash_path),
                 (json.dumps(device.efuses.to_json(), indent=1) + "\n").encode())
