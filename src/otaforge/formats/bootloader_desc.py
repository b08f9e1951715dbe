"""``esp_bootloader_desc_t``: the 80-byte description of a second-stage bootloader image.

Sources: components/esp_bootloader_format/include/esp_bootloader_desc.h (the struct: magic
byte 0x50, reserved[2], secure_version, version, idf_ver[32], date_time[24], reserved2[16]) and
esptool ``image-info`` (where it looks for it: a bootloader image has no DROM segment, and the
description starts the last DRAM segment of at least 80 bytes).
"""

from __future__ import annotations

import struct

from otaforge.formats._binary import cstring, unpack_from
from otaforge.formats.app_image import AppImage
from otaforge.formats.record import record

BOOTLOADER_DESC_MAGIC = 0x50
BOOTLOADER_DESC_SIZE = 80

# magic_byte, reserved[2], secure_version, version, idf_ver[32], date_time[24], reserved2[16]
_DESC = struct.Struct("<BxxBI32s24s16x")
assert _DESC.size == BOOTLOADER_DESC_SIZE


@record
class BootloaderDesc:
    """One ``esp_bootloader_desc_t`` (string fields decoded)."""

    secure_version: int
    version: int
    idf_ver: str
    date_time: str

    @classmethod
    def from_bytes(cls, data: bytes) -> BootloaderDesc:
        """Parse the first 80 bytes (the magic byte is not checked here).

        Raises:
            TruncatedError: fewer than 80 bytes.
        """
        _, secure_version, version, idf_ver, date_time = unpack_from(
            _DESC, bytes(data), 0, "esp_bootloader_desc_t")
        return cls(secure_version, version, cstring(idf_ver, "idf_ver"),
                   cstring(date_time, "date_time"))

    def to_json(self) -> dict[str, object]:
        """ESP-IDF field names -> values."""
        return {"secure_version": self.secure_version, "version": self.version,
                "idf_ver": self.idf_ver, "date_time": self.date_time}


def find_bootloader_desc(image: AppImage) -> BootloaderDesc | None:
    """The description of a bootloader image, found as ``esptool image-info`` finds it.

    None for an app (it has an ``esp_app_desc_t``), an unknown chip, an image with a DROM
    segment, or when the last DRAM segment of at least 80 bytes does not start with 0x50.
    """
    spec = image.chip
    if spec is None or image.app_desc is not None:
        return None
    candidate = None
    for seg in image.segments:
        kinds = spec.memory_types(seg.load_addr)
        if "DROM" in kinds:
            return None
        if "DRAM" in kinds and len(seg.data) >= BOOTLOADER_DESC_SIZE:
            candidate = seg.data
    if candidate is None or candidate[0] != BOOTLOADER_DESC_MAGIC:
        return None
    return BootloaderDesc.from_bytes(candidate)
