"""Shared state and helpers of the esp_ota_* emulation: partitions, otadata, image checks.

:class:`OtaBase` holds what ``esp_ota_ops.c`` reads on every call (the partition table, the
otadata partition, the running partition, eFuses) and ``esp_image_verify`` as the app runs it
(including the Secure Boot v2 / signed-app signature check). The public API is
:class:`otaforge.device.ota_ops.OtaOps`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from otaforge.crypto.chip_policy import verify_for_chip
from otaforge.crypto.sbv2 import verify_v2_against_running_app
from otaforge.device.efuse import Efuses
from otaforge.device.esp_err import raise_esp
from otaforge.device.flash import SECTOR_SIZE, Flash
from otaforge.errors import EspError, FormatError, VerificationError
from otaforge.formats.app_desc import APP_DESC_MAGIC, APP_DESC_OFFSET, APP_DESC_SIZE, AppDesc
from otaforge.formats.app_image import AppImage
from otaforge.formats.chips import ChipSpec
from otaforge.formats.image_verify import verify_image
from otaforge.formats.otadata import OtaImgState, OtaSelectEntry, read_otadata, slot_for_seq
from otaforge.formats.partition_table import (
    APP_TYPE,
    NUM_OTA_SLOTS,
    OTA_0,
    PartitionEntry,
    PartitionTable,
)
from otaforge.formats.signature_block import signature_length

_U32 = 0xFFFFFFFF


slot_of = slot_for_seq  # ``(ota_seq - 1) % ota_app_count`` in uint32 arithmetic


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
class OtaHandle:
    """One ``ota_ops_entry_t``: the partition being written and how far."""

    handle: int
    part: PartitionEntry
    need_erase: bool
    wrote_size: int = 0


class OtaBase:
    """State shared by the esp_ota_* calls; see :class:`~otaforge.device.ota_ops.OtaOps`.

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
        self._handles: dict[int, OtaHandle] = {}
        self._last_handle = 0

    # --- partitions -----------------------------------------------------------------------

    def _find(self, ptype: int, subtype: int) -> PartitionEntry | None:
        return self.table.find_by_type(ptype, subtype)

    def esp_ota_get_app_partition_count(self) -> int:
        """Number of ota_N partitions counted from ota_0 while they exist (contiguously)."""
        count = 0
        while count < NUM_OTA_SLOTS and self._find(APP_TYPE, OTA_0 + count) is not None:
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
        if cfg.secure_boot_v2:
            digests = [d or b"" for d in self.efuses.key_digest_slots]
            verify_for_chip(data, cfg.chip, digests=digests, revoked=self.efuses.revoked,
                            image_len=image.image_len, version=2)
        else:
            running, running_len = self._running_app()
            verify_v2_against_running_app(data, running, new_image_len=image.image_len,
                                          running_image_len=running_len)
        return image

    def _running_app(self) -> tuple[bytes, int | None]:
        """The running partition's bytes and app image length (``esp_image_get_metadata``).

        ``CONFIG_SECURE_SIGNED_ON_UPDATE_NO_SECURE_BOOT`` takes the trusted key from the running
        app: ``calculate_image_public_key_digests`` packs the digests of its valid blocks from
        index 0 and only index 0 is compared with the new image's block 0, so the key of the
        running app's first valid block is the one trusted (v5.x/v6.0+, secure_boot_signatures_
        app.c; IDF v4.x kept digests at their block index, so a broken block 0 trusted nothing).
        :func:`~otaforge.crypto.sbv2.verify_v2_against_running_app` applies exactly this rule.
        """
        running = self.running
        if running is None:
            raise VerificationError("Cannot get running partition (no running app)")
        data = self.flash.read(running.offset, running.size)
        try:
            return data, AppImage.from_bytes(data, check=False).image_len
        except FormatError as err:
            raise VerificationError(f"Error reading metadata from running app: {err}") from None

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
            raise_esp("ESP_ERR_OTA_VALIDATE_FAILED", f"{part.name}: {err}", cause=err)


    def _running_state(self) -> int | None:
        running = self.running
        if running is None or not running.is_ota_slot:
            return None
        try:
            return self.esp_ota_get_state_partition(running)
        except EspError:  # ESP_ERR_NOT_FOUND: no entry, nothing to refuse on
            return None

    def _handle(self, handle: int, missing: str) -> OtaHandle:
        entry = self._handles.get(handle)
        if entry is None:
            raise_esp(missing, f"OTA handle {handle} not found")
        return entry

    def _rewrite_ota_seq(self, otadata: PartitionEntry, entries: list[OtaSelectEntry],
                         seq: int, sec_id: int) -> None:
        entries[sec_id] = entries[sec_id].with_seq(seq)
        addr = otadata.offset + sec_id * SECTOR_SIZE
        self.flash.erase_sector(addr)
        self.flash.program(addr, entries[sec_id].to_bytes())

    def _new_state(self) -> int:
        return OtaImgState.NEW if self.config.rollback else OtaImgState.UNDEFINED

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

