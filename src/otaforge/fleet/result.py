"""What a fleet simulation found: every device's end state, the rollout, the verdict.

:meth:`SimResult.to_json` is the ``--json`` document, with exactly the keys the issue lists;
everything the HTML report needs besides (samples, decisions, work counters) rides along on
the result object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from otaforge.fleet.driver import Driver
from otaforge.fleet.engine import Counters, Sample
from otaforge.fleet.memory import MemoryStats
from otaforge.fleet.population import SimDevice
from otaforge.formats.otadata import OtaImgState

FINAL_KEYS = ("confirmed", "rolled_back", "failed", "silent", "on_old", "bricked")


def final_state(sd: SimDevice, new_version: str) -> str:
    """One of :data:`FINAL_KEYS` for a device at the end of a run."""
    device = sd.device
    if device.status != "running":
        return "bricked"
    desc = device.running_desc
    if desc is not None and desc.version == new_version:
        if sd.silent:
            return "silent"
        part = device.running_partition
        state = device.ota.esp_ota_get_state_partition(part) if part is not None and \
            part.is_ota_slot else OtaImgState.VALID
        return "confirmed" if state == OtaImgState.VALID else "failed"
    if sd.rolled_back:
        return "rolled_back"
    return "failed" if sd.failed else "on_old"


@dataclass(frozen=True)
class Spread:
    """Whether a bad release got further than the wave that should have stopped it.

    Attributes:
        stop_wave: the first wave (1-based) whose bad devices exceed its failure allowance.
        bound: devices that wave plus the concurrency limit may have installed.
        spread: the blast radius exceeded the bound.
    """

    stop_wave: int
    bound: int
    spread: bool


def judge_spread(driver: Driver, devices: list[SimDevice], blast_radius: int) -> \
        Spread | None:
    """The :class:`Spread` verdict, or None when no wave has enough bad devices to stop."""
    bad = {sd.device_id for sd in devices if sd.bad}
    cumulative_bad = 0
    for wave, members in zip(driver.waves, driver.members(), strict=False):
        cumulative_bad += sum(d in bad for d in members)
        if cumulative_bad > driver.plan.max_failures.allowance(wave.size):
            bound = wave.size + driver.concurrency
            return Spread(wave.index + 1, bound, blast_radius > bound)
    return None


@dataclass
class SimResult:
    """A finished run.

    Attributes:
        devices: fleet size.
        wall_s: wall-clock seconds of the run.
        peak_rss_mib: the process's peak resident memory.
        final: devices per end state (:data:`FINAL_KEYS`).
        rollout: the driver's view (state, paused reason, waves).
        blast_radius: devices that installed the release.
        bytes_served: firmware bytes the server sent.
        sim_s: virtual seconds simulated.
        counters: work done (check-ins, updates, power cuts...).
        decisions: the driver's gate decisions.
        spread: the spread verdict (None: the release is not bad enough to stop).
        versions: (running version, release version).
        pooled_kib: the shared sector store's size.
        memory: what the devices cost in memory (measured at the end of the run).
    """

    devices: int
    wall_s: float
    peak_rss_mib: float
    final: dict[str, int]
    rollout: dict[str, Any]
    blast_radius: int
    bytes_served: int
    sim_s: float = 0.0
    counters: Counters = field(default_factory=Counters)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    spread: Spread | None = None
    versions: tuple[str, str] = ("", "")
    pooled_kib: float = 0.0
    memory: MemoryStats | None = None

    @property
    def samples(self) -> list[Sample]:
        return self.counters.samples

    @property
    def ok(self) -> bool:
        """No device bricked and no bad release spread past its stopping wave."""
        return self.final["bricked"] == 0 and not (self.spread and self.spread.spread)

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` document."""
        return {"devices": self.devices, "wall_s": round(self.wall_s, 2),
                "peak_rss_mib": round(self.peak_rss_mib, 1), "final": dict(self.final),
                "rollout": {k: self.rollout[k] for k in ("state", "paused_reason", "waves")},
                "blast_radius": self.blast_radius, "bytes_served": self.bytes_served}
