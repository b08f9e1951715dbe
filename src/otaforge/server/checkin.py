"""The check-in exchange, shared by the FastAPI route and the ASGI fast path.

:func:`admit` runs every check that can refuse the request (token, device, fleet, chip) and
has no side effect beyond registering a device with an enrollment token; :func:`answer` records
the device's facts and decides between 204 and a manifest.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.concurrency import run_in_threadpool

from otaforge.errors import ServerError
from otaforge.server import service
from otaforge.server.auth import Principal, forbidden
from otaforge.server.schemas import CheckIn, DeltaManifest, Manifest, sig_info
from otaforge.server.store import Store
from otaforge.server.waves import Route

NEXT_CHECK_IN = "x-next-check-in-s"


def admit(store: Store, who: Principal, device_id: str, body: CheckIn) -> tuple[int, str]:
    """(fleet id, channel) of the device, or raise why the check-in is refused."""
    fleet_id, channel = store.authorize_device(who, device_id)
    fleet_name, chip = store.fleet_by_id(fleet_id)
    if body.fleet != fleet_name:
        raise forbidden(f"device {device_id!r} belongs to fleet {fleet_name!r}, "
                        f"not {body.fleet!r}")
    if body.chip != chip:
        raise ServerError(f"device reports chip {body.chip!r}; fleet {fleet_name!r} is "
                          f"{chip!r}", status_code=409)
    return fleet_id, channel


async def answer(store: Store, device_id: str, fleet_id: int, channel: str, body: CheckIn,
                 base_url: Callable[[], str]) -> tuple[int, Manifest | None]:
    """Record the facts; returns (next check-in hint, manifest or None for 204).

    A rollout on the channel decides which release the device is offered
    (:mod:`rollout_offers`); ``base_url`` is called only when a manifest needs the URL.
    """
    facts = service.DeviceFacts(body.version, body.image_sha256.lower() if body.image_sha256
                                else None, body.otadata_state, body.secure_version)
    store.remember(device_id, {
        "running_version": body.version, "running_sha256": facts.image_sha256,
        "running_partition": body.running_partition, "otadata_state": body.otadata_state,
        "efuse_secure_version": body.secure_version})
    rollouts = store.rollouts
    if body.hw_revision is not None:
        await run_in_threadpool(rollouts.note_hw_revision, device_id, body.hw_revision)
    settings = store.settings
    hint = service.next_check_in(settings.check_in_interval_s, settings.check_in_jitter)
    active = rollouts.active(fleet_id, channel)
    choice = None
    if active is not None:
        if rollouts.due(active):
            await run_in_threadpool(rollouts.try_tick, lambda: rollouts.evaluate(active.id))
        choice = await run_in_threadpool(rollouts.choose, device_id, fleet_id, channel,
                                         facts.version, facts.image_sha256)
    if choice is not None and choice.route is Route.HOLD:
        return hint, None
    if choice is not None and choice.route is Route.ROLLOUT:
        target = choice.rollout.target
        deployment = await run_in_threadpool(rollouts.offer, device_id, choice, facts)
    else:
        channel_target = store.target(fleet_id, channel)
        if channel_target is None or service.decide(facts, channel_target, 0,
                                                    settings.max_failures) is not None \
                or not service.in_cohort(device_id, channel_target):
            return hint, None
        target = channel_target
        deployment = await run_in_threadpool(store.offer, device_id, target, facts)
    if deployment is None:
        return hint, None
    return hint, await _manifest(store, fleet_id, target.release_id, deployment, facts, hint,
                                 base_url)


async def _manifest(store: Store, fleet_id: int, release_id: int, deployment: int,
                    facts: service.DeviceFacts, hint: int,
                    base_url: Callable[[], str]) -> Manifest:
    """The offer of ``release_id`` under ``deployment``, with a delta when one is ready."""
    release = await run_in_threadpool(store.release_by_id, release_id)
    base = store.settings.public_url or base_url().rstrip("/")
    offer = await run_in_threadpool(store.deltas.offer, fleet_id, release.id,
                                    facts.image_sha256)
    delta = None if offer is None else DeltaManifest(
        url=f"{base}/deltas/{offer.patch_sha256}.bin", size=offer.size,
        sha256=offer.patch_sha256, base_sha256=offer.base_sha256,
        target_sha256=offer.target_sha256)
    return Manifest(
        deployment_id=deployment, release_id=release.id, version=release.version,
        secure_version=release.secure_version, size=release.size, sha256=release.sha256,
        url=f"{base}/firmware/{release.sha256}.bin", signature=sig_info(release.signature),
        next_check_in_s=hint, delta=delta)
