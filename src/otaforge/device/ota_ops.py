"""The app-side OTA API of ESP-IDF (``esp_ota_ops.c``), with its names, rules and error codes.

Every flash write goes through the :class:`~otaforge.device.flash.Flash` seam, so it is
counted and can be cut. otadata is written exactly as ``esp_ota_ops.c`` (v6.0+/master) writes
it: ``rewrite_ota_seq`` erases the 4 KiB sector, then programs the 32-byte entry;
``esp_rewrite_ota_data`` picks the sector and seq (``compute_ota_seq_for_target_slot``; the
active sector is rewritten in place when it already points at the target slot). With
``CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE`` ``esp_ota_begin`` refuses a PENDING_VERIFY running app
and then invalidates the inactive otadata sector (v5.5+).

Errors are :class:`~otaforge.errors.EspError` with the ESP-IDF code and name; functions that
return ``NULL`` or ``false`` in C return None or False here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from otaforge.crypto.sbv2 import signature_key_digests, verify_v2
from otaforge.device.efuse import Efuses
from otaforge.device.esp_err import OTA_SIZE_UNKNOWN, OTA_WITH_SEQUENTIAL_WRITES, raise_esp
from otaforge.device.flash import SECTOR_SIZE, Flash
from otaforge.errors import EspError, FormatError, VerificationError
from otaforge.formats._binary import align_up
from otaforge.formats.app_desc import APP_DESC_MAGIC, APP_DESC_OFFSET, APP_DESC_SIZE, AppDesc
from otaforge.formats.app_image import ESP_IMAGE_MAGIC, AppImage, verify_image
from otaforge.formats.chips import ChipSpec
from otaforge.formats.otadata import (
    SEQ_UNUSED,
    OtaImgState,
    OtaSelectEntry,
    active_otadata,
    read_otadata,
    select_otadata,
)
from otaforge.formats.partition_table import (
    APP_TYPE,
    FACTORY,
    OTA_0,
    TEST,
    PartitionEntry,
    PartitionTable,
)
from otaforge.formats.signature_block import signature_length

OTA_SLOTS_MAX = 16
_U32 = 0xFFFFFFFF


def slot_of(seq: int, count: int) -> int:
    """``(ota_seq - 1) % ota_app_count`` in C's uint32 arithmetic (seq 0 wraps)."""
    return ((seq - 1) & _U32) % count


def read_partition_desc(flash: Flash, part: PartitionEntry) -> AppDesc | None:
    """The app description at offset 0x20 of ``part``, or None without the desc magic."""
    raw = flash.read(part.offset + APP_DESC_OFFSET, APP_DESC_SIZE)
    desc = AppDesc.from_bytes(raw, check_magic=False)
    return desc if desc.magic_word == APP_DESC_MAGIC else None


@dataclass(frozen=True)
class OtaConfig:
    """The app's build configuration that changes esp_ota_ops behaviour.

    Attributes:
        chip: the target chip (images must name it).
        chip_rev: the chip's revision, major*100+minor.
        rollback: ``CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE`` (new entries NEW, not UNDEFINED).
        anti_rollback: ``CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK``.
        secure_boot_v2: hardware Secure Boot v2: images are verified against eFuse digests.
        signed_app: ``CONFIG_SECURE_SIGNED_ON_UPDATE_NO_SECURE_BOOT`` (v2 scheme): the new image
            must be signed by the key that signed the running app.
    """

    chip: ChipSpec
    chip_rev: int = 0
    rollback: bool = False
    anti_rollback: bool = False
    secure_boot_v2: bool = False
    signed_app: bool = False

    @property
    def signing(self) -> bool:
        """Whether esp_image_verify checks a signature on update."""
        return self.secure_boot_v2 or self.signed_app


@dataclass
class _Handle:
    handle: int
    part: PartitionEntry
    need_erase: bool
    wrote_size: int = 0


class OtaOps:
    """``esp_ota_*`` over one device's flash, partition table, eFuses and running partition.

    Args:
        flash: the device flash.
        table: the partition table the app was built with (read from flash at boot).
        efuses: the chip's eFuses.
        config: the app's configuration.
        running: the partition the current app runs from (set by the device at boot).
        restart: called by ``esp_ota_mark_app_invalid_rollback_and_reboot`` (``esp_restart``).
    """

    def __init__(self, flash: Flash, table: PartitionTable, efuses: Efuses, config: OtaConfig,
                 running: PartitionEntry | None = None,
                 restart: Callable[[], None] | None = None) -> None:
        self.flash = flash
        self.table = table
        self.efuses = efuses
        self.config = config
        self.running = running
        self.restart = restart
        self._handles: dict[int, _Handle] = {}
        self._last_handle = 0

    # --- partitions -----------------------------------------------------------------------

    def _find(self, ptype: int, subtype: int) -> PartitionEntry | None:
        return self.table.find_by_type(ptype, subtype)

    def esp_ota_get_app_partition_count(self) -> int:
        """Number of ota_N partitions counted from ota_0 while they exist (contiguously)."""
        count = 0
        while count < OTA_SLOTS_MAX and self._find(APP_TYPE, OTA_0 + count) is not None:
            count += 1
        return count

    def _ota_slot(self, index: int) -> PartitionEntry | None:
        return self._find(APP_TYPE, OTA_0 + index)

    def _verify_partition(self, part: PartitionEntry | None) -> PartitionEntry:
        if part is None:
            raise_esp("ESP_ERR_INVALID_ARG", "partition is NULL")
        if part not in self.table.entries:
            raise_esp("ESP_ERR_NOT_FOUND", f"partition {part.name!r} is not in the table")
        return part

    def _otadata_part(self) -> PartitionEntry | None:
        return self.table.otadata()

    def _read_otadata(self) -> tuple[PartitionEntry, list[OtaSelectEntry]] | None:
        part = self._otadata_part()
        if part is None:
            return None
        raw = self.flash.read(part.offset, 2 * SECTOR_SIZE)
        return part, list(read_otadata(raw))

    # --- image checks (esp_image_verify) --------------------------------------------------

    def verify_partition_image(self, part: PartitionEntry) -> AppImage:
        """``esp_image_verify(ESP_IMAGE_VERIFY)`` of an app partition, with signature checks.

        Raises:
            FormatError / VerificationError: the image must not boot (with the reason).
        """
        data = self.flash.read(part.offset, part.size)
        cfg = self.config
        image = verify_image(data, chip=cfg.chip, chip_rev=cfg.chip_rev,
                             partition_size=part.size, addr=part.offset)
        if not cfg.signing:
            return image
        sig_len = signature_length("v2", image.image_len)
        if image.image_len + sig_len > part.size:
            raise VerificationError(
                f"Image length {image.image_len + sig_len} doesn't fit in partition length "
                f"{part.size}")
        max_blocks = 1 if cfg.chip.name == "esp32" else 3
        if cfg.secure_boot_v2:
            verify_v2(data, digests=[d or b"" for d in self.efuses.key_digest_slots],
                      revoked=self.efuses.revoked, image_len=image.image_len, strict=False,
                      max_blocks=max_blocks)
        else:
            trusted = self._running_key_digests()
            verify_v2(data, digests=trusted[:1], image_len=image.image_len, strict=False,
                      max_blocks=1)
        return image

    def _running_key_digests(self) -> list[bytes]:
        running = self.running
        if running is None:
            return []
        data = self.flash.read(running.offset, running.size)
        try:
            image = AppImage.from_bytes(data, check=False)
            return signature_key_digests(data, image.image_len)
        except (FormatError, VerificationError):
            return []

    def _image_ok(self, part: PartitionEntry) -> bool:
        try:
            self.verify_partition_image(part)
        except (FormatError, VerificationError):
            return False
        return True

    def _image_validate(self, part: PartitionEntry) -> None:
        try:
            self.verify_partition_image(part)
        except (FormatError, VerificationError) as err:
            raise_esp("ESP_ERR_OTA_VALIDATE_FAILED", f"{part.name}: {err}")

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
        handle = _Handle(self._last_handle, part, image_size == OTA_WITH_SEQUENTIAL_WRITES)
        self._handles[handle.handle] = handle
        if self.config.rollback and part.is_ota_slot:
            self.esp_ota_invalidate_inactive_ota_data_slot()
        return handle.handle

    def _running_state(self) -> int | None:
        running = self.running
        if running is None or not running.is_ota_slot:
            return None
        try:
            return self.esp_ota_get_state_partition(running)
        except EspError:  # ESP_ERR_NOT_FOUND: no entry, nothing to refuse on
            return None

    def _handle(self, handle: int, missing: str) -> _Handle:
        entry = self._handles.get(handle)
        if entry is None:
            raise_esp(missing, f"OTA handle {handle} not found")
        return entry

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
            raise_esp("ESP_ERR_OTA_VALIDATE_FAILED",
                      f"OTA image has invalid magic byte (expected 0xE9, saw 0x{data[0]:02x})")
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

    def _rewrite_ota_seq(self, otadata: PartitionEntry, entries: list[OtaSelectEntry],
                         seq: int, sec_id: int) -> None:
        entries[sec_id] = entries[sec_id].with_seq(seq)
        addr = otadata.offset + sec_id * SECTOR_SIZE
        self.flash.erase_sector(addr)
        self.flash.program(addr, entries[sec_id].to_bytes())

    def _new_state(self) -> int:
        return OtaImgState.NEW if self.config.rollback else OtaImgState.UNDEFINED

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
        for i in range(OTA_SLOTS_MAX):
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
        for i in range(OTA_SLOTS_MAX):
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

    def esp_ota_get_state_partition(self, partition: PartitionEntry | None) -> int:
        """The otadata state of an OTA slot (first entry, by index, whose seq maps to it).

        Raises:
            EspError: INVALID_ARG, NOT_SUPPORTED (not an OTA slot), NOT_FOUND (no entry).
        """
        if partition is None:
            raise_esp("ESP_ERR_INVALID_ARG", "partition is NULL")
        if not partition.is_ota_slot:
            raise_esp("ESP_ERR_NOT_SUPPORTED", f"{partition.name} is not an OTA app partition")
        count = self.esp_ota_get_app_partition_count()
        read = self._read_otadata()
        if read is None or count == 0:
            raise_esp("ESP_ERR_NOT_FOUND", "no otadata or no OTA app partitions")
        for entry in read[1]:
            if slot_of(entry.ota_seq, count) == partition.subtype - OTA_0 and entry.crc_ok:
                return entry.ota_state
        raise_esp("ESP_ERR_NOT_FOUND", f"no otadata entry for {partition.name}")

    def esp_ota_get_partition_description(self, partition: PartitionEntry | None) -> AppDesc:
        """The ``esp_app_desc_t`` at offset 0x20 of an app partition.

        Raises:
            EspError: INVALID_ARG, NOT_SUPPORTED (not an app), NOT_FOUND (no desc magic).
        """
        if partition is None:
            raise_esp("ESP_ERR_INVALID_ARG", "partition is NULL")
        if partition.type != APP_TYPE:
            raise_esp("ESP_ERR_NOT_SUPPORTED", f"{partition.name} is not an app partition")
        desc = read_partition_desc(self.flash, partition)
        if desc is None:
            raise_esp("ESP_ERR_NOT_FOUND", f"{partition.name}: no app description")
        return desc

    # --- rollback -------------------------------------------------------------------------

    def esp_ota_check_rollback_is_possible(self) -> bool:
        """Is there another bootable app (other valid entry's slot, or factory) to go back to?"""
        read = self._read_otadata()
        count = self.esp_ota_get_app_partition_count()
        if read is None or count == 0:
            return False
        entries = read[1]
        valid = [entries[0].is_valid(), entries[1].is_valid()]
        active = select_otadata(entries, valid[0], valid[1], True)
        if active is None:
            return False
        last = 1 - active
        if not self.config.anti_rollback and not valid[last]:
            factory = self._find(APP_TYPE, FACTORY)
            if factory is not None and self._image_ok(factory):
                return True
        if valid[last]:
            part = self._ota_slot(slot_of(entries[last].ota_seq, count))
            if part is not None and self._image_ok(part):
                if not self.config.anti_rollback:
                    return True
                desc = self._desc_or_none(part)
                return desc is not None and self.efuses.check_secure_version(desc.secure_version)
        return False

    def _desc_or_none(self, part: PartitionEntry) -> AppDesc | None:
        try:
            return self.esp_ota_get_partition_description(part)
        except EspError:  # NOT_FOUND: no usable description
            return None

    def _current_ota_is_workable(self, valid: bool) -> None:
        read = self._read_otadata()
        if read is None:
            raise_esp("ESP_ERR_NOT_FOUND", "not found otadata")
        otadata, entries = read
        active = active_otadata(entries)
        if active is None or self.esp_ota_get_app_partition_count() == 0:
            raise_esp("ESP_FAIL", "Running firmware is factory")
        if valid:
            if entries[active].ota_state != OtaImgState.VALID:
                entries[active] = entries[active].with_state(OtaImgState.VALID)
                self._rewrite_ota_seq(otadata, entries, entries[active].ota_seq, active)
                if self.config.anti_rollback:
                    running = self.running
                    desc = self.esp_ota_get_partition_description(running)
                    self.efuses.burn_secure_version(desc.secure_version)
            return
        if not self.esp_ota_check_rollback_is_possible():
            raise_esp("ESP_ERR_OTA_ROLLBACK_FAILED",
                      "Rollback is not possible, do not have any suitable apps in slots")
        entries[active] = entries[active].with_state(OtaImgState.INVALID)
        self._rewrite_ota_seq(otadata, entries, entries[active].ota_seq, active)

    def esp_ota_mark_app_valid_cancel_rollback(self) -> None:
        """Mark the active otadata entry VALID (and burn secure_version with anti-rollback).

        Raises:
            EspError: NOT_FOUND (no otadata), ESP_FAIL ("Running firmware is factory").
        """
        self._current_ota_is_workable(True)

    def esp_ota_mark_app_invalid_rollback(self) -> None:
        """Mark the active entry INVALID (v5.5+ variant without the restart).

        Raises:
            EspError: OTA_ROLLBACK_FAILED when nothing else can boot, ESP_FAIL for factory.
        """
        self._current_ota_is_workable(False)

    def esp_ota_mark_app_invalid_rollback_and_reboot(self) -> None:
        """Mark the active entry INVALID, then ``esp_restart()`` (the ``restart`` hook)."""
        self._current_ota_is_workable(False)
        if self.restart is not None:
            self.restart()

    def esp_ota_revoke_secure_boot_public_key(self, index: int) -> None:
        """Revoke Secure Boot v2 key digest ``index`` once the running app verifies without it.

        Raises:
            EspError: ESP_FAIL (secure boot off, running app not VALID with rollback, or the
                running app is signed only with that key), ESP_ERR_INVALID_ARG (index not 0..2).
        """
        if not self.config.secure_boot_v2:
            raise_esp("ESP_FAIL", "Secure boot v2 has not been enabled.")
        if index not in (0, 1, 2):
            raise_esp("ESP_ERR_INVALID_ARG",
                      f"Invalid Index found for public key revocation {index}.")
        running = self.running
        if running is None:
            raise_esp("ESP_FAIL", "no running app")
        if self.config.rollback:
            state = self._running_state()
            if state != OtaImgState.VALID and running.is_ota_slot:
                raise_esp("ESP_FAIL", "The current running application is not marked as a "
                          "valid image. Aborting..")
        slots = self.efuses.key_digest_slots
        if index >= len(slots) or slots[index] is None or index in self.efuses.revoked:
            return  # already revoked (or never burned): ESP_OK
        data = self.flash.read(running.offset, running.size)
        others = [d or b"" for d in slots]
        revoked = set(self.efuses.revoked) | {index}
        try:
            image = AppImage.from_bytes(data, check=False)
            verify_v2(data, digests=others, revoked=revoked, image_len=image.image_len,
                      strict=False)
        except (FormatError, VerificationError):
            raise_esp("ESP_FAIL", "Application cannot be verified with any key other than the "
                      "one being revoked")
        self.efuses.revoke_key(index)

    def _last_invalid_index(self, entries: list[OtaSelectEntry]) -> int | None:
        flags = [e.ota_seq != SEQ_UNUSED and e.crc_ok and
                 e.ota_state in (OtaImgState.INVALID, OtaImgState.ABORTED) for e in entries]
        return select_otadata(entries, flags[0], flags[1], False)

    def esp_ota_get_last_invalid_partition(self) -> PartitionEntry | None:
        """The slot of the INVALID/ABORTED entry (lower seq if two), if its image verifies."""
        read = self._read_otadata()
        if read is None:
            return None
        entries = read[1]
        index = self._last_invalid_index(entries)
        count = self.esp_ota_get_app_partition_count()
        if index is None or count == 0:
            return None
        part = self._ota_slot(slot_of(entries[index].ota_seq, count))
        if part is not None and not self._image_ok(part):
            return None
        return part

    def _erase_last_boot_app_partition(self, skip_app_erase: bool) -> None:
        read = self._read_otadata()
        if read is None:
            raise_esp("ESP_FAIL", "not found otadata")
        otadata, entries = read
        active = active_otadata(entries)
        count = self.esp_ota_get_app_partition_count()
        if active is None or count == 0:
            raise_esp("ESP_FAIL", "no active otadata entry")
        inactive = 1 - active
        entry = entries[inactive]
        if entry.ota_seq == SEQ_UNUSED or not entry.crc_ok:
            raise_esp("ESP_FAIL", "no previous app in otadata")
        part = self._ota_slot(slot_of(entry.ota_seq, count))
        if part is None or self.running is None or part == self.running:
            raise_esp("ESP_FAIL", "the last boot app partition is the running one")
        if not skip_app_erase:
            self.flash.erase_range(part.offset, part.size)
        self.flash.erase_sector(otadata.offset + inactive * SECTOR_SIZE)

    def esp_ota_erase_last_boot_app_partition(self) -> None:
        """Erase the previous app's partition and its otadata sector.

        Raises:
            EspError: ESP_FAIL when there is no previous app other than the running one.
        """
        self._erase_last_boot_app_partition(False)

    def esp_ota_invalidate_inactive_ota_data_slot(self) -> bool:
        """Erase the inactive otadata sector if it points at a non-running slot (v5.5+).

        Returns:
            True when a sector was erased (ESP_OK), False otherwise (ESP_FAIL, ignored by
            ``esp_ota_begin``).
        """
        try:
            self._erase_last_boot_app_partition(True)
        except EspError as err:
            if err.name != "ESP_FAIL":
                raise
            return False
        return True

