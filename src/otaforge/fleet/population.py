"""The simulated fleet: N emulated ESP32s made from one shared factory flash image.

Every device is the real device model (:class:`~otaforge.device.emulator.Device`: sparse
copy-on-write flash, eFuses, bootloader, ``esp_ota_*``) over one composed flash image that
none of them copies. What each device is -- hardware revision, whether the release under
test misbehaves on it, its link, whether a power cut or a drop will hit its update, when it
goes offline -- is drawn once from a generator seeded by the run's seed and the device's
index, so a run is reproducible device by device.

Sectors a device writes into its OTA slots and otadata are handed to one content-addressed
:class:`SectorPool` after each turn, so devices that installed the same image share its
sectors instead of holding 150 private copies.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from otaforge.agent.selftest import AgentFirmware
from otaforge.device.config import DeviceConfig
from otaforge.device.emulator import Behaviour, Clock, Device
from otaforge.device.flash import SECTOR_SIZE, MemoryFlash
from otaforge.device.flash_image import compose
from otaforge.device.verify_cache import VerifyCache
from otaforge.errors import InputError
from otaforge.fleet.spec import FailMode, Scenario
from otaforge.formats.app_image import AppImage
from otaforge.formats.image_verify import require_app_image
from otaforge.formats.partition_table import PartitionEntry, PartitionTable

CHIP = "esp32"
_BEHAVIOUR: dict[FailMode, Behaviour] = {
    "self_test": "fails_self_test", "hang": "hangs", "panic": "panics", "silent": "healthy"}


@dataclass(slots=True)
class SimDevice:
    """One simulated device and what the scenario drew for it.

    Attributes:
        index: position in the fleet (0-based).
        device_id: its id on the server.
        hardware: hardware revision.
        device: the emulated chip.
        flash: its flash (the device's, with power-cut arming and counters).
        bad: the release under test misbehaves on this device.
        latency_s: its round-trip latency.
        bandwidth: its download rate (bytes/s).
        cut_op: flash operation (counted from the start of its update) a power cut hits, or
            None.
        drop_at: firmware bytes after which its first download drops, or None.
        offline: (from, until) virtual seconds it is unreachable, or None.
        installed: it installed the release under test at least once.
        rolled_back: an update of it was rolled back.
        failed: an update of it failed (and was not rolled back).
        silent: it went silent after confirming the release.
        armed: a power cut is armed on its flash right now.
    """

    index: int
    device_id: str
    hardware: str
    device: Device
    flash: MemoryFlash
    bad: bool
    latency_s: float
    bandwidth: float
    cut_op: int | None = None
    drop_at: int | None = None
    offline: tuple[float, float] | None = None
    installed: bool = False
    rolled_back: bool = False
    failed: bool = False
    silent: bool = False
    armed: bool = False


@dataclass
class SectorPool:
    """Content-addressed store of flash sectors, shared by every device of a run."""

    sectors: dict[bytes, bytes] = field(default_factory=dict)
    ranges: tuple[tuple[int, int], ...] = ()

    def share(self, flash: MemoryFlash) -> int:
        """Swap the flash's app-slot and otadata sectors for pooled copies."""
        return sum(flash.share_sectors(self.sectors, addr, n) for addr, n in self.ranges)

    @property
    def pooled_bytes(self) -> int:
        """Bytes held once for all devices."""
        return len(self.sectors) * SECTOR_SIZE


@dataclass(frozen=True)
class Images:
    """The two images of a rehearsal and the versions they carry."""

    old: bytes
    new: bytes
    old_version: str
    new_version: str


def read_images(old: bytes, new: bytes) -> Images:
    """Check both images and read their versions.

    Raises:
        FormatError: one is not an app image.
        InputError: both carry the same version (devices could not tell them apart).
    """
    old_image = require_app_image(old, "--from")
    new_image = require_app_image(new, "--release")
    old_v, new_v = _version(old_image, "--from"), _version(new_image, "--release")
    if old_v == new_v:
        raise InputError(f"--from and --release both carry version {old_v!r}; build the "
                         "release with another PROJECT_VER")
    return Images(old, new, old_v, new_v)


def _version(image: AppImage, what: str) -> str:
    if image.app_desc is None:
        raise InputError(f"{what}: the image has no app description (esp_app_desc_t), so it "
                         "has no version; build it with ESP-IDF's app_update component")
    return image.app_desc.version


class Population:
    """Builds the fleet's devices over one shared flash image.

    Args:
        partitions_csv: the fleet's partition table.
        images: the running (old) and the release (new) images.
        scenario: plan, faults, failure and hardware mix.
        seed: the run's seed.
        clock: the clock every device runs on.
    """

    def __init__(self, partitions_csv: str, images: Images, scenario: Scenario, seed: int,
                 clock: Clock) -> None:
        self.table = PartitionTable.from_csv(partitions_csv)
        self.images = images
        self.scenario = scenario
        self.seed = seed
        self.clock = clock
        self.config = DeviceConfig(rollback=True)
        slot = "factory" if self.table.find("factory") is not None else "ota_0"
        self.base = compose(self.table, {slot: images.old})
        self.flash_size = len(self.base)
        self.cache = VerifyCache(per_region=2, max_regions=64)
        self.pool = SectorPool(ranges=self._shared_ranges())
        self.healthy = AgentFirmware({})
        failure = scenario.release_fails
        self.failing = AgentFirmware(
            {images.new_version: _BEHAVIOUR[failure.mode]} if failure else {})
        sectors = math.ceil(len(images.new) / SECTOR_SIZE)
        self.update_ops = 2 * sectors + 24  # erase + program per sector, otadata, state

    def _shared_ranges(self) -> tuple[tuple[int, int], ...]:
        parts: list[PartitionEntry] = list(self.table.ota_slots())
        otadata = self.table.otadata()
        if otadata is not None:
            parts.append(otadata)
        return tuple((p.offset, p.size) for p in parts)

    def make(self, index: int) -> SimDevice:
        """Device ``index``: drawn from ``(seed, index)`` only, powered on and running."""
        rng = random.Random(f"{self.seed}:{index}")
        faults, plan = self.scenario.faults, self.scenario.plan
        hardware = _pick(rng.random(), self.scenario.hardware)
        failure = self.scenario.release_fails
        draw_bad = rng.random()
        bad = failure is not None and (
            hardware == failure.hardware if failure.hardware is not None
            else draw_bad < failure.share)
        latency = faults.latency_ms / 1000 * math.exp(rng.gauss(0, faults.latency_sigma))
        bandwidth = faults.bandwidth_kib_s * 1024 * math.exp(rng.gauss(0, faults.bandwidth_sigma))
        cut = rng.random() < faults.power_cut
        cut_op = rng.randrange(self.update_ops)
        drop = rng.random() < faults.drop
        drop_at = rng.randrange(1, max(2, len(self.images.new)))
        offline = None
        if rng.random() < faults.offline:
            start = rng.uniform(0, plan.check_in_s * 2 + plan.soak_s * len(plan.waves))
            offline = (start, start + faults.offline_s)
        flash = MemoryFlash(self.flash_size, self.base)
        device = Device(flash, CHIP, self.config, apps=self.failing if bad else self.healthy,
                        clock=self.clock, cache=self.cache)
        device.power_on()
        return SimDevice(index, f"sim-{index:06d}", hardware, device, flash, bad, latency,
                         bandwidth,
                         cut_op if cut else None, drop_at if drop else None, offline)


def _pick(draw: float, mix: tuple[tuple[str, float], ...]) -> str:
    total = 0.0
    for name, share in mix:
        total += share
        if draw < total:
            return name
    return mix[-1][0]
