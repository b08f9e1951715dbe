"""The emulated ESP32 running host builds of real firmware, one fresh process per boot.

:class:`FirmwareDevice` is a :class:`~otaforge.device.emulator.Device` whose ``app_main`` is
the program built by ``otaforge firmware build`` for the booted image (found in the build cache
by the image's ``app_elf_sha256``). The bootloader, flash, otadata and eFuses are the
emulator's as for every device; the firmware's calls are served by
:class:`~otaforge.firmware.serve.FirmwareSession`. Each boot is recorded as a
:class:`BootRecord` (partition, version, otadata state, how it ended, its console).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otaforge.device.emulator import AppReset, Behaviour, Device
from otaforge.device.ota_ops import OtaOps
from otaforge.errors import EspError, PowerCut
from otaforge.firmware.build import PROGRAM, load_program_config, program_dir
from otaforge.firmware.kconfig import Value
from otaforge.firmware.process import run_boot
from otaforge.firmware.serve import (
    ESP_RST_PANIC,
    ESP_RST_POWERON,
    ESP_RST_SW,
    ESP_RST_TASK_WDT,
    FirmwareSession,
    SessionConfig,
)
from otaforge.firmware.watchdog import TaskWatchdog
from otaforge.formats.otadata import OtaImgState

_RESET_REASONS = {"restart": ESP_RST_SW, "panic": ESP_RST_PANIC, "watchdog": ESP_RST_TASK_WDT}


def state_name(state: int | None) -> str | None:
    """An otadata state as ESP-IDF names it (``ESP_OTA_IMG_VALID`` -> ``valid``)."""
    if state is None:
        return None
    try:
        return OtaImgState(state).name.lower()
    except ValueError:
        return "undefined"


@dataclass
class BootRecord:
    """One boot of the device.

    Attributes:
        number: boot count of the device (1-based, across power-ons of this run).
        partition: the partition the bootloader started.
        version: its ``esp_app_desc_t.version``.
        boot_state: the slot's otadata state the app found (None: factory / no otadata).
        state_after: the slot's otadata state when the boot ended.
        ended: ``idle``, ``software reset``, ``rollback restart``, ``panic``,
            ``task watchdog``, ``power cut`` or ``no firmware`` (an image without a host
            build).
        detail: more about the end (signal, delay...).
        console: what the firmware printed.
        slots: every OTA slot's otadata state as the app found it at boot.
    """

    number: int
    partition: str
    version: str | None
    boot_state: int | None
    state_after: int | None = None
    ended: str = ""
    detail: str = ""
    console: list[str] = field(default_factory=list)
    slots: dict[str, int | None] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The record for ``firmware run --json``."""
        return {"boot": self.number, "partition": self.partition, "version": self.version,
                "otadata_state": state_name(self.boot_state),
                "otadata_state_after": state_name(self.state_after),
                "reset_reason": self.ended, "detail": self.detail,
                "slots": {name: state_name(state) for name, state in self.slots.items()}}


def _int(config: dict[str, Value], name: str, default: int) -> int:
    value = config.get(name, default)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def app_watchdog(config: dict[str, Value]) -> TaskWatchdog:
    """The TWDT as ESP-IDF's start-up leaves it for an app built with ``config``."""
    return TaskWatchdog(initialized=bool(config.get("ESP_TASK_WDT_INIT", True)),
                        timeout_s=float(_int(config, "ESP_TASK_WDT_TIMEOUT_S", 5)),
                        panic=bool(config.get("ESP_TASK_WDT_PANIC", False)))


class FirmwareDevice(Device):
    """A device whose apps are host builds of ESP-IDF firmware (see the module doc).

    Extra keyword arguments:
        wall_timeout_s: a firmware silent this long (wall clock) is reset by the watchdog.
        hosts: ``--host NAME=IP`` entries (the device's DNS).
        idle_delay_s: see :class:`~otaforge.firmware.serve.SessionConfig`.
        console: called with every console line (prefixed by nothing: as ``idf.py monitor``).
    """

    def __init__(self, *args: Any, wall_timeout_s: float = 10.0,
                 hosts: dict[str, str] | None = None, idle_delay_s: float = 30.0,
                 console: Callable[[str], None] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.wall_timeout_s = wall_timeout_s
        self.hosts = dict(hosts or {})
        self.idle_delay_s = idle_delay_s
        self.console = console or (lambda line: None)
        self.boots: list[BootRecord] = []
        self._reset_reason = ESP_RST_POWERON

    def power_on(self, *, factory_reset: bool = False, test_app: bool = False) -> Any:
        """Power on (the first boot's reset reason is POWERON)."""
        self._reset_reason = ESP_RST_POWERON
        return super().power_on(factory_reset=factory_reset, test_app=test_app)

    def _app_main(self, behaviour: Behaviour, boot_state: int | None) -> None:
        part, desc, ota = self.running_partition, self.running_desc, self._ota
        assert part is not None and ota is not None
        record = BootRecord(self.boot_count, part.name, desc.version if desc else None,
                            boot_state, slots=self._slot_states(ota))
        self.boots.append(record)

        def line(text: str) -> None:
            record.console.append(text)
            self.console(text)

        program = program_dir(desc.elf_sha256_hex) / PROGRAM if desc else None
        config = load_program_config(desc.elf_sha256_hex) if desc else None
        if program is None or config is None:
            record.ended = "no firmware"
            line(f"otaforge: no host build of {part.name}'s image in the firmware cache "
                 "(build it with 'otaforge firmware build'); the stand-in app runs instead")
            super()._app_main(behaviour, boot_state)
            record.state_after = self._slot_state(part)
            return
        self._run_firmware(program, config, ota, record, line)

    def _slot_states(self, ota: OtaOps) -> dict[str, int | None]:
        states: dict[str, int | None] = {}
        for part in self.partition_table().entries:
            if part.is_ota_slot:
                try:
                    states[part.name] = ota.esp_ota_get_state_partition(part)
                except EspError:
                    states[part.name] = None
        return states

    def _run_firmware(self, program: Path, config: dict[str, object], ota: OtaOps,
                      record: BootRecord, line: Callable[[str], None]) -> None:
        part = self.running_partition
        assert part is not None
        sdkconfig = config.get("sdkconfig", {})
        session = FirmwareSession(
            self.flash, self.partition_table(), ota, self.clock, part, self._reset_reason,
            SessionConfig(self.idle_delay_s,
                          app_watchdog(sdkconfig if isinstance(sdkconfig, dict) else {}),
                          self.hosts), line)
        try:
            end = run_boot(program, session, self.wall_timeout_s, line)
        except PowerCut as cut:
            record.ended, record.detail = "power cut", str(cut)
            raise
        kind = end.kind
        reason = {"idle": "idle", "panic": "panic", "watchdog": "task watchdog"}.get(kind)
        record.ended = reason or end.detail or "software reset"
        record.detail = end.detail
        record.state_after = self._slot_state(part)
        if kind == "idle":
            return
        self._reset_reason = _RESET_REASONS.get(kind, ESP_RST_SW)
        raise AppReset(record.ended)
