"""What the agent reads from the device it runs on: the decision core's facts, the running
image and its otadata state, and where the agent's own state sector is.
"""

from __future__ import annotations

import hashlib

from otaforge.agent.decision import DeviceFacts
from otaforge.agent.state import FlashStateStore
from otaforge.device.emulator import Device
from otaforge.device.flash import SECTOR_SIZE
from otaforge.device.ota_ops import OtaOps
from otaforge.device.verify_cache import content_key_of
from otaforge.errors import DeviceError, EspError, FormatError, InputError
from otaforge.formats.app_image import AppImage
from otaforge.formats.otadata import OtaImgState
from otaforge.formats.partition_entry import PartitionEntry
from otaforge.formats.signature_block import has_signature_sector, signature_sector_offset


def image_file_length(slot_bytes: bytes) -> int:
    """Length of the image file in a slot: image_len, plus the Secure Boot v2 sector if any.

    Raises:
        FormatError: the slot holds no parseable app image.
    """
    image = AppImage.from_bytes(slot_bytes, check=False)
    if has_signature_sector(slot_bytes, image.image_len):
        return signature_sector_offset(image.image_len) + SECTOR_SIZE
    return image.image_len


def state_store_for(device: Device, partition: str = "nvs") -> FlashStateStore:
    """The agent's state sector: the last 4 KiB of ``partition`` on the device.

    Raises:
        InputError: the partition table has no such partition.
    """
    part = device.partition_table().find(partition)
    if part is None or part.size < SECTOR_SIZE:
        raise InputError(f"partition table has no {partition!r} partition for the agent state")
    return FlashStateStore(device.flash, part.offset + part.size - SECTOR_SIZE)


class DeviceProbe:
    """Reads (never writes) the device: ``esp_ota_*`` queries, eFuses, the running image.

    Args:
        device: the emulated device (powered on).
    """

    def __init__(self, device: Device) -> None:
        self.device = device

    @property
    def ota(self) -> OtaOps:
        """The running app's ``esp_ota_*`` API."""
        return self.device.ota

    def running_sha256(self) -> str | None:
        """SHA-256 of the running image file, None for no (parseable) running app.

        Remembered in the device's :class:`~otaforge.device.verify_cache.VerifyCache` under
        the bytes that decide it (the image and the sector a signature would occupy), as
        firmware computes it once per boot: a check-in does not re-read and re-hash an
        unchanged image.
        """
        part = self.device.running_partition
        if part is None:
            return None
        return self.device.cache.lookup_image(
            "file_sha256", None, content_key_of(self.device.flash), part,
            lambda n: signature_sector_offset(n) + SECTOR_SIZE, lambda: self._file_sha256(part))

    def _file_sha256(self, part: PartitionEntry) -> tuple[str | None, int | None]:
        data = self.device.flash.read(part.offset, part.size)
        try:
            image_len = AppImage.from_bytes(data, check=False).image_len
        except FormatError:
            return None, None
        length = signature_sector_offset(image_len) + SECTOR_SIZE \
            if has_signature_sector(data, image_len) else image_len
        return hashlib.sha256(memoryview(data)[:length]).hexdigest(), image_len

    def running_state(self) -> OtaImgState | None:
        """``esp_ota_get_state_partition(running)``; None for the factory app or no state."""
        part = self.device.running_partition
        if part is None or not part.is_ota_slot:
            return None
        try:
            return OtaImgState(self.ota.esp_ota_get_state_partition(part))
        except (EspError, ValueError):
            return None

    def running_version(self) -> str | None:
        """``esp_app_desc_t.version`` of the running app, None when there is none."""
        desc = self.device.running_desc
        return desc.version if desc else None

    def facts(self) -> DeviceFacts:
        """The device as the decision core needs it.

        Raises:
            DeviceError: no OTA slot to update into.
        """
        ota = self.ota
        slot = ota.esp_ota_get_next_update_partition(None)
        if slot is None:
            raise DeviceError("the partition table has no OTA app slot to update into")
        invalid = ota.esp_ota_get_last_invalid_partition()
        invalid_desc = ota.esp_ota_get_partition_description(invalid) if invalid else None
        cfg = self.device.config
        fuses = self.device.efuses
        return DeviceFacts(
            chip=self.device.chip, chip_rev=cfg.chip_rev,
            running_version=self.running_version() or "", slot_size=slot.size,
            efuse_secure_version=fuses.secure_version, anti_rollback=cfg.anti_rollback,
            # slot-indexed (b"" for an empty slot): ``revoked`` counts by slot index
            key_digests=tuple(d or b"" for d in fuses.key_digest_slots),
            revoked=frozenset(fuses.revoked),
            require_signature=cfg.secure_boot_v2,
            last_invalid_version=invalid_desc.version if invalid_desc else None)
