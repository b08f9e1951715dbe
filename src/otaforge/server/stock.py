"""The image a stock ``esp_https_ota`` device should download, for both stock routes:
``GET /ota/{fleet}/{device}.bin`` (bearer token) and ``GET /dl/{secret}.bin`` (no header).

A stock device (the seed's ``start_ota(url)``) calls ``esp_https_ota()`` at every boot and
never compares versions, so the server decides, and answers 304 Not Modified when:

* the device has the image (``If-None-Match``, ``?version=``, or its last check-in/report);
* its eFuse secure_version (as last reported) is above the release's: it would refuse it;
* it already downloaded this release completely, rolled it back, or an administrator
  aborted it there -- so the seed's loop never re-flashes forever;
* the channel's rollout is paused, has not reached it, or is at its concurrency limit.

Otherwise the image is served (Range/resume as for ``/firmware``) under a deployment of the
release to that device, whose ``bytes`` is the contiguous prefix served so far (a resume
from any offset the device can hold continues it; a dropped connection counts what was
handed over); once it covers the image, the deployment is ``downloaded``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select, update
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from otaforge.errors import NotFound
from otaforge.protocol.reports import ABORTED, ReportState
from otaforge.server import service
from otaforge.server.download import FirmwareResponse, etag_of
from otaforge.server.models import Deployment, Device, Event
from otaforge.server.ranges import none_match
from otaforge.server.store import Store

log = logging.getLogger("otaforge.server")
DOWNLOADING_STATES = frozenset({"offered", ReportState.DOWNLOADING})
DONE_STATES = frozenset({ReportState.DOWNLOADED, ReportState.INSTALLING, ReportState.REBOOTING,
                         ReportState.PENDING_VERIFY, ReportState.CONFIRMED})
NEVER_AGAIN = DONE_STATES | {ReportState.ROLLED_BACK, ABORTED}


@dataclass(frozen=True)
class Reported:
    """What the device last told the server (check-in or report)."""

    sha256: str | None = None
    version: str | None = None
    secure_version: int | None = None


def no_update(reported: Reported, target: service.Target, states: frozenset[str],
              if_none_match: str | None, version: str | None) -> tuple[str, bool] | None:
    """Why not to serve ``target`` (and whether the device has it), or None to serve it.

    Args:
        reported: the device's last facts.
        target: the channel's release.
        states: the states of the device's deployments of that release.
        if_none_match: the request's If-None-Match header.
        version: the ``?version=`` the device sent.
    """
    if none_match(if_none_match, etag_of(target.sha256)):
        return "has the image (If-None-Match)", True
    if reported.secure_version is not None and target.secure_version < reported.secure_version:
        return (f"its eFuse secure_version {reported.secure_version} would refuse release "
                f"secure_version {target.secure_version}"), False
    if ReportState.ROLLED_BACK in states:
        return "rolled it back", False
    if ABORTED in states:
        return "an administrator aborted it there", False
    if states & DONE_STATES:
        return "downloaded it completely", True
    if version is not None:
        return ("runs it (?version=)", True) if version == target.version else None
    if reported.sha256 is not None:
        return ("runs it", True) if reported.sha256 == target.sha256 else None
    return ("runs it", True) if reported.version == target.version else None


def reported(store: Store, device_id: str) -> Reported:
    """The device's last facts: queued ones first, else the database's."""
    pending = store.pending_facts(device_id)
    if pending is not None:
        return Reported(pending.get("running_sha256"), pending.get("running_version"),
                        pending.get("efuse_secure_version"))
    with store.sessions() as s:
        row = s.execute(select(Device.running_sha256, Device.running_version,
                               Device.efuse_secure_version)
                        .where(Device.id == device_id)).first()
    return Reported(*row) if row else Reported()


def deployment_states(store: Store, device_id: str, release_id: int) -> frozenset[str]:
    with store.sessions() as s:
        return frozenset(s.scalars(select(Deployment.state).where(
            Deployment.device_id == device_id, Deployment.release_id == release_id)))


def record_progress(store: Store, deployment_id: int, start: int, end: int, size: int) -> bool:
    """Extend the deployment's served prefix with bytes ``start..end``; True once complete."""
    with store.tx() as s:
        dep = s.get(Deployment, deployment_id, with_for_update=True)
        if dep is None or dep.state not in DOWNLOADING_STATES:
            return False
        have = dep.bytes or 0
        if start <= have < end:
            have = end
        done = have >= size
        dep.bytes, dep.updated_at = have, store.clock.now()
        dep.state = ReportState.DOWNLOADED if done else ReportState.DOWNLOADING
        s.execute(update(Device).where(Device.id == dep.device_id).values(state=dep.state))
        if done:  # a space: no device event id can collide
            s.add(Event(device_id=dep.device_id, event_id=f"stock download {dep.id}",
                        deployment_id=dep.id, state=ReportState.DOWNLOADED, bytes=have,
                        reason="served completely on a stock route",
                        received_at=store.clock.now()))
    return done


def _decide(store: Store, device_id: str, target: service.Target, if_none_match: str | None,
            version: str | None, head: bool) -> tuple[tuple[str, bool] | None, int | None]:
    """(why not, None) or (None, deployment id to track; None for HEAD)."""
    facts = reported(store, device_id)
    states = deployment_states(store, device_id, target.release_id)
    why = no_update(facts, target, states, if_none_match, version)
    if why is not None or head:
        return why, None
    as_reported = service.DeviceFacts(version, None, None, facts.secure_version) \
        if version is not None else \
        service.DeviceFacts(facts.version, facts.sha256, None, facts.secure_version)
    deployment = store.offer(device_id, target, as_reported)
    if deployment is None:
        return ("held back (rollout limit, or failed too often)", False), None
    return None, deployment


async def answer(store: Store, device_id: str, fleet_id: int, channel: str, request: Request,
                 version: str | None) -> Response:
    """The stock route's answer for ``device_id``: the image (200/206/416) or 304."""
    target = store.target(fleet_id, channel)
    if target is None or not store.blobs.exists(target.sha256):
        raise NotFound(f"no release on channel {channel!r} of the device's fleet")
    if service.held_back(device_id, target):  # paused, or not in the staged percentage yet
        return Response(status_code=304)
    head = request.method == "HEAD"
    why, deployment = await run_in_threadpool(
        _decide, store, device_id, target, request.headers.get("if-none-match"), version, head)
    if why is not None:
        reason, has_it = why
        log.debug("304 for %s: %s", device_id, reason)
        return Response(status_code=304,
                        headers={"etag": etag_of(target.sha256)} if has_it else None)

    async def progress(start: int, end: int, size: int) -> None:
        if deployment is not None and end > start:
            try:
                if await run_in_threadpool(record_progress, store, deployment, start, end, size):
                    log.info("%s downloaded release %d completely", device_id,
                             target.release_id)
            except Exception as err:  # the image was served; a lost count is retried
                log.warning("could not record the download of %s: %s", device_id, err)

    return FirmwareResponse(store.blobs.path(target.sha256), target.sha256, request.headers,
                            head=head, chunk_size=store.settings.chunk_size, on_sent=progress)
