"""Retiring fleets, releases and devices, and revoking device tokens.

Nothing is deleted: a retired row keeps its history (deployments, events, audit entries) and
is marked ``retired_at``. A retired or revoked device's credentials stop working at once:
its token hash is replaced by a marker no token hashes to (so the fleet's enrollment token
cannot take the device over either) and its download URL is ended.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from otaforge.errors import Conflict, NotFound
from otaforge.server.models import Channel, Device, Fleet, Release

if TYPE_CHECKING:
    from otaforge.server.store import Store


def revoked_marker(device_id: str) -> str:
    """The token hash of a device whose token was revoked (not hex: no token matches it)."""
    return "revoked:" + hashlib.sha256(device_id.encode()).hexdigest()[:56]


def _forget(store: Store) -> None:
    for cache in (store._tokens, store._devices, store._own_token, store._targets):
        cache.clear()
    store.downloads._cache.clear()


def revoke_device_token(store: Store, device_id: str) -> Device:
    """End a device's token (and download URL); it must be re-registered to check in again."""
    with store.tx() as s:
        device = s.get(Device, device_id, with_for_update=True)
        if device is None:
            raise NotFound(f"no device {device_id!r}")
        device.token_hash, device.download_secret_hash = revoked_marker(device_id), None
    _forget(store)
    return device


def retire_device(store: Store, device_id: str) -> Device:
    """Retire a device: its credentials end, its history stays."""
    with store.tx() as s:
        device = s.get(Device, device_id, with_for_update=True)
        if device is None:
            raise NotFound(f"no device {device_id!r}")
        device.token_hash, device.download_secret_hash = revoked_marker(device_id), None
        device.retired_at = device.retired_at or store.clock.now()
    _forget(store)
    return device


def retire_release(store: Store, fleet_name: str, ref: str) -> Release:
    """Retire a release: no channel may point at it any more (Conflict while one does)."""
    with store.tx() as s:
        fleet = store.fleet(s, fleet_name)
        release = store._find_release(s, fleet, ref)
        pointing = list(s.scalars(select(Channel.name).where(
            Channel.fleet_id == fleet.id, Channel.release_id == release.id)))
        if pointing:
            raise Conflict(f"release {release.id} ({release.version}) is the target of "
                           f"channel(s) {', '.join(pointing)}; point them elsewhere first")
        release.retired_at = release.retired_at or store.clock.now()
    return release


def retire_fleet(store: Store, fleet_name: str) -> Fleet:
    """Retire a fleet: its enrollment token and every device's credentials end."""
    now = store.clock.now()
    with store.tx() as s:
        fleet = store.fleet(s, fleet_name)
        fleet.enrollment_token_hash = None
        fleet.retired_at = fleet.retired_at or now
        for device in s.scalars(select(Device).where(Device.fleet_id == fleet.id)):
            device.token_hash = revoked_marker(device.id)
            device.download_secret_hash = None
            device.retired_at = device.retired_at or now
        s.execute(update(Channel).where(Channel.fleet_id == fleet.id)
                  .values(paused=True, paused_reason="fleet retired"))
    _forget(store)
    return fleet
