"""One emulated device kept in files between runs, and one agent cycle on it.

``FLASH.bin`` is the whole flash as ``esptool read-flash`` would dump it; its eFuses (secure
version, Secure Boot key digests) live beside it in ``FLASH.bin.efuse.json``, because eFuses
are not in flash but must survive between runs just the same.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from otaforge.agent.selftest import AgentFirmware
from otaforge.agent.updater import BootOutcome, Outcome, Updater, UpdateResult
from otaforge.device.boot_table import require_partition_table
from otaforge.device.efuse import Efuses
from otaforge.device.emulator import BEHAVIOURS, Behaviour, Device, DeviceConfig
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


@dataclass(frozen=True)
class CycleResult:
    """One agent cycle: boot check, check-in/update, and the boot after an update.

    Attributes:
        boot: what the boot check found.
        update: the check-in's result.
        after_reboot: the boot check after installing an update (None without one).
    """

    boot: BootOutcome
    update: UpdateResult
    after_reboot: BootOutcome | None

    @property
    def ok(self) -> bool:
        """True unless something was refused, failed or rolled back."""
        bad_boot = {BootOutcome.ROLLED_BACK, BootOutcome.UNVERIFIABLE}
        if self.boot in bad_boot or self.after_reboot in bad_boot:
            return False
        return self.update.outcome in (Outcome.NO_UPDATE, Outcome.INSTALLED, Outcome.SKIPPED,
                                       Outcome.BUSY)


def run_cycle(updater: Updater) -> CycleResult:
    """Boot check, check in, install an offered update, reboot into it and verify it.

    Raises:
        PowerCut: injected power loss (state is in flash; run again to resume).
        TransportError: the server could not be reached for the check-in.
    """
    boot = updater.on_boot()
    update = updater.check_for_update()
    after = updater.reboot() if update.outcome == Outcome.INSTALLED else None
    return CycleResult(boot, update, after)
