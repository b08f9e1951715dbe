"""The update agent's orchestrator: the only agent code that does I/O.

It reads device facts (``esp_ota_*``, eFuses), talks to the server through a
:class:`~otaforge.agent.server_api.ServerClient`, streams the image with the esp_https_ota state
machine into the inactive slot, persists its progress in flash, and hands every judgement to
the pure core in :mod:`otaforge.agent.decision`. The seed's flow:

1. :meth:`Updater.on_boot` (in :mod:`.boot`): verify a PENDING_VERIFY app with the watchdog
   armed, then mark it valid or roll back, and report ``confirmed`` / ``rolled_back``.
2. :meth:`Updater.check_for_update`: check in; for an offer, check the first bytes before the
   slot is erased, download with progress (resuming after drops and power cuts), check the
   whole image, ``esp_ota_end`` + ``esp_ota_set_boot_partition``; the caller reboots.

Every report carries an event id derived from its content, so a retry is a harmless replay.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

from otaforge.agent import https_ota as ho
from otaforge.agent.agent_base import (
    AgentEvent,
    BootOutcome,
    Outcome,
    UpdateResult,
    image_file_length,
    state_store_for,
)
from otaforge.agent.boot import BootVerifier
from otaforge.agent.decision import (
    DeviceFacts,
    Offer,
    Refusal,
    check_header,
    check_image,
    plan_offer,
    refusal_for,
    refusal_for_device,
)
from otaforge.agent.server_api import CheckIn
from otaforge.agent.state import Partial, Pending
from otaforge.device.esp_err import OTA_WITH_SEQUENTIAL_WRITES
from otaforge.device.flash import SECTOR_SIZE
from otaforge.errors import (
    ConnectionLost,
    DigestMismatch,
    EspError,
    FormatError,
    TransportError,
    VerificationError,
)
from otaforge.formats.otadata import OtaImgState
from otaforge.formats.partition_table import PartitionEntry


class _SplicedImage(Exception):
    """A resumed download does not match the release: retry it from byte 0."""


__all__ = ["AgentEvent", "BootOutcome", "Outcome", "UpdateResult", "Updater",
           "image_file_length", "state_store_for"]


class Updater(BootVerifier):
    """One device's update agent: boot-time check (:class:`BootVerifier`) plus check-in and
    download.

    Args: see :class:`~otaforge.agent.agent_base.AgentBase`.
    """

    def check_in(self) -> tuple[Offer | None, DeviceFacts]:
        """Tell the server what runs here; returns its offer (or None) and the facts used.

        Raises:
            TransportError: the server is unreachable or refused the check-in.
        """
        facts = self.facts()
        running = self.device.running_partition
        ota_state = self._running_state()
        body = CheckIn(
            fleet=self.config.fleet, chip=self.device.chip.name,
            version=facts.running_version or None, image_sha256=self._running_sha256(),
            running_partition=running.name if running else None,
            otadata_state=ota_state.name.lower() if ota_state is not None else None,
            secure_version=self.device.efuses.secure_version)
        offer, _raw = self.client.check_in(body)
        if offer is None:
            self._emit("check_in", f"checked in running {facts.running_version}: no update",
                       version=facts.running_version)
        else:
            self._emit("offer", f"server offers {offer.version} ({offer.size} bytes, "
                       f"secure_version {offer.secure_version})", version=offer.version,
                       size=offer.size, deployment=offer.deployment)
        return offer, facts

    def check_for_update(self) -> UpdateResult:
        """Check in and, when offered a new release, install it into the inactive slot.

        Raises:
            PowerCut: power failed (the download resumes after the next power-on).
            TransportError: the check-in failed.
        """
        busy = self._running_state() == OtaImgState.PENDING_VERIFY
        offer, facts = self.check_in()  # the server learns the state either way
        if busy:
            self._emit("busy", "running app is still PENDING_VERIFY: no update before it is "
                       "confirmed (esp_ota_begin would fail with ROLLBACK_INVALID_STATE)")
            return UpdateResult(Outcome.BUSY, reason="running app not confirmed")
        if offer is None:
            return UpdateResult(Outcome.NO_UPDATE)
        return self.install(offer, facts)

    def install(self, offer: Offer, facts: DeviceFacts | None = None) -> UpdateResult:
        """Download ``offer`` into the inactive slot and select it for the next boot.

        Raises:
            PowerCut: power failed mid-way.
        """
        facts = facts or self.facts()
        plan = plan_offer(facts, offer)
        if isinstance(plan, Refusal):
            return self._refused(offer, plan)
        for attempt in range(1, self.config.max_attempts + 1):
            try:
                return self._attempt(offer, facts)
            except ConnectionLost as err:
                self._emit("connection_lost", f"attempt {attempt}: {err}", attempt=attempt)
            except _SplicedImage as err:
                self._emit("restarted", f"resumed image does not verify ({err}); downloading "
                           "it again from 0", reason=str(err))
            except TransportError as err:
                self._report("failed", offer.deployment, f"download failed: {err}")
                return UpdateResult(Outcome.FAILED, offer.version, str(err))
        written = self.store.load().partial
        done = written.written if written else 0
        self._report("downloading", offer.deployment,
                     f"connection lost; will resume from {done} bytes", done)
        return UpdateResult(Outcome.INTERRUPTED, offer.version, "connection lost")

    def _refused(self, offer: Offer, refusal: Refusal) -> UpdateResult:
        kind = "skipped" if refusal.skip else "refused"
        what = offer.version or f"image from {offer.url}"
        self._emit(kind, f"{what} {kind}: {refusal.reason}", version=offer.version,
                   code=str(refusal.code), reason=refusal.reason)
        self._report("failed", offer.deployment, f"{refusal.code}: {refusal.reason}")
        outcome = Outcome.SKIPPED if refusal.skip else Outcome.REFUSED
        return UpdateResult(outcome, offer.version, refusal.reason, str(refusal.code))

    def _partial_for(self, offer: Offer, slot: PartitionEntry) -> Partial | None:
        partial = self.store.load().partial
        if partial and partial.sha256 == offer.sha256 and partial.slot == slot.name \
                and partial.size == offer.size and partial.written >= ho.IMAGE_HEADER_SIZE:
            return partial
        return None

    def _save_partial(self, partial: Partial | None) -> None:
        state = self.store.load()
        if state.partial != partial:
            self.store.save(replace(state, partial=partial))

    def fetch_stock(self, url: str) -> UpdateResult:
        """Update the way an unmodified esp_https_ota client does: GET one fixed URL.

        Sends ``If-None-Match`` with the running image's SHA-256, so the server answers 304
        when this image is already running. Whatever comes back passes the same first-bytes
        and whole-image checks as a managed update (the manifest's digest aside).

        Raises:
            PowerCut: power failed mid-way.
        """
        facts = self.facts()
        running = self._running_sha256()
        extra = {"If-None-Match": f'"{running}"'} if running else {}
        stock = Offer(version="", sha256="", size=facts.slot_size, url=url)
        try:
            return self._attempt(stock, facts, extra)
        except EspError as err:
            if err.code != ho.ESP_ERR_HTTP_NOT_MODIFIED:
                self._emit("failed", f"GET {url}: {err}", code=err.name)
                self._report("failed", None, str(err))
                return UpdateResult(Outcome.FAILED, None, str(err), err.name)
            self._emit("not_modified", f"GET {url}: 304 Not Modified, "
                       f"{facts.running_version} is what the server wants here", url=url)
            return UpdateResult(Outcome.NO_UPDATE, facts.running_version, "304 Not Modified")
        except TransportError as err:
            self._emit("failed", f"GET {url}: {err}")
            return UpdateResult(Outcome.FAILED, None, str(err))

    def _attempt(self, offer: Offer, facts: DeviceFacts,
                 extra_headers: dict[str, str] | None = None) -> UpdateResult:
        slot = self.ota.esp_ota_get_next_update_partition(None)
        assert slot is not None  # facts() checked
        partial = self._partial_for(offer, slot) if offer.sha256 else None
        cfg = ho.HttpsOtaConfig(
            url=offer.url, headers={**self.client.auth, **(extra_headers or {})},
            partition=slot,
            bulk_flash_erase=self.config.bulk_flash_erase,
            ota_resumption=partial is not None,
            ota_image_bytes_written=partial.written if partial else 0,
            resume_etag=partial.etag if partial else None,
            resume_image_size=partial.size if partial else None,
            buffer_size=self.config.buffer_size, resume=self._resume,
            partial_http_download=self.config.partial_http_download,
            max_http_request_size=self.config.max_http_request_size,
            read_partition=self._read_partition)
        handle = ho.esp_https_ota_begin(cfg, self.fetcher, self.ota)
        try:
            return self._download(handle, offer, facts, slot)
        except ConnectionLost:
            self._checkpoint(handle, offer, slot, force=True)
            ho.esp_https_ota_abort(handle)
            raise
        except (FormatError, VerificationError) as err:
            ho.esp_https_ota_abort(handle)
            self._save_partial(None)
            if handle.start_offset and isinstance(err, DigestMismatch):
                raise _SplicedImage(str(err)) from err  # never trust a resumed mismatch
            return self._refused(offer, refusal_for(err))
        except EspError as err:
            ho.esp_https_ota_abort(handle)
            self._save_partial(None)
            refusal = refusal_for_device(err)
            if refusal is not None:
                return self._refused(offer, refusal)
            self._emit("failed", f"{offer.version}: {err}", code=err.name)
            self._report("failed", offer.deployment, str(err))
            return UpdateResult(Outcome.FAILED, offer.version, str(err), err.name)
        except BaseException:
            ho.esp_https_ota_abort(handle)
            raise

    def _download(self, handle: ho.HttpsOtaHandle, offer: Offer, facts: DeviceFacts,
                  slot: PartitionEntry) -> UpdateResult:
        if handle.restarted:
            self._emit("restarted", f"resumption restarted from 0: {handle.restarted}",
                       reason=handle.restarted)
            self._save_partial(None)
        elif handle.start_offset:
            self._emit("resumed", f"resuming {offer.version} at byte {handle.start_offset} of "
                       f"{handle.image_length} (Range, If-Range {handle.etag or '-'})",
                       offset=handle.start_offset, size=handle.image_length)
        if handle.image_length < 0 and offer.sha256:
            handle.image_length = offer.size  # chunked: never write past the release's size
        header = ho.esp_https_ota_get_header_bytes(handle)
        size = ho.esp_https_ota_get_image_size(handle)
        desc = check_header(facts, header, size if size >= 0 else None,
                            offer if offer.version else None)
        if not offer.version:
            offer = replace(offer, version=desc.version, size=size)
        if not handle.start_offset:
            self._emit("download", f"downloading {desc.version} into {slot.name} "
                       f"({size} bytes, first bytes checked before erasing)",
                       version=desc.version, slot=slot.name, size=size)
        self._report("downloading", offer.deployment, nbytes=handle.start_offset,
                     nonce=f"{handle.start_offset}")
        while ho.esp_https_ota_perform(handle) == ho.ESP_ERR_HTTPS_OTA_IN_PROGRESS:
            self.on_progress(max(ho.esp_https_ota_get_image_len_read(handle), 0), size)
            self._checkpoint(handle, offer, slot)
        image = self._read_partition(slot, 0, handle.binary_file_len)
        check_image(facts, image, offer if offer.sha256 else None)
        self._report("downloaded", offer.deployment, nbytes=len(image))
        ho.esp_https_ota_finish(handle)
        state = self.store.load()
        sha = offer.sha256 or hashlib.sha256(image).hexdigest()
        pending = Pending(sha, offer.version, offer.deployment, slot.name,
                          facts.running_version)
        self.store.save(replace(state, partial=None, pending=pending))
        self._emit("installed", f"esp_ota_end + esp_ota_set_boot_partition({slot.name}): "
                   f"{offer.version} boots next", version=offer.version, slot=slot.name)
        self._report("rebooting", offer.deployment)
        return UpdateResult(Outcome.INSTALLED, offer.version)

    def _checkpoint(self, handle: ho.HttpsOtaHandle, offer: Offer, slot: PartitionEntry,
                    force: bool = False) -> None:
        done = handle.binary_file_len
        if not offer.sha256:
            return  # stock URL: no digest to key a resumption on
        if not force and (done % self.config.checkpoint_bytes or done == handle.start_offset):
            return
        aligned = done - done % SECTOR_SIZE
        if aligned < ho.IMAGE_HEADER_SIZE or handle.image_length < 0:
            return
        self._save_partial(Partial(offer.sha256, handle.etag, handle.image_length, aligned,
                                   slot.name))

    def _read_partition(self, part: PartitionEntry, offset: int, n: int) -> bytes:
        return self.device.flash.read(part.offset + offset, n)

    def _resume(self, part: PartitionEntry, _erase: int, offset: int) -> Any:
        """``esp_ota_resume`` (ESP-IDF v5.5+): a handle whose write position is ``offset``.

        Sequential erase continues from ``offset``; nothing already written is erased again.
        """
        return self.ota.esp_ota_resume(part, OTA_WITH_SEQUENTIAL_WRITES, offset)


