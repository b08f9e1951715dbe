"""The flash as ESP-IDF's bootloader sees it during one boot: reads plus its own writes.

The bootloader's only flash writes are ``write_otadata`` (bootloader_utility.c: erase the 4 KiB
sector, then program the 32-byte ``esp_ota_select_entry_t``) and the factory-reset erase
(``bootloader_common_erase_part_type_data``). :class:`BootFlash` records them as
:class:`FlashOp` s and overlays them on later reads, so a decision stays a pure function of the
flash it was given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from otaforge.device.boot_image import read_padded
from otaforge.device.boot_table import Reader
from otaforge.formats.sector import SECTOR_SIZE


@dataclass(frozen=True)
class FlashOp:
    """One flash write the bootloader makes. ``erase``: the 4 KiB sector at ``addr``."""

    kind: Literal["erase", "program"]
    addr: int
    data: bytes = b""


class BootFlash:
    """The flash as the bootloader sees it: ``read`` plus the writes it made so far."""

    def __init__(self, read: Reader) -> None:
        self._read = read
        self._sectors: dict[int, bytearray] = {}
        self.ops: list[FlashOp] = []

    def read(self, addr: int, n: int) -> bytes:
        """``n`` bytes at ``addr`` with this boot's writes applied (past the end: 0xFF)."""
        out = read_padded(self._read, addr, n)
        if not self._sectors:
            return out
        buf = bytearray(out)
        for base, sector in self._sectors.items():
            lo, hi = max(base, addr), min(base + SECTOR_SIZE, addr + n)
            if lo < hi:
                buf[lo - addr : hi - addr] = sector[lo - base : hi - base]
        return bytes(buf)

    def erase(self, addr: int) -> None:
        """``bootloader_flash_erase_sector``: the 4 KiB sector holding ``addr`` reads 0xFF."""
        base = addr - addr % SECTOR_SIZE
        self._sectors[base] = bytearray(b"\xff" * SECTOR_SIZE)
        self.ops.append(FlashOp("erase", base))

    def program(self, addr: int, data: bytes) -> None:
        """``bootloader_flash_write``: NOR programming, bits only go from 1 to 0."""
        base = addr - addr % SECTOR_SIZE
        if base not in self._sectors:
            self._sectors[base] = bytearray(read_padded(self._read, base, SECTOR_SIZE))
        sector = self._sectors[base]
        for i, byte in enumerate(data):
            sector[addr - base + i] &= byte
        self.ops.append(FlashOp("program", addr, bytes(data)))
