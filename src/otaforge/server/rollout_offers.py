"""Which release a check-in is offered while a rollout is on the device's channel, in SQL.

:meth:`RolloutOffers.choose` places the device (the pure :func:`waves.wave_of` /
:func:`waves.route`): in an opened wave of a running rollout it gets the rollout's release
(:meth:`RolloutOffers.offer`, within the rollout's limits); outside the waves, or once a
rollout is aborted or reverting, it falls back to the channel's own release (the previous
one, since a channel moves to the rollout's release only when the last wave completes); a
device on the release of a paused rollout holds what it has. Delta logic stays in
:mod:`checkin`: routing decides *which* release, deltas decide *how*.

An offer runs in one transaction that first writes the rollout row (the row lock on
PostgreSQL, SQLite's single write lock), so the concurrency limit and the rate window hold
under concurrent check-ins. The penalty box: a device whose attempts of the release failed
or rolled back ``penalty_failures`` times since its penalty was last cleared is not offered
it again.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from otaforge.errors import NotFound
from otaforge.protocol.reports import ABORTED, TERMINAL_STATES
from otaforge.server import service
from otaforge.server.clock import aware
from otaforge.server.models import Deployment, Device, Release, Rollout
from otaforge.server.rollout import failures
from otaforge.server.store_devices import CACHE_TTL_S, TTLCache
from otaforge.server.waves import DeviceAttrs, Plan, Route, rate_step, route, wave_of

if TYPE_CHECKING:
    from otaforge.server.store import Store

ROUTED_STATES = ("running", "paused", "aborted")  # rollouts that still decide check-ins
ATTRS_TTL_S = 60.0
# a rollout deployment in these states holds a concurrency slot (until its device confirms:
# "keep update slots occupied until firmware validation")
SLOT_STATES = ("offered", "downloading", "downloaded", "installing", "rebooting",
               "pending_verify")


@dataclass(frozen=True)
class Active:
    """The newest routing rollout of a channel, as check-ins see it (cached briefly)."""

    id: int
    state: str
    reverting: bool
    plan: Plan
    cutoffs: tuple[int, ...]
    target: service.Target
    next_eval_at: dt.datetime


@dataclass(frozen=True)
class Choice:
    """Where one check-in goes: the route, and for ``Route.ROLLOUT`` the device's wave."""

    route: Route
    rollout: Active
    wave: int | None


class RolloutOffers:
    """Check-in routing of rollouts (the part of :class:`RolloutService` on the hot path)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._active = TTLCache(CACHE_TTL_S)
        self._attrs = TTLCache(ATTRS_TTL_S)
        self._ticking = threading.Lock()

    def changed(self) -> None:
        """Forget cached rollout and channel state (after any rollout change)."""
        self._active.clear()
        self.store._targets.clear()

    def forget_device(self, device_id: str) -> None:
        self._attrs.put(device_id, None)

    def active(self, fleet_id: int, channel: str) -> Active | None:
        """The channel's newest rollout that still routes check-ins, or None."""
        key = (fleet_id, channel)
        hit = self._active.get(key)
        if hit is not None:
            return hit or None
        with self.store.sessions() as s:
            row = s.execute(
                select(Rollout, Release).join(Release, Release.id == Rollout.release_id)
                .where(Rollout.fleet_id == fleet_id, Rollout.channel == channel)
                .order_by(Rollout.id.desc()).limit(1)).first()
        found: Active | None = None
        if row is not None and row[0].state in ROUTED_STATES:
            ro, rel = row
            found = Active(ro.id, ro.state, ro.reverting, Plan.from_json(ro.plan),
                           tuple(ro.cutoffs), release_target(rel), aware(ro.next_eval_at))
        self._active.put(key, found or False)
        return found

    def device_attrs(self, device_id: str) -> tuple[tuple[str, ...], str | None]:
        """(tags, hardware revision) of a device, cached for a minute (targeting changes
        through this process clear it)."""
        hit: tuple[tuple[str, ...], str | None] | None = self._attrs.get(device_id)
        if hit is None:
            with self.store.sessions() as s:
                row = s.execute(select(Device.tags, Device.hw_revision)
                                .where(Device.id == device_id)).first()
            hit = (tuple(row[0] or ()), row[1]) if row else ((), None)
            self._attrs.put(device_id, hit)
        return hit

    def note_hw_revision(self, device_id: str, hw_revision: str) -> None:
        """Record a hardware revision the device reported (written only when it changed)."""
        if self.device_attrs(device_id)[1] == hw_revision:
            return
        with self.store.tx() as s:
            s.execute(update(Device).where(Device.id == device_id)
                      .values(hw_revision=hw_revision))
        self.forget_device(device_id)

    def set_targeting(self, device_id: str, tags: list[str] | None,
                      hw_revision: str | None, set_hw: bool) -> Device:
        """Replace a device's tags (None: keep) and, when ``set_hw``, its hardware
        revision."""
        with self.store.tx() as s:
            device = s.get(Device, device_id, with_for_update=True)
            if device is None:
                raise NotFound(f"no device {device_id!r}")
            if tags is not None:
                device.tags = sorted(set(tags))
            if set_hw:
                device.hw_revision = hw_revision
        self.forget_device(device_id)
        return device

    def clear_penalty(self, device_id: str) -> Device:
        """Let the device be offered releases that failed on it again (its earlier failures
        stop counting)."""
        with self.store.tx() as s:
            device = s.get(Device, device_id, with_for_update=True)
            if device is None:
                raise NotFound(f"no device {device_id!r}")
            device.penalty_cleared_at = self.store.clock.now()
        return device

    def choose(self, device_id: str, fleet_id: int, channel: str, version: str | None,
               sha256: str | None) -> Choice | None:
        """Where the check-in goes while a rollout routes the channel (None: no rollout)."""
        active = self.active(fleet_id, channel)
        if active is None:
            return None
        tags, hw = self.device_attrs(device_id)
        runs = (sha256 == active.target.sha256) if sha256 else \
            (version is not None and version == active.target.version)
        attrs = DeviceAttrs(device_id, tags, hw, version, runs)
        wave = wave_of(active.plan, active.id, active.cutoffs, attrs)
        where = route(active.state, active.reverting, wave is not None, runs)
        if where is Route.CHANNEL and runs and not active.reverting:
            where = Route.HOLD  # on the release but no longer targeted: never a downgrade
        return Choice(where, active, wave)

    def due(self, active: Active) -> bool:
        """True when a check-in should evaluate the rollout's gates now."""
        return self.store.settings.rollout_eval_on_check_in and active.state == "running" \
            and active.next_eval_at <= self.store.clock.now()

    def offer(self, device_id: str, choice: Choice, facts: service.DeviceFacts) -> int | None:
        """Open (or reuse) a deployment of the rollout's release, within its limits.

        None when the rollout no longer runs, the device refuses the release (see
        :func:`service.decide`) or sits in the penalty box, an administrator aborted the
        release on it, or the concurrency limit or the rate ramp holds it back.
        """
        target, plan = choice.rollout.target, choice.rollout.plan
        if service.decide(facts, target, 0, plan.penalty_failures) is not None:
            return None  # runs it, unconfirmed image, eFuse: no need to touch the database
        with self.store.tx() as s:
            if failures(s, device_id, target.release_id) >= plan.penalty_failures:
                return None
            mine = s.execute(select(Deployment.id, Deployment.state).where(
                Deployment.device_id == device_id, Deployment.release_id == target.release_id,
                Deployment.state.not_in(TERMINAL_STATES))
                .order_by(Deployment.id.desc())).all()
            if any(state == ABORTED for _, state in mine):
                return None
            # only a new deployment needs the rollout row locked (limits, rate window)
            ro = _locked(s, choice.rollout.id)
            if ro is None or ro.state != "running":
                return None
            now = self.store.clock.now()
            if mine:
                dep = s.get(Deployment, mine[0][0])
                assert dep is not None
                if dep.rollout_id is None:
                    dep.rollout_id, dep.wave = ro.id, choice.wave
                return dep.id
            if plan.max_in_flight is not None and \
                    in_flight(s, ro.id, plan, now) >= plan.max_in_flight:
                return None
            if not _take_rate_slot(ro, plan, now):
                return None
            dep = Deployment(device_id=device_id, release_id=target.release_id,
                             state="offered", created_at=now, updated_at=now,
                             rollout_id=ro.id, wave=choice.wave)
            s.add(dep)
            s.flush()
            return dep.id

    def try_tick(self, fn: Any) -> None:
        """Run ``fn`` (a gate evaluation) unless another thread is evaluating already."""
        if not self._ticking.acquire(blocking=False):
            return
        try:
            fn()
        finally:
            self._ticking.release()


def release_target(rel: Release) -> service.Target:
    return service.Target(rel.id, rel.version, rel.sha256, int(rel.secure_version))


def _locked(s: Session, rollout_id: int) -> Rollout | None:
    """The rollout row, locked for the rest of the transaction (a write that changes
    nothing: the row lock on PostgreSQL, SQLite's write lock)."""
    s.execute(update(Rollout).where(Rollout.id == rollout_id)
              .values(window_offers=Rollout.window_offers))
    return s.scalars(select(Rollout).where(Rollout.id == rollout_id)
                     .execution_options(populate_existing=True)).first()


def in_flight(s: Session, rollout_id: int, plan: Plan, now: dt.datetime) -> int:
    """Devices of the rollout holding a concurrency slot: mid-update or updated and not yet
    confirmed, with a report within the stuck timeout."""
    since = now - dt.timedelta(seconds=plan.stuck_timeout_s)
    busy = s.scalar(select(func.count(func.distinct(Deployment.device_id))).where(
        Deployment.rollout_id == rollout_id, Deployment.state.in_(SLOT_STATES),
        Deployment.updated_at > since))
    return int(busy or 0)


def _take_rate_slot(ro: Rollout, plan: Plan, now: dt.datetime) -> bool:
    """One new offer against the rate ramp; moves the rollout's window (True: allowed)."""
    if plan.rate_per_min is None:
        return True
    start = aware(ro.window_start).timestamp() if ro.window_start is not None else None
    start_s, offers, rate, allowed = rate_step(plan, start, ro.window_offers, ro.rate,
                                               now.timestamp())
    if allowed:
        ro.window_start = dt.datetime.fromtimestamp(start_s, dt.UTC)
        ro.window_offers, ro.rate = offers, rate
    return allowed
