"""The operations API: users and their tokens (admin), the audit log, retiring fleets,
releases and devices, revoking a device token, pausing a channel, and ``/metrics``.

Roles (:mod:`deps`): every route here needs at least viewer to read and operator to change;
users, fleets and devices are the admin's (``Depends(admin)``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from otaforge.server import retire
from otaforge.server.deps import admin, get_store, management
from otaforge.server.routes_admin import (
    ChannelName,
    FleetName,
    aware,
    device_out,
    fleet_out,
    release_out,
    rollout_out,
)
from otaforge.server.routes_device import PROBLEMS
from otaforge.server.schemas import LABEL, NAME, DeviceOut, FleetOut, ReleaseOut, RolloutOut
from otaforge.server.schemas_ops import (
    AuditOut,
    PauseRequest,
    TokenCreate,
    TokenOut,
    TokensRevoked,
    UserCreate,
    UserOut,
)
from otaforge.server.store import Store
from otaforge.server.users import new_password

router = APIRouter(prefix="/api/v1", dependencies=[Depends(management)], responses=PROBLEMS,
                   tags=["operations"])
UserName = Annotated[str, Path(pattern=NAME)]
DeviceId = Annotated[str, Path(pattern=NAME)]
ADMIN = [Depends(admin)]


@router.post("/users", response_model=UserOut, status_code=201, dependencies=ADMIN)
def user_add(body: UserCreate, store: Store = Depends(get_store)) -> UserOut:
    """Add a user with a role; without ``password`` the answer carries a generated one
    (shown once)."""
    password = body.password or new_password()
    user = store.users.add(body.name, body.role, password)
    return UserOut(name=user.name, role=body.role,
                   created_at=aware(user.created_at) or user.created_at, revoked_at=None,
                   tokens=0, password=None if body.password else password)


@router.get("/users", response_model=list[UserOut], dependencies=ADMIN)
def user_list(store: Store = Depends(get_store)) -> list[UserOut]:
    """Every user (revoked ones too) with its number of live API tokens."""
    return [UserOut(name=u.name, role=u.role,  # type: ignore[arg-type]
                    created_at=aware(u.created_at) or u.created_at,
                    revoked_at=aware(u.revoked_at), tokens=u.tokens) for u in store.users.list()]


@router.delete("/users/{name}", response_model=UserOut, dependencies=ADMIN)
def user_revoke(name: UserName, store: Store = Depends(get_store)) -> UserOut:
    """Revoke a user: its tokens and dashboard sessions stop working at once."""
    user = store.users.revoke(name)
    return UserOut(name=user.name, role=user.role,  # type: ignore[arg-type]
                   created_at=aware(user.created_at) or user.created_at,
                   revoked_at=aware(user.revoked_at), tokens=0)


@router.post("/users/{name}/tokens", response_model=TokenOut, status_code=201,
             dependencies=ADMIN)
def user_token(name: UserName, body: TokenCreate | None = None,
               store: Store = Depends(get_store)) -> TokenOut:
    """Issue a per-user API token for the CLI (``otfu_...``, shown once)."""
    return TokenOut(user=name, token=store.users.issue_token(name, body.label if body else None))


@router.delete("/users/{name}/tokens", response_model=TokensRevoked, dependencies=ADMIN)
def user_tokens_revoke(name: UserName, store: Store = Depends(get_store)) -> TokensRevoked:
    """End every API token of a user (the password still logs in to the dashboard)."""
    return TokensRevoked(user=name, revoked=store.users.revoke_tokens(name))


@router.get("/audit", response_model=list[AuditOut])
def audit_list(limit: Annotated[int, Query(ge=1, le=1000)] = 100,
               before: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
               actor: Annotated[str | None, Query(max_length=80, pattern=LABEL)] = None,
               action: Annotated[str | None, Query(max_length=80, pattern=LABEL)] = None,
               store: Store = Depends(get_store)) -> list[AuditOut]:
    """The audit log, newest first (``before``: an id to page back from)."""
    rows = store.audit.entries(limit, before, actor, action)
    out = [AuditOut.model_validate(r, from_attributes=True) for r in rows]
    for entry in out:
        entry.at = aware(entry.at) or entry.at
    return out


@router.post("/fleets/{fleet}/retire", response_model=FleetOut, dependencies=ADMIN)
def fleet_retire(fleet: FleetName, store: Store = Depends(get_store)) -> FleetOut:
    """Retire a fleet: its enrollment token and its devices' credentials end, its channels
    pause; every row stays for the history."""
    retire.retire_fleet(store, fleet)
    out = fleet_out(*store.fleet_view(fleet))
    return out


@router.post("/fleets/{fleet}/releases/{release}/retire", response_model=ReleaseOut)
def release_retire(fleet: FleetName, release: Annotated[str, Path(max_length=64)],
                   store: Store = Depends(get_store)) -> ReleaseOut:
    """Retire a release (409 while a channel points at it); it is never offered again."""
    return release_out(retire.retire_release(store, fleet, release), fleet)


@router.post("/devices/{device_id}/retire", response_model=DeviceOut, dependencies=ADMIN)
def device_retire(device_id: DeviceId, store: Store = Depends(get_store)) -> DeviceOut:
    """Retire a device: its token and download URL end; its history stays."""
    device = retire.retire_device(store, device_id)
    return device_out(device, store.fleet_by_id(device.fleet_id)[0])


@router.delete("/devices/{device_id}/token", response_model=DeviceOut)
def device_token_revoke(device_id: DeviceId, store: Store = Depends(get_store)) -> DeviceOut:
    """Revoke a device's token (and its download URL): its next check-in gets 401."""
    device = retire.revoke_device_token(store, device_id)
    return device_out(device, store.fleet_by_id(device.fleet_id)[0])


@router.post("/fleets/{fleet}/channels/{channel}/pause", response_model=RolloutOut)
def pause_channel(fleet: FleetName, channel: ChannelName, body: PauseRequest | None = None,
                  store: Store = Depends(get_store)) -> RolloutOut:
    """Pause a channel's rollout: no new offers until ``resume``."""
    return rollout_out(fleet, store.pause(fleet, channel, body.reason if body else None))
