"""The app-side OTA API of ESP-IDF (``esp_ota_ops.c``), with its names, rules and error codes.

Every flash write goes through the :class:`~otaforge.device.flash.Flash` seam, so it is
counted and can be cut. otadata is written exactly as ``esp_ota_ops.c`` (v6.0+/master) writes
it: ``rewrite_ota_seq`` erases the 4 KiB sector, then programs the 32-byte entry;
``esp_rewrite_ota_data`` picks the sector and seq (``compute_ota_seq_for_target_slot``; the
active sector is rewritten in place when it already points at the target slot). With
``CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE`` ``esp_ota_begin`` refuses a PENDING_VERIFY running app
and then invalidates the inactive otadata sector (v5.5+).

Older ESP-IDF differs: v4.x-v5.4 always write the *other* sector in ``set_boot_partition``
(re-selecting the active slot writes an equal seq there; the tie resolves to sector 0) and never
invalidate the inactive sector in ``esp_ota_begin``; ``ESP_ERR_OTA_ALREADY_IN_PROGRESS`` for a
second handle on one partition is v6.1+.
``esp_ota_resume`` (v5.5+) opens a handle whose write position is the offset already written,
erasing nothing (a power-cut download goes on without rewriting what is on flash).

Errors are :class:`~otaforge.errors.EspError` with the ESP-IDF code and name; functions that
return ``NULL`` or ``false`` in C return None or False here.
"""

from __future__ import annotations

from otaforge.device.esp_err import OTA_SIZE_UNKNOWN, OTA_WITH_SEQUENTIAL_WRITES, raise_esp
from otaforge.device.flash import SECTOR_SIZE
from otaforge.device.ota_base import (
    OtaBase,
    OtaConfig,
    OtaHandle,
    read_partition_desc,
    slot_of,
)
from otaforge.device.ota_rollback import RollbackOps
from otaforge.errors import BadMagicError
from otaforge.formats._binary import align_up
from otaforge.formats.app_image import ESP_IMAGE_MAGIC
from otaforge.formats.otadata import OtaImgState, active_otadata
from otaforge.formats.partition_table import APP_TYPE, FACTORY, NUM_OTA_SLOTS, TEST, PartitionEntry

__all__ = ["OtaBase", "OtaConfig", "OtaOps", "read_partition_desc", "slot_of"]

_U32 = 0xFFFFFFFF


class OtaOps(RollbackOps):
    """``esp_ota_*`` over one device's flash, partition table, eFuses and running partition.

    Constructed as :class:`~otaforge.device.ota_base.OtaBase` (its docstring lists the
    arguments: flash, table, efuses, config, running, restart).
    """

    # --- writing an image -----------------------------------------------------------------

    def esp_ota_begin(self, partition: PartitionEntry | None, image_size: int = 0) -> int:
        """Start writing ``partition``; erase it (all, ``image_size`` rounded up, or lazily).

        Args:
            partition: the OTA slot (``esp_ota_get_next_update_partition``).
            image_size: bytes to erase up front; 0 or OTA_SIZE_UNKNOWN erase the whole slot,
                OTA_WITH_SEQUENTIAL_WRITES erases sector by sector while writing.

        Returns:
            The handle.

        Raises:
            EspError: INVALID_ARG (not an OTA app slot), NOT_FOUND (not in the table),
                OTA_PARTITION_CONFLICT (the running partition), OTA_ROLLBACK_INVALID_STATE
                (running app PENDING_VERIFY, rollback builds), OTA_ALREADY_IN_PROGRESS,
                INVALID_SIZE (larger than the partition).
        """
        part = self._verify_partition(partition)
        if part.type == APP_TYPE:
            if not part.is_ota_slot:
                raise_esp("ESP_ERR_INVALID_ARG", f"{part.name} is not an OTA app partition")
            if part == self.running:
                raise_esp("ESP_ERR_OTA_PARTITION_CONFLICT",
                          f"{part.name} is the running partition")
            if self.config.rollback and self._running_state() == OtaImgState.PENDING_VERIFY:
                raise_esp("ESP_ERR_OTA_ROLLBACK_INVALID_STATE",
                          "Running app has not confirmed state (ESP_OTA_IMG_PENDING_VERIFY)")
        if any(h.part == part for h in self._handles.values()):
            raise_esp("ESP_ERR_OTA_ALREADY_IN_PROGRESS", f"{part.name} is already being written")
        if image_size != OTA_WITH_SEQUENTIAL_WRITES:
            size = part.size if image_size in (0, OTA_SIZE_UNKNOWN) else image_size
            erase = align_up(size, SECTOR_SIZE)
            if erase > part.size:
                raise_esp("ESP_ERR_INVALID_SIZE",
                          f"image size {image_size} is larger than {part.name} ({part.size})")
            self.flash.erase_range(part.offset, erase)
        self._last_handle += 1
        handle = OtaHandle(self._last_handle, part, image_size == OTA_WITH_SEQUENTIAL_WRITES)
        self._handles[handle.handle] = handle
        if self.config.rollback and part.is_ota_slot:
            self.esp_ota_invalidate_inactive_ota_data_slot()
        return handle.handle

    def esp_ota_resume(self, partition: PartitionEntry | None, erase_size: int,
                       image_offset: int) -> int:
        """Continue an interrupted write of ``partition`` at ``image_offset`` (v5.5+).

        Nothing is erased here: the first ``image_offset`` bytes are taken as already written.
        With ``erase_size`` OTA_WITH_SEQUENTIAL_WRITES, ``esp_ota_write`` goes on erasing sector
        by sector from ``image_offset`` (the sector holding an unaligned offset is not erased
        again); any other value means the slot was erased by the interrupted ``esp_ota_begin``.
        Unlike ``esp_ota_begin`` there is no PENDING_VERIFY check and the inactive otadata
        sector is left alone (esp_ota_ops.c). Two handles on one partition are refused as in
        ``esp_ota_begin`` (v6.1-beta1+ rule of this emulator).

        Args:
            partition: the OTA slot being written.
            erase_size: OTA_WITH_SEQUENTIAL_WRITES to keep erasing while writing, else no erase.
            image_offset: bytes of the image already written (the next write goes there).

        Returns:
            The handle; ``esp_ota_end`` verifies the whole image as after ``esp_ota_begin``.

        Raises:
            EspError: INVALID_ARG (NULL, offset negative or past the partition end, not an OTA
                app slot), NOT_FOUND (not in the table), OTA_PARTITION_CONFLICT (the running
                partition), OTA_ALREADY_IN_PROGRESS.
        """
        if partition is None:
            raise_esp("ESP_ERR_INVALID_ARG", "partition is NULL")
        if not 0 <= image_offset <= partition.size:
            raise_esp("ESP_ERR_INVALID_ARG",
                      f"image_offset {image_offset} is outside {partition.name} "
                      f"({partition.size} bytes)")
        part = self._verify_partition(partition)
        if part.type == APP_TYPE and not part.is_ota_slot:
            raise_esp("ESP_ERR_INVALID_ARG", f"{part.name} is not an OTA app partition")
        if part == self.running:
            raise_esp("ESP_ERR_OTA_PARTITION_CONFLICT", f"{part.name} is the running partition")
        if any(h.part == part for h in self._handles.values()):
            raise_esp("ESP_ERR_OTA_ALREADY_IN_PROGRESS", f"{part.name} is already being written")
        self._last_handle += 1
        handle = OtaHandle(self._last_handle, part, erase_size == OTA_WITH_SEQUENTIAL_WRITES,
                           wrote_size=image_offset)
        self._handles[handle.handle] = handle
        return handle.handle

    def _partition_write(self, part: PartitionEntry, offset: int, data: bytes) -> None:
        if offset > part.size:
            raise_esp("ESP_ERR_INVALID_ARG", f"offset 0x{offset:x} is outside {part.name}")
        if offset + len(data) > part.size:
            raise_esp("ESP_ERR_INVALID_SIZE",
                      f"write of {len(data)} bytes at 0x{offset:x} overruns {part.name}")
        self.flash.program(part.offset + offset, data)

    def esp_ota_write(self, handle: int, data: bytes) -> None:
        """Append ``data`` to the image (sequential); erase sectors first when lazily erasing.

        Raises:
            EspError: INVALID_ARG (unknown handle), OTA_VALIDATE_FAILED (first byte not 0xE9),
                INVALID_SIZE (past the end of the partition).
        """
        if not data:
            return
        entry = self._handle(handle, "ESP_ERR_INVALID_ARG")
        part = entry.part
        if entry.need_erase:
            first = entry.wrote_size // SECTOR_SIZE
            last = (entry.wrote_size + len(data) - 1) // SECTOR_SIZE
            if entry.wrote_size % SECTOR_SIZE == 0:
                start, count = entry.wrote_size, last - first + 1
            else:
                start, count = (first + 1) * SECTOR_SIZE, last - first
            if count > 0:
                if start + count * SECTOR_SIZE > part.size:
                    raise_esp("ESP_ERR_INVALID_SIZE", f"write overruns {part.name}")
                self.flash.erase_range(part.offset + start, count * SECTOR_SIZE)
        if entry.wrote_size == 0 and part.type == APP_TYPE and data[0] != ESP_IMAGE_MAGIC:
            bad = BadMagicError(f"OTA image has invalid magic byte (expected 0xE9, saw "
                                f"0x{data[0]:02x})")
            raise_esp("ESP_ERR_OTA_VALIDATE_FAILED", str(bad), cause=bad)
        self._partition_write(part, entry.wrote_size, data)
        entry.wrote_size += len(data)

    def esp_ota_write_with_offset(self, handle: int, data: bytes, offset: int) -> None:
        """Write ``data`` at ``offset`` of a pre-erased partition (non-sequential begin).

        Raises:
            EspError: INVALID_ARG (unknown handle), INVALID_STATE (lazy-erase handle: C asserts).
        """
        entry = self._handle(handle, "ESP_ERR_INVALID_ARG")
        if entry.need_erase:
            raise_esp("ESP_ERR_INVALID_STATE", "must erase the partition before writing to it")
        self._partition_write(entry.part, offset, data)
        entry.wrote_size += len(data)

    def esp_ota_abort(self, handle: int) -> None:
        """Free the handle (nothing is erased). Raises EspError NOT_FOUND if unknown."""
        self._handle(handle, "ESP_ERR_NOT_FOUND")
        del self._handles[handle]

    def esp_ota_end(self, handle: int) -> None:
        """Finish: verify the written image (and signature when configured); free the handle.

        Raises:
            EspError: NOT_FOUND (unknown handle), INVALID_ARG (nothing written),
                OTA_VALIDATE_FAILED (image or signature does not verify).
        """
        entry = self._handle(handle, "ESP_ERR_NOT_FOUND")
        try:
            if entry.wrote_size == 0:
                raise_esp("ESP_ERR_INVALID_ARG", "esp_ota_end: nothing was written")
            if entry.part.type == APP_TYPE:
                self._image_validate(entry.part)
        finally:
            self._handles.pop(handle, None)

    # --- otadata --------------------------------------------------------------------------

    def _rewrite_ota_data(self, subtype: int) -> None:
        read = self._read_otadata()
        if read is None:
            raise_esp("ESP_ERR_NOT_FOUND", "not found otadata")
        otadata, entries = read
        count = self.esp_ota_get_app_partition_count()
        slot = subtype & 0x0F
        if slot >= count:
            raise_esp("ESP_ERR_INVALID_ARG", f"OTA slot {slot} >= app partition count {count}")
        active = active_otadata(entries)
        if active is not None:
            cur = entries[active].ota_seq
            if slot_of(cur, count) == slot:
                target, seq = active, cur
            else:
                target = 1 - active
                base = (slot + 1) % count
                i = 0 if cur <= base else -(-(cur - base) // count)
                seq = (base + i * count) & _U32
        else:
            target, seq = 0, slot + 1
        entries[target] = entries[target].with_state(self._new_state())
        self._rewrite_ota_seq(otadata, entries, seq, target)

    def esp_ota_set_boot_partition(self, partition: PartitionEntry | None) -> None:
        """Make ``partition`` boot next (verifying it first).

        Factory: erase the whole otadata. OTA slot: with anti-rollback a lower secure_version
        erases the partition and fails; else rewrite otadata (erase sector, write entry).

        Raises:
            EspError: INVALID_ARG, OTA_VALIDATE_FAILED, NOT_FOUND (no otadata / no app desc),
                OTA_SMALL_SEC_VER.
        """
        if partition is None:
            raise_esp("ESP_ERR_INVALID_ARG", "partition is NULL")
        self._image_validate(partition)
        if partition.type != APP_TYPE:
            raise_esp("ESP_ERR_INVALID_ARG", f"{partition.name} is not an app partition")
        if partition.subtype == FACTORY:
            otadata = self._otadata_part()
            if otadata is None:
                raise_esp("ESP_ERR_NOT_FOUND", "not found otadata")
            self.flash.erase_range(otadata.offset, otadata.size)
            return
        if self.config.anti_rollback:
            desc = self.esp_ota_get_partition_description(partition)
            if not self.efuses.check_secure_version(desc.secure_version):
                self.flash.erase_range(partition.offset, partition.size)
                raise_esp("ESP_ERR_OTA_SMALL_SEC_VER",
                          f"New firmware security version is less than eFuse programmed, "
                          f"{desc.secure_version} < {self.efuses.secure_version}; "
                          f"{partition.name} was erased")
        self._rewrite_ota_data(partition.subtype)

    def _find_default_boot_partition(self) -> PartitionEntry | None:
        factory = self._find(APP_TYPE, FACTORY)
        if factory is not None:
            return factory
        for i in range(NUM_OTA_SLOTS):
            part = self._ota_slot(i)
            if part is not None:
                return part
        return self._find(APP_TYPE, TEST)

    def esp_ota_get_boot_partition(self) -> PartitionEntry | None:
        """The partition otadata selects for the next boot (None without otadata)."""
        read = self._read_otadata()
        if read is None:
            return None
        _, entries = read
        count = self.esp_ota_get_app_partition_count()
        if (entries[0].is_invalid() and entries[1].is_invalid()) or count == 0:
            return self._find_default_boot_partition()
        active = active_otadata(entries)
        if active is None:
            return self._find_default_boot_partition()
        return self._ota_slot(slot_of(entries[active].ota_seq, count))

    def esp_ota_get_running_partition(self) -> PartitionEntry | None:
        """The partition the running app was loaded from."""
        return self.running

    def esp_ota_get_next_update_partition(
            self, start: PartitionEntry | None = None) -> PartitionEntry | None:
        """The OTA slot after ``start`` (C: ``start_from``; default: the running partition) in
        subtype order, else the first OTA slot."""
        if start is None:
            start = self.running
        default: PartitionEntry | None = None
        next_is_result = False
        for i in range(NUM_OTA_SLOTS):
            part = self._ota_slot(i)
            if part is None:
                continue
            if default is None:
                default = part
            if part == start:
                next_is_result = True
            elif next_is_result:
                return part
        return default

