"""The logic of ``otaforge firmware build``, ``run`` and ``sweep`` (the CLI is thin).

``firmware run`` keeps the device in files, as ``device run`` does: ``FLASH.bin`` (the whole
flash), ``FLASH.bin.efuse.json`` (its eFuses) and ``FLASH.bin.bootloader.json`` (the
bootloader's Kconfig). The bootloader's options come, at the first run, from the sdkconfig of
the project that built the image then in flash (the factory app, else the first app with a
host build): on a real board the bootloader is built from that project and OTA never changes
it. Command-line options override them (and are kept).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otaforge.crypto import keys as k
from otaforge.crypto.sbv2 import sign_v2
from otaforge.device.boot_table import require_partition_table
from otaforge.device.config import DeviceConfig
from otaforge.device.efuse import Efuses
from otaforge.device.flash import FileFlash
from otaforge.device.ota_partitions import read_partition_desc
from otaforge.errors import InputError
from otaforge.firmware.build import BuildResult, build, load_program_config
from otaforge.firmware.runner import BootRecord, FirmwareDevice
from otaforge.firmware.sweep import FwSweepReport
from otaforge.formats.chips import ChipSpec
from otaforge.formats.chips import chip as chip_spec
from otaforge.formats.partition_table import MAX_TABLE_LENGTH, PartitionTable
from otaforge.fsutil import atomic_write, read_file

# bootloader option -> (sdkconfig name, default)
BOOT_OPTIONS: dict[str, tuple[str, object]] = {
    "rollback": ("BOOTLOADER_APP_ROLLBACK_ENABLE", False),
    "anti_rollback": ("BOOTLOADER_APP_ANTI_ROLLBACK", False),
    "secure_version_bits": ("BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD", None),
    "factory_reset": ("BOOTLOADER_FACTORY_RESET", False),
    "app_test": ("BOOTLOADER_APP_TEST", False),
    "partition_table_offset": ("PARTITION_TABLE_OFFSET", 0x8000),
    "watchdog_timeout_s": ("ESP_TASK_WDT_TIMEOUT_S", 5),
}


def parse_pairs(items: list[str], option: str) -> dict[str, str]:
    """``NAME=VALUE`` items of a repeatable option.

    Raises:
        InputError: an item without ``=`` or without a name.
    """
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise InputError(f"{option} {item!r}: expected NAME=VALUE")
        out[name.strip()] = value.strip()
    return out


def build_firmware(project_dir: Path, output: Path, *, version: str | None = None,
                   secure_version: int | None = None, chip: str = "esp32",
                   defines: list[str] | None = None, sign: Path | None = None) -> BuildResult:
    """``otaforge firmware build``: build, optionally sign (Secure Boot v2), write ``output``.

    Raises:
        InputError: bad project, compile error, unsupported API, unreadable key, bad option.
    """
    if not project_dir.is_dir():
        raise InputError(f"{project_dir}: not a directory; give the ESP-IDF project directory "
                         "(the one with the top CMakeLists.txt)")
    key = k.load_private_key(read_file(sign, "--sign key")) if sign is not None else None
    result = build(project_dir, version=version, secure_version=secure_version, chip=chip,
                   defines=parse_pairs(defines or [], "-D"))
    image = sign_v2(result.image, [key]) if key is not None else result.image
    atomic_write(output, image)
    return BuildResult(image, result.program, result.program_sha256, result.project)


def efuse_path(flash_path: Path) -> Path:
    """Where the device's eFuses are kept (the same file ``device run`` uses)."""
    return flash_path.with_name(flash_path.name + ".efuse.json")


def bootloader_path(flash_path: Path) -> Path:
    """Where the device's bootloader configuration is kept."""
    return flash_path.with_name(flash_path.name + ".bootloader.json")


def _load_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        loaded = json.loads(path.read_text())
    except ValueError as err:
        raise InputError(f"{path}: not a JSON file ({err}); delete it to start afresh") from None
    if not isinstance(loaded, dict):
        raise InputError(f"{path}: expected a JSON object; delete it to start afresh")
    return loaded


def bootloader_from_flash(flash: FileFlash, table: PartitionTable) -> dict[str, Any]:
    """Bootloader options from the build config of the image in flash (factory first)."""
    apps = sorted((p for p in table.entries if p.type == 0), key=lambda p: p.subtype != 0)
    for part in apps:
        desc = read_partition_desc(flash, part)
        config = load_program_config(desc.elf_sha256_hex) if desc else None
        sdkconfig = config.get("sdkconfig") if config else None
        if config is not None and isinstance(sdkconfig, dict):
            out = {opt: sdkconfig.get(name, default) for opt, (name, default) in
                   BOOT_OPTIONS.items()}
            out["from"] = f"{part.name}: {config.get('project')} {config.get('version')}"
            return out
    out = {opt: default for opt, (_name, default) in BOOT_OPTIONS.items()}
    out["from"] = "ESP-IDF defaults (no image in flash has a host build)"
    return out


def _device_config(boot: dict[str, Any], boots: int) -> DeviceConfig:
    bits = boot.get("secure_version_bits")
    return DeviceConfig(rollback=bool(boot.get("rollback")),
                        anti_rollback=bool(boot.get("anti_rollback")),
                        secure_version_bits=int(bits) if isinstance(bits, int) else None,
                        factory_reset=bool(boot.get("factory_reset")),
                        app_test=bool(boot.get("app_test")),
                        partition_table_offset=int(boot.get("partition_table_offset", 0x8000)),
                        watchdog_timeout_s=float(boot.get("watchdog_timeout_s", 5)),
                        max_boots=boots)


@dataclass
class RunReport:
    """What ``firmware run`` did."""

    status: str
    reason: str
    boots: list[BootRecord] = field(default_factory=list)
    bootloader: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` document."""
        return {"status": self.status, "reason": self.reason, "bootloader": self.bootloader,
                "boots": [b.to_json() for b in self.boots]}


@dataclass
class DeviceFiles:
    """A device kept in files: its flash, bootloader options and eFuses (None: fresh)."""

    flash: FileFlash
    bootloader: dict[str, Any]
    efuses: Efuses | None

    def config(self, boots: int) -> DeviceConfig:
        """The device's build configuration (boot limit ``boots``)."""
        return _device_config(self.bootloader, boots)


def load_device(flash_path: Path, *, rollback: bool | None = None,
                anti_rollback: bool | None = None) -> DeviceFiles:
    """The device in ``flash_path`` and its sidecar files (bootloader options overridden).

    Raises:
        InputError: no flash file, no partition table, bad sidecar files.
    """
    if not flash_path.is_file() or flash_path.stat().st_size == 0:
        raise InputError(f"{flash_path}: no flash image; make one with 'otaforge flash compose "
                         "--partitions partitions.csv --factory APP.bin -o FLASH.bin'")
    flash = FileFlash(flash_path)
    boot = _load_json(bootloader_path(flash_path))
    offset = int(boot.get("partition_table_offset", 0x8000)) if boot else 0x8000
    require_partition_table(flash.read, str(flash_path), offset)
    table = PartitionTable.from_bytes(flash.read(offset, MAX_TABLE_LENGTH))
    boot = boot or bootloader_from_flash(flash, table)
    if rollback is not None:
        boot["rollback"] = rollback
    if anti_rollback is not None:
        boot["anti_rollback"] = anti_rollback
    fuses = _load_json(efuse_path(flash_path))
    try:
        efuses = Efuses.from_json(fuses) if fuses is not None else None
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(f"{efuse_path(flash_path)}: not an eFuse state file ({err})") from None
    return DeviceFiles(flash, boot, efuses)


def check_run_options(boots: int, wdt_timeout_s: float) -> None:
    """``--boots`` and ``--wdt-timeout`` of ``firmware run`` / ``sweep``.

    Raises:
        InputError: a value out of range.
    """
    if boots < 1:
        raise InputError(f"--boots {boots}: at least 1")
    if wdt_timeout_s <= 0:
        raise InputError(f"--wdt-timeout {wdt_timeout_s}: must be positive")


def run_firmware(flash_path: Path, *, boots: int = 8, hosts: list[str] | None = None,
                 wdt_timeout_s: float = 10.0, chip: str | ChipSpec = "esp32",
                 rollback: bool | None = None, anti_rollback: bool | None = None,
                 console: Callable[[str], None] | None = None) -> RunReport:
    """``otaforge firmware run``: power the device in ``flash_path`` on until idle or N boots.

    Raises:
        InputError: no flash file, no partition table, bad sidecar files or options.
        PowerCut: never from here (no cut is armed); DeviceError for a broken firmware process.
    """
    check_run_options(boots, wdt_timeout_s)
    host_map = parse_pairs(hosts or [], "--host")
    spec = chip_spec(chip) if isinstance(chip, str) else chip
    files = load_device(flash_path, rollback=rollback, anti_rollback=anti_rollback)
    flash, boot = files.flash, files.bootloader
    device = FirmwareDevice(flash, spec, files.config(boots), efuses=files.efuses,
                            wall_timeout_s=wdt_timeout_s, hosts=host_map, console=console)
    try:
        result = device.power_on()
    finally:
        flash.save(flash_path)
        atomic_write(efuse_path(flash_path),
                     (json.dumps(device.efuses.to_json(), indent=1) + "\n").encode())
        atomic_write(bootloader_path(flash_path),
                     (json.dumps(boot, indent=1, sort_keys=True) + "\n").encode())
    status = result.status
    if status == "reset_loop":
        status, reason = "stopped", f"stopped after {boots} boot(s) (--boots)"
    else:
        reason = result.reason
    return RunReport(status, reason, device.boots, boot)


def parse_ops(text: str | None) -> list[int] | None:
    """``--ops 0-20,100``: op indices (None: every op).

    Raises:
        InputError: not a list of indices or ranges.
    """
    if text is None:
        return None
    out: list[int] = []
    for item in (part.strip() for part in text.split(",")):
        first, sep, last = item.partition("-")
        if not first.isdigit() or (sep and not last.isdigit()):
            raise InputError(f"--ops {text!r}: expected op indices or ranges, e.g. 0-20,100")
        lo, hi = int(first), int(last) if sep else int(first)
        if hi < lo:
            raise InputError(f"--ops {item!r}: the range ends before it starts")
        out.extend(range(lo, hi + 1))
    return out


def sweep_firmware(flash_path: Path, *, modes: str = "before,after,torn", boots: int = 8,
                   hosts: list[str] | None = None, wdt_timeout_s: float = 10.0,
                   chip: str = "esp32", rollback: bool | None = None,
                   anti_rollback: bool | None = None, ops: str | None = None, jobs: int = 1,
                   seed: int = 0) -> FwSweepReport:
    """``otaforge firmware sweep``: record the device's run, then cut power at every flash
    operation of it in every mode (see :mod:`otaforge.firmware.sweep`). Nothing is written.

    Raises:
        InputError: bad options or files, or a scenario that does not end idle uncut.
    """
    from otaforge.device.powercut import parse_modes
    from otaforge.firmware.sweep import DeviceSetup, iter_cases, record

    check_run_options(boots, wdt_timeout_s)
    if jobs < 1:
        raise InputError(f"--jobs {jobs}: at least 1")
    cut_modes = parse_modes(modes)
    chosen = parse_ops(ops)
    host_map = parse_pairs(hosts or [], "--host")
    spec = chip_spec(chip)
    files = load_device(flash_path, rollback=rollback, anti_rollback=anti_rollback)
    config = files.config(boots)
    efuses = files.efuses or Efuses(spec, secure_version_bits=config.secure_version_bits)
    setup = DeviceSetup(files.flash.to_bytes(), spec.name, config, efuses, host_map,
                        wdt_timeout_s)
    recording = record(setup)
    report = FwSweepReport(recording)
    report.cases.extend(iter_cases(setup, recording, cut_modes, ops=chosen, jobs=jobs,
                                   seed=seed))
    return report
