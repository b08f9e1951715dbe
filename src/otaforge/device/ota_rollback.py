"""The rollback half of esp_ota_ops.c: confirm, invalidate, roll back, revoke a key.

``esp_ota_mark_app_valid_cancel_rollback`` and ``..._invalid_rollback(_and_reboot)`` rewrite the
**active** otadata sector in place (erase, then program; ``esp_ota_current_ota_is_workable``),
with anti-rollback the eFuse is burned right after the VALID write;
``esp_ota_check_rollback_is_possible`` and ``esp_ota_get_last_invalid_partition`` follow the C
code, as does ``esp_ota_revoke_secure_boot_public_key``. :class:`RollbackManager` implements
them over the otadata store and the image checker;
:class:`~otaforge.device.ota_ops.OtaOps` exposes them under their ESP-IDF names.
"""

from __future__ import annotations

from otaforge.crypto.chip_policy import verify_for_chip
from otaforge.device.config import DeviceConfig
from otaforge.device.efuse import Efuses
from otaforge.device.esp_err import raise_esp
from otaforge.device.flash import Flash
from otaforge.device.ota_image_check import ImageChecker
from otaforge.device.ota_otadata import OtadataStore
from otaforge.device.ota_partitions import OtaPartitions, partition_description, slot_of
from otaforge.errors import EspError, FormatError, VerificationError
from otaforge.formats.app_desc import AppDesc
from otaforge.formats.app_image import AppImage
from otaforge.formats.otadata import OtaImgState, active_otadata, select_otadata
from otaforge.formats.partition_table import APP_TYPE, FACTORY, PartitionEntry


class RollbackManager:
    """The running app's otadata state: confirm it, invalidate it, find what else can boot.

    Args:
        flash: the device flash.
        partitions: the app's partitions.
        otadata: the otadata store.
        checker: verifies candidate images.
        efuses: the chip's eFuses (anti-rollback burn, key revocation).
        config: the build configuration (rollback, anti-rollback, Secure Boot v2).
    """

    __slots__ = ("checker", "config", "efuses", "flash", "otadata", "partitions")

    def __init__(self, flash: Flash, partitions: OtaPartitions, otadata: OtadataStore,
                 checker: ImageChecker, efuses: Efuses, config: DeviceConfig) -> None:
        self.flash = flash
        self.partitions = partitions
        self.otadata = otadata
        self.checker = checker
        self.efuses = efuses
        self.config = config

    def rollback_is_possible(self) -> bool:
        """Is there another bootable app (other valid entry's slot, or factory) to go back to?"""
        read = self.otadata.read()
        count = self.partitions.app_count()
        if read is None or count == 0:
            return False
        entries = read[1]
        valid = [entries[0].is_valid(), entries[1].is_valid()]
        active = select_otadata(entries, valid[0], valid[1], True)
        if active is None:
            return False
        last = 1 - active
        anti_rollback = self.config.anti_rollback
        if not anti_rollback and not valid[last]:
            factory = self.partitions.find(APP_TYPE, FACTORY)
            if factory is not None and self.checker.ok(factory):
                return True
        if valid[last]:
            part = self.partitions.slot(slot_of(entries[last].ota_seq, count))
            if part is not None and self.checker.ok(part):
                if not anti_rollback:
                    return True
                desc = self._desc_or_none(part)
                return desc is not None and self.efuses.check_secure_version(desc.secure_version)
        return False

    def _desc_or_none(self, part: PartitionEntry) -> AppDesc | None:
        try:
            return partition_description(self.flash, part)
        except EspError:  # NOT_FOUND: no usable description
            return None

    def mark_running(self, valid: bool) -> None:
        """``esp_ota_current_ota_is_workable``: the active entry becomes VALID or INVALID.

        Raises:
            EspError: NOT_FOUND (no otadata), ESP_FAIL ("Running firmware is factory"),
                OTA_ROLLBACK_FAILED (invalid, and nothing else can boot).
        """
        read = self.otadata.read()
        if read is None:
            raise_esp("ESP_ERR_NOT_FOUND", "not found otadata")
        otadata, entries = read
        active = active_otadata(entries)
        if active is None or self.partitions.app_count() == 0:
            raise_esp("ESP_FAIL", "Running firmware is factory")
        if valid:
            if entries[active].ota_state != OtaImgState.VALID:
                entries[active] = entries[active].with_state(OtaImgState.VALID)
                self.otadata.rewrite(otadata, entries, entries[active].ota_seq, active)
                if self.config.anti_rollback:
                    desc = partition_description(self.flash, self.partitions.running)
                    self.efuses.burn_secure_version(desc.secure_version)
            return
        if not self.rollback_is_possible():
            raise_esp("ESP_ERR_OTA_ROLLBACK_FAILED",
                      "Rollback is not possible, do not have any suitable apps in slots")
        entries[active] = entries[active].with_state(OtaImgState.INVALID)
        self.otadata.rewrite(otadata, entries, entries[active].ota_seq, active)

    def last_invalid_partition(self) -> PartitionEntry | None:
        """The slot of the INVALID/ABORTED entry (lower seq if two), if its image verifies."""
        part = self.otadata.last_invalid_slot()
        if part is not None and not self.checker.ok(part):
            return None
        return part

    def revoke_key(self, index: int) -> None:
        """``esp_ota_revoke_secure_boot_public_key``: burn SECURE_BOOT_KEY_REVOKE<index> when
        the running (VALID) app still verifies with the other key digests; raises EspError."""
        if not self.config.secure_boot_v2:
            raise_esp("ESP_FAIL", "Secure boot v2 has not been enabled.")
        if index not in (0, 1, 2):
            raise_esp("ESP_ERR_INVALID_ARG",
                      f"Invalid Index found for public key revocation {index}.")
        running = self.partitions.running
        if running is None:
            raise_esp("ESP_FAIL", "no running app")
        if self.config.rollback:
            # esp_ota_get_state_partition(running): NOT_SUPPORTED for factory, NOT_FOUND without
            # an entry -> ESP_FAIL, as is any state but VALID
            state = self.otadata.running_state()
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
            verify_for_chip(data, self.efuses.chip, digests=others, revoked=revoked,
                            image_len=image.image_len, version=2)
        except (FormatError, VerificationError):
            raise_esp("ESP_FAIL", "Application cannot be verified with any key other than the "
                      "one being revoked")
        self.efuses.revoke_key(index)
