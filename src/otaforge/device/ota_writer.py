"""Writing an image into a partition through ``esp_ota_*`` handles (``ota_ops_entry_t``).

:class:`SlotWriter` owns the open handles: it erases (all up front, or sector by sector while
writing with ``OTA_WITH_SEQUENTIAL_WRITES``), programs, and refuses writes that overrun the
partition. Which partition may be opened (not the running one, not while PENDING_VERIFY) is
decided by :class:`~otaforge.device.ota_ops.OtaOps` before it opens a handle here.
"""

from __future__ import annotations

from dataclasses import dataclass

from otaforge.device.esp_err import raise_esp
from otaforge.device.flash import SECTOR_SIZE, Flash
from otaforge.errors import BadMagicError
from otaforge.formats._binary import align_up
from otaforge.formats.app_image import ESP_IMAGE_MAGIC
from otaforge.formats.partition_table import APP_TYPE, PartitionEntry


@dataclass
class OtaHandle:
    """One ``ota_ops_entry_t``: the partition being written and how far."""

    handle: int
    part: PartitionEntry
    need_erase: bool
    wrote_size: int = 0


class SlotWriter:
    """The open ``esp_ota_*`` handles of one app and the flash writes they make.

    Args:
        flash: the device flash.
    """

    __slots__ = ("_last_handle", "flash", "handles")

    def __init__(self, flash: Flash) -> None:
        self.flash = flash
        self.handles: dict[int, OtaHandle] = {}
        self._last_handle = 0

    def refuse_second_handle(self, part: PartitionEntry) -> None:
        """ESP_ERR_OTA_ALREADY_IN_PROGRESS when a handle on ``part`` is open (v6.1+)."""
        if any(h.part == part for h in self.handles.values()):
            raise_esp("ESP_ERR_OTA_ALREADY_IN_PROGRESS", f"{part.name} is already being written")

    def erase_for(self, part: PartitionEntry, image_size: int, size: int) -> None:
        """Erase ``size`` bytes (rounded up to sectors) from the start of ``part``.

        Raises:
            EspError: INVALID_SIZE when that is larger than the partition.
        """
        erase = align_up(size, SECTOR_SIZE)
        if erase > part.size:
            raise_esp("ESP_ERR_INVALID_SIZE",
                      f"image size {image_size} is larger than {part.name} ({part.size})")
        self.flash.erase_range(part.offset, erase)

    def open(self, part: PartitionEntry, need_erase: bool, wrote_size: int = 0) -> int:
        """A new handle on ``part`` whose next write goes to ``wrote_size``."""
        self._last_handle += 1
        handle = OtaHandle(self._last_handle, part, need_erase, wrote_size)
        self.handles[handle.handle] = handle
        return handle.handle

    def get(self, handle: int, missing: str) -> OtaHandle:
        """The open handle; raises EspError ``missing`` when there is none."""
        entry = self.handles.get(handle)
        if entry is None:
            raise_esp(missing, f"OTA handle {handle} not found")
        return entry

    def close(self, handle: int) -> None:
        """Free the handle (nothing is erased)."""
        self.handles.pop(handle, None)

    def _partition_write(self, part: PartitionEntry, offset: int, data: bytes) -> None:
        if offset > part.size:
            raise_esp("ESP_ERR_INVALID_ARG", f"offset 0x{offset:x} is outside {part.name}")
        if offset + len(data) > part.size:
            raise_esp("ESP_ERR_INVALID_SIZE",
                      f"write of {len(data)} bytes at 0x{offset:x} overruns {part.name}")
        self.flash.program(part.offset + offset, data)

    def append(self, handle: int, data: bytes) -> None:
        """``esp_ota_write``: append ``data``; erase sectors first when lazily erasing.

        Raises:
            EspError: INVALID_ARG (unknown handle), OTA_VALIDATE_FAILED (first byte not 0xE9),
                INVALID_SIZE (past the end of the partition).
        """
        if not data:
            return
        entry = self.get(handle, "ESP_ERR_INVALID_ARG")
        part = entry.part
        if entry.need_erase:
            self._erase_ahead(entry, len(data))
        if entry.wrote_size == 0 and part.type == APP_TYPE and data[0] != ESP_IMAGE_MAGIC:
            bad = BadMagicError(f"OTA image has invalid magic byte (expected 0xE9, saw "
                                f"0x{data[0]:02x})")
            raise_esp("ESP_ERR_OTA_VALIDATE_FAILED", str(bad), cause=bad)
        self._partition_write(part, entry.wrote_size, data)
        entry.wrote_size += len(data)

    def _erase_ahead(self, entry: OtaHandle, n: int) -> None:
        """Erase the sectors the next ``n`` bytes start (not the partly written one)."""
        part = entry.part
        first = entry.wrote_size // SECTOR_SIZE
        last = (entry.wrote_size + n - 1) // SECTOR_SIZE
        if entry.wrote_size % SECTOR_SIZE == 0:
            start, count = entry.wrote_size, last - first + 1
        else:
            start, count = (first + 1) * SECTOR_SIZE, last - first
        if count > 0:
            if start + count * SECTOR_SIZE > part.size:
                raise_esp("ESP_ERR_INVALID_SIZE", f"write overruns {part.name}")
            self.flash.erase_range(part.offset + start, count * SECTOR_SIZE)

    def write_at(self, handle: int, data: bytes, offset: int) -> None:
        """``esp_ota_write_with_offset``: write at ``offset`` of a pre-erased partition.

        Raises:
            EspError: INVALID_ARG (unknown handle), INVALID_STATE (lazy-erase handle: C asserts).
        """
        entry = self.get(handle, "ESP_ERR_INVALID_ARG")
        if entry.need_erase:
            raise_esp("ESP_ERR_INVALID_STATE", "must erase the partition before writing to it")
        self._partition_write(entry.part, offset, data)
        entry.wrote_size += len(data)
