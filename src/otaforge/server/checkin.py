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

    ``base_url`` is called only when a manifest needs the download URL.
    """
    facts = service.DeviceFacts(body.version, body.image_sha256.lower() if body.image_sha256
                                else None, body.otadata_state, body.secure_version)
    store.remember(device_id, {
        "running_version": body.version, "running_sha256": facts.image_sha256,
        "running_partition": body.running_partition, "otadata_state": body.otadata_state,
        "efuse_secure_version": body.secure_version})
    settings = store.settings
    hint = service.next_check_in(settings.check_in_interval_s, settings.check_in_jitter)
    target = store.target(fleet_id, channel)
    if target is None or service.decide(facts, target, 0, settings.max_failures) is not None \
            or not service.in_cohort(device_id, target):
        return hint, None
    deployment = await run_in_threadpool(store.offer, device_id, target, facts)
    if deployment is None:
        return hint, None
    release = await run_in_threadpool(store.release_by_id, target.release_id)
    base = settings.public_url or base_url().rstrip("/")
    offer = await run_in_threadpool(store.deltas.offer, fleet_id, release.id,
                                    facts.image_sha256)
    delta = None if offer is None else DeltaManifest(
        url=f"{base}/deltas/{offer.patch_sha256}.bin", size=offer.size,
        sha256=offer.patch_sha256, base_sha256=offer.base_sha256,
        target_sha256=offer.target_sha256)
    return hint, Manifest(
        deployment_id=deployment, release_id=release.id, version=release.version,
        secure_version=release.secure_version, size=release.size, sha256=release.sha256,
        url=f"{base}/firmware/{release.sha256}.bin", signature=sig_info(release.signature),
        next_check_in_s=hint, delta=delta)
