"""Drives the rollout on the server, wave by wave, and watches its gates.

:class:`ChannelDriver` uses the server's channel controls (release, staged percentage,
concurrent-update limit, failure threshold that pauses the channel). It sees the fleet only
through the management API, as an operator's controller would: every tick it reads the
channel and the device list, stamps what changed with the simulation's clock, and decides:

* a device **confirmed** when its last report is ``confirmed`` while it runs the release;
* **soaked** once it kept checking in ``soak`` after confirming;
* **silent** when, after confirming, it has not checked in for two poll intervals;
* **stuck** when it sat mid-update (downloading ... pending_verify) for four poll intervals;
* failures = rolled back + failed + silent + stuck; more than ``max_failures`` of the wave so
  far pauses the rollout (the server pauses the channel on its own for rolled back + failed),
  and with ``revert`` the channel goes back to the previous release;
* the next wave starts when all but ``max_failures`` of the wave so far have soaked.

Every decision is kept (:attr:`ChannelDriver.decisions`) with the numbers it was based on.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from otaforge.fleet.clock import FleetClock
from otaforge.fleet.spec import Amount, Plan

IN_PROGRESS = frozenset({"offered", "downloading", "downloaded", "installing", "rebooting",
                         "pending_verify"})
FAILED = frozenset({"rolled_back", "failed"})
DELTA_WAIT_S = 300.0  # longest wait for the server's background delta patches


class Admin(Protocol):
    """The management API calls the driver uses (a :class:`ManagementClient`)."""

    def set_channel(self, fleet: str, channel: str, release: str) -> dict[str, Any]: ...

    def set_rollout(self, fleet: str, channel: str, max_in_flight: int | None,
                    failure_threshold: int | None,
                    rollout_percent: int | None = None) -> dict[str, Any]: ...

    def rollout(self, fleet: str, channel: str) -> dict[str, Any]: ...

    def devices(self, fleet: str | None = None) -> list[dict[str, Any]]: ...

    def deltas(self, fleet: str) -> dict[str, Any]: ...


@dataclass
class WaveStats:
    """One wave: its target size and what its devices (new in this wave) did."""

    index: int
    amount: str
    percent: int
    size: int
    started_s: float | None = None
    completed_s: float | None = None
    confirmed: int = 0
    failed: int = 0
    silent: int = 0
    stuck: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "amount": self.amount, "percent": self.percent,
                "devices": self.size, "started_s": _r(self.started_s),
                "completed_s": _r(self.completed_s), "confirmed": self.confirmed,
                "failed": self.failed, "silent": self.silent, "stuck": self.stuck}


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


@dataclass
class _Seen:
    """What the driver has observed of one device (stamped with the simulation clock)."""

    last_check_in: Any = None
    seen_s: float = 0.0
    state: str | None = None
    state_s: float = 0.0
    confirmed_s: float | None = None
    baseline: bool = False  # ``state`` is what it was when the rollout started


@dataclass
class Decision:
    """One gate decision and the numbers behind it."""

    t_s: float
    wave: int
    action: str
    detail: str
    numbers: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"t_s": round(self.t_s, 1), "wave": self.wave, "action": self.action,
                "detail": self.detail, **self.numbers}


class Driver(Protocol):
    """What the engine, the verdict and the report need of a rollout driver."""

    plan: Plan
    concurrency: int
    waves: list[WaveStats]
    decisions: list[Decision]
    current: int
    state: str
    paused_reason: str | None
    reverted: bool
    ended_s: float | None

    def start(self) -> None: ...

    def tick(self) -> None: ...

    def members(self) -> list[list[str]]: ...

    def to_json(self) -> dict[str, Any]: ...


class ChannelDriver:
    """Runs ``plan`` for ``new_release`` on one channel of one fleet.

    Args:
        admin: management API client.
        fleet: fleet name.
        channel: channel the devices follow.
        releases: (previous release id, new release id).
        new_version: the release's version (a device runs it when it reports this).
        device_ids: the fleet's devices.
        plan: waves, soak, thresholds.
        clock: the simulation's clock.
    """

    def __init__(self, admin: Admin, fleet: str, channel: str, releases: tuple[int, int],
                 new_version: str, device_ids: list[str], plan: Plan,
                 clock: FleetClock) -> None:
        self.admin, self.fleet, self.channel = admin, fleet, channel
        self.old_release, self.new_release = releases
        self.new_version = new_version
        self.plan, self.clock = plan, clock
        self.total = len(device_ids)
        self.concurrency = plan.concurrency_for(self.total)
        self.buckets = {d: _bucket(self.new_release, d) for d in device_ids}
        self.waves = [self._wave(i, a) for i, a in enumerate(plan.waves)]
        self.current = -1
        self.state = "pending"
        self.paused_reason: str | None = None
        self.reverted = False
        self.ended_s: float | None = None
        self.seen: dict[str, _Seen] = {d: _Seen() for d in device_ids}
        self.decisions: list[Decision] = []

    def _wave(self, index: int, amount: Amount) -> WaveStats:
        size = amount.of(self.total)
        percent = max(1, min(100, -(-size * 100 // max(1, self.total))))
        size = sum(1 for b in self.buckets.values() if b < percent * 100)
        return WaveStats(index, str(amount), percent, size)

    # --- control --------------------------------------------------------------------------

    def start(self) -> None:
        """Note where every device stands, point the channel at the release and open the
        first wave."""
        self._observe(self.clock.now())
        for seen in self.seen.values():
            seen.baseline = True
        self._set_channel(self.new_release)
        self.state = "running"
        self._open(0)

    def _set_channel(self, release: int) -> None:
        """Point the channel at ``release`` and wait (real time) until the delta patches it
        queued are made or refused: whether a device is offered a patch then depends on the
        simulation, not on how fast a background thread ran."""
        self.admin.set_channel(self.fleet, self.channel, str(release))
        deadline = time.monotonic() + DELTA_WAIT_S
        while time.monotonic() < deadline:
            states = self.admin.deltas(self.fleet).get("delta_states", {})
            if not any(states.get(s) for s in ("pending", "running")):
                return
            time.sleep(0.02)

    def _open(self, index: int) -> None:
        self.current = index
        wave = self.waves[index]
        wave.started_s = self.clock.now()
        self.admin.set_rollout(self.fleet, self.channel, self.concurrency,
                               self.plan.max_failures.allowance(wave.size),
                               None if wave.percent >= 100 else wave.percent)
        self._decide("start_wave", f"wave {index + 1} ({wave.amount}): {wave.size} devices",
                     {"devices": wave.size, "max_in_flight": self.concurrency})

    def _decide(self, action: str, detail: str, numbers: dict[str, int]) -> None:
        self.decisions.append(Decision(self.clock.now(), self.current + 1, action, detail,
                                       numbers))

    # --- observing ------------------------------------------------------------------------

    def tick(self) -> None:
        """Read the server, update the gates, advance, pause or revert."""
        if self.state != "running":
            return
        now = self.clock.now()
        self._observe(now)
        channel = self.admin.rollout(self.fleet, self.channel)
        numbers = self._gate_numbers(now)
        wave = self.waves[self.current]
        allowed = self.plan.max_failures.allowance(wave.size)
        failures = numbers["failed"] + numbers["silent"] + numbers["stuck"]
        if channel.get("paused") or failures > allowed:
            reason = channel.get("paused_reason") or (
                f"{failures} failures in wave {self.current + 1} (failed {numbers['failed']}, "
                f"silent {numbers['silent']}, stuck {numbers['stuck']}) exceed "
                f"{self.plan.max_failures} of {wave.size} devices ({allowed})")
            self._pause(reason, numbers)
        elif numbers["soaked"] >= _needed(wave.size, allowed):
            wave.completed_s = now
            self._decide("gate_passed", f"wave {self.current + 1}: {numbers['soaked']} of "
                         f"{wave.size} confirmed and soaked {self.plan.soak_s:g} s", numbers)
            if self.current + 1 < len(self.waves):
                self._open(self.current + 1)
            else:
                self.state, self.ended_s = "complete", now
                self._decide("complete", "every wave passed its gate", numbers)

    def _pause(self, reason: str, numbers: dict[str, int]) -> None:
        self.state, self.paused_reason, self.ended_s = "paused", reason, self.clock.now()
        self._decide("pause", reason, numbers)
        if self.plan.revert:
            self._set_channel(self.old_release)
            self.admin.set_rollout(self.fleet, self.channel, self.concurrency, None, None)
            self.reverted = True
            self._decide("revert", f"channel back to release {self.old_release} for the "
                         "devices that got the bad one", numbers)

    def _observe(self, now: float) -> None:
        for row in self.admin.devices(self.fleet):
            seen = self.seen.get(row["id"])
            if seen is None:
                continue
            if row.get("last_check_in") != seen.last_check_in:
                seen.last_check_in, seen.seen_s = row.get("last_check_in"), now
            state = row.get("state")
            if state != seen.state:
                seen.state, seen.state_s = state, now
                seen.baseline = False
            # the row's running version changes only at the device's next check-in; a
            # "confirmed" reached after the rollout started confirms the release under test
            runs_new = row.get("running_version") == self.new_version
            if state == "confirmed" and (runs_new or not seen.baseline) \
                    and seen.confirmed_s is None:
                seen.confirmed_s = now

    def _status(self, seen: _Seen, now: float) -> str:
        interval = self.plan.check_in_s * (1 + self.plan.jitter)
        if seen.confirmed_s is not None:
            if now - seen.seen_s > 2 * interval:
                return "silent"
            return "soaked" if now - seen.confirmed_s >= self.plan.soak_s else "confirmed"
        if seen.state in FAILED:
            return "failed"
        if seen.state in IN_PROGRESS and now - seen.state_s > 4 * interval:
            return "stuck"
        return "waiting"

    def _gate_numbers(self, now: float) -> dict[str, int]:
        """Counts over the waves so far (the gate), and per wave (for the report)."""
        totals = {"confirmed": 0, "soaked": 0, "failed": 0, "silent": 0, "stuck": 0}
        for wave in self.waves:
            wave.confirmed = wave.failed = wave.silent = wave.stuck = 0
        limits = [w.percent * 100 for w in self.waves[: self.current + 1]]
        for device_id, seen in self.seen.items():
            bucket = self.buckets[device_id]
            index = next((i for i, lim in enumerate(limits) if bucket < lim), None)
            if index is None:
                continue
            status = self._status(seen, now)
            wave = self.waves[index]
            if status in ("confirmed", "soaked"):
                wave.confirmed += 1
                totals["confirmed"] += 1
                totals["soaked"] += status == "soaked"
            elif status in ("failed", "silent", "stuck"):
                setattr(wave, status, getattr(wave, status) + 1)
                totals[status] += 1
        return totals

    def members(self) -> list[list[str]]:
        """The devices each wave adds (by the staged-rollout bucket), opened or not."""
        out: list[list[str]] = []
        done = 0
        for wave in self.waves:
            limit = wave.percent * 100
            out.append([d for d, b in self.buckets.items() if done <= b < limit])
            done = max(done, limit)
        return out

    def to_json(self) -> dict[str, Any]:
        """The rollout as the ``--json`` output shows it."""
        return {"state": self.state, "paused_reason": self.paused_reason,
                "reverted": self.reverted, "max_in_flight": self.concurrency,
                "waves": [w.to_json() for w in self.waves],
                "decisions": [d.to_json() for d in self.decisions]}


def _needed(size: int, allowed: int) -> int:
    """Soaked devices a wave needs: all but the allowed failures, and at least one."""
    return max(size - allowed, min(size, 1))


def _bucket(release_id: int, device_id: str) -> int:
    """The device's staged-rollout bucket (0..9999), as the server computes it
    (:func:`otaforge.server.service.in_cohort`)."""
    digest = hashlib.sha256(f"{release_id}:{device_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10_000
