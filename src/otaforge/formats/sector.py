"""The SPI NOR flash erase sector, the unit several ESP-IDF layouts are built on.

The partition table, each of the two otadata copies and the Secure Boot v2 signature sector
each occupy one sector; a Secure Boot v2 sector starts at the image length rounded up to one
(esp_image_format.c ``ALIGN_UP(image_len, FLASH_SECTOR_SIZE)``).
"""

from __future__ import annotations

SECTOR_SIZE = 0x1000
"""``FLASH_SECTOR_SIZE`` / ``SPI_FLASH_SEC_SIZE``: 4 KiB."""

OTADATA_SIZE = 2 * SECTOR_SIZE
"""The otadata partition: two copies of ``esp_ota_select_entry_t``, one sector each (defined
here so the partition table checks it without importing the otadata format)."""
