"""The server's state: fleets, releases, channels, devices, deployments and events in SQL,
images in the blob store. Routes call these methods; they raise otaforge errors, never HTTP.

Check-ins are the hot path: token, device and channel lookups are served from short-lived
caches (token -> device 60 s; device, channel and fleet rows 1 s), and the facts a device
reports are written back in batches (:meth:`DeviceStore.flush`), so a check-in costs at most
one indexed read. Reports (events) are committed before the method returns.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from otaforge.errors import Conflict, InputError, NotFound, RefusalCode, Unauthorized
from otaforge.formats.chips import sbv2_schemes_text
from otaforge.protocol.reports import ABORTED, TERMINAL_STATES
from otaforge.server import service
from otaforge.server.audit import AuditLog
from otaforge.server.auth import (
    ADMIN,
    TOKEN_PREFIX,
    Principal,
    is_admin_token,
    new_token,
    token_hash,
)
from otaforge.server.blobs import open_blob_store
from otaforge.server.clock import SYSTEM_CLOCK, Clock
from otaforge.server.db import session_factory
from otaforge.server.deltas import DeltaService
from otaforge.server.download_urls import DownloadSecrets
from otaforge.server.models import Channel, Deployment, Device, Event, Fleet, Release
from otaforge.server.rollouts import RolloutService
from otaforge.server.settings import Settings
from otaforge.server.store_devices import CACHE_TTL_S, DEFAULT_CHANNEL, DeviceStore, TTLCache
from otaforge.server.users import Users

_RELEASE_ID = re.compile(r"[0-9]{1,9}", re.ASCII)


class Store(DeviceStore):
    """All reads and writes of server state (devices, check-ins and reports: the mixin)."""

    def __init__(self, engine: Engine, settings: Settings, clock: Clock | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.clock: Clock = clock or SYSTEM_CLOCK
        self.sessions = session_factory(engine)
        self.blobs = open_blob_store(settings.blob_store, settings.blob_dir, settings.s3_endpoint)
        self.admin_token = settings.admin_token()
        self._tokens = TTLCache(60.0)
        self._devices = TTLCache(CACHE_TTL_S)
        self._targets = TTLCache(CACHE_TTL_S)
        self._fleets = TTLCache(CACHE_TTL_S)
        self._readable = TTLCache(CACHE_TTL_S)
        self._own_token = TTLCache(CACHE_TTL_S)
        self._pending: dict[str, dict[str, Any]] = {}
        self._pending_lock = threading.Lock()
        self.downloads = DownloadSecrets(engine, self.sessions)
        self.deltas = DeltaService(self, settings.delta_workers, settings.delta_max_ratio)
        self.rollouts = RolloutService(self)
        self.users = Users(engine, self.sessions, self.clock, settings.session_ttl_s)
        self.audit = AuditLog(engine, self.sessions, self.clock)

    def download_device(self, secret: str) -> str | None:
        """The device whose download URL carries ``secret``, or None."""
        return self.downloads.device(secret)

    @contextmanager
    def tx(self) -> Iterator[Session]:
        """A session in a transaction, committed on success."""
        with self.sessions() as session, session.begin():
            yield session

    # --- auth -----------------------------------------------------------------------------

    def authenticate(self, token: str) -> Principal:
        """Who holds ``token``.

        Raises:
            Unauthorized: no such token.
        """
        if is_admin_token(token, self.admin_token):
            return ADMIN
        if token.startswith(TOKEN_PREFIX["user"]):
            return self.users.by_token(token)
        digest = token_hash(token)
        cached: Principal | None = self._tokens.get(digest)
        if cached is not None:
            return cached
        with self.engine.connect() as conn:
            row = conn.execute(_DEVICE_BY_TOKEN, {"h": digest}).first()
            if row is not None:
                principal = Principal("device", fleet_id=row[1], device_id=row[0])
                self._devices.put(row[0], (int(row[1]), str(row[2])))
            else:
                fleet_id = conn.execute(_FLEET_BY_TOKEN, {"h": digest}).scalar()
                if fleet_id is None:
                    raise Unauthorized("unknown token")
                principal = Principal("enroll", fleet_id=fleet_id)
        self._tokens.put(digest, principal)
        return principal

    # --- fleets ---------------------------------------------------------------------------

    def create_fleet(self, name: str, chip: str, partition_csv: str, public_keys: list[str],
                     require_signature: bool, secure_version_bits: int | None) -> tuple[Fleet, str]:
        """Create a fleet with a ``stable`` channel; returns it and its enrollment token."""
        from otaforge.crypto import keys as k

        spec = service.chip_spec(chip)
        layout = service.fleet_layout(partition_csv)
        loaded = [k.load_public_key(p.encode()) for p in public_keys]
        for key in loaded:
            scheme = k.scheme_of(key)
            v1_ok = spec.sbv1_app_signing and scheme == "ecdsa256"
            if scheme not in spec.sbv2_schemes and not v1_ok:
                raise InputError(f"{scheme} keys cannot sign apps for {spec.name} (it accepts "
                                 f"{sbv2_schemes_text(spec)})")
        pems = [k.public_key_pem(key).decode() for key in loaded]
        if require_signature and not pems:
            raise InputError("require_signature needs at least one public key")
        bits = secure_version_bits or spec.secure_version_bits
        if bits > spec.secure_version_bits:
            raise InputError(f"secure_version_bits {bits} exceeds {spec.name}'s eFuse field of "
                             f"{spec.secure_version_bits} bits")
        token = new_token("enroll")
        fleet = Fleet(name=name, chip=spec.name, partition_csv=layout.csv,
                      ota_slot_size=layout.ota_slot_size, require_signature=require_signature,
                      public_keys=pems, secure_version_bits=bits,
                      enrollment_token_hash=token_hash(token), created_at=self.clock.now())
        try:
            with self.tx() as s:
                s.add(fleet)
                s.flush()
                s.add(Channel(fleet_id=fleet.id, name=DEFAULT_CHANNEL, updated_at=self.clock.now()))
        except IntegrityError:
            raise Conflict(f"fleet {name!r} already exists") from None
        return fleet, token

    def fleet(self, s: Session, name: str) -> Fleet:
        """The fleet called ``name`` (NotFound otherwise)."""
        fleet = s.scalar(select(Fleet).where(Fleet.name == name))
        if fleet is None:
            raise NotFound(f"no fleet {name!r}")
        return fleet

    def fleets(self) -> list[Fleet]:
        with self.sessions() as s:
            return list(s.scalars(select(Fleet).order_by(Fleet.name)))

    def fleet_view(self, name: str) -> tuple[Fleet, dict[str, int | None]]:
        """A fleet and its channels (name -> release id)."""
        with self.sessions() as s:
            fleet = self.fleet(s, name)
            chans = {c.name: c.release_id for c in
                     s.scalars(select(Channel).where(Channel.fleet_id == fleet.id))}
            return fleet, chans

    def policy(self, fleet: Fleet) -> service.FleetPolicy:
        return service.FleetPolicy(
            chip=fleet.chip, ota_slot_size=fleet.ota_slot_size,
            require_signature=fleet.require_signature, public_keys=tuple(fleet.public_keys),
            secure_version_bits=fleet.secure_version_bits)

    # --- releases -------------------------------------------------------------------------

    def publish(self, fleet_name: str, data: bytes, channel: str | None = None,
                force: bool = False) -> tuple[Release, bool]:
        """Check and store an image as a release; returns (release, created).

        Re-publishing the same bytes to the same fleet returns the existing release.

        Raises:
            Conflict: (reason ``secure_version``) ``channel`` has devices whose eFuse
                secure_version would refuse the image, and not ``force``; nothing is stored.
        """
        with self.sessions() as s:
            fleet = self.fleet(s, fleet_name)
        checked = service.check_upload(data, self.policy(fleet))
        if channel and not force:
            self.flush()
            with self.sessions() as s:
                self._refuse_downgrade(s, fleet, channel, checked.secure_version)
        self.blobs.put(data)
        created = True
        try:
            with self.tx() as s:
                release = Release(
                    fleet_id=fleet.id, version=checked.version,
                    project_name=checked.project_name, idf_ver=checked.idf_ver,
                    secure_version=checked.secure_version, sha256=checked.sha256,
                    size=checked.size, app_desc=checked.app_desc, signature=checked.signature,
                    created_at=self.clock.now())
                s.add(release)
        except IntegrityError:
            created = False
            with self.sessions() as s:
                release = s.scalars(select(Release).where(
                    Release.fleet_id == fleet.id, Release.sha256 == checked.sha256)).one()
        if channel:
            self.set_channel(fleet_name, channel, str(release.id), force=force)
        return release, created

    def _refuse_downgrade(self, s: Session, fleet: Fleet, channel: str,
                          secure_version: int) -> None:
        """Conflict when devices of the channel burned a secure_version above ``secure_version``
        (they would refuse the release: anti-rollback), naming a few of them."""
        above = Device.efuse_secure_version > secure_version
        where = (Device.fleet_id == fleet.id, Device.channel == channel, above)
        count = s.scalar(select(func.count(Device.id)).where(*where)) or 0
        if not count:
            return
        worst = s.execute(select(Device.id, Device.efuse_secure_version).where(*where)
                          .order_by(Device.efuse_secure_version.desc(), Device.id)
                          .limit(3)).all()
        named = ", ".join(f"{d} has {v}" for d, v in worst)
        raise Conflict(f"{count} device(s) on channel {channel!r} of fleet {fleet.name!r} burned "
                       f"an eFuse secure_version above this release's {secure_version} and "
                       f"would refuse it ({named}); publish an image with secure_version >= "
                       f"{worst[0][1]}, or pass --force (API: force) to point the channel at "
                       "it anyway", reason=RefusalCode.SECURE_VERSION.value)

    def releases(self, fleet_name: str) -> list[Release]:
        with self.sessions() as s:
            fleet = self.fleet(s, fleet_name)
            return list(s.scalars(select(Release).where(Release.fleet_id == fleet.id)
                                  .order_by(Release.id)))

    def _find_release(self, s: Session, fleet: Fleet, ref: str) -> Release:
        query = select(Release).where(Release.fleet_id == fleet.id)
        if _RELEASE_ID.fullmatch(ref):  # ASCII digits within the id column's range
            found = s.scalar(query.where(Release.id == int(ref)))
        elif len(ref) == 64:
            found = s.scalar(query.where(Release.sha256 == ref.lower()))
        else:
            found = s.scalar(query.where(Release.version == ref).order_by(Release.id.desc()))
        if found is None:
            raise NotFound(f"no release {ref!r} in fleet {fleet.name!r} "
                           "(give a release id, version or sha256)")
        return found

    def set_channel(self, fleet_name: str, channel: str, ref: str,
                    force: bool = False) -> tuple[Channel, Release]:
        """Point ``channel`` (created if new) at the release ``ref``.

        Raises:
            Conflict: (reason ``secure_version``) some of the channel's devices would refuse
                the release (their eFuse secure_version is above it), and not ``force``.
        """
        if not force:
            self.flush()
        with self.tx() as s:
            fleet = self.fleet(s, fleet_name)
            release = self._find_release(s, fleet, ref)
            if release.retired_at is not None:
                raise Conflict(f"release {release.id} ({release.version}) is retired")
            if not force:
                self._refuse_downgrade(s, fleet, channel, release.secure_version)
            chan = s.scalar(select(Channel).where(Channel.fleet_id == fleet.id,
                                                  Channel.name == channel))
            if chan is None:
                chan = Channel(fleet_id=fleet.id, name=channel)
                s.add(chan)
            if chan.release_id != release.id:  # a new rollout: count its failures afresh
                chan.failure_count, chan.paused, chan.paused_reason = 0, False, None
                self.rollouts.supersede(s, fleet.id, channel, release.id, self.clock.now())
            chan.release_id = release.id
            chan.updated_at = self.clock.now()
            fleet_id, release_id = fleet.id, release.id
        self.rollouts.changed()
        self.deltas.release_published(fleet_id, channel, release_id)
        return chan, release

    # --- rollouts -------------------------------------------------------------------------

    def _channel(self, s: Session, fleet_name: str, channel: str) -> Channel:
        fleet = self.fleet(s, fleet_name)
        chan = s.scalar(select(Channel).where(Channel.fleet_id == fleet.id,
                                              Channel.name == channel).with_for_update())
        if chan is None:
            raise NotFound(f"no channel {channel!r} in fleet {fleet_name!r}")
        return chan

    def rollout(self, fleet_name: str, channel: str) -> Channel:
        """A channel with its rollout controls and state."""
        with self.sessions() as s:
            return self._channel(s, fleet_name, channel)

    def set_rollout(self, fleet_name: str, channel: str, max_in_flight: int | None,
                    failure_threshold: int | None, rollout_percent: int | None = None) -> Channel:
        """Set (None: lift) a channel's concurrent-update limit, failure threshold and staged
        rollout percentage."""
        with self.tx() as s:
            chan = self._channel(s, fleet_name, channel)
            chan.max_in_flight, chan.failure_threshold = max_in_flight, failure_threshold
            chan.rollout_percent = rollout_percent
            chan.updated_at = self.clock.now()
        self._targets.clear()
        return chan

    def resume(self, fleet_name: str, channel: str) -> Channel:
        """Resume a paused rollout; its failure count starts again from zero."""
        with self.tx() as s:
            chan = self._channel(s, fleet_name, channel)
            chan.failure_count, chan.paused, chan.paused_reason = 0, False, None
            chan.updated_at = self.clock.now()
        self._targets.clear()
        return chan

    def pause(self, fleet_name: str, channel: str, reason: str | None = None) -> Channel:
        """Pause a channel's rollout: no new offers until it is resumed."""
        with self.tx() as s:
            chan = self._channel(s, fleet_name, channel)
            chan.paused, chan.paused_reason = True, reason or "paused by an operator"
            chan.updated_at = self.clock.now()
        self._targets.clear()
        return chan

    def abort_deployment(self, deployment_id: int, reason: str | None = None) -> Deployment:
        """End a deployment as aborted; the device's later reports on it get 409 Conflict,
        and the release is not offered to that device again.

        Raises:
            NotFound: no such deployment.
            Conflict: it already ended (confirmed, failed or rolled back).
        """
        why = reason or "aborted by an administrator"
        with self.tx() as s:
            dep = s.get(Deployment, deployment_id, with_for_update=True)
            if dep is None:
                raise NotFound(f"no deployment {deployment_id}")
            if dep.state == ABORTED:
                return dep
            if dep.state in TERMINAL_STATES:
                raise Conflict(f"deployment {deployment_id} already ended as {dep.state}; "
                               "there is nothing to abort")
            dep.state, dep.reason, dep.updated_at = ABORTED, why, self.clock.now()
            # a space: no device event id can collide (they are printable, without spaces)
            s.add(Event(device_id=dep.device_id, event_id=f"admin abort {dep.id}",
                        deployment_id=dep.id, state=ABORTED, reason=why,
                        received_at=self.clock.now()))
        return dep


def _bind(name: str) -> Any:
    return bindparam(name)


# hot-path statements, built once (Core, no ORM session)
_DEVICE_BY_TOKEN = select(Device.id, Device.fleet_id, Device.channel).where(
    Device.token_hash == bindparam("h"))
_FLEET_BY_TOKEN = select(Fleet.id).where(Fleet.enrollment_token_hash == bindparam("h"))
_DEVICE_INFO = select(Device.fleet_id, Device.channel).where(Device.id == bindparam("d"))
