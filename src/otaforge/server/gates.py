"""The rollout gate: counts and times in, a decision out. Pure (no SQL, no clock).

Each device of a rollout is classified from its newest deployment in the rollout and its
last check-in (:func:`classify`); the classes are tallied per wave (:func:`tally`), and
:func:`evaluate` decides:

- **pause** when failures -- rolled back + failed + silent + stuck -- exceed the absolute
  limit or the percentage of the opened waves' devices (failures counted since the last
  resume);
- **advance** (or **complete** after the last wave) when at least ``confirm_percent`` of the
  current wave's devices confirmed the release *and* still checked in ``soak_s`` after
  confirming;
- **hold** otherwise.

A device that updated (rebooted into the release, or confirmed it) and then does not check in
for ``silent_after_s`` is **silent**; one mid-update with no report for ``stuck_timeout_s`` is
**stuck**. Both count as failures. Every decision carries the numbers it was based on.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

UPDATED_STATES = frozenset({"rebooting", "pending_verify"})  # running the release, unconfirmed
MOVING_STATES = frozenset({"downloading", "downloaded", "installing"})


class Health(StrEnum):
    """Where one device of a rollout stands."""

    OFFERED = "offered"  # manifest sent, nothing reported yet
    IN_FLIGHT = "in_flight"
    CONFIRMED = "confirmed"  # marked valid, not soaked yet
    SOAKED = "soaked"  # confirmed and still checking in soak_s later
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"
    SILENT = "silent"
    STUCK = "stuck"
    ABORTED = "aborted"


FAILURES = frozenset({Health.ROLLED_BACK, Health.FAILED, Health.SILENT, Health.STUCK})


@dataclass(frozen=True)
class GatePolicy:
    """The thresholds of a rollout's gates (see :class:`otaforge.server.waves.Plan`)."""

    confirm_percent: float = 90.0
    soak_s: int = 3600
    silent_after_s: int = 900
    stuck_timeout_s: int = 3600
    max_failures: int | None = None
    max_failures_percent: float | None = 5.0


@dataclass(frozen=True)
class DeviceRecord:
    """One device's newest deployment in the rollout and its last check-in."""

    wave: int
    state: str
    updated_at: dt.datetime
    last_check_in: dt.datetime | None


def classify(rec: DeviceRecord, now: dt.datetime, policy: GatePolicy) -> Health:
    """The device's health at ``now``."""
    quiet_s = (now - max(rec.updated_at, rec.last_check_in or rec.updated_at)).total_seconds()
    idle_s = (now - rec.updated_at).total_seconds()
    if rec.state in ("rolled_back", "failed", "aborted"):
        return Health(rec.state)
    if rec.state == "confirmed" or rec.state in UPDATED_STATES:
        if quiet_s > policy.silent_after_s:
            return Health.SILENT
        if rec.state != "confirmed":
            return Health.STUCK if idle_s > policy.stuck_timeout_s else Health.IN_FLIGHT
        soaked = rec.last_check_in is not None and \
            (rec.last_check_in - rec.updated_at).total_seconds() >= policy.soak_s
        return Health.SOAKED if soaked else Health.CONFIRMED
    if rec.state in MOVING_STATES:
        return Health.STUCK if idle_s > policy.stuck_timeout_s else Health.IN_FLIGHT
    return Health.OFFERED


@dataclass(frozen=True)
class WaveCounts:
    """One wave's devices by health; ``size`` is how many the wave held when it opened."""

    size: int = 0
    offered: int = 0
    in_flight: int = 0
    confirmed: int = 0
    soaked: int = 0
    rolled_back: int = 0
    failed: int = 0
    silent: int = 0
    stuck: int = 0
    aborted: int = 0

    @property
    def reached(self) -> int:
        """Devices that were offered the release (any health)."""
        return (self.offered + self.in_flight + self.confirmed + self.soaked + self.aborted
                + self.failures)

    @property
    def failures(self) -> int:
        return self.rolled_back + self.failed + self.silent + self.stuck

    @property
    def confirmed_total(self) -> int:
        """Confirmed, soaked or not."""
        return self.confirmed + self.soaked

    def to_json(self) -> dict[str, int]:
        return {**asdict(self), "reached": self.reached, "failures": self.failures}


def tally(records: Iterable[DeviceRecord], sizes: Sequence[int], now: dt.datetime,
          policy: GatePolicy) -> list[WaveCounts]:
    """Per-wave counts (index = wave) of ``records``."""
    counts: list[dict[str, int]] = [{"size": size} for size in sizes]
    for rec in records:
        if rec.wave >= len(counts):
            counts.extend({"size": 0} for _ in range(rec.wave + 1 - len(counts)))
        bucket = counts[rec.wave]
        name = classify(rec, now, policy).value
        bucket[name] = bucket.get(name, 0) + 1
    return [WaveCounts(**c) for c in counts]


class Action(StrEnum):
    HOLD = "hold"
    ADVANCE = "advance"
    COMPLETE = "complete"
    PAUSE = "pause"


@dataclass(frozen=True)
class Decision:
    """What the gate decided, why, and the numbers it looked at."""

    action: Action
    reason: str
    numbers: dict[str, Any]


@dataclass(frozen=True)
class GateInput:
    """Everything :func:`evaluate` looks at.

    Attributes:
        wave: index of the current (newest opened) wave.
        last_wave: True when it is the final (100 %) wave.
        waves: counts of every opened wave (index = wave).
        wave_age_s: seconds since the current wave opened.
        failure_baseline: failures already counted when the rollout was last resumed.
        name: the current wave's label for messages (e.g. ``"canary"``, ``"10%"``).
    """

    wave: int
    last_wave: bool
    waves: Sequence[WaveCounts]
    wave_age_s: float
    failure_baseline: int = 0
    name: str = ""


def evaluate(inp: GateInput, policy: GatePolicy) -> Decision:
    """The gate decision for the rollout's current wave."""
    current = inp.waves[inp.wave] if inp.wave < len(inp.waves) else WaveCounts()
    opened = inp.waves[:inp.wave + 1]
    failures = max(0, sum(w.failures for w in inp.waves) - inp.failure_baseline)
    planned = max(sum(w.size for w in opened), sum(w.reached for w in opened))
    needed = math.ceil(policy.confirm_percent * current.size / 100 - 1e-9)
    numbers: dict[str, Any] = {
        "wave": inp.wave, "wave_name": inp.name, "wave_age_s": round(inp.wave_age_s, 3),
        "current": current.to_json(), "failures": failures, "planned": planned,
        "needed_soaked": needed, "max_failures": policy.max_failures,
        "max_failures_percent": policy.max_failures_percent,
        "confirm_percent": policy.confirm_percent, "soak_s": policy.soak_s,
        "rolled_back": sum(w.rolled_back for w in inp.waves),
        "failed": sum(w.failed for w in inp.waves),
        "silent": sum(w.silent for w in inp.waves),
        "stuck": sum(w.stuck for w in inp.waves)}
    breakdown = (f"{numbers['rolled_back']} rolled back, {numbers['failed']} failed, "
                 f"{numbers['silent']} silent, {numbers['stuck']} stuck")
    if policy.max_failures is not None and failures > policy.max_failures:
        return Decision(Action.PAUSE, f"wave {inp.name}: {failures} failures ({breakdown}) "
                        f"exceed the limit of {policy.max_failures} devices", numbers)
    pct = policy.max_failures_percent
    if pct is not None and failures > 0 and failures * 100 > pct * planned:
        share = 100 * failures / planned if planned else 100.0
        return Decision(Action.PAUSE, f"wave {inp.name}: {failures} failures ({breakdown}) "
                        f"are {share:.1f}% of {planned} devices, above the limit of {pct:g}%",
                        numbers)
    if current.soaked >= needed:
        action = Action.COMPLETE if inp.last_wave else Action.ADVANCE
        return Decision(action, f"wave {inp.name}: {current.soaked} of {current.size} devices "
                        f"confirmed and soaked {policy.soak_s} s (needed {needed})", numbers)
    return Decision(Action.HOLD, f"wave {inp.name}: {current.soaked} of {current.size} devices "
                    f"confirmed and soaked (need {needed}); {current.confirmed} confirmed, "
                    f"{current.in_flight + current.offered} in flight; {breakdown}", numbers)
