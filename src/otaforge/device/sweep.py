"""Power-cut sweep: cut power at every flash operation of an update, in every mode, and check.

A *flow* is a deterministic sequence of device actions (write the inactive slot with
``esp_ota_begin``/``write``/``end``, ``esp_ota_set_boot_partition``, reboot, the bootloader's
NEW -> PENDING_VERIFY write, the app's self-test and ``esp_ota_mark_app_valid_cancel_rollback``;
or a rollback: the new app fails its self-test or panics). The flow is run once while every
flash operation is recorded with a copy-on-write snapshot of the flash and eFuses before it.
Case (op N, mode) forks the snapshot before op N, applies op N as the mode says (not at all,
fully, or torn), and powers the device on again with no cut. That equals running the flow from
scratch with :class:`~otaforge.device.powercut.PowerCutPlan` at op N (:func:`replay_case` does
exactly that, and the tests check both agree), because after a power cut nothing but flash and
eFuses survives.

Every case must then: boot (never bricked, never a reset loop), run an image that is byte for
byte the old or the new one (never a half-written one), leave otadata consistent
(``esp_ota_get_boot_partition()`` is the running partition and, with rollback, the running
slot's entry is VALID once the app confirmed), and accept a further update.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from otaforge.delta.source import BytesSource
from otaforge.device.config import DeviceConfig
from otaforge.device.delta_ota import DeltaResult, delta_ota
from otaforge.device.efuse import Efuses, EfuseSnapshot
from otaforge.device.emulator import AppRegistry, Behaviour, BootResult, Device
from otaforge.device.esp_err import OTA_SIZE_UNKNOWN, OTA_WITH_SEQUENTIAL_WRITES
from otaforge.device.flash import MemoryFlash
from otaforge.device.flash_image import compose
from otaforge.device.powercut import CUT_MODES, CutMode, PowerCutPlan
from otaforge.device.sweep_results import CaseResult, SweepReport
from otaforge.device.verify_cache import VerifyCache
from otaforge.errors import InputError, OtaforgeError, PowerCut
from otaforge.formats.app_desc import read_app_desc
from otaforge.formats.app_image import AppImage
from otaforge.formats.otadata import OtaImgState, OtaSelectEntry, active_otadata, read_otadata
from otaforge.formats.partition_table import PartitionTable

FLOWS = ("update", "rollback", "panic")
# how the new image behaves in each flow
_FLOW_BEHAVIOUR: dict[str, Behaviour] = {"update": "healthy", "rollback": "fails_self_test",
                                         "panic": "panics"}


@dataclass(frozen=True)
class SweepConfig:
    """What to sweep.

    Attributes:
        table: the partition table.
        flash_size: flash size in bytes.
        old: the image the device runs before the update.
        new: the update image.
        followup: the image of the "later update" each case must accept (a small image when
            None, built with ``build_image``).
        chip: esptool chip name.
        device: the devices' build configuration; with ``rollback`` the rollback flows are
            swept too; with ``anti_rollback`` (needs ``rollback``) the follow-up image gets the
            highest secure_version of old and new.
        modes: power-cut modes.
        chunk_size: bytes per ``esp_ota_write`` (esp_https_ota writes what each read returns).
        bulk_erase: erase the whole slot in ``esp_ota_begin`` instead of sector by sector.
        start: ``"factory"``: old image in factory (ota_0 without factory), otadata blank;
            ``"ota"``: old image already installed by OTA into the last OTA slot, both otadata
            sectors in use.
        seed: seeds the torn length of each torn case.
        flows: which flows to sweep (rollback flows need ``rollback``).
        strict_flash: run every device on strict NOR flash (a second program of a byte
            without an erase raises, MCUboot's ``write_safe``), so the sweep also proves that
            no flow step ever reprograms unerased flash (reliability matrix row 19).
        delta: the update is an esp_delta_ota patch from old to new (resumable, checkpoints
            in the ``nvs`` partition); after a cut that leaves the old image running, the
            device resumes the delta and must then boot the new image. The delta is written
            with ``OTA_WITH_SEQUENTIAL_WRITES`` (see :mod:`otaforge.device.delta_ota`;
            ``bulk_erase`` and ``chunk_size`` apply to the full-image updates only).
    """

    table: PartitionTable
    flash_size: int
    old: bytes
    new: bytes
    followup: bytes | None = None
    chip: str = "esp32"
    device: DeviceConfig = field(default_factory=lambda: DeviceConfig(rollback=False))
    modes: tuple[CutMode, ...] = CUT_MODES
    chunk_size: int = 4096
    bulk_erase: bool = False
    start: str = "factory"
    seed: int = 0
    flows: tuple[str, ...] = FLOWS
    strict_flash: bool = True
    delta: bool = False


@dataclass(frozen=True)
class _Failed:
    """Why a case failed: its outcome and detail."""

    outcome: str
    detail: str


@dataclass(frozen=True)
class _Snapshot:
    index: int
    kind: str
    addr: int
    data: bytes
    phase: str
    flash: MemoryFlash
    efuses: EfuseSnapshot


def image_len(image: bytes) -> int:
    """The app image length (header to appended hash) of ``image``."""
    return AppImage.from_bytes(image, check=False).image_len


def _sha(image: bytes) -> str:
    return hashlib.sha256(image[: image_len(image)]).hexdigest()


def _registry(old: bytes, new: bytes, followup: bytes,
              new_behaviour: Behaviour) -> dict[str, Behaviour]:
    mapping: dict[str, Behaviour] = {_sha(old): "healthy", _sha(followup): "healthy"}
    if _sha(new) != _sha(old):
        mapping[_sha(new)] = new_behaviour
    return mapping


class Sweeper:
    """Runs flows on emulated devices built from one shared base image."""

    def __init__(self, config: SweepConfig) -> None:
        from otaforge.formats.chips import chip as chip_spec
        from otaforge.formats.image_builder import build_image
        from otaforge.formats.image_verify import verify_image

        self.config = config
        cfg = config
        spec = chip_spec(cfg.chip)
        for name, img in (("--from", cfg.old), ("--to", cfg.new)):
            try:
                image_len(img)
            except OtaforgeError as err:
                raise InputError(f"{name}: not an app image ({err})") from None
            try:
                verify_image(img, chip=spec)
            except OtaforgeError as err:
                raise InputError(f"{name}: the {spec.name} device would refuse this image "
                                 f"({err}); build or pick one for --chip {spec.name}") from None
        if cfg.device.anti_rollback and not cfg.device.rollback:
            raise InputError("anti-rollback needs rollback (CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK "
                             "depends on CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE)")
        top = max(read_app_desc(cfg.old).secure_version, read_app_desc(cfg.new).secure_version)
        self.followup = cfg.followup if cfg.followup is not None else build_image(
            version="followup", chip=cfg.chip, size=64 * 1024, seed=9001, secure_version=top)
        self._registries: dict[Behaviour, dict[str, Behaviour]] = {}
        # every case starts from the same base image: one memo of image checks for all
        self.cache = VerifyCache(per_region=4, max_regions=64)
        slots = cfg.table.ota_slots()
        if not slots:
            raise InputError("the partition table has no OTA app partitions to update")
        if cfg.table.otadata() is None:
            raise InputError("the partition table has no otadata partition")
        first = cfg.table.factory() or slots[0]
        self._base = compose(cfg.table, {first.name: cfg.old}, flash_size=cfg.flash_size,
                             chip=spec)
        self._base_fuses = Efuses(cfg.chip).snapshot()
        self._delta = DeltaPlan.make(cfg.old, cfg.new, cfg.table) if cfg.delta else None
        if cfg.start == "ota":
            self._base, self._base_fuses = self._seasoned_base()
        elif cfg.start != "factory":
            raise InputError(f"start state {cfg.start!r}: choose factory or ota")

    # --- devices --------------------------------------------------------------------------

    def _apps(self, new_behaviour: Behaviour) -> AppRegistry:
        mapping = self._registries.get(new_behaviour)
        if mapping is None:
            mapping = _registry(self.config.old, self.config.new, self.followup, new_behaviour)
            self._registries[new_behaviour] = mapping
        return AppRegistry(mapping)

    def _device(self, flash: MemoryFlash, fuses: EfuseSnapshot,
                new_behaviour: Behaviour = "healthy") -> Device:
        efuses = Efuses(self.config.chip)
        efuses.restore(fuses)
        return Device(flash, self.config.chip, self.config.device, efuses,
                      self._apps(new_behaviour), cache=self.cache)

    def _fresh(self, new_behaviour: Behaviour = "healthy") -> Device:
        flash = MemoryFlash(self.config.flash_size, self._base, strict=self.config.strict_flash)
        return self._device(flash, self._base_fuses, new_behaviour)

    def _seasoned_base(self) -> tuple[bytes, EfuseSnapshot]:
        """Old image installed by OTA into the last slot: every slot and otadata used."""
        dev = self._fresh()
        dev.power_on()
        for _ in self.config.table.ota_slots():
            self.update(dev, self.config.old)
        flash = dev.flash
        assert isinstance(flash, MemoryFlash)
        return flash.to_bytes(), dev.efuses.snapshot()

    # --- the update itself ----------------------------------------------------------------

    def update(self, dev: Device, image: bytes, phase: Callable[[str], None] | None = None,
               ) -> BootResult:
        """The complete update: write the inactive slot, set boot, reboot (app self-tests).

        Returns:
            The boot result of the reboot into the new image.
        """
        mark = phase or (lambda _name: None)
        if self._delta is not None and image == self.config.new:
            mark("write")
            self._delta.apply(dev, lambda: mark("set_boot_partition"))
            mark("boot")
            return dev.reboot()
        ota = dev.ota
        part = ota.esp_ota_get_next_update_partition()
        mark("write")
        size = OTA_SIZE_UNKNOWN if self.config.bulk_erase else OTA_WITH_SEQUENTIAL_WRITES
        handle = ota.esp_ota_begin(part, size)
        step = self.config.chunk_size
        for pos in range(0, len(image), step):
            ota.esp_ota_write(handle, image[pos : pos + step])
        ota.esp_ota_end(handle)
        mark("set_boot_partition")
        ota.esp_ota_set_boot_partition(part)
        mark("boot")
        return dev.reboot()

    # --- recording ------------------------------------------------------------------------

    def _flow_device(self, flow: str) -> Device:
        return self._fresh(_FLOW_BEHAVIOUR[flow])

    def _run_flow(self, dev: Device, flow: str, phase: Callable[[str], None]) -> None:
        phase("boot")
        dev.power_on()
        self.update(dev, self.config.new, phase)

    def record(self, flow: str) -> list[_Snapshot]:
        """Run ``flow`` once without a cut, snapshotting flash and eFuses before every op."""
        dev = self._flow_device(flow)
        flash = dev.flash
        assert isinstance(flash, MemoryFlash)
        current = ["boot"]
        snaps: list[_Snapshot] = []

        def observe(index: int, kind: str, addr: int, data: bytes) -> None:
            snaps.append(_Snapshot(index, kind, addr, data, current[0], flash.fork(),
                                   dev.efuses.snapshot()))

        def phase(name: str) -> None:
            current[0] = name

        flash.observer = observe
        self._run_flow(dev, flow, phase)
        flash.observer = None
        if flow == "update":
            return [_relabel(s, {"boot": "boot / mark valid"}) for s in snaps]
        # the download is the same as in the update flow: sweep from set_boot_partition on
        keep = [s for s in snaps if s.phase in ("set_boot_partition", "boot")]
        return [_relabel(s, {"boot": f"boot / {flow}"}) for s in keep]

    # --- cases ----------------------------------------------------------------------------

    def run_case(self, flow: str, snap: _Snapshot, mode: CutMode) -> CaseResult:
        """Apply op ``snap.index`` with ``mode`` to a fork of the snapshot, then check."""
        flash = snap.flash.fork()
        flash.op_count = snap.index
        flash.plan = PowerCutPlan(snap.index, mode, seed=self.config.seed)
        try:
            if snap.kind == "erase":
                flash.erase_sector(snap.addr)
            elif snap.kind == "erase_block":
                flash.erase_block(snap.addr)
            else:
                flash.program(snap.addr, snap.data)
        except PowerCut:
            pass
        flash.plan = None
        flash.op_count = 0
        dev = self._device(flash, snap.efuses, _FLOW_BEHAVIOUR[flow])
        return self.check(dev, flow, snap.index, mode, snap.phase)

    def check(self, dev: Device, flow: str, op_index: int, mode: CutMode,
              phase: str) -> CaseResult:
        """Power on after the cut and check the device: bootable, whole image, later update."""
        def result(outcome: str, ok: bool, detail: str = "") -> CaseResult:
            return CaseResult(flow, op_index, mode, phase, outcome, ok, detail)

        started = self._start(dev, dev.power_on, "power-on")
        if isinstance(started, _Failed):
            return result(started.outcome, False, started.detail)
        boot, which = started
        prefix = ""
        if flow != "update" and which == "new" and boot.app_error and \
                "ESP_ERR_OTA_ROLLBACK_FAILED" in boot.app_error:
            # esp_ota_check_rollback_is_possible() said no (anti-rollback ignores factory):
            # ESP-IDF keeps the unconfirmed new app running; its next reset aborts it
            prefix = "kept new until reset (ESP_ERR_OTA_ROLLBACK_FAILED), then "
            started = self._start(dev, dev.reboot, "reboot")
            if isinstance(started, _Failed):
                return result(started.outcome, False, started.detail)
            boot, which = started
        part = boot.partition
        assert part is not None
        if flow != "update" and which == "new":
            return result("booted the failing new image", False, part.name)
        problem = self._otadata_problem(dev)
        if problem:
            return result(f"booted {which}, otadata inconsistent", False, problem)
        if self._delta is not None and flow == "update" and which == "old":
            resumed = self._resume_delta(dev)
            if isinstance(resumed, _Failed):
                return result(resumed.outcome, False, resumed.detail)
            boot, prefix = resumed
            part = boot.partition
            assert part is not None
            which = "new"
            problem = self._otadata_problem(dev)
            if problem:
                return result(f"{prefix}otadata inconsistent", False, problem)
        default_boot = part.is_ota_slot and _active_entry(dev) is None
        outcome = prefix + _outcome(which, boot, default_boot)
        try:
            after = self.update(dev, self.followup)
        except OtaforgeError as err:
            return result(f"{outcome}; later update failed", False, str(err))
        if after.status != "running" or self._which_image(dev) != "followup":
            return result(f"{outcome}; later update did not boot", False, after.reason)
        problem = self._otadata_problem(dev)
        if problem:
            return result(f"{outcome}; otadata inconsistent after later update", False, problem)
        return result(outcome, True)

    def _resume_delta(self, dev: Device) -> tuple[BootResult, str] | _Failed:
        """The old image runs after the cut: go on with the delta, then boot the new image."""
        assert self._delta is not None
        try:
            done = self._delta.apply(dev)
        except OtaforgeError as err:
            return _Failed("booted old; resuming the delta failed", str(err))
        how = ("booted old, delta resumed from a checkpoint" if done.resumed_from
               else "booted old, delta started over (no checkpoint)")
        started = self._start(dev, dev.reboot, "reboot")
        if isinstance(started, _Failed):
            return _Failed(f"{how}; {started.outcome}", started.detail)
        boot, which = started
        if which != "new":
            return _Failed(f"{how}; then booted {which}, not new", boot.reason)
        return boot, f"{how}, then "

    def _start(self, dev: Device, start: Callable[[], BootResult],
               action: str) -> tuple[BootResult, str] | _Failed:
        """Power on or reboot ``dev`` with ``start``: the boot result and which image runs
        ("old", "new" or "followup"), or why the case fails (no app running, unknown image)."""
        try:
            boot = start()
        except OtaforgeError as err:
            return _Failed(f"{action} failed", str(err))
        if boot.status != "running" or boot.partition is None:
            return _Failed(boot.status, boot.reason)
        which = self._which_image(dev)
        if which is None:
            return _Failed("booted a half-written or unknown image",
                           f"{boot.partition.name}: {boot.reason}")
        return boot, which

    def _which_image(self, dev: Device) -> str | None:
        part = dev.running_partition
        if part is None:
            return None
        for name, img in (("new", self.config.new), ("old", self.config.old),
                          ("followup", self.followup)):
            if dev.flash.read(part.offset, len(img)) == img:
                return name
        return None

    def _otadata_problem(self, dev: Device) -> str:
        return otadata_problem(dev, self.config.device.rollback)

    # --- sweeping -------------------------------------------------------------------------

    def flows(self) -> list[str]:
        """Flows to sweep for this configuration."""
        wanted = [f for f in self.config.flows if f in FLOWS]
        return [f for f in wanted if f == "update" or self.config.device.rollback]

    def _flow_cases(self, flow: str, snaps: list[_Snapshot]) -> Iterator[CaseResult]:
        for snap in snaps:
            for mode in self.config.modes:
                yield self.run_case(flow, snap, mode)

    def iter_cases(self) -> Iterator[CaseResult]:
        """Every (flow, op, mode) case, in order."""
        for flow in self.flows():
            yield from self._flow_cases(flow, self.record(flow))

    def run(self, report: SweepReport | None = None,
            on_case: Callable[[CaseResult], None] | None = None) -> SweepReport:
        """Sweep every case and return the totals; ``on_case`` sees each case when it ends."""
        out = report or SweepReport()
        for flow in self.flows():
            snaps = self.record(flow)
            out.ops_per_flow[flow] = len(snaps)
            for case in self._flow_cases(flow, snaps):
                out.add(case)
                if on_case is not None:
                    on_case(case)
        return out

    def replay_case(self, flow: str, op_index: int, mode: CutMode) -> CaseResult:
        """Run ``flow`` from scratch with a real :class:`PowerCutPlan`, then check.

        ``op_index`` counts from the flow's first flash operation (as :meth:`record` does).
        """
        dev = self._flow_device(flow)
        flash = dev.flash
        assert isinstance(flash, MemoryFlash)
        phases = ["boot"]
        flash.arm(PowerCutPlan(op_index, mode, seed=self.config.seed))
        try:
            self._run_flow(dev, flow, lambda name: phases.append(name))
        except PowerCut:
            pass
        else:
            raise InputError(f"flow {flow} has fewer than {op_index + 1} flash operations")
        flash.plan = None
        fresh = self._device(flash, dev.efuses.snapshot(), _FLOW_BEHAVIOUR[flow])
        return self.check(fresh, flow, op_index, mode, phases[-1])


@dataclass(frozen=True)
class DeltaPlan:
    """The delta of a delta sweep: the patch from old to new, made (and checked) once."""

    patch: bytes
    patch_sha256: bytes
    new_sha256: bytes

    @classmethod
    def make(cls, old: bytes, new: bytes, table: PartitionTable) -> DeltaPlan:
        """Create the patch; the table must have an ``nvs`` partition for checkpoints.

        Raises:
            InputError: no ``nvs`` partition of at least 8 KiB; FormatError: not app images.
        """
        from otaforge.delta.create import create_patch
        from otaforge.device.delta_store import DeltaResumeStore

        DeltaResumeStore.sector_in(table)
        patch = create_patch(old, new).patch
        return cls(patch, hashlib.sha256(patch).digest(), hashlib.sha256(new).digest())

    def apply(self, dev: Device, before_set_boot: Callable[[], None] | None = None
              ) -> DeltaResult:
        """Apply (or resume) the delta on ``dev`` and set the new image to boot."""
        updater = delta_ota(dev.ota, dev.partition_table())
        return updater.apply(BytesSource(self.patch), len(self.patch), self.patch_sha256,
                             self.new_sha256, before_set_boot)


def _relabel(snap: _Snapshot, names: dict[str, str]) -> _Snapshot:
    return _Snapshot(snap.index, snap.kind, snap.addr, snap.data,
                     names.get(snap.phase, snap.phase), snap.flash, snap.efuses)


def otadata_problem(dev: Device, rollback: bool) -> str:
    """Why otadata does not match what runs on ``dev``, or "" when it is consistent.

    Consistent: ``esp_ota_get_boot_partition()`` is the running partition (no bootloader
    fallback), and when an active entry exists its state is VALID once the app confirmed
    (UNDEFINED or VALID without ``rollback``). No active entry is consistent when the running
    app is the default boot partition (factory, or ota_0 without factory); so is a table
    without otadata (only the factory app boots).
    """
    if dev.partition_table().otadata() is None:
        return ""  # no OTA data: the bootloader always boots the factory app
    ota = dev.ota
    running = dev.running_partition
    boot = ota.esp_ota_get_boot_partition()
    if boot != running:
        return (f"esp_ota_get_boot_partition() is {boot.name if boot else None} but "
                f"{running.name if running else None} runs (a bootloader fallback)")
    active = _active_entry(dev)
    if active is None or running is None or not running.is_ota_slot:
        return ""
    state = active.ota_state
    if rollback:
        ok = state == OtaImgState.VALID
    else:
        ok = state in (OtaImgState.VALID, OtaImgState.UNDEFINED)
    return "" if ok else f"running slot's active entry has state {state}, not VALID"


def _active_entry(dev: Device) -> OtaSelectEntry | None:
    otadata = dev.partition_table().otadata()
    if otadata is None:
        return None
    entries = read_otadata(dev.flash.read(otadata.offset, 0x2000))
    index = active_otadata(entries)
    return None if index is None else entries[index]


def _outcome(which: str, boot: BootResult, default_boot: bool = False) -> str:
    if default_boot:
        return f"{_outcome(which, boot)} (no valid otadata entry: default boot)"
    if which == "old":
        if "rollback restart" in boot.resets:
            return "booted old (new failed its self-test, rolled back)"
        if boot.resets:
            return "booted old (new reset before confirming, rolled back)"
        return "booted old"
    if boot.boot_state == OtaImgState.PENDING_VERIFY:
        return f"booted {which} (pending verify, then confirmed)"
    if boot.boot_state == OtaImgState.VALID:
        return f"booted {which} (valid)"
    return f"booted {which}"
