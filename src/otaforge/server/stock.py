"""The image a stock ``esp_https_ota`` device should download, for both stock routes:
``GET /ota/{fleet}/{device}.bin`` (bearer token) and ``GET /dl/{secret}.bin`` (no header).

A stock device (the seed's ``start_ota(url)``) calls ``esp_https_ota()`` at every boot and
never compares versions, so the server decides, and answers 304 Not Modified when:

* the device has the image (``If-None-Match``, ``?version=``, or its last check-in/report);
* its eFuse secure_version (as last reported) is above the release's: it would refuse it;
* it already downloaded this release completely (and asks for it from the start: a Range
  from a later offset continues a download), rolled it back, or an administrator aborted it
  there -- so the seed's loop never re-flashes forever;
* the channel's rollout is paused, has not reached it, or is at its concurrency limit.

Otherwise the image is served (Range/resume as for ``/firmware``) under a deployment of the
release to that device, whose ``bytes`` is the prefix the device holds: what was served,
and a Range from offset X says the device holds 0..X (``ota_resumption`` resumes from what
it wrote); once it covers the image, the deployment is ``downloaded`` -- unless TCP then
says the device never acknowledged the end of it (:mod:`otaforge.server.delivery`).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from otaforge.errors import NotFound
from otaforge.protocol.reports import ABORTED, ReportState
from otaforge.server import service
from otaforge.server.download import FirmwareResponse, blob_exists, etag_of
from otaforge.server.models import Deployment, Device, Event
from otaforge.server.ranges import none_match
from otaforge.server.rollout_offers import Choice
from otaforge.server.store import Store
from otaforge.server.waves import Route

log = logging.getLogger("otaforge.server")
DOWNLOADING_STATES = frozenset({"offered", ReportState.DOWNLOADING})
DONE_STATES = frozenset({ReportState.DOWNLOADED, ReportState.INSTALLING, ReportState.REBOOTING,
                         ReportState.PENDING_VERIFY, ReportState.CONFIRMED})
RESUME = re.compile(r"\s*bytes\s*=\s*0*[1-9]", re.ASCII)  # a Range starting past byte 0


@dataclass(frozen=True)
class Reported:
    """What the device last told the server (check-in or report)."""

    sha256: str | None = None
    version: str | None = None
    secure_version: int | None = None


def no_update(reported: Reported, target: service.Target, states: frozenset[str],
              if_none_match: str | None, version: str | None,
              resuming: bool = False) -> tuple[str, bool] | None:
    """Why not to serve ``target`` (and whether the device has it), or None to serve it.

    Args:
        reported: the device's last facts.
        target: the channel's release.
        states: the states of the device's deployments of that release.
        if_none_match: the request's If-None-Match header.
        version: the ``?version=`` the device sent.
        resuming: the request asks for the image from an offset past 0 (``ota_resumption``,
            ``partial_http_download``): the device is mid-download, whatever was recorded.
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
    if states & DONE_STATES and not resuming:
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


def record_progress(store: Store, deployment_id: int, start: int, end: int,
                    size: int) -> dt.datetime | None:
    """Extend the deployment's served prefix with bytes ``start..end``.

    Returns:
        the stamp (``updated_at``) of the completion this response claims -- it reached the
        end of the image -- or None. A later response that also reaches the end claims it
        anew, so only the latest claimant may take a completion back (:func:`settle`).
    """
    with store.tx() as s:
        dep = _locked(s, deployment_id)
        if dep is None:
            return None
        now = store.clock.now()
        if dep.state == ReportState.DOWNLOADED:
            if end < size:
                return None
            dep.updated_at = now
            return now
        if dep.state not in DOWNLOADING_STATES:
            return None
        # a Range from ``start`` is the device saying it holds 0..start (esp_https_ota
        # resumes from what it wrote); claiming more only costs the device itself
        have = max(dep.bytes or 0, start)
        if have < end:
            have = end
        done = have >= size
        dep.bytes, dep.updated_at = have, now
        dep.state = ReportState.DOWNLOADED if done else ReportState.DOWNLOADING
        s.execute(update(Device).where(Device.id == dep.device_id).values(state=dep.state))
    return now if done else None


def _locked(s: Session, deployment_id: int) -> Deployment | None:
    """The deployment, locked for the rest of the transaction: a write that changes nothing
    first (SQLite's write lock; ``FOR UPDATE`` is a no-op there), so two responses of one
    download cannot interleave their read-modify-write."""
    s.execute(update(Deployment).where(Deployment.id == deployment_id)
              .values(bytes=Deployment.bytes))
    return s.get(Deployment, deployment_id, with_for_update=True)


def _same_instant(a: dt.datetime, b: dt.datetime) -> bool:
    """SQLite hands back naive UTC datetimes; PostgreSQL aware ones."""
    def naive(when: dt.datetime) -> dt.datetime:
        return when.astimezone(dt.UTC).replace(tzinfo=None) if when.tzinfo else when
    return naive(a) == naive(b)


def settle(store: Store, deployment_id: int, start: int, claim: dt.datetime,
           delivered: bool | None, unacked: int) -> bool | None:
    """After a complete body from ``start`` that claimed the completion at ``claim``: record
    the download (an event), or, when TCP says part of it never arrived and no later
    response claimed it since, take it back (the prefix shrinks by what is unacknowledged,
    or to ``start`` when that is unknown).

    Returns:
        True when the download stands recorded, False when it was taken back, None when
        something else changed the deployment meanwhile.
    """
    with store.tx() as s:
        dep = _locked(s, deployment_id)
        if dep is None or dep.state != ReportState.DOWNLOADED:
            return None
        if delivered is False:
            if not _same_instant(dep.updated_at, claim):
                return None  # a later download of the same image completed it
            dep.state = ReportState.DOWNLOADING
            dep.bytes = max(start, (dep.bytes or 0) - unacked) if unacked > 0 else start
            dep.updated_at = store.clock.now()
            s.execute(update(Device).where(Device.id == dep.device_id)
                      .values(state=dep.state))
            return False
        event_id = f"stock download {dep.id}"  # a space: no device event id can collide
        if s.scalar(select(Event.id).where(Event.device_id == dep.device_id,
                                           Event.event_id == event_id)) is None:
            s.add(Event(device_id=dep.device_id, event_id=event_id, deployment_id=dep.id,
                        state=ReportState.DOWNLOADED, bytes=dep.bytes,
                        reason="served completely on a stock route",
                        received_at=store.clock.now()))
    return True


class Tracker:
    """Counts what a stock route streams against the device's deployment."""

    def __init__(self, store: Store, device_id: str, deployment_id: int) -> None:
        self.store, self.device_id, self.deployment_id = store, device_id, deployment_id
        self.claim: dt.datetime | None = None

    async def sent(self, start: int, end: int, size: int) -> None:
        if end > start:
            self.claim = await self._quietly(record_progress, self.deployment_id, start, end,
                                             size)
            log.debug("%s: bytes %d-%d of %d sent%s", self.device_id, start, end, size,
                      " (complete)" if self.claim else "")

    async def settled(self, start: int, end: int, size: int, delivered: bool | None,
                      unacked: int) -> None:
        log.debug("%s: bytes %d-%d delivered: %s (%d unacknowledged)", self.device_id, start,
                  end, delivered, unacked)
        if self.claim is None:
            return
        outcome = await self._quietly(settle, self.deployment_id, start, self.claim,
                                      delivered, unacked)
        if outcome is False:
            log.warning("%s did not acknowledge the end of its download; it will be offered "
                        "again", self.device_id)
        elif outcome:
            log.info("%s downloaded deployment %d completely", self.device_id,
                     self.deployment_id)

    async def _quietly(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return await run_in_threadpool(fn, self.store, *args)
        except Exception as err:  # the image was served; a lost count is retried
            log.warning("could not record the download of %s: %s", self.device_id, err)
            return None


Offer = Callable[[service.DeviceFacts], int | None]


def _decide(store: Store, device_id: str, target: service.Target, if_none_match: str | None,
            version: str | None, head: bool, resuming: bool,
            offer: Offer) -> tuple[tuple[str, bool] | None, int | None]:
    """(why not, None) or (None, deployment id to track; None for HEAD)."""
    facts = reported(store, device_id)
    states = deployment_states(store, device_id, target.release_id)
    why = no_update(facts, target, states, if_none_match, version, resuming)
    if why is not None or head:
        return why, None
    as_reported = service.DeviceFacts(version, None, None, facts.secure_version) \
        if version is not None else \
        service.DeviceFacts(facts.version, facts.sha256, None, facts.secure_version)
    deployment = offer(as_reported)
    if deployment is None:
        return ("held back (rollout limit, or failed too often)", False), None
    return None, deployment


def _rollout_choice(store: Store, device_id: str, fleet_id: int, channel: str,
                    version: str | None) -> Choice | None:
    """Where a rollout on the channel sends this stock device (None: no rollout)."""
    active = store.rollouts.active(fleet_id, channel)
    if active is None:
        return None
    if store.rollouts.due(active):
        store.rollouts.try_tick(lambda: store.rollouts.evaluate(active.id))
    facts = reported(store, device_id)
    if version is not None:
        return store.rollouts.choose(device_id, fleet_id, channel, version, None)
    return store.rollouts.choose(device_id, fleet_id, channel, facts.version, facts.sha256)


async def answer(store: Store, device_id: str, fleet_id: int, channel: str, request: Request,
                 version: str | None) -> Response:
    """The stock route's answer for ``device_id``: the image (200/206/416) or 304.

    A rollout on the channel picks the release as for a check-in: in an opened wave the
    rollout's (within its limits), a device on a paused rollout's release keeps it (304).
    """
    choice = await run_in_threadpool(_rollout_choice, store, device_id, fleet_id, channel,
                                     version)
    if choice is not None and choice.route is Route.HOLD:
        return Response(status_code=304)
    offer: Offer
    if choice is not None and choice.route is Route.ROLLOUT:
        target, picked = choice.rollout.target, choice

        def offer(facts: service.DeviceFacts) -> int | None:
            return store.rollouts.offer(device_id, picked, facts)
    else:
        found = store.target(fleet_id, channel)
        if found is None:
            raise NotFound(f"no release on channel {channel!r} of the device's fleet")
        if service.held_back(device_id, found):  # paused, or not in the staged share yet
            return Response(status_code=304)
        target = found

        def offer(facts: service.DeviceFacts) -> int | None:
            return store.offer(device_id, target, facts)
    if not await blob_exists(store.blobs, target.sha256):
        raise NotFound(f"no release on channel {channel!r} of the device's fleet")
    head = request.method == "HEAD"
    resuming = RESUME.match(request.headers.get("range", "")) is not None
    why, deployment = await run_in_threadpool(
        _decide, store, device_id, target, request.headers.get("if-none-match"), version, head,
        resuming, offer)
    if why is not None:
        reason, has_it = why
        log.debug("304 for %s: %s", device_id, reason)
        return Response(status_code=304,
                        headers={"etag": etag_of(target.sha256)} if has_it else None)

    tracker = Tracker(store, device_id, deployment) if deployment is not None else None
    return FirmwareResponse(store.blobs, target.sha256, request.headers,
                            head=head, chunk_size=store.settings.chunk_size, tracker=tracker)

