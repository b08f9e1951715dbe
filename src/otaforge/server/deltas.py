"""Delta generation and offers: esp_delta_ota patches between the releases of a fleet.

When a channel points at a new release, :meth:`DeltaService.release_published` queues one
patch per *base*: each release of the fleet that devices on that channel run (their
``image_sha256`` at check-in, or the release they last confirmed). A device that checks in
from a base without a patch queues one too (it gets the full image meanwhile). Patches are
made in the background by a pool of ``settings.delta_workers`` threads (bounded
concurrency), stored as blobs by SHA-256, and recorded in the ``deltas`` table, so they
survive restarts: :meth:`DeltaService.recover` (run when the server starts) puts back in the
queue every patch that was queued or half made.

A patch is offered only when it is smaller than ``settings.delta_max_ratio`` of the full
image (else its row says ``too_large``); the manifest keeps the full image as the fallback.
What each deployment used, and the bytes that saved, goes to ``update_stats``.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.exc import IntegrityError

from otaforge.errors import OtaforgeError, StoreUnavailable
from otaforge.server.models import Delta, Deployment, Device, Release, UpdateStat

if TYPE_CHECKING:
    from otaforge.server.store import Store

LOG = logging.getLogger(__name__)
READY, PENDING, RUNNING, TOO_LARGE, FAILED = "ready", "pending", "running", "too_large", "failed"


@dataclass(frozen=True)
class DeltaOffer:
    """A ready patch for one (base, target) pair."""

    delta_id: int
    patch_sha256: str
    size: int
    base_sha256: str
    target_sha256: str
    full_size: int


class DeltaService:
    """Makes, stores and offers patches for one :class:`~otaforge.server.store.Store`."""

    def __init__(self, store: Store, workers: int, max_ratio: float) -> None:
        self.store = store
        self.max_ratio = max_ratio
        self._workers = max(1, workers)
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._futures: dict[int, Future[None]] = {}

    # --- queueing ---------------------------------------------------------------------------

    def _submit(self, delta_id: int) -> None:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="delta")
            running = self._futures.get(delta_id)
            if running is not None and not running.done():
                return
            self._futures[delta_id] = self._pool.submit(self._build_logged, delta_id)

    def request(self, fleet_id: int, base: Release, target: Release) -> None:
        """Queue the patch base -> target unless it exists already."""
        if base.id == target.id or base.fleet_id != fleet_id or target.fleet_id != fleet_id:
            return
        try:
            with self.store.tx() as s:
                row = Delta(fleet_id=fleet_id, base_release_id=base.id,
                            target_release_id=target.id, state=PENDING, full_size=target.size)
                s.add(row)
                s.flush()
                delta_id = row.id
        except IntegrityError:
            return  # queued or made already
        self._submit(delta_id)

    def release_published(self, fleet_id: int, channel: str, target_id: int) -> int:
        """Queue patches to ``target_id`` from every release that devices on ``channel`` run.

        Returns:
            How many bases were found.
        """
        self.store.flush()  # the latest check-in facts
        devices = select(Device.id).where(Device.fleet_id == fleet_id,
                                          Device.channel == channel)
        # what a device confirmed since its last check-in runs there too
        confirmed = select(func.max(Deployment.id)).where(
            Deployment.device_id.in_(devices), Deployment.state == "confirmed"
        ).group_by(Deployment.device_id)
        with self.store.sessions() as s:
            target = s.get(Release, target_id)
            bases = list(s.scalars(select(Release).where(
                Release.fleet_id == fleet_id, Release.id != target_id,
                Release.sha256.in_(select(Device.running_sha256).where(
                    Device.id.in_(devices))) | Release.id.in_(
                    select(Deployment.release_id).where(Deployment.id.in_(confirmed))))))
        if target is None:
            return 0
        for base in bases:
            self.request(fleet_id, base, target)
        return len(bases)

    def recover(self) -> int:
        """After a restart: queue again every patch left pending or half made."""
        with self.store.tx() as s:
            s.execute(update(Delta).where(Delta.state == RUNNING).values(state=PENDING))
            ids = list(s.scalars(select(Delta.id).where(Delta.state == PENDING)))
        for delta_id in ids:
            self._submit(delta_id)
        return len(ids)

    def wait(self, timeout: float | None = None) -> None:
        """Block until every queued patch is made (tests, demo)."""
        with self._lock:
            futures = list(self._futures.values())
        for future in futures:
            future.result(timeout)

    def shutdown(self) -> None:
        """Stop the workers (queued patches stay pending in the database)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    # --- making -----------------------------------------------------------------------------

    def _build_logged(self, delta_id: int) -> None:
        try:
            self.build(delta_id)
        except Exception:  # a worker must never die silently
            LOG.exception("delta %s: generation failed", delta_id)

    def build(self, delta_id: int) -> str:
        """Make patch ``delta_id`` now (claiming it first); returns its final state."""
        from otaforge.delta.create import create_patch

        with self.store.tx() as s:
            result = s.execute(update(Delta).where(Delta.id == delta_id,
                                                   Delta.state == PENDING)
                               .values(state=RUNNING, updated_at=self.store.clock.now()))
            claimed = cast(CursorResult[Any], result).rowcount
            row = s.get(Delta, delta_id)
            if not claimed or row is None:
                return row.state if row is not None else FAILED
            base = s.get(Release, row.base_release_id)
            target = s.get(Release, row.target_release_id)
        assert base is not None and target is not None
        blobs = self.store.blobs
        values: dict[str, Any]
        try:
            made = create_patch(blobs.read_bytes(base.sha256), blobs.read_bytes(target.sha256))
            size = len(made.patch)
            state = READY if size < self.max_ratio * target.size else TOO_LARGE
            values = {"state": state, "size": size, "patch_sha256": blobs.put(made.patch),
                      "error": None}
        except StoreUnavailable as err:  # made again when asked for next (see offer)
            LOG.warning("delta %s: %s; left pending", delta_id, err)
            values = {"state": PENDING, "error": str(err)[:1000]}
        except (OtaforgeError, OSError) as err:
            values = {"state": FAILED, "error": str(err)[:1000]}
        with self.store.tx() as s:
            s.execute(update(Delta).where(Delta.id == delta_id)
                      .values(updated_at=self.store.clock.now(), **values))
        return str(values["state"])

    # --- offering and accounting ------------------------------------------------------------

    def offer(self, fleet_id: int, target_id: int, running_sha256: str | None) -> DeltaOffer | None:
        """The ready patch from the release the device runs to ``target_id``, if any.

        A device running a known release without a patch queues one (it is offered later).
        """
        if not running_sha256:
            return None
        with self.store.sessions() as s:
            base = s.scalar(select(Release).where(Release.fleet_id == fleet_id,
                                                  Release.sha256 == running_sha256))
            if base is None or base.id == target_id:
                return None
            row = s.scalar(select(Delta).where(Delta.base_release_id == base.id,
                                               Delta.target_release_id == target_id))
            target = s.get(Release, target_id)
        if target is None:
            return None
        if row is None:
            self.request(fleet_id, base, target)
            return None
        if row.state == PENDING:
            self._submit(row.id)  # e.g. left pending while the blob store was down
            return None
        if row.state != READY or row.patch_sha256 is None or row.size is None:
            return None
        try:
            if not self.store.blobs.exists(row.patch_sha256):
                return None
        except StoreUnavailable:  # a check-in never waits on the store: the full image then
            return None
        return DeltaOffer(row.id, row.patch_sha256, row.size, base.sha256, target.sha256,
                          target.size)

    def may_read(self, fleet_id: int | None, patch_sha256: str) -> bool:
        """Is ``patch_sha256`` a ready patch of ``fleet_id`` (None: any fleet, for admins)?"""
        query = select(Delta.id).where(Delta.patch_sha256 == patch_sha256,
                                       Delta.state == READY)
        if fleet_id is not None:
            query = query.where(Delta.fleet_id == fleet_id)
        with self.store.sessions() as s:
            return s.scalar(query.limit(1)) is not None

    def record_use(self, device_id: str, deployment_id: int | None, method: str,
                   sent: int | None) -> None:
        """Record how a deployment was delivered ("delta" or "full"), once per deployment."""
        if deployment_id is None or method not in ("delta", "full"):
            return
        with self.store.sessions() as s:
            dep = s.get(Deployment, deployment_id)
            if dep is None or dep.device_id != device_id:
                return
            release = s.get(Release, dep.release_id)
            row = None
            if method == "delta":
                row = s.scalar(select(Delta).where(Delta.target_release_id == dep.release_id,
                                                   Delta.state == READY,
                                                   Delta.size == sent).limit(1)) \
                    if sent is not None else None
        if release is None:
            return
        full = release.size
        sent_size = sent if sent is not None else (row.size if row and row.size else full)
        saved = max(0, full - sent_size) if method == "delta" else 0
        try:
            with self.store.tx() as s:
                s.add(UpdateStat(device_id=device_id, deployment_id=deployment_id,
                                 release_id=release.id, delta_id=row.id if row else None,
                                 method=method, full_size=full, sent_size=sent_size,
                                 saved_bytes=saved))
        except IntegrityError:
            pass  # recorded already (a replayed report)

    def saved_bytes(self, fleet_id: int) -> dict[str, Any]:
        """Bytes saved by deltas in a fleet: total, per release and per device."""
        with self.store.sessions() as s:
            rel_ids = select(Release.id).where(Release.fleet_id == fleet_id)
            base = select(UpdateStat).where(UpdateStat.release_id.in_(rel_ids))
            stats = list(s.scalars(base))
            versions = {int(r[0]): str(r[1]) for r in s.execute(
                select(Release.id, Release.version).where(Release.fleet_id == fleet_id))}
            deltas = list(s.scalars(select(Delta).where(Delta.fleet_id == fleet_id)
                                    .order_by(Delta.id)))
            counts = {str(r[0]): int(r[1]) for r in s.execute(
                select(Delta.state, func.count(Delta.id)).where(Delta.fleet_id == fleet_id)
                .group_by(Delta.state))}
        per_release: dict[str, dict[str, int]] = {}
        per_device: dict[str, int] = {}
        for st in stats:
            rel = per_release.setdefault(str(st.release_id), {
                "version": 0, "saved_bytes": 0, "delta_updates": 0, "full_updates": 0})
            rel["saved_bytes"] += st.saved_bytes
            rel["delta_updates" if st.method == "delta" else "full_updates"] += 1
            per_device[st.device_id] = per_device.get(st.device_id, 0) + st.saved_bytes
        for key, rel in per_release.items():
            rel["version"] = versions.get(int(key), "")  # type: ignore[assignment]
        return {
            "saved_bytes": sum(st.saved_bytes for st in stats),
            "per_release": per_release,
            "per_device": per_device,
            "deltas": [delta_json(d) for d in deltas],
            "delta_states": counts,
        }


def delta_json(row: Delta) -> dict[str, Any]:
    """A ``deltas`` row for the management API."""
    ratio = round(row.size / row.full_size, 6) if row.size and row.full_size else None
    return {"id": row.id, "base_release_id": row.base_release_id,
            "target_release_id": row.target_release_id, "state": row.state,
            "patch_sha256": row.patch_sha256, "size": row.size, "full_size": row.full_size,
            "ratio": ratio, "error": row.error}
