"""The rollback half of esp_ota_ops.c: confirm, invalidate, roll back, erase the last app.

``esp_ota_mark_app_valid_cancel_rollback`` and ``..._invalid_rollback(_and_reboot)`` rewrite the
**active** otadata sector in place (erase, then program; ``esp_ota_current_ota_is_workable``),
with anti-rollback the eFuse is burned right after the VALID write;
``esp_ota_check_rollback_is_possible``, ``esp_ota_get_last_invalid_partition``,
``esp_ota_erase_last_boot_app_partition`` and ``esp_ota_invalidate_inactive_ota_data_slot``
(v5.5+) follow the C code, as does ``esp_ota_revoke_secure_boot_public_key``.
"""

from __future__ import annotations

from otaforge.crypto.chip_policy import verify_for_chip
from otaforge.device.esp_err import raise_esp
from otaforge.device.flash import SECTOR_SIZE
from otaforge.device.ota_base import OtaBase, slot_of
from otaforge.errors import EspError, FormatError, VerificationError
from otaforge.formats.app_desc import AppDesc
from otaforge.formats.app_image import AppImage
from otaforge.formats.otadata import (
    SEQ_UNUSED,
    OtaImgState,
    OtaSelectEntry,
    active_otadata,
    select_otadata,
)
from otaforge.formats.partition_table import APP_TYPE, FACTORY, PartitionEntry


class RollbackOps(OtaBase):
    """Rollback and confirmation calls (mixed into :class:`~otaforge.device.ota_ops.OtaOps`)."""

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
            # esp_ota_get_state_partition(running): NOT_SUPPORTED for factory, NOT_FOUND without
            # an entry -> ESP_FAIL, as is any state but VALID
            state = self._running_state()
            if state != OtaImgState.VALID:
                raise_esp("ESP_FAIL", "The current running application is not marked as a "
                          "valid image (or has no otadata state: factory). Aborting..")
        slots = self.efuses.key_digest_slots
        if index >= len(slots) or slots[index] is None or index in self.efuses.revoked:
            return  # already revoked (or never burned): ESP_OK
        data = self.flash.read(running.offset, running.size)
        others = [d or b"" for d in slots]
        revoked = set(self.efuses.revoked) | {index}
        try:
            image = AppImage.from_bytes(data, check=False)
            verify_for_chip(data, self.config.chip, digests=others, revoked=revoked,
                            image_len=image.image_len, version=2)
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

