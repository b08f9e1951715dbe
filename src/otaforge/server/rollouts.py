"""Rollouts in SQL: create, show, list, pause, resume, abort, and the gate tick.

A rollout sends one release to a fleet's channel in waves (:mod:`waves`), gated on device
health (:mod:`gates`). :meth:`RolloutService.evaluate` is the tick: inside one transaction
that first locks the rollout row, it tallies every device's newest deployment of the
rollout, asks :func:`gates.evaluate`, and applies the decision (open the next wave, complete,
pause -- and start reverting when the plan says so), so two ticks at once advance it once.
The check-in path evaluates a due rollout (``Plan.eval_interval_s`` of the server's clock)
and the app does every ``Settings.rollout_tick_s``; a failure report makes it due at once.

Every decision (the gates' and an administrator's) is an event of the pseudo device
``rollout <id>`` (a space: no real device id has one) whose ``data`` holds the numbers it
was based on.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from otaforge.errors import Conflict, InputError, NotFound
from otaforge.protocol.reports import FAILURE_STATES
from otaforge.server.clock import aware
from otaforge.server.gates import (
    Action,
    Decision,
    DeviceRecord,
    GateInput,
    WaveCounts,
    evaluate,
    tally,
)
from otaforge.server.models import Channel, Deployment, Device, Event, Fleet, Release, Rollout
from otaforge.server.rollout_offers import (
    ROUTED_STATES,
    RolloutOffers,
    _locked,
    in_flight,
)
from otaforge.server.waves import DeviceAttrs, Plan, open_wave

STATES = ("running", "paused", "aborted", "completed", "superseded")
DECISIONS_SHOWN = 50


def actor(rollout_id: int) -> str:
    """The events' device id of a rollout's decisions."""
    return f"rollout {rollout_id}"


class RolloutService(RolloutOffers):
    """Rollouts of a :class:`~otaforge.server.store.Store` (``store.rollouts``)."""

    # --- create ---------------------------------------------------------------------------

    def create(self, fleet_name: str, channel: str, release_ref: str, plan: Plan,
               force: bool = False) -> int:
        """Start a rollout of ``release_ref`` on ``channel``; opens its first wave.

        Raises:
            NotFound: no such fleet, channel or release.
            Conflict: the channel already runs a rollout (running or paused), already points
                at the release, or (reason ``secure_version``) devices would refuse it.
            InputError: a canary device is not on the channel.
        """
        store = self.store
        store.flush()
        now = store.clock.now()
        with store.tx() as s:
            fleet = store.fleet(s, fleet_name)
            chan = s.scalar(select(Channel).where(Channel.fleet_id == fleet.id,
                                                  Channel.name == channel).with_for_update())
            if chan is None:
                raise NotFound(f"no channel {channel!r} in fleet {fleet_name!r}")
            release = store._find_release(s, fleet, release_ref)
            if not force:
                store._refuse_downgrade(s, fleet, channel, release.secure_version)
            busy = s.scalar(select(Rollout.id).where(
                Rollout.fleet_id == fleet.id, Rollout.channel == channel,
                Rollout.state.in_(("running", "paused"))))
            if busy is not None:
                raise Conflict(f"channel {channel!r} of fleet {fleet_name!r} already has "
                               f"rollout {busy}; abort it first")
            if chan.release_id == release.id:
                raise Conflict(f"channel {channel!r} already points at release {release.id} "
                               f"({release.version}); nothing to roll out")
            self._check_canary(s, fleet, channel, plan)
            ro = Rollout(fleet_id=fleet.id, channel=channel, release_id=release.id,
                         previous_release_id=chan.release_id, plan=plan.to_json(),
                         state="running", wave=0, wave_started_at=now, cutoffs=[], sizes=[],
                         next_eval_at=now + dt.timedelta(seconds=plan.eval_interval_s),
                         created_at=now, updated_at=now)
            s.add(ro)
            s.flush()
            opened = open_wave(plan, ro.id, 0, [], _population(s, fleet.id, channel, release))
            ro.cutoffs, ro.sizes = [opened.cutoff], [opened.size]
            self._record(s, ro, "create", f"rollout of {release.version} to {fleet_name}/"
                         f"{channel} created; wave {plan.stage_name(0)} opened with "
                         f"{opened.size} devices",
                         {"plan": plan.to_json(), "wave": 0, "size": opened.size,
                          "previous_release_id": chan.release_id}, now)
            rollout_id, fleet_id, release_id = ro.id, fleet.id, release.id
        self.changed()
        store.deltas.release_published(fleet_id, channel, release_id)
        return rollout_id

    def _check_canary(self, s: Session, fleet: Fleet, channel: str, plan: Plan) -> None:
        if not plan.canary:
            return
        known = set(s.scalars(select(Device.id).where(
            Device.fleet_id == fleet.id, Device.channel == channel,
            Device.id.in_(plan.canary))))
        missing = [d for d in plan.canary if d not in known]
        if missing:
            raise InputError(f"canary device(s) {', '.join(missing[:5])} are not on channel "
                             f"{channel!r} of fleet {fleet.name!r}")

    # --- reading --------------------------------------------------------------------------

    def get(self, s: Session, rollout_id: int) -> Rollout:
        ro = s.get(Rollout, rollout_id)
        if ro is None:
            raise NotFound(f"no rollout {rollout_id}")
        return ro

    def view(self, rollout_id: int) -> dict[str, Any]:
        """The rollout: state, plan, each opened wave's counts now, recent decisions."""
        self.store.flush()
        now = self.store.clock.now()
        with self.store.sessions() as s:
            ro = self.get(s, rollout_id)
            plan = Plan.from_json(ro.plan)
            counts = self._tally(s, ro, plan, now)
            busy = in_flight(s, ro.id, plan, now)
            out = self._summary(s, ro, plan)
            events = list(s.scalars(select(Event).where(Event.device_id == actor(ro.id))
                                    .order_by(Event.id.desc()).limit(DECISIONS_SHOWN)))
        out["in_flight"] = busy
        out["waves"] = [{"index": i, "name": plan.stage_name(i),
                         "opened": i <= ro.wave, **counts[i].to_json()}
                        if i < len(counts) else
                        {"index": i, "name": plan.stage_name(i), "opened": False,
                         **WaveCounts().to_json()}
                        for i in range(plan.stages)]
        out["decisions"] = [decision_json(e) for e in reversed(events)]
        return out

    def listing(self, fleet_name: str | None = None, channel: str | None = None,
             state: str | None = None) -> list[dict[str, Any]]:
        """Rollouts, newest first, optionally of one fleet, channel or state."""
        with self.store.sessions() as s:
            query = select(Rollout).order_by(Rollout.id.desc())
            if fleet_name is not None:
                query = query.where(Rollout.fleet_id == self.store.fleet(s, fleet_name).id)
            if channel is not None:
                query = query.where(Rollout.channel == channel)
            if state is not None:
                query = query.where(Rollout.state == state)
            return [self._summary(s, ro, Plan.from_json(ro.plan))
                    for ro in s.scalars(query.limit(500))]

    def _summary(self, s: Session, ro: Rollout, plan: Plan) -> dict[str, Any]:
        fleet = s.get(Fleet, ro.fleet_id)
        release = s.get(Release, ro.release_id)
        assert fleet is not None and release is not None
        return {"id": ro.id, "fleet": fleet.name, "channel": ro.channel,
                "release_id": ro.release_id, "version": release.version,
                "previous_release_id": ro.previous_release_id, "state": ro.state,
                "reason": ro.reason, "reverting": ro.reverting, "wave": ro.wave,
                "paused_reason": ro.reason if ro.state == "paused" else None,
                "wave_name": plan.stage_name(ro.wave), "stages": plan.stages,
                "wave_started_at": aware(ro.wave_started_at).isoformat(),
                "sizes": list(ro.sizes), "rate_per_min": ro.rate,
                "failure_baseline": ro.failure_baseline, "decisions_count": ro.decisions,
                "plan": plan.to_json(), "created_at": aware(ro.created_at).isoformat(),
                "updated_at": aware(ro.updated_at).isoformat()}

    def decisions(self, rollout_id: int) -> list[dict[str, Any]]:
        """Every decision of the rollout, oldest first, with its numbers."""
        with self.store.sessions() as s:
            self.get(s, rollout_id)
            return [decision_json(e) for e in s.scalars(
                select(Event).where(Event.device_id == actor(rollout_id))
                .order_by(Event.id))]

    # --- the gate tick --------------------------------------------------------------------

    def evaluate(self, rollout_id: int, force: bool = False) -> Decision | None:
        """Evaluate the rollout's gates once and apply the decision.

        None when the rollout is not running, or (unless ``force``) not due yet.
        """
        self.store.flush()  # the latest check-ins: silent and soaked depend on them
        now = self.store.clock.now()
        with self.store.tx() as s:
            ro = _locked(s, rollout_id)
            if ro is None:
                raise NotFound(f"no rollout {rollout_id}")
            if ro.state != "running" or (not force and aware(ro.next_eval_at) > now):
                return None
            plan = Plan.from_json(ro.plan)
            counts = self._tally(s, ro, plan, now)
            decision = evaluate(GateInput(
                wave=ro.wave, last_wave=ro.wave >= plan.stages - 1, waves=counts,
                wave_age_s=(now - aware(ro.wave_started_at)).total_seconds(),
                failure_baseline=ro.failure_baseline, name=plan.stage_name(ro.wave)),
                plan.gate_policy())
            numbers = dict(decision.numbers)
            if decision.action is Action.ADVANCE:
                numbers["opened"] = self._advance(s, ro, plan, now)
            elif decision.action is Action.COMPLETE:
                self._complete(s, ro, now)
            elif decision.action is Action.PAUSE:
                ro.state, ro.reason, ro.reverting = "paused", decision.reason, plan.revert
                numbers["revert"] = plan.revert
            ro.next_eval_at = now + dt.timedelta(seconds=plan.eval_interval_s)
            if decision.action is not Action.HOLD or self._new_hold(s, ro, numbers):
                self._record(s, ro, decision.action.value, decision.reason, numbers, now)
        self.changed()  # check-ins see the new state and the next evaluation time
        return Decision(decision.action, decision.reason, numbers)

    def tick(self) -> list[tuple[int, Decision]]:
        """Evaluate every running rollout that is due (the app's background tick)."""
        now = self.store.clock.now()
        with self.store.sessions() as s:
            due = list(s.scalars(select(Rollout.id).where(Rollout.state == "running",
                                                          Rollout.next_eval_at <= now)))
        made = []
        for rollout_id in due:
            decision = self.evaluate(rollout_id)
            if decision is not None:
                made.append((rollout_id, decision))
        return made

    def _tally(self, s: Session, ro: Rollout, plan: Plan, now: dt.datetime) -> list[WaveCounts]:
        """Per-wave health counts: each device by its newest deployment of the rollout --
        unless an earlier attempt failed or rolled back and the device has not confirmed
        since (a retry in flight must not hide a failure; a retry that confirmed does)."""
        mine = Deployment.rollout_id == ro.id
        newest = select(func.max(Deployment.id)).where(mine).group_by(Deployment.device_id)
        failed = select(func.max(Deployment.id)).where(
            mine, Deployment.state.in_(FAILURE_STATES)).group_by(Deployment.device_id)
        rows = s.execute(select(Deployment.device_id, Deployment.id, Deployment.wave,
                                Deployment.state, Deployment.updated_at, Device.last_check_in)
                         .join(Device, Device.id == Deployment.device_id)
                         .where(Deployment.id.in_(newest) | Deployment.id.in_(failed))
                         .order_by(Deployment.id)).all()
        chosen: dict[str, tuple[int, str, dt.datetime, dt.datetime | None]] = {}
        for device, _id, wave, state, updated, seen in rows:
            earlier = chosen.get(device)
            if earlier is not None and earlier[1] in FAILURE_STATES and state != "confirmed":
                continue  # keep the failure
            chosen[device] = (int(wave or 0), state, aware(updated),
                              aware(seen) if seen is not None else None)
        records = [DeviceRecord(*rec) for rec in chosen.values()]
        return tally(records, list(ro.sizes), now, plan.gate_policy())

    def _advance(self, s: Session, ro: Rollout, plan: Plan, now: dt.datetime) -> dict[str, int]:
        release = s.get(Release, ro.release_id)
        assert release is not None
        index = ro.wave + 1
        opened = open_wave(plan, ro.id, index, list(ro.cutoffs),
                           _population(s, ro.fleet_id, ro.channel, release))
        ro.cutoffs, ro.sizes = [*ro.cutoffs, opened.cutoff], [*ro.sizes, opened.size]
        ro.wave, ro.wave_started_at, ro.updated_at = index, now, now
        return {"wave": index, "size": opened.size}

    def _complete(self, s: Session, ro: Rollout, now: dt.datetime) -> None:
        ro.state, ro.reason, ro.updated_at = "completed", None, now
        s.execute(update(Channel).where(Channel.fleet_id == ro.fleet_id,
                                        Channel.name == ro.channel)
                  .values(release_id=ro.release_id, updated_at=now, failure_count=0,
                          paused=False, paused_reason=None))

    def _new_hold(self, s: Session, ro: Rollout, numbers: dict[str, Any]) -> bool:
        """True when a hold's counts differ from the last recorded decision (a hold that
        changes nothing is not logged again)."""
        last = s.scalars(select(Event).where(Event.device_id == actor(ro.id))
                         .order_by(Event.id.desc()).limit(1)).first()
        if last is None or last.state != "hold" or not last.data:
            return True
        keys = ("wave", "current", "failures")
        return any(last.data.get(k) != numbers.get(k) for k in keys)

    def _record(self, s: Session, ro: Rollout, action: str, reason: str,
                data: dict[str, Any], now: dt.datetime) -> None:
        ro.decisions += 1
        s.add(Event(device_id=actor(ro.id), event_id=f"decision {ro.decisions}",
                    state=action, reason=reason, data=data, received_at=now))

    # --- administrator actions ------------------------------------------------------------

    def pause(self, rollout_id: int, reason: str | None = None,
              revert: bool = False) -> dict[str, Any]:
        """Pause a running rollout (optionally sending its devices back: ``revert``)."""
        why = reason or "paused by an administrator"
        return self._act(rollout_id, "pause", ("running", "paused"), "paused", why, revert)

    def resume(self, rollout_id: int) -> dict[str, Any]:
        """Resume a paused rollout: failures counted so far no longer count against it, the
        rate ramp starts again from its first rate, and reverting stops."""
        return self._act(rollout_id, "resume", ("paused",), "running", None, False)

    def abort(self, rollout_id: int, reason: str | None = None,
              revert: bool = False) -> dict[str, Any]:
        """End a rollout: devices not on the release stay on the channel's release; those on
        it keep it, or (``revert``) are sent back to the previous release."""
        why = reason or "aborted by an administrator"
        return self._act(rollout_id, "abort", ROUTED_STATES, "aborted", why, revert)

    def _act(self, rollout_id: int, action: str, allowed: tuple[str, ...], state: str,
             reason: str | None, revert: bool) -> dict[str, Any]:
        self.store.flush()
        now = self.store.clock.now()
        with self.store.tx() as s:
            ro = _locked(s, rollout_id)
            if ro is None:
                raise NotFound(f"no rollout {rollout_id}")
            if ro.state not in allowed:
                raise Conflict(f"rollout {rollout_id} is {ro.state}; cannot {action} it")
            if revert and ro.previous_release_id is None:
                raise Conflict(f"rollout {rollout_id} has no previous release to revert to")
            plan = Plan.from_json(ro.plan)
            counts = self._tally(s, ro, plan, now)
            failures = sum(w.failures for w in counts)
            if action == "resume":
                ro.failure_baseline = failures
                ro.rate, ro.window_start, ro.window_offers = None, None, 0
                ro.next_eval_at = now
            ro.state, ro.reason, ro.updated_at = state, reason, now
            ro.reverting = revert or (ro.reverting and action != "resume")
            self._record(s, ro, action, reason or f"{action} by an administrator",
                         {"by": "admin", "wave": ro.wave, "failures": failures,
                          "revert": ro.reverting,
                          "waves": [w.to_json() for w in counts]}, now)
        self.changed()
        return self.view(rollout_id)

    def supersede(self, s: Session, fleet_id: int, channel: str, release_id: int,
                  now: dt.datetime) -> None:
        """An administrator pointed the channel at a release by hand: its rollouts stop
        routing check-ins (called inside the channel change's transaction)."""
        for ro in s.scalars(select(Rollout).where(Rollout.fleet_id == fleet_id,
                                                  Rollout.channel == channel,
                                                  Rollout.state.in_(ROUTED_STATES))):
            ro.state, ro.updated_at = "superseded", now
            ro.reason = f"the channel was pointed at release {release_id} by hand"
            self._record(s, ro, "supersede", ro.reason, {"by": "admin",
                                                         "release_id": release_id}, now)


def _population(s: Session, fleet_id: int, channel: str,
                release: Release) -> list[DeviceAttrs]:
    """Every device of the channel, as targeting sees it."""
    rows = s.execute(select(Device.id, Device.tags, Device.hw_revision, Device.running_version,
                            Device.running_sha256)
                     .where(Device.fleet_id == fleet_id, Device.channel == channel)).all()
    return [DeviceAttrs(d, tuple(tags or ()), hw, ver,
                        sha == release.sha256 if sha else ver == release.version)
            for d, tags, hw, ver, sha in rows]


def decision_json(event: Event) -> dict[str, Any]:
    return {"seq": int(event.event_id.split()[-1]), "action": event.state,
            "reason": event.reason, "at": aware(event.received_at).isoformat(),
            "data": event.data or {}}
