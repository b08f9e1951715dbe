"""Drives a rollout through the server's rollout API: the server's gates decide.

:class:`RolloutDriver` is the controller an operator would script: it points the channel at
the running release (so a revert has somewhere to go), creates one rollout of the release
under test with the plan's waves, soak, silent and stuck timeouts, failure limits,
concurrency limit and revert flag, and then, every tick, asks the server to evaluate the
gates now (``POST /api/v1/rollouts/ID/evaluate``, on the server's virtual clock) and reads the
rollout back: which wave is open, each wave's confirmed / failed / silent / stuck devices, and
every decision with the numbers it was based on. It never pauses, advances or reverts on its
own: the server's gates do, and the driver reports what they did.

Wave membership is the server's stable hash (:func:`otaforge.server.waves.bucket`), so the
verdict can tell which devices each wave holds, opened or not.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol

from otaforge.fleet.clock import FleetClock
from otaforge.fleet.driver import Admin, Decision, WaveStats
from otaforge.fleet.spec import Plan
from otaforge.server.waves import bucket, parse_waves

STATES = {"running": "running", "paused": "paused", "completed": "complete",
          "aborted": "aborted", "superseded": "aborted"}


class RolloutAdmin(Admin, Protocol):
    """The management API calls of the rollout API (a :class:`ManagementClient`)."""

    def create_rollout(self, fleet: str, release: str, **plan: Any) -> dict[str, Any]: ...

    def rollout_status(self, rollout_id: int) -> dict[str, Any]: ...

    def rollout_decisions(self, rollout_id: int) -> list[dict[str, Any]]: ...

    def evaluate_rollout(self, rollout_id: int) -> dict[str, Any]: ...


def server_plan(plan: Plan, channel: str, devices: int) -> dict[str, Any]:
    """The rollout's body for the server, from the simulator's plan."""
    interval = plan.check_in_s * (1 + plan.jitter)
    limit = plan.max_failures
    body: dict[str, Any] = {
        "channel": channel, "waves": ",".join(str(w) for w in plan.waves),
        "soak_s": int(plan.soak_s), "silent_after_s": max(1, int(2 * interval)),
        "stuck_timeout_s": max(1, int(4 * interval)), "revert": plan.revert,
        "max_in_flight": plan.concurrency_for(devices),
        "eval_interval_s": max(1, int(plan.check_in_s)),
    }
    if limit.count is not None:
        body.update(max_failures=limit.count, max_failures_percent=None)
    else:
        body.update(max_failures=None, max_failures_percent=limit.percent,
                    confirm_percent=max(1.0, 100.0 - (limit.percent or 0.0)))
    return body


class RolloutDriver:
    """Runs ``plan`` for ``new_release`` as one server-side rollout.

    Args: as :class:`~otaforge.fleet.driver.ChannelDriver`.
    """

    def __init__(self, admin: RolloutAdmin, fleet: str, channel: str,
                 releases: tuple[int, int], new_version: str, device_ids: list[str],
                 plan: Plan, clock: FleetClock) -> None:
        self.admin, self.fleet, self.channel = admin, fleet, channel
        self.old_release, self.new_release = releases
        self.new_version = new_version
        self.plan, self.clock = plan, clock
        self.device_ids = device_ids
        self.total = len(device_ids)
        self.concurrency = plan.concurrency_for(self.total)
        # evaluate the gates four times per check-in interval (at least once a minute)
        self.tick_s = max(60.0, plan.check_in_s / 4) if plan.check_in_s > 60 \
            else plan.check_in_s
        self.rollout_id = 0
        specs = parse_waves(",".join(str(w) for w in plan.waves))  # a final 100% added
        self.cumulative = [spec.devices(self.total) for spec in specs]
        self.waves = [WaveStats(i, spec.text(), _percent(n, self.total), n)
                      for i, (spec, n) in enumerate(zip(specs, self.cumulative, strict=True))]
        self.current = -1
        self.state = "pending"
        self.paused_reason: str | None = None
        self.reverted = False
        self.ended_s: float | None = None
        self.decisions: list[Decision] = []
        self._created: tuple[dt.datetime, float] | None = None
        self._decisions_seen = 0
        self._order: list[str] = []

    # --- control --------------------------------------------------------------------------

    def start(self) -> None:
        """Channel on the running release, then create the rollout of the new one."""
        self.admin.set_channel(self.fleet, self.channel, str(self.old_release))
        created = self.admin.create_rollout(self.fleet, str(self.new_release),
                                            **server_plan(self.plan, self.channel,
                                                          self.total))
        self.rollout_id = int(created["id"])
        self._created = (_when(created["created_at"]), self.clock.now())
        self._order = sorted(self.device_ids, key=lambda d: bucket(self.rollout_id, d))
        self.state = "running"
        self._read(created)

    def tick(self) -> None:
        """Let the server evaluate the gates now; read what they decided."""
        if self.state != "running":
            return
        self.admin.evaluate_rollout(self.rollout_id)
        self._read(self.admin.rollout_status(self.rollout_id))

    # --- reading the server ---------------------------------------------------------------

    def _read(self, detail: dict[str, Any]) -> None:
        now = self.clock.now()
        self.current = int(detail.get("wave", 0))
        total = 0
        for wave, size in zip(self.waves, detail.get("sizes", []), strict=False):
            total += int(size)
            wave.size = total  # what the server opened (cumulative), authoritative
        for wave, status in zip(self.waves, detail.get("waves", []), strict=False):
            if status.get("opened") and wave.started_s is None:
                wave.started_s = now
            # confirmed and still soaking, or confirmed and soaked
            wave.confirmed = int(status.get("confirmed", 0)) + int(status.get("soaked", 0))
            wave.failed = int(status.get("rolled_back", 0)) + int(status.get("failed", 0))
            wave.silent = int(status.get("silent", 0))
            wave.stuck = int(status.get("stuck", 0))
        for wave in self.waves[: self.current]:
            if wave.completed_s is None:
                wave.completed_s = now
        state = STATES.get(str(detail.get("state")), "running")
        self.reverted = bool(detail.get("reverting"))
        if state == "complete" and self.waves[-1].completed_s is None:
            self.waves[-1].completed_s = now
        if state != "running" and self.state == "running":
            self.ended_s = now
            self.paused_reason = detail.get("paused_reason") or detail.get("reason")
        self.state = state
        if int(detail.get("decisions_count", 0)) != self._decisions_seen:
            self._read_decisions()

    def _read_decisions(self) -> None:
        rows = self.admin.rollout_decisions(self.rollout_id)
        self._decisions_seen = len(rows)
        assert self._created is not None
        created_at, created_s = self._created
        self.decisions = []
        for row in rows:
            if row.get("action") == "hold":
                continue  # the gates held: nothing changed
            data = row.get("data") or {}
            numbers = {k: v for k, v in data.items() if isinstance(v, int) and k != "wave"}
            t_s = created_s + (_when(row["at"]) - created_at).total_seconds()
            wave = int(data.get("wave", 0)) if isinstance(data.get("wave"), int) else 0
            self.decisions.append(Decision(t_s, wave + 1, str(row["action"]),
                                           str(row.get("reason") or row["action"]), numbers))

    # --- for the verdict ------------------------------------------------------------------

    def members(self) -> list[list[str]]:
        """The devices each wave adds, by the server's stable hash (opened or not)."""
        out, done = [], 0
        for size in self.cumulative:
            out.append(self._order[done:size])
            done = max(done, size)
        return out

    def to_json(self) -> dict[str, Any]:
        """The rollout as the ``--json`` output shows it."""
        return {"state": self.state, "paused_reason": self.paused_reason,
                "reverted": self.reverted, "max_in_flight": self.concurrency,
                "rollout_id": self.rollout_id,
                "waves": [w.to_json() for w in self.waves],
                "decisions": [d.to_json() for d in self.decisions]}


def _percent(size: int, total: int) -> int:
    return max(1, min(100, -(-size * 100 // max(1, total))))


def _when(text: str) -> dt.datetime:
    when = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)
