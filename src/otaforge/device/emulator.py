"""An emulated ESP32: power on -> second-stage bootloader -> the app runs, in virtual time.

The bootloader decision is :func:`otaforge.device.bootloader.select_boot` (pure); the device
applies its otadata writes through the :class:`~otaforge.device.flash.Flash` (so they are
counted and can be cut), burns the secure version it asks for, then runs the app in the chosen
partition. An app is a stand-in for the firmware in that image, looked up by image SHA-256 or
version string in an :class:`AppRegistry`:

* ``healthy``: passes its self-test; a PENDING_VERIFY app marks itself valid;
* ``never_confirms``: runs but never calls ``esp_ota_mark_app_valid_cancel_rollback``;
* ``fails_self_test``: a PENDING_VERIFY app calls
  ``esp_ota_mark_app_invalid_rollback_and_reboot``;
* ``hangs``: the task watchdog fires after ``watchdog_timeout_s`` of virtual time and resets;
* ``panics``: resets right after boot (a reset loop unless rollback saves it).

A power-on keeps rebooting while the app resets, up to ``max_boots``; then the device is
reported as being in a reset loop.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal, Protocol

from otaforge.device.bootloader import select_boot
from otaforge.device.config import DeviceConfig
from otaforge.device.efuse import Efuses
from otaforge.device.flash import Flash
from otaforge.device.ota_ops import OtaOps
from otaforge.device.ota_partitions import read_partition_desc
from otaforge.device.verify_cache import VerifyCache, content_key_of
from otaforge.errors import DeviceError, EspError, InputError
from otaforge.formats.app_desc import AppDesc
from otaforge.formats.app_image import app_image_length
from otaforge.formats.chips import ChipSpec
from otaforge.formats.chips import chip as chip_spec
from otaforge.formats.otadata import OtaImgState
from otaforge.formats.partition_table import MAX_TABLE_LENGTH, PartitionEntry, PartitionTable

Behaviour = Literal["healthy", "never_confirms", "fails_self_test", "hangs", "panics"]
BEHAVIOURS: tuple[Behaviour, ...] = ("healthy", "never_confirms", "fails_self_test", "hangs",
                                     "panics")
BOOT_TIME_S = 0.3  # virtual seconds from reset to app_main


class Clock(Protocol):
    """Time seam: the emulator never reads the wall clock."""

    def now(self) -> float:
        """Seconds since an arbitrary origin."""
        ...

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        ...


class VirtualClock:
    """A clock that moves only when told to (deterministic)."""

    def __init__(self, start: float = 0.0) -> None:
        self._t = start

    def now(self) -> float:
        """Current virtual time in seconds."""
        return self._t

    def advance(self, seconds: float) -> None:
        """Move virtual time forward."""
        if seconds < 0:
            raise InputError("virtual time cannot go backwards")
        self._t += seconds


class AppRegistry:
    """Which behaviour the firmware in an image has, by image SHA-256 (hex) or version."""

    def __init__(self, mapping: dict[str, Behaviour] | None = None,
                 default: Behaviour = "healthy") -> None:
        self._by_key: dict[str, Behaviour] = {}
        self.default = default
        for key, behaviour in (mapping or {}).items():
            self.register(key, behaviour)

    def register(self, key: str, behaviour: Behaviour) -> None:
        """Map an image SHA-256 hex digest or a version string to a behaviour."""
        if behaviour not in BEHAVIOURS:
            raise InputError(
                f"app behaviour {behaviour!r}: choose one of {', '.join(BEHAVIOURS)}")
        self._by_key[key.lower() if _is_sha(key) else key] = behaviour

    @property
    def needs_hash(self) -> bool:
        """Whether any entry is keyed by image hash (else lookups need only the version)."""
        return any(_is_sha(k) for k in self._by_key)

    def lookup(self, version: str | None, sha256: str | None) -> Behaviour:
        """The behaviour for an image: by hash first, then version, then the default."""
        if sha256 is not None and sha256 in self._by_key:
            return self._by_key[sha256]
        if version is not None and version in self._by_key:
            return self._by_key[version]
        return self.default


def _is_sha(key: str) -> bool:
    return len(key) == 64 and all(c in "0123456789abcdefABCDEF" for c in key)


Status = Literal["running", "reset_loop", "bricked"]


@dataclass(frozen=True)
class BootResult:
    """What one power-on ended in.

    Attributes:
        status: ``running`` (an app is up), ``reset_loop`` or ``bricked`` (no bootable app).
        partition: the partition the app runs from (the last one booted for a reset loop).
        desc: its app description.
        behaviour: the app's behaviour.
        boot_state: the otadata state the bootloader left for that slot (None: factory/test).
        ota_state: the slot's otadata state once the app settled (e.g. VALID after confirm).
        boots: how many times the bootloader ran during this power-on.
        resets: why each reset happened ("task watchdog", "panic", "rollback restart").
        reason: the last bootloader decision's reason.
        log: every bootloader log line of this power-on.
        app_error: an esp_err the app got from the OTA API while starting (e.g. the eFuse
            burn in ``esp_ota_mark_app_valid_cancel_rollback`` failed), or None.
    """

    status: Status
    partition: PartitionEntry | None
    desc: AppDesc | None
    behaviour: Behaviour | None
    boot_state: int | None
    ota_state: int | None
    boots: int
    resets: tuple[str, ...]
    reason: str
    log: tuple[str, ...] = field(default=(), repr=False)
    app_error: str | None = None


class AppReset(Exception):
    """The running app reset the chip; the message is the reason ("panic", "task watchdog").

    Raised from an app's ``app_main`` (a :class:`Device` subclass running real firmware raises
    it too); the device boots again within the same power-on.
    """


_Reset = AppReset


class Device:
    """One emulated chip: flash, eFuses, bootloader, running app.

    Args:
        flash: its flash (partition table at ``config.partition_table_offset``).
        chip: chip name or spec.
        config: bootloader/app build configuration.
        efuses: its eFuses (default: fresh ones for the chip).
        apps: behaviour registry (default: every image healthy).
        clock: time seam (default: a :class:`VirtualClock`).
        cache: remembers image verifications and image hashes across boots, keyed on the
            image's bytes and the eFuses (default: one of its own; devices made from one base
            image may share one).
    """

    def __init__(self, flash: Flash, chip: str | ChipSpec = "esp32",
                 config: DeviceConfig | None = None, efuses: Efuses | None = None,
                 apps: AppRegistry | None = None, clock: Clock | None = None,
                 cache: VerifyCache | None = None) -> None:
        self.flash = flash
        self.chip = chip_spec(chip) if isinstance(chip, str) else chip
        self.config = config or DeviceConfig()
        self.efuses = efuses or Efuses(self.chip,
                                       secure_version_bits=self.config.secure_version_bits)
        self.apps = apps or AppRegistry()
        self.clock: Clock = clock or VirtualClock()
        self._cache = cache
        self.running_partition: PartitionEntry | None = None
        self.running_desc: AppDesc | None = None
        self.status: Status | Literal["off"] = "off"
        self.boot_count = 0
        self.last_result: BootResult | None = None
        self._ota: OtaOps | None = None
        self._in_app = False

    @property
    def cache(self) -> VerifyCache:
        """The memo of image checks (made at first use unless one was given)."""
        if self._cache is None:
            self._cache = VerifyCache()
        return self._cache

    # --- partition table ------------------------------------------------------------------

    def partition_table(self) -> PartitionTable:
        """The partition table in flash, as the app's partition API reads it.

        Raises:
            FormatError: no valid table at the configured offset.
        """
        off = self.config.partition_table_offset
        return PartitionTable.from_bytes(self.flash.read(off, MAX_TABLE_LENGTH))

    def partition(self, name: str) -> PartitionEntry:
        """The partition called ``name`` in the flash's partition table.

        Raises:
            InputError: no such partition.
        """
        part = self.partition_table().find(name)
        if part is None:
            raise InputError(f"no partition named {name!r} in the device's partition table")
        return part

    @property
    def ota(self) -> OtaOps:
        """The running app's esp_ota_* API.

        Raises:
            DeviceError: no app is running (device off, bricked or in a reset loop).
        """
        if self._ota is None or self.status != "running":
            raise DeviceError(f"no app is running (device is {self.status}); power it on first")
        return self._ota

    # --- lifecycle ------------------------------------------------------------------------

    def power_off(self) -> None:
        """Cut power cleanly (nothing in flight)."""
        self.status = "off"
        self._ota = None
        self.running_partition = None
        self.running_desc = None

    def power_on(self, *, factory_reset: bool = False, test_app: bool = False) -> BootResult:
        """Power on and boot until an app runs, the device is bricked, or it reset-loops.

        Args:
            factory_reset: hold the factory-reset pin during the first boot.
            test_app: hold the test-app pin during the first boot.

        Raises:
            PowerCut: an armed power cut fired during boot (the device is off again).
        """
        restore = getattr(self.flash, "power_restore", None)
        if restore is not None:
            restore()
        self.power_off()
        resets: list[str] = []
        log: list[str] = []
        pins = (factory_reset, test_app)
        result: BootResult | None = None
        try:
            for _ in range(self.config.max_boots):
                result = self._boot_once(pins, resets, log)
                pins = (False, False)
                if result is not None:
                    break
        except BaseException:
            self.power_off()
            raise
        if result is None:
            last = self.running_partition
            self.power_off()
            self.status = "reset_loop"
            result = BootResult("reset_loop", last, None, None, None, None, self.boot_count,
                                tuple(resets), "the app keeps resetting", tuple(log))
        self.last_result = result
        return result

    def reboot(self) -> BootResult:
        """``esp_restart()``: reset the chip and boot again (eFuses and flash kept)."""
        return self.power_on()

    def _boot_once(self, pins: tuple[bool, bool], resets: list[str],
                   log: list[str]) -> BootResult | None:
        self.boot_count += 1
        self.clock.advance(BOOT_TIME_S)
        cfg = self.config
        decision = select_boot(self.flash.read, cfg.boot_config(self.chip, self.flash.size),
                               self.efuses.boot_view(),
                               factory_reset_requested=pins[0] and cfg.factory_reset,
                               test_requested=pins[1] and cfg.app_test, cache=self.cache,
                               content_key=content_key_of(self.flash))
        log.extend(decision.log)
        for op in decision.otadata_ops:
            if op.kind == "erase":
                self.flash.erase_sector(op.addr)
            else:
                self.flash.program(op.addr, op.data)
        if decision.burn_secure_version is not None:
            try:
                self.efuses.burn_secure_version(decision.burn_secure_version)
            except EspError as err:  # update_anti_rollback logs the failure and boots on
                log.append(f"E boot: failed to update anti-rollback eFuse: {err}")
        part = decision.partition
        if part is None:
            self.status = "bricked"
            return BootResult("bricked", None, None, None, None, None, self.boot_count,
                              tuple(resets), decision.reason, tuple(log))
        return self._run_app(part, decision.ota_state_after, decision.reason, resets, log)

    def _app_identity(self, part: PartitionEntry) -> tuple[AppDesc | None, str | None]:
        """The app description and (when the registry needs it) the image's SHA-256."""
        desc = read_partition_desc(self.flash, part)
        if not self.apps.needs_hash:
            return desc, None
        sha = self.cache.lookup_image("image_sha256", None, content_key_of(self.flash), part,
                                      lambda n: n, lambda: self._image_sha256(part))
        return desc, sha

    def _image_sha256(self, part: PartitionEntry) -> tuple[str | None, int | None]:
        """SHA-256 (hex) of the app image in ``part`` (its length, not the partition's)."""
        data = self.flash.read(part.offset, part.size)
        length = app_image_length(data)
        if length is None:
            return None, None
        return hashlib.sha256(memoryview(data)[:length]).hexdigest(), length

    def _run_app(self, part: PartitionEntry, boot_state: int | None, reason: str,
                 resets: list[str], log: list[str]) -> BootResult | None:
        table = self.partition_table()
        desc, sha = self._app_identity(part)
        behaviour = self.apps.lookup(desc.version if desc else None, sha)
        self.running_partition, self.running_desc = part, desc
        self._ota = OtaOps(self.flash, table, self.efuses, self.config, part,
                           restart=self._restart, cache=self.cache)
        self.status = "running"
        self._in_app = True
        app_error: str | None = None
        try:
            self._app_main(behaviour, boot_state)
        except EspError as err:  # the app logs it and keeps running
            app_error = str(err)
        except _Reset as reset:
            resets.append(str(reset))
            self.power_off()
            return None
        finally:
            self._in_app = False
        state = self._slot_state(part)
        return BootResult("running", part, desc, behaviour, boot_state, state, self.boot_count,
                          tuple(resets), reason, tuple(log), app_error)

    def _slot_state(self, part: PartitionEntry) -> int | None:
        if self._ota is None or not part.is_ota_slot:
            return None
        try:
            return self._ota.esp_ota_get_state_partition(part)
        except EspError:
            return None

    def _app_main(self, behaviour: Behaviour, boot_state: int | None) -> None:
        ota = self._ota
        assert ota is not None
        if behaviour == "panics":
            raise _Reset("panic")
        if behaviour == "hangs":
            self.clock.advance(self.config.watchdog_timeout_s)
            raise _Reset("task watchdog")
        pending = boot_state == OtaImgState.PENDING_VERIFY
        if behaviour == "fails_self_test" and pending:
            ota.esp_ota_mark_app_invalid_rollback_and_reboot()  # ROLLBACK_FAILED: keeps running
            return
        if behaviour == "healthy" and pending:
            ota.esp_ota_mark_app_valid_cancel_rollback()

    def _restart(self) -> None:
        if self._in_app:
            raise _Reset("rollback restart")
        self.reboot()

    # --- host tools -----------------------------------------------------------------------

    def erase_otadata(self) -> None:
        """``idf.py erase-otadata`` (otatool): erase the whole otadata partition.

        Raises:
            DeviceError: the partition table has no otadata partition.
        """
        otadata = self.partition_table().otadata()
        if otadata is None:
            raise DeviceError("the partition table has no otadata partition to erase")
        self.flash.erase_range(otadata.offset, otadata.size)

