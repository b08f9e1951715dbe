"""esp_delta_ota on the emulated device, as the ``https_delta_ota`` example runs it, resumable.

The example (espressif/idf-extra-components ``esp_delta_ota/examples/https_delta_ota``) reads
the 64-byte header, compares its hash with ``esp_partition_get_sha256`` of the running
partition, feeds the rest to ``esp_delta_ota_feed_patch`` -- whose read callback is
``esp_partition_read`` of the running partition and whose write callback is ``esp_ota_write``
into the next update partition -- then ``esp_delta_ota_finalize``, ``esp_ota_end`` and
``esp_ota_set_boot_partition``. :meth:`DeltaOta.apply` does the same, with three differences:

* the header is checked *before* ``esp_ota_begin``, so a patch for another base erases nothing;
* ``esp_ota_begin`` gets ``OTA_WITH_SEQUENTIAL_WRITES`` (erase each sector as it is reached)
  instead of the example's ``OTA_SIZE_UNKNOWN`` (erase the whole slot first): a resumed apply
  rewrites the sector after its checkpoint, which must be erased again first;
* it is resumable (esp_delta_ota is not: idf-extra-components #760): the new image is written
  one 4 KiB sector per ``esp_ota_write``, and after every ``checkpoint_sectors`` sectors the
  applier's state (``detools_apply_patch_dump`` in C) goes to a
  :class:`~otaforge.device.delta_store.DeltaResumeStore`. After a power cut or a dropped
  connection, the next :meth:`DeltaOta.apply` of the same patch finds the checkpoint, calls
  ``esp_ota_resume`` at the saved sector and fetches the patch from the saved offset: nothing
  before it is fetched or written again. The base is never written, so the device always
  still boots the old image until ``esp_ota_set_boot_partition``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from otaforge.delta.applier import ApplyState, SequentialApplier
from otaforge.delta.heatshrink import DecoderState
from otaforge.delta.source import PatchSource
from otaforge.device.delta_store import DeltaResumeStore
from otaforge.device.esp_err import OTA_WITH_SEQUENTIAL_WRITES, raise_esp
from otaforge.device.flash import SECTOR_SIZE, Flash
from otaforge.device.ota_ops import OtaOps
from otaforge.errors import (
    DigestMismatch,
    EspError,
    FormatError,
    RefusalCode,
    TransportError,
)
from otaforge.formats.app_image import AppImage
from otaforge.formats.delta_patch import HEADER_SIZE, DeltaHeader, ResumeRecord
from otaforge.formats.partition_table import APP_TYPE, PartitionEntry, PartitionTable


def esp_partition_get_sha256(flash: Flash, part: PartitionEntry) -> bytes:
    """``esp_partition_get_sha256``: for an app partition, the image's appended SHA-256
    (checked against the image first), else the SHA-256 of the image up to its checksum;
    for a data partition, the SHA-256 of the whole partition.

    Raises:
        EspError: ESP_ERR_IMAGE_INVALID when the app partition holds no intact image.
    """
    data = flash.read(part.offset, part.size)
    if part.type != APP_TYPE:
        return hashlib.sha256(data).digest()
    try:
        image = AppImage.from_bytes(data, check=True)
    except FormatError as err:
        raise_esp("ESP_ERR_IMAGE_INVALID", f"{part.name}: {err}", cause=err)
    if image.sha256 is not None:
        return image.sha256
    return hashlib.sha256(data[:image.image_len]).digest()


@dataclass(frozen=True)
class DeltaResult:
    """What one :meth:`DeltaOta.apply` did.

    Attributes:
        partition: the partition the new image went to (set to boot next).
        new_size: bytes of the rebuilt image.
        fetched: patch bytes fetched by this call.
        resumed_from: new-image offset this call started at (0: from the beginning).
    """

    partition: PartitionEntry
    new_size: int
    fetched: int
    resumed_from: int


class _Counting:
    def __init__(self, source: PatchSource) -> None:
        self.source = source
        self.count = 0

    def read(self, offset: int, size: int) -> bytes:
        data = self.source.read(offset, size)
        self.count += len(data)
        return data


class _PartitionReader:
    """``esp_partition_read`` of one partition (the delta's base)."""

    def __init__(self, flash: Flash, part: PartitionEntry) -> None:
        self.flash = flash
        self.part = part

    def read(self, offset: int, size: int) -> bytes:
        return self.flash.read(self.part.offset + offset, size)


class DeltaOta:
    """Delta updates of one running app.

    Args:
        ota: the running app's ``esp_ota_*`` API.
        store: where checkpoints are kept (None: not resumable, as stock esp_delta_ota).
        checkpoint_sectors: sectors written between two checkpoints.
    """

    def __init__(self, ota: OtaOps, store: DeltaResumeStore | None,
                 checkpoint_sectors: int = 1) -> None:
        self.ota = ota
        self.flash = ota.flash
        self.store = store
        self.checkpoint_sectors = max(1, checkpoint_sectors)

    def check_header(self, source: PatchSource) -> bytes:
        """The patch header's base hash, refused unless it is the running partition's.

        Raises:
            FormatError: not an esp_delta_ota patch.
            DigestMismatch: made for another base (the message names both hashes).
        """
        running = self.ota.esp_ota_get_running_partition()
        if running is None:
            raise_esp("ESP_ERR_NOT_FOUND", "no running partition")
        header = DeltaHeader.from_bytes(source.read(0, HEADER_SIZE))
        have = esp_partition_get_sha256(self.flash, running)
        if header.base_sha256 != have:
            raise DigestMismatch(
                f"delta patch is for a base with validation hash {header.base_sha256.hex()}, "
                f"but {running.name} holds {have.hex()} (SHA256 of current firmware differs "
                "from the patch header: fetch the full image instead)",
                code=RefusalCode.DIGEST_MISMATCH)
        return header.base_sha256

    def apply(self, source: PatchSource, patch_size: int, patch_sha256: bytes,
              new_sha256: bytes | None = None,
              before_set_boot: Callable[[], None] | None = None) -> DeltaResult:
        """Apply the patch into the next update partition and set it to boot.

        Args:
            source: the patch (Range fetches).
            patch_size: its size.
            patch_sha256: its SHA-256 (identifies the checkpoint it may resume).
            new_sha256: SHA-256 the rebuilt image must have (the release's), if known.
            before_set_boot: called after ``esp_ota_end``, before ``esp_ota_set_boot_partition``.

        Raises:
            DigestMismatch: wrong base, or the rebuilt image has another hash.
            FormatError: corrupt patch (the checkpoint is dropped: start over or go full).
            TransportError: the fetch failed; the checkpoint is kept, call again to resume.
            EspError: from ``esp_ota_*``.
            PowerCut: injected; power on and call again to resume.
        """
        counting = _Counting(source)
        base_hash = self.check_header(counting)
        running = self.ota.esp_ota_get_running_partition()
        dest = self.ota.esp_ota_get_next_update_partition()
        assert running is not None
        if dest is None:
            raise_esp("ESP_ERR_NOT_FOUND", "no OTA partition to update")
        applier = SequentialApplier(counting, patch_size, _PartitionReader(self.flash, running),
                                    running.size)
        saved = self._checkpoint(patch_sha256, base_hash, applier)
        if saved is not None:
            applier.resume(saved)
            handle = self.ota.esp_ota_resume(dest, OTA_WITH_SEQUENTIAL_WRITES, saved.to_offset)
        else:
            handle = self.ota.esp_ota_begin(dest, OTA_WITH_SEQUENTIAL_WRITES)
        started = applier.to_offset
        try:
            self._write_all(applier, handle, patch_sha256, base_hash)
        except TransportError:
            self.ota.esp_ota_abort(handle)
            raise
        except FormatError:
            self.ota.esp_ota_abort(handle)
            self._forget()
            raise
        except BaseException:
            self.writer_close(handle)
            raise
        self._finish(handle, dest, applier.to_size, new_sha256, before_set_boot)
        return DeltaResult(dest, applier.to_size, counting.count, started)

    def writer_close(self, handle: int) -> None:
        """Free ``handle`` if still open (``esp_ota_abort``; nothing is erased)."""
        self.ota.writer.close(handle)

    def _checkpoint(self, patch_sha256: bytes, base_hash: bytes,
                    applier: SequentialApplier) -> ApplyState | None:
        if self.store is None:
            return None
        record = self.store.load()
        if record is None or record.patch_sha256 != patch_sha256 \
                or record.base_sha256 != base_hash \
                or record.window_sz2 != applier.decoder.window_sz2:
            return None
        return ApplyState(record.to_offset, record.from_offset, record.phase, record.remaining,
                          DecoderState(record.patch_offset, record.bits, record.bit_count,
                                       record.backref_index, record.backref_count,
                                       record.window))

    def _write_all(self, applier: SequentialApplier, handle: int, patch_sha256: bytes,
                   base_hash: bytes) -> None:
        sectors = 0
        while not applier.done:
            sector = bytearray()
            while len(sector) < SECTOR_SIZE and not applier.done:
                sector += applier.produce(SECTOR_SIZE - len(sector))
            if sector:
                self.ota.esp_ota_write(handle, bytes(sector))
            sectors += 1
            if not applier.done and sectors % self.checkpoint_sectors == 0:
                self._save(applier.checkpoint(), patch_sha256, base_hash)

    def _save(self, state: ApplyState, patch_sha256: bytes, base_hash: bytes) -> None:
        if self.store is None:
            return
        dec = state.decoder
        self.store.save(ResumeRecord(patch_sha256, base_hash, state.to_offset,
                                     state.from_offset, state.phase, state.remaining,
                                     dec.offset, dec.bits, dec.bit_count, dec.backref_index,
                                     dec.backref_count, len(dec.window).bit_length() - 1,
                                     dec.window))

    def _forget(self) -> None:
        if self.store is not None:
            self.store.clear()

    def _finish(self, handle: int, dest: PartitionEntry, size: int, new_sha256: bytes | None,
                before_set_boot: Callable[[], None] | None) -> None:
        if new_sha256 is not None:
            got = hashlib.sha256(self.flash.read(dest.offset, size)).digest()
            if got != new_sha256:
                self.ota.esp_ota_abort(handle)
                self._forget()
                raise DigestMismatch(f"delta rebuilt an image with SHA-256 {got.hex()}, "
                                     f"expected {new_sha256.hex()}")
        try:
            self.ota.esp_ota_end(handle)
        except EspError:
            self._forget()  # the rebuilt image does not verify: resuming would not help
            raise
        if before_set_boot is not None:
            try:
                before_set_boot()
            except BaseException:
                self._forget()  # the rebuilt image is refused: nothing to resume
                raise
        self.ota.esp_ota_set_boot_partition(dest)
        self._forget()


def delta_ota(ota: OtaOps, table: PartitionTable, state_partition: str = "nvs",
              checkpoint_sectors: int = 1) -> DeltaOta:
    """A resumable :class:`DeltaOta` keeping checkpoints in ``state_partition``.

    Raises:
        InputError: the partition is missing or too small.
    """
    store = DeltaResumeStore.in_partition(ota.flash, table, state_partition)
    return DeltaOta(ota, store, checkpoint_sectors)
