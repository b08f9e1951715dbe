"""A rollout's plan and who it reaches, free of HTTP and SQL.

A device belongs to a rollout's waves by a stable hash of (rollout id, device id): wave ``k``
holds every matching device whose hash is below ``cutoffs[k]``. Cutoffs only grow, so a
device once in a wave stays in it, and later waves add devices without taking any away.
Waves are cumulative (``1%,10%,50%,100%``; or absolute counts, ``10,100,100%``); a fixed
canary device list, when given, is wave 0. The last wave is always the whole target (100 %):
completing it points the channel at the release.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any

from otaforge.errors import InputError
from otaforge.server.gates import GatePolicy

FULL = 1 << 32  # every 32-bit hash is below this cutoff
_WAVE = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*%|(\d+))\s*$")


@dataclass(frozen=True)
class WaveSpec:
    """One cumulative wave: a percentage of the target, or an absolute device count."""

    percent: float | None = None
    count: int | None = None

    def text(self) -> str:
        return f"{self.percent:g}%" if self.percent is not None else str(self.count)

    def devices(self, population: int) -> int:
        """How many of ``population`` target devices this wave reaches (at least 1 for a
        percentage of a non-empty target, so a 1 % canary of 50 devices is not empty)."""
        if self.count is not None:
            return min(self.count, population)
        share = math.ceil((self.percent or 0.0) * population / 100 - 1e-9)
        return min(population, max(share, 1 if population else 0))


def parse_waves(text: str) -> tuple[WaveSpec, ...]:
    """``"1%,10%,50%,100%"`` or ``"10,100,100%"``; a final 100 % wave is added when missing.

    Raises:
        InputError: a wave is not ``N%`` or ``N``, is empty or above 100 %, or the waves
            shrink (percentages and counts must each be non-decreasing).
    """
    specs: list[WaveSpec] = []
    for part in text.split(","):
        match = _WAVE.match(part)
        if match is None:
            raise InputError(f"wave {part.strip()!r} in {text!r}: expected a percentage "
                             "(e.g. 10%) or a device count (e.g. 50), comma-separated")
        if match.group(1) is not None:
            pct = float(match.group(1))
            if not 0 < pct <= 100:
                raise InputError(f"wave {part.strip()!r}: a percentage must be in (0, 100]")
            specs.append(WaveSpec(percent=pct))
        else:
            count = int(match.group(2))
            if count < 1:
                raise InputError(f"wave {part.strip()!r}: a device count must be at least 1")
            specs.append(WaveSpec(count=count))
    return check_waves(specs)


def check_waves(specs: Sequence[WaveSpec]) -> tuple[WaveSpec, ...]:
    """The waves, checked to grow, with the final 100 % wave appended when missing."""
    if not specs:
        raise InputError("a rollout needs at least one wave (e.g. 1%,10%,100%)")
    for kind in ("percent", "count"):
        values = [getattr(s, kind) for s in specs if getattr(s, kind) is not None]
        if values != sorted(values):
            raise InputError(f"waves {','.join(s.text() for s in specs)}: waves are cumulative "
                             f"and must not shrink ({kind}s must be non-decreasing)")
    if specs[-1].percent != 100:
        specs = [*specs, WaveSpec(percent=100.0)]
    return tuple(specs)


@dataclass(frozen=True)
class Plan:
    """The immutable part of a rollout: who, in which waves, gated how.

    Attributes:
        waves: cumulative waves (the last is 100 %).
        canary: device ids forming wave 0 (before the first wave).
        tags: a device must carry every one of these tags.
        hw_revisions: if set, a device's hardware revision must be one of these.
        from_versions: if set, a device must run one of these versions (or the release).
        confirm_percent: share of a wave that must confirm and soak before the next opens.
        soak_s: a confirmed device must still check in this long after confirming.
        silent_after_s: a device that updated and then does not check in for this long is
            silent (a failure).
        stuck_timeout_s: a deployment mid-update with no report for this long is stuck (a
            failure); it stops holding a concurrency slot.
        max_failures: pause when failures exceed this many devices (None: no absolute limit).
        max_failures_percent: pause when failures exceed this share of the opened waves.
        revert: when the gates pause the rollout, re-target the previous release for the
            devices that installed this one.
        max_in_flight: at most this many devices of the rollout mid-update at once.
        rate_per_min: first minute's new offers (None: no rate limit); multiplied by
            ``rate_factor`` every minute while the rollout runs, up to ``rate_max``.
        penalty_failures: failed attempts of the release after which a device is not offered
            it again until its penalty box is cleared.
        eval_interval_s: how often check-ins re-evaluate the gates.
    """

    waves: tuple[WaveSpec, ...]
    canary: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    hw_revisions: tuple[str, ...] = ()
    from_versions: tuple[str, ...] = ()
    confirm_percent: float = 90.0
    soak_s: int = 3600
    silent_after_s: int = 900
    stuck_timeout_s: int = 3600
    max_failures: int | None = None
    max_failures_percent: float | None = 5.0
    revert: bool = False
    max_in_flight: int | None = None
    rate_per_min: float | None = None
    rate_factor: float = 2.0
    rate_max: float | None = None
    penalty_failures: int = 3
    eval_interval_s: int = 30

    @property
    def stages(self) -> int:
        """Number of waves, the canary wave included."""
        return len(self.waves) + (1 if self.canary else 0)

    def stage_name(self, index: int) -> str:
        if self.canary:
            return "canary" if index == 0 else self.waves[index - 1].text()
        return self.waves[index].text()

    def gate_policy(self) -> GatePolicy:
        return GatePolicy(self.confirm_percent, self.soak_s, self.silent_after_s,
                          self.stuck_timeout_s, self.max_failures, self.max_failures_percent)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["waves"] = [s.text() for s in self.waves]
        for name in ("canary", "tags", "hw_revisions", "from_versions"):
            out[name] = list(out[name])
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["waves"] = parse_waves(",".join(data["waves"]))
        for name in ("canary", "tags", "hw_revisions", "from_versions"):
            values[name] = tuple(values.get(name) or ())
        return cls(**values)


def bucket(rollout_id: int, device_id: str) -> int:
    """The device's stable 32-bit position in this rollout."""
    digest = hashlib.sha256(f"rollout {rollout_id}:{device_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


@dataclass(frozen=True)
class DeviceAttrs:
    """What targeting looks at."""

    device_id: str
    tags: tuple[str, ...] = ()
    hw_revision: str | None = None
    running_version: str | None = None
    runs_release: bool = False


def matches(plan: Plan, device: DeviceAttrs) -> bool:
    """True when the device is in the rollout's target (tags, hardware, running version)."""
    if plan.tags and not set(plan.tags) <= set(device.tags):
        return False
    if plan.hw_revisions and device.hw_revision not in plan.hw_revisions:
        return False
    return not plan.from_versions or device.runs_release or \
        device.running_version in plan.from_versions


def wave_of(plan: Plan, rollout_id: int, cutoffs: Sequence[int],
            device: DeviceAttrs) -> int | None:
    """The first opened wave the device belongs to, or None (not reached yet, or not
    targeted). Canary devices are wave 0 whatever the filters say."""
    if device.device_id in plan.canary:
        return 0
    if not matches(plan, device):
        return None
    position = bucket(rollout_id, device.device_id)
    return next((k for k, cut in enumerate(cutoffs) if position < cut), None)


@dataclass(frozen=True)
class OpenedWave:
    """A wave as it opens: its cutoff and how many devices it adds."""

    cutoff: int
    size: int


def open_wave(plan: Plan, rollout_id: int, index: int, cutoffs: Sequence[int],
              population: Iterable[DeviceAttrs]) -> OpenedWave:
    """Cutoff and size of wave ``index`` over the current target ``population``.

    The cutoff never falls below the previous wave's, so waves only grow. Canary devices
    are not part of the hashed population; they are wave 0's size when there is a canary.
    """
    previous = cutoffs[-1] if cutoffs else 0
    if plan.canary and index == 0:
        present = {d.device_id for d in population}
        return OpenedWave(0, sum(1 for c in plan.canary if c in present))
    spec = plan.waves[index - 1 if plan.canary else index]
    canary = set(plan.canary)
    positions = sorted(bucket(rollout_id, d.device_id) for d in population
                       if d.device_id not in canary and matches(plan, d))
    wanted = spec.devices(len(positions))
    cutoff = FULL if wanted >= len(positions) or spec.percent == 100 else positions[wanted]
    cutoff = max(cutoff, previous)
    size = sum(1 for p in positions if previous <= p < cutoff)
    return OpenedWave(cutoff, size)


class Route(StrEnum):
    """What a check-in of a device gets while a rollout is on its channel."""

    ROLLOUT = "rollout"  # offered the rollout's release (within its limits)
    HOLD = "hold"  # offered nothing: the rollout is paused or the device keeps what it has
    CHANNEL = "channel"  # the channel's own release (the previous one): reverts the device


def route(state: str, reverting: bool, member: bool, runs_release: bool) -> Route:
    """Where a device's check-in goes (pure).

    Args:
        state: the rollout's state: running, paused or aborted.
        reverting: the rollout re-targets the previous release for devices on this one.
        member: the device is in an opened wave.
        runs_release: the device runs the rollout's release.
    """
    if not member:
        return Route.CHANNEL
    if state == "running":
        return Route.ROLLOUT
    if runs_release:
        return Route.CHANNEL if reverting else Route.HOLD
    return Route.HOLD if state == "paused" else Route.CHANNEL


def rate_step(plan: Plan, start: float | None, offers: int, rate: float | None,
              now: float) -> tuple[float, int, float, bool]:
    """One offer attempt against the rate ramp; returns (window start, offers in window,
    rate, allowed). The rate grows by ``rate_factor`` for every whole minute that passed."""
    base = plan.rate_per_min
    if base is None:
        return now, offers, 0.0, True
    current = rate if rate is not None else base
    if start is None:
        start, offers = now, 0
    minutes = int((now - start) // 60)
    if minutes > 0:
        current *= plan.rate_factor ** minutes
        if plan.rate_max is not None:
            current = min(current, plan.rate_max)
        start, offers = start + 60 * minutes, 0
    if offers >= max(1, math.floor(current)):
        return start, offers, current, False
    return start, offers + 1, current, True
