"""Device-side state of the store: registration, check-in facts, deployments, reports, and the
image a stock device should run. Mixed into :class:`otaforge.server.store.Store`.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, bindparam, func, select, update
from sqlalchemy.exc import DataError, IntegrityError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from otaforge.errors import Conflict, NotFound, ServerError
from otaforge.protocol.reports import ABORTED, FAILURE_STATES, TERMINAL_STATES
from otaforge.server import rollout, service
from otaforge.server.auth import Principal, forbidden, new_token, token_hash
from otaforge.server.blobs import BlobStore
from otaforge.server.clock import Clock
from otaforge.server.models import Channel, Deployment, Device, Event, Fleet, Release, Rollout
from otaforge.server.settings import Settings

if TYPE_CHECKING:
    from otaforge.server.rollouts import RolloutService

CACHE_TTL_S = 1.0
DEFAULT_CHANNEL = "stable"


class TTLCache:
    """A small dict cache whose entries expire after ``ttl`` seconds."""

    def __init__(self, ttl: float, max_items: int = 200_000) -> None:
        self.ttl, self.max_items = ttl, max_items
        self._data: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any) -> Any:
        hit = self._data.get(key)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, key: Any, value: Any) -> None:
        if len(self._data) >= self.max_items:
            self._data.clear()
        self._data[key] = (time.monotonic() + self.ttl, value)

    def clear(self) -> None:
        self._data.clear()


class DeviceStore:
    """Devices, check-ins, deployments and reports (needs the attributes below)."""

    engine: Engine
    settings: Settings
    clock: Clock
    sessions: sessionmaker[Session]
    blobs: BlobStore
    _devices: TTLCache
    _targets: TTLCache
    _fleets: TTLCache
    _readable: TTLCache
    _own_token: TTLCache
    _pending: dict[str, dict[str, Any]]
    _pending_lock: threading.Lock
    rollouts: RolloutService

    def tx(self) -> AbstractContextManager[Session]:
        raise NotImplementedError

    def fleet(self, s: Session, name: str) -> Fleet:
        raise NotImplementedError

    # --- devices --------------------------------------------------------------------------

    def create_device(self, fleet_name: str, device_id: str,
                      channel: str) -> tuple[Device, str, str]:
        """Register a device; returns it, its device token and its download secret."""
        token, secret = new_token("device"), new_token("download")
        try:
            with self.tx() as s:
                fleet = self.fleet(s, fleet_name)
                device = Device(id=device_id, fleet_id=fleet.id, channel=channel,
                                token_hash=token_hash(token), state="registered",
                                created_at=self.clock.now(),
                                download_secret_hash=token_hash(secret))
                s.add(device)
        except IntegrityError:
            raise Conflict(f"device {device_id!r} already exists") from None
        return device, token, secret

    def devices(self, fleet_name: str | None = None) -> list[tuple[Device, str]]:
        self.flush()
        with self.sessions() as s:
            query = select(Device, Fleet.name).join(Fleet, Fleet.id == Device.fleet_id)
            if fleet_name:
                query = query.where(Fleet.name == self.fleet(s, fleet_name).name)
            return [(d, n) for d, n in s.execute(query.order_by(Device.id)).all()]

    def device_detail(self, device_id: str, limit: int = 50) -> tuple[Device, str,
                                                                       list[Deployment],
                                                                       list[Event]]:
        self.flush()
        with self.sessions() as s:
            row = s.execute(select(Device, Fleet.name).join(Fleet, Fleet.id == Device.fleet_id)
                            .where(Device.id == device_id)).first()
            if row is None:
                raise NotFound(f"no device {device_id!r}")
            deps = list(s.scalars(select(Deployment).where(Deployment.device_id == device_id)
                                  .order_by(Deployment.id.desc()).limit(limit)))
            events = list(s.scalars(select(Event).where(Event.device_id == device_id)
                                    .order_by(Event.id.desc()).limit(limit)))
            return row[0], row[1], deps, events

    def device_info(self, device_id: str) -> tuple[int, str] | None:
        """(fleet id, channel) of a device, cached briefly."""
        hit: tuple[int, str] | None = self._devices.get(device_id)
        if hit is not None:
            return hit
        with self.engine.connect() as conn:
            row = conn.execute(_DEVICE_INFO, {"d": device_id}).first()
        if row is None:
            return None
        info = (int(row[0]), str(row[1]))
        self._devices.put(device_id, info)
        return info

    def authorize_device(self, who: Principal, device_id: str) -> tuple[int, str]:
        """The (fleet id, channel) of ``device_id`` if ``who`` may act for it.

        An enrollment token registers an unknown device into its fleet.
        """
        if who.kind == "device":
            if who.device_id != device_id:
                raise forbidden(f"this token belongs to device {who.device_id!r}")
            info = self.device_info(device_id)
            if info is None:
                raise NotFound(f"no device {device_id!r}")
            return info
        info = self.device_info(device_id)
        if who.kind == "enroll":
            if info is None:
                return self._enroll(device_id, who.fleet_id or 0)
            if info[0] != who.fleet_id:
                raise forbidden(f"device {device_id!r} belongs to another fleet")
            if self._has_own_token(device_id):  # the shared token must not impersonate it
                raise forbidden(f"device {device_id!r} has its own device token; use it")
            return info
        raise forbidden("only a device or enrollment token acts for a device")

    def _has_own_token(self, device_id: str) -> bool:
        """True when the device was registered with its own device token (cached briefly)."""
        hit: bool | None = self._own_token.get(device_id)
        if hit is None:
            with self.engine.connect() as conn:
                hit = conn.execute(_HAS_TOKEN, {"d": device_id}).scalar() is not None
            self._own_token.put(device_id, hit)
        return hit

    def _enroll(self, device_id: str, fleet_id: int) -> tuple[int, str]:
        try:
            with self.tx() as s:
                s.add(Device(id=device_id, fleet_id=fleet_id, channel=DEFAULT_CHANNEL,
                             state="registered", created_at=self.clock.now()))
        except IntegrityError:
            pass  # registered concurrently
        info = self.device_info(device_id)
        if info is None or info[0] != fleet_id:
            raise forbidden(f"device {device_id!r} belongs to another fleet")
        return info

    # --- check-in -------------------------------------------------------------------------

    def fleet_by_id(self, fleet_id: int) -> tuple[str, str]:
        """(name, chip) of a fleet, cached briefly."""
        hit: tuple[str, str] | None = self._fleets.get(fleet_id)
        if hit is None:
            with self.sessions() as s:
                row = s.execute(select(Fleet.name, Fleet.chip)
                                .where(Fleet.id == fleet_id)).one()
            hit = (str(row[0]), str(row[1]))
            self._fleets.put(fleet_id, hit)
        return hit

    def target(self, fleet_id: int, channel: str) -> service.Target | None:
        """The release a channel points at, cached briefly."""
        key = (fleet_id, channel)
        hit = self._targets.get(key)
        if hit is not None:
            return hit or None
        with self.sessions() as s:
            row = s.execute(
                select(Release.id, Release.version, Release.sha256, Release.secure_version,
                       Channel.id, Channel.max_in_flight, Channel.paused,
                       Channel.rollout_percent)
                .join(Channel, Channel.release_id == Release.id)
                .where(Channel.fleet_id == fleet_id, Channel.name == channel)).first()
        found = service.Target(int(row[0]), row[1], row[2], int(row[3]), int(row[4]), row[5],
                               bool(row[6]), row[7]) if row else None
        self._targets.put(key, found or False)
        return found

    def remember(self, device_id: str, facts: dict[str, Any]) -> None:
        """Queue what a device reported; :meth:`flush` writes it."""
        facts["last_check_in"] = self.clock.now()
        with self._pending_lock:
            self._pending[device_id] = facts

    def pending_facts(self, device_id: str) -> dict[str, Any] | None:
        with self._pending_lock:
            return self._pending.get(device_id)

    def flush(self) -> int:
        """Write queued check-in facts in one transaction; returns how many devices."""
        with self._pending_lock:
            batch, self._pending = self._pending, {}
        if not batch:
            return 0
        rows = [{"b_id": k, **v} for k, v in batch.items()]
        stmt = update(Device).where(Device.id == _bind("b_id")).values(
            {key: _bind(key) for key in rows[0] if key != "b_id"})
        try:
            with self.engine.begin() as conn:
                conn.execute(stmt, rows)
            return len(rows)
        except _BAD_ROW:
            pass  # one row the database refuses must not lose the other devices' facts
        except Exception:
            self._requeue(batch)  # the database is away: keep the facts for the next tick
            raise
        written = 0
        for index, row in enumerate(rows):
            try:
                with self.engine.begin() as conn:
                    conn.execute(stmt, [row])
                written += 1
            except _BAD_ROW:
                continue
            except Exception:
                self._requeue({r["b_id"]: _facts(r) for r in rows[index:]})
                raise
        return written

    def _requeue(self, batch: dict[str, dict[str, Any]]) -> None:
        with self._pending_lock:
            for device_id, facts in batch.items():
                self._pending.setdefault(device_id, facts)

    def offer(self, device_id: str, target: service.Target,
              facts: service.DeviceFacts) -> int | None:
        """Open (or reuse) a deployment of ``target``.

        None when the device is penalised, an administrator aborted this release's deployment
        on it, or the channel already has ``max_in_flight`` devices mid-update.
        """
        with self.tx() as s:
            failures = rollout.failures(s, device_id, target.release_id)
            if service.decide(facts, target, failures, self.settings.max_failures):
                return None
            mine = s.execute(select(Deployment.id, Deployment.state).where(
                Deployment.device_id == device_id, Deployment.release_id == target.release_id,
                Deployment.state.not_in(TERMINAL_STATES))
                .order_by(Deployment.id.desc())).all()
            if any(state == ABORTED for _, state in mine):
                return None
            open_dep = s.get(Deployment, mine[0][0]) if mine else None
            stale_s = self.settings.stale_deployment_s
            now = self.clock.now()
            if open_dep is None and target.max_in_flight is not None and \
                    rollout.in_flight(s, target, stale_s, now) >= target.max_in_flight:
                return None
            if open_dep is None:
                open_dep = Deployment(device_id=device_id, release_id=target.release_id,
                                      state="offered", created_at=now, updated_at=now)
                s.add(open_dep)
                s.flush()
            return open_dep.id

    def release_by_id(self, release_id: int) -> Release:
        with self.sessions() as s:
            release = s.get(Release, release_id)
            if release is None:
                raise NotFound(f"no release {release_id}")
            return release

    # --- reports --------------------------------------------------------------------------

    def report(self, device_id: str, event_id: str, deployment_id: int | None, state: str,
               reason: str | None, nbytes: int | None) -> tuple[Event, bool]:
        """Record a report once (idempotent by event id); returns (event, duplicate)."""
        existing = self._event(device_id, event_id)
        if existing is not None:
            return existing, True
        try:
            with self.tx() as s:
                recent = s.scalar(select(func.count(Event.id)).where(
                    Event.device_id == device_id,
                    Event.received_at > self.clock.now() - dt.timedelta(seconds=60)))
                if (recent or 0) >= self.settings.max_reports_per_minute:
                    raise ServerError(f"device {device_id!r} sent {recent} reports in the last "
                                      "minute; slow down", status_code=429)
                if deployment_id is not None:
                    dep = s.get(Deployment, deployment_id, with_for_update=True)
                    if dep is None or dep.device_id != device_id:
                        raise NotFound(f"no deployment {deployment_id} for device {device_id!r}")
                    before = dep.state
                    try:
                        dep.state = service.transition(dep.state, state)
                    except ValueError as err:
                        raise Conflict(str(err)) from None
                    if state in FAILURE_STATES and before not in \
                            TERMINAL_STATES:
                        rollout.count_failure(s, device_id, dep.release_id)
                        if dep.rollout_id is not None:  # let its gates look at once
                            s.execute(update(Rollout).where(Rollout.id == dep.rollout_id)
                                      .values(next_eval_at=self.clock.now()))
                    dep.reason, dep.bytes, dep.updated_at = reason, nbytes, self.clock.now()
                event = Event(device_id=device_id, event_id=event_id,
                              deployment_id=deployment_id, state=state, reason=reason,
                              bytes=nbytes, received_at=self.clock.now())
                s.add(event)
                s.execute(update(Device).where(Device.id == device_id).values(state=state))
        except IntegrityError:
            again = self._event(device_id, event_id)
            if again is None:
                raise
            return again, True
        if state in FAILURE_STATES:
            self.rollouts.changed()  # the channel may have just paused; gates may be due
        return event, False

    def _event(self, device_id: str, event_id: str) -> Event | None:
        with self.sessions() as s:
            return s.scalar(select(Event).where(Event.device_id == device_id,
                                                Event.event_id == event_id))

    # --- firmware access ------------------------------------------------------------------

    def may_read(self, fleet_id: int, sha256: str) -> bool:
        """True when ``sha256`` is a stored image of a release of the fleet (cached briefly)."""
        key = (fleet_id, sha256)
        hit: bool | None = self._readable.get(key)
        if hit is None:
            hit = self.fleet_has_blob(fleet_id, sha256) and self.blobs.exists(sha256)
            self._readable.put(key, hit)
        return hit

    def fleet_has_blob(self, fleet_id: int, sha256: str) -> bool:
        with self.sessions() as s:
            return s.scalar(select(Release.id).where(Release.fleet_id == fleet_id,
                                                     Release.sha256 == sha256)) is not None


def _bind(name: str) -> Any:
    return bindparam(name)


def _facts(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "b_id"}


_BAD_ROW = (DataError, IntegrityError, ProgrammingError)
_HAS_TOKEN = select(Device.id).where(Device.id == bindparam("d"), Device.token_hash.is_not(None))
_DEVICE_INFO = select(Device.fleet_id, Device.channel).where(Device.id == bindparam("d"))
