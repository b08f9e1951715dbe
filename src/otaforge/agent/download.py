"""One download attempt: esp_https_ota into the inactive slot, checked by the decision core.

:class:`Downloader` opens the image (resuming a partial one when the persisted
:class:`~otaforge.agent.state.Partial` matches), checks the first bytes before anything is
erased, streams the rest with progress and checkpoints, checks the whole image read back from
the slot, then ``esp_ota_end`` + ``esp_ota_set_boot_partition``. Refusals are reported to the
server with their typed code; a connection drop keeps the partial image for the next attempt.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

from otaforge.agent import esp_https_ota as ho
from otaforge.agent.config import AgentConfig
from otaforge.agent.decision import (
    DeviceFacts,
    Offer,
    Refusal,
    check_header,
    check_image,
    refusal_for,
    refusal_for_device,
)
from otaforge.agent.fetcher import Fetcher
from otaforge.agent.reporting import Reporter, Timeline
from otaforge.agent.results import Outcome, ProgressSink, UpdateResult
from otaforge.agent.state import Partial, Pending, StateStore
from otaforge.device.emulator import Device
from otaforge.device.esp_err import OTA_WITH_SEQUENTIAL_WRITES
from otaforge.device.flash import SECTOR_SIZE
from otaforge.errors import (
    ConnectionLost,
    DigestMismatch,
    EspError,
    RefusableError,
)
from otaforge.formats.partition_table import PartitionEntry
from otaforge.protocol.reports import ReportState


class SplicedImage(Exception):
    """A resumed download does not match the release: retry it from byte 0."""


def _ignore_progress(_done: int, _total: int) -> None:
    return None


class Downloader:
    """Downloads one offer into the inactive slot.

    Args:
        device: the emulated device.
        fetcher: the network seam.
        auth: headers that authenticate the device (``Authorization``).
        config: buffer sizes, checkpoints, partial-download mode.
        store: the persisted partial download / pending update.
        reporter: tells the server.
        timeline: tells the caller.
        on_progress: receives (bytes written, image size).
    """

    def __init__(self, device: Device, fetcher: Fetcher, auth: dict[str, str],
                 config: AgentConfig, store: StateStore, reporter: Reporter,
                 timeline: Timeline, on_progress: ProgressSink | None = None) -> None:
        self.device = device
        self.fetcher = fetcher
        self.auth = auth
        self.config = config
        self.store = store
        self.report = reporter.report
        self.emit = timeline.emit
        self.on_progress = on_progress or _ignore_progress

    def refuse(self, offer: Offer, refusal: Refusal) -> UpdateResult:
        """Tell the caller and the server why ``offer`` is not installed."""
        kind = "skipped" if refusal.skip else "refused"
        what = offer.version or f"image from {offer.url}"
        self.emit(kind, f"{what} {kind}: {refusal.reason}", version=offer.version,
                  code=str(refusal.code), reason=refusal.reason)
        self.report(ReportState.FAILED, offer.deployment, refusal.reason, code=refusal.code)
        outcome = Outcome.SKIPPED if refusal.skip else Outcome.REFUSED
        return UpdateResult(outcome, offer.version, refusal.reason, str(refusal.code))

    def attempt(self, offer: Offer, facts: DeviceFacts,
                extra_headers: dict[str, str] | None = None) -> UpdateResult:
        """One attempt at downloading and installing ``offer``.

        Raises:
            ConnectionLost: the connection dropped (the partial image is kept).
            SplicedImage: a resumed image does not verify (start again from 0).
            EspError: ``esp_https_ota_begin`` failed (e.g. 304, ESP_ERR_HTTP_NOT_MODIFIED);
                later device errors become refusals or FAILED results.
            ServerError / TransportError: the download could not be opened.
            PowerCut: power failed mid-way.
        """
        ota = self.device.ota
        slot = ota.esp_ota_get_next_update_partition(None)
        assert slot is not None  # facts() checked
        partial = self._partial_for(offer, slot) if offer.sha256 else None
        handle = ho.esp_https_ota_begin(self._https_config(offer, slot, partial, extra_headers),
                                        self.fetcher, ota)
        try:
            return self._download(handle, offer, facts, slot)
        except ConnectionLost:
            self._checkpoint(handle, offer, slot, force=True)
            ho.esp_https_ota_abort(handle)
            raise
        except RefusableError as err:
            ho.esp_https_ota_abort(handle)
            self._save_partial(None)
            if handle.start_offset and isinstance(err, DigestMismatch):
                raise SplicedImage(str(err)) from err  # never trust a resumed mismatch
            return self.refuse(offer, refusal_for(err))
        except EspError as err:
            ho.esp_https_ota_abort(handle)
            self._save_partial(None)
            refusal = refusal_for_device(err)
            if refusal is not None:
                return self.refuse(offer, refusal)
            self.emit("failed", f"{offer.version}: {err}", code=err.name)
            self.report(ReportState.FAILED, offer.deployment, str(err))
            return UpdateResult(Outcome.FAILED, offer.version, str(err), err.name)
        except BaseException:
            ho.esp_https_ota_abort(handle)
            raise

    def partial_written(self) -> int:
        """Bytes of the persisted partial download (0 without one)."""
        partial = self.store.load().partial
        return partial.written if partial else 0

    def _https_config(self, offer: Offer, slot: PartitionEntry, partial: Partial | None,
                      extra_headers: dict[str, str] | None) -> ho.HttpsOtaConfig:
        cfg = self.config
        return ho.HttpsOtaConfig(
            url=offer.url, headers={**self.auth, **(extra_headers or {})}, partition=slot,
            bulk_flash_erase=cfg.bulk_flash_erase,
            ota_resumption=partial is not None,
            ota_image_bytes_written=partial.written if partial else 0,
            resume_etag=partial.etag if partial else None,
            resume_image_size=partial.size if partial else None,
            buffer_size=cfg.buffer_size, resume=self._resume,
            partial_http_download=cfg.partial_http_download,
            max_http_request_size=cfg.max_http_request_size,
            read_partition=self._read_partition)

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

    def _announce(self, handle: ho.HttpsOtaHandle, offer: Offer) -> None:
        if handle.restarted:
            self.emit("restarted", f"resumption restarted from 0: {handle.restarted}",
                      reason=handle.restarted)
            self._save_partial(None)
        elif handle.start_offset:
            self.emit("resumed", f"resuming {offer.version} at byte {handle.start_offset} of "
                      f"{handle.image_length} (Range, If-Range {handle.etag or '-'})",
                      offset=handle.start_offset, size=handle.image_length)

    def _download(self, handle: ho.HttpsOtaHandle, offer: Offer, facts: DeviceFacts,
                  slot: PartitionEntry) -> UpdateResult:
        self._announce(handle, offer)
        if handle.image_length < 0 and offer.sha256:
            handle.image_length = offer.size  # chunked: never write past the release's size
        header = ho.esp_https_ota_get_header_bytes(handle)
        size = ho.esp_https_ota_get_image_size(handle)
        desc = check_header(facts, header, size if size >= 0 else None,
                            offer if offer.version else None)
        if not offer.version:
            offer = replace(offer, version=desc.version, size=size)
        if not handle.start_offset:
            self.emit("download", f"downloading {desc.version} into {slot.name} "
                      f"({size} bytes, first bytes checked before erasing)",
                      version=desc.version, slot=slot.name, size=size)
        self.report(ReportState.DOWNLOADING, offer.deployment, nbytes=handle.start_offset,
                    nonce=f"{handle.start_offset}")
        while ho.esp_https_ota_perform(handle) == ho.ESP_ERR_HTTPS_OTA_IN_PROGRESS:
            self.on_progress(max(ho.esp_https_ota_get_image_len_read(handle), 0), size)
            self._checkpoint(handle, offer, slot)
        image = self._read_partition(slot, 0, handle.binary_file_len)
        check_image(facts, image, offer if offer.sha256 else None)
        self.report(ReportState.DOWNLOADED, offer.deployment, nbytes=len(image),
                    method="full" if offer.sha256 else None)
        ho.esp_https_ota_finish(handle)
        state = self.store.load()
        sha = offer.sha256 or hashlib.sha256(image).hexdigest()
        pending = Pending(sha, offer.version, offer.deployment, slot.name,
                          facts.running_version)
        self.store.save(replace(state, partial=None, pending=pending))
        self.emit("installed", f"esp_ota_end + esp_ota_set_boot_partition({slot.name}): "
                  f"{offer.version} boots next", version=offer.version, slot=slot.name)
        self.report(ReportState.REBOOTING, offer.deployment)
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
        return self.device.ota.esp_ota_resume(part, OTA_WITH_SEQUENTIAL_WRITES, offset)
