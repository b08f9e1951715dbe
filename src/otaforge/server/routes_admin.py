"""The management API: fleets, releases, channels, devices (roles: :mod:`deps`)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from otaforge.crypto import keys as k
from otaforge.errors import ServerError
from otaforge.server.deps import admin, get_store, management
from otaforge.server.download_urls import download_path
from otaforge.server.models import Channel, Device, Fleet, Release
from otaforge.server.routes_device import PROBLEMS
from otaforge.server.schemas import (
    NAME,
    AbortRequest,
    ChannelOut,
    ChannelSet,
    DeploymentOut,
    DeviceCreate,
    DeviceDetail,
    DeviceOut,
    DownloadUrlOut,
    EventOut,
    FleetCreate,
    FleetOut,
    ReleaseOut,
    RolloutOut,
    RolloutSet,
    sig_info,
)
from otaforge.server.store import Store

router = APIRouter(prefix="/api/v1", dependencies=[Depends(management)], responses=PROBLEMS,
                   tags=["admin"])
FleetName = Annotated[str, Path(pattern=NAME)]
ChannelName = Annotated[str, Path(pattern=NAME)]
IMAGE_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


def aware(when: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive UTC datetimes; answer with explicit UTC."""
    if when is None or when.tzinfo is not None:
        return when
    return when.replace(tzinfo=dt.UTC)


def fleet_out(fleet: Fleet, channels: dict[str, int | None],
              token: str | None = None) -> FleetOut:
    digests = [k.public_key_digest(k.load_public_key(p.encode())).hex()
               for p in fleet.public_keys]
    return FleetOut(name=fleet.name, chip=fleet.chip, ota_slot_size=fleet.ota_slot_size,
                    require_signature=fleet.require_signature, key_digests=digests,
                    secure_version_bits=fleet.secure_version_bits, channels=channels,
                    enrollment_token=token, retired_at=aware(fleet.retired_at))


def release_out(release: Release, fleet: str) -> ReleaseOut:
    return ReleaseOut(id=release.id, fleet=fleet, version=release.version,
                      project_name=release.project_name, idf_ver=release.idf_ver,
                      secure_version=release.secure_version, sha256=release.sha256,
                      size=release.size, app_desc=release.app_desc,
                      signature=sig_info(release.signature),
                      created_at=aware(release.created_at) or release.created_at,
                      retired_at=aware(release.retired_at))


def device_out(device: Device, fleet: str, token: str | None = None) -> DeviceOut:
    return DeviceOut(id=device.id, fleet=fleet, channel=device.channel, state=device.state,
                     running_version=device.running_version,
                     running_sha256=device.running_sha256,
                     running_partition=device.running_partition,
                     otadata_state=device.otadata_state,
                     efuse_secure_version=device.efuse_secure_version,
                     last_check_in=aware(device.last_check_in),
                     tags=list(device.tags or ()), hw_revision=device.hw_revision,
                     penalty_cleared_at=aware(device.penalty_cleared_at),
                     retired_at=aware(device.retired_at), token=token)


@router.post("/fleets", response_model=FleetOut, status_code=201,
             dependencies=[Depends(admin)])
def create_fleet(body: FleetCreate, store: Store = Depends(get_store)) -> FleetOut:
    """Create a fleet; the answer carries its enrollment token (shown once)."""
    fleet, token = store.create_fleet(body.name, body.chip, body.partition_csv,
                                      body.public_keys, body.require_signature,
                                      body.secure_version_bits)
    return fleet_out(fleet, {"stable": None}, token)


@router.get("/fleets", response_model=list[FleetOut])
def list_fleets(store: Store = Depends(get_store)) -> list[FleetOut]:
    """Every fleet."""
    return [fleet_out(*store.fleet_view(f.name)) for f in store.fleets()]


@router.get("/fleets/{fleet}", response_model=FleetOut)
def get_fleet(fleet: FleetName, store: Store = Depends(get_store)) -> FleetOut:
    """One fleet and its channels."""
    return fleet_out(*store.fleet_view(fleet))


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and (len(declared) > 18 or int(declared) > limit):
        raise ServerError(f"image of {declared} bytes exceeds the upload limit of {limit}",
                          status_code=413)
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise ServerError(f"image exceeds the upload limit of {limit} bytes",
                              status_code=413)
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/fleets/{fleet}/releases", response_model=ReleaseOut, status_code=201,
             openapi_extra=IMAGE_BODY,
             responses={200: {"model": ReleaseOut, "description": "already published"},
                        413: PROBLEMS[422]})
async def publish(fleet: FleetName, request: Request, response: Response,
                  channel: Annotated[str | None, Query(pattern=NAME)] = None,
                  force: Annotated[bool, Query(description="with channel: point it at the "
                                               "release even when some of its devices' eFuse "
                                               "secure_version would refuse it")] = False,
                  store: Store = Depends(get_store)) -> ReleaseOut:
    """Upload an app image (raw bytes). Refused with the reason if any upload check fails,
    and (409, reason ``secure_version``) when ``channel`` has devices whose eFuse
    secure_version is above the image's, unless ``force``."""
    data = await _read_body(request, store.settings.max_upload_bytes)
    release, created = await run_in_threadpool(store.publish, fleet, data, channel, force)
    if not created:
        response.status_code = 200
    return release_out(release, fleet)


@router.get("/fleets/{fleet}/releases", response_model=list[ReleaseOut])
def list_releases(fleet: FleetName, store: Store = Depends(get_store)) -> list[ReleaseOut]:
    """A fleet's releases, oldest first."""
    return [release_out(r, fleet) for r in store.releases(fleet)]


@router.put("/fleets/{fleet}/channels/{channel}", response_model=ChannelOut)
def set_channel(fleet: FleetName, channel: Annotated[str, Path(pattern=NAME)],
                body: ChannelSet, store: Store = Depends(get_store)) -> ChannelOut:
    """Point a channel at a release (by id, version or sha256)."""
    chan, release = store.set_channel(fleet, channel, body.release, force=body.force)
    return ChannelOut(fleet=fleet, name=chan.name, release_id=release.id,
                      version=release.version)


def _download_url(store: Store, request: Request, secret: str) -> str:
    base = store.settings.public_url or str(request.base_url)
    return base.rstrip("/") + download_path(secret)


@router.post("/fleets/{fleet}/devices", response_model=DeviceOut, status_code=201,
             dependencies=[Depends(admin)])
def create_device(fleet: FleetName, body: DeviceCreate, request: Request,
                  store: Store = Depends(get_store)) -> DeviceOut:
    """Register a device; the answer carries its device token and its header-less download
    URL ``/dl/<secret>.bin`` (both shown once)."""
    device, token, secret = store.create_device(fleet, body.id, body.channel)
    out = device_out(device, fleet, token)
    out.download_url = _download_url(store, request, secret)
    return out


@router.post("/devices/{device_id}/download-url", response_model=DownloadUrlOut)
def rotate_download_url(device_id: Annotated[str, Path(pattern=NAME)], request: Request,
                        store: Store = Depends(get_store)) -> DownloadUrlOut:
    """Issue a new download URL for the device; the previous one stops working at once."""
    secret = store.downloads.rotate(device_id)
    return DownloadUrlOut(device_id=device_id,
                          download_url=_download_url(store, request, secret))


@router.delete("/devices/{device_id}/download-url", status_code=204,
               response_class=Response, response_model=None)
def revoke_download_url(device_id: Annotated[str, Path(pattern=NAME)],
                        store: Store = Depends(get_store)) -> Response:
    """End the device's download URL without issuing another."""
    store.downloads.revoke(device_id)
    return Response(status_code=204)


@router.get("/devices", response_model=list[DeviceOut])
def list_devices(fleet: Annotated[str | None, Query(pattern=NAME)] = None,
                 store: Store = Depends(get_store)) -> list[DeviceOut]:
    """Devices, optionally of one fleet."""
    return [device_out(d, f) for d, f in store.devices(fleet)]


@router.get("/devices/{device_id}", response_model=DeviceDetail)
def show_device(device_id: Annotated[str, Path(pattern=NAME)],
                store: Store = Depends(get_store)) -> DeviceDetail:
    """A device with its recent deployments and events (newest first)."""
    device, fleet, deps, events = store.device_detail(device_id)
    base = device_out(device, fleet)
    return DeviceDetail(
        **base.model_dump(),
        deployments=[{"id": d.id, "release_id": d.release_id, "state": d.state,
                      "reason": d.reason, "bytes": d.bytes,
                      "updated_at": (aware(d.updated_at) or d.updated_at).isoformat()}
                     for d in deps],
        events=[EventOut(event_id=e.event_id, deployment_id=e.deployment_id, state=e.state,
                         reason=e.reason, bytes=e.bytes,
                         received_at=aware(e.received_at) or e.received_at)
                for e in events])


def rollout_out(fleet: str, chan: Channel) -> RolloutOut:
    return RolloutOut(fleet=fleet, channel=chan.name, release_id=chan.release_id,
                      max_in_flight=chan.max_in_flight, rollout_percent=chan.rollout_percent,
                      failure_threshold=chan.failure_threshold,
                      failure_count=chan.failure_count, paused=chan.paused,
                      paused_reason=chan.paused_reason)


@router.get("/fleets/{fleet}/channels/{channel}/rollout", response_model=RolloutOut)
def get_rollout(fleet: FleetName, channel: ChannelName,
                store: Store = Depends(get_store)) -> RolloutOut:
    """A channel's rollout controls and whether it is paused."""
    return rollout_out(fleet, store.rollout(fleet, channel))


@router.put("/fleets/{fleet}/channels/{channel}/rollout", response_model=RolloutOut)
def set_rollout(fleet: FleetName, channel: ChannelName, body: RolloutSet,
                store: Store = Depends(get_store)) -> RolloutOut:
    """Set a channel's concurrent-update limit, staged percentage and failure threshold
    (null lifts one)."""
    return rollout_out(fleet, store.set_rollout(fleet, channel, body.max_in_flight,
                                                body.failure_threshold, body.rollout_percent))


@router.post("/fleets/{fleet}/channels/{channel}/resume", response_model=RolloutOut)
def resume_rollout(fleet: FleetName, channel: ChannelName,
                   store: Store = Depends(get_store)) -> RolloutOut:
    """Resume a paused rollout; its failure count starts again from zero."""
    return rollout_out(fleet, store.resume(fleet, channel))


@router.post("/admin/deployments/{deployment_id}/abort", response_model=DeploymentOut)
def abort_deployment(deployment_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
                     body: AbortRequest | None = None,
                     store: Store = Depends(get_store)) -> DeploymentOut:
    """Abort a device's deployment: its later reports on it get 409 Conflict, and the release
    is not offered to that device again (409 if the deployment already ended)."""
    dep = store.abort_deployment(deployment_id, body.reason if body else None)
    return DeploymentOut(id=dep.id, device_id=dep.device_id, release_id=dep.release_id,
                         state=dep.state, reason=dep.reason)
