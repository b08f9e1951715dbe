"""The otadata half of ``esp_ota_ops.c``: read both entries, rewrite one, pick the boot slot.

:class:`OtadataStore` writes otadata exactly as ``esp_ota_ops.c`` (v6.0+/master) does:
``rewrite_ota_seq`` erases the entry's 4 KiB sector, then programs the 32-byte entry;
``esp_rewrite_ota_data`` picks the sector and seq (``compute_ota_seq_for_target_slot``: the
active sector is rewritten in place when it already points at the target slot).
"""

from __future__ import annotations

from otaforge.device.esp_err import raise_esp
from otaforge.device.flash import SECTOR_SIZE, Flash
from otaforge.device.ota_partitions import OtaPartitions, slot_of
from otaforge.errors import EspError
from otaforge.formats.otadata import (
    SEQ_UNUSED,
    OtaImgState,
    OtaSelectEntry,
    active_otadata,
    read_otadata,
    select_otadata,
)
from otaforge.formats.partition_table import OTA_0, PartitionEntry

_U32 = 0xFFFFFFFF

Otadata = tuple[PartitionEntry, list[OtaSelectEntry]]
"""The otadata partition and its two entries (sector 0, sector 1)."""


class OtadataStore:
    """Both otadata entries on flash, read and rewritten as ``esp_ota_ops.c`` does.

    Args:
        flash: the device flash.
        partitions: the app's partition table.
        rollback: ``CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE`` (new entries NEW, not UNDEFINED).
    """

    __slots__ = ("flash", "partitions", "rollback")

    def __init__(self, flash: Flash, partitions: OtaPartitions, rollback: bool) -> None:
        self.flash = flash
        self.partitions = partitions
        self.rollback = rollback

    def read(self) -> Otadata | None:
        """The otadata partition and both entries; None without an otadata partition."""
        part = self.partitions.otadata()
        if part is None:
            return None
        raw = self.flash.read(part.offset, 2 * SECTOR_SIZE)
        return part, list(read_otadata(raw))

    def rewrite(self, otadata: PartitionEntry, entries: list[OtaSelectEntry], seq: int,
                sec_id: int) -> None:
        """``rewrite_ota_seq``: entry ``sec_id`` gets ``seq``; erase its sector, program it."""
        entries[sec_id] = entries[sec_id].with_seq(seq)
        addr = otadata.offset + sec_id * SECTOR_SIZE
        self.flash.erase_sector(addr)
        self.flash.program(addr, entries[sec_id].to_bytes())

    def state_of(self, partition: PartitionEntry | None) -> int:
        """``esp_ota_get_state_partition``: the state of the first entry mapping to the slot.

        Raises:
            EspError: INVALID_ARG, NOT_SUPPORTED (not an OTA slot), NOT_FOUND (no entry).
        """
        if partition is None:
            raise_esp("ESP_ERR_INVALID_ARG", "partition is NULL")
        if not partition.is_ota_slot:
            raise_esp("ESP_ERR_NOT_SUPPORTED", f"{partition.name} is not an OTA app partition")
        count = self.partitions.app_count()
        read = self.read()
        if read is None or count == 0:
            raise_esp("ESP_ERR_NOT_FOUND", "no otadata or no OTA app partitions")
        for entry in read[1]:
            if slot_of(entry.ota_seq, count) == partition.subtype - OTA_0 and entry.crc_ok:
                return entry.ota_state
        raise_esp("ESP_ERR_NOT_FOUND", f"no otadata entry for {partition.name}")

    def running_state(self) -> int | None:
        """The running OTA slot's state; None for factory/test or without an entry."""
        running = self.partitions.running
        if running is None or not running.is_ota_slot:
            return None
        try:
            return self.state_of(running)
        except EspError:  # ESP_ERR_NOT_FOUND: no entry, nothing to refuse on
            return None

    def select_slot(self, subtype: int) -> None:
        """``esp_rewrite_ota_data``: the next boot takes OTA slot ``subtype & 0x0F``.

        Raises:
            EspError: NOT_FOUND (no otadata), INVALID_ARG (slot past the app count).
        """
        read = self.read()
        if read is None:
            raise_esp("ESP_ERR_NOT_FOUND", "not found otadata")
        otadata, entries = read
        count = self.partitions.app_count()
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
        new_state = OtaImgState.NEW if self.rollback else OtaImgState.UNDEFINED
        entries[target] = entries[target].with_state(new_state)
        self.rewrite(otadata, entries, seq, target)

    def erase_all(self) -> None:
        """Erase the whole otadata partition (the next boot takes the factory app).

        Raises:
            EspError: NOT_FOUND (no otadata).
        """
        otadata = self.partitions.otadata()
        if otadata is None:
            raise_esp("ESP_ERR_NOT_FOUND", "not found otadata")
        self.flash.erase_range(otadata.offset, otadata.size)

    def boot_partition(self) -> PartitionEntry | None:
        """``esp_ota_get_boot_partition``: what otadata selects (None without otadata)."""
        read = self.read()
        if read is None:
            return None
        _, entries = read
        parts = self.partitions
        count = parts.app_count()
        if (entries[0].is_invalid() and entries[1].is_invalid()) or count == 0:
            return parts.default_boot()
        active = active_otadata(entries)
        if active is None:
            return parts.default_boot()
        return parts.slot(slot_of(entries[active].ota_seq, count))

    def last_invalid_slot(self) -> PartitionEntry | None:
        """The slot of the INVALID/ABORTED entry (lower seq if two), image not checked."""
        read = self.read()
        if read is None:
            return None
        entries = read[1]
        flags = [e.ota_seq != SEQ_UNUSED and e.crc_ok and
                 e.ota_state in (OtaImgState.INVALID, OtaImgState.ABORTED) for e in entries]
        index = select_otadata(entries, flags[0], flags[1], False)
        count = self.partitions.app_count()
        if index is None or count == 0:
            return None
        return self.partitions.slot(slot_of(entries[index].ota_seq, count))

    def erase_last_boot(self, skip_app_erase: bool) -> None:
        """``esp_ota_erase_last_boot_app_partition`` (erase the previous app and its entry's
        sector) or, with ``skip_app_erase``, only the inactive entry's sector.

        Raises:
            EspError: ESP_FAIL when there is no previous app other than the running one.
        """
        read = self.read()
        if read is None:
            raise_esp("ESP_FAIL", "not found otadata")
        otadata, entries = read
        active = active_otadata(entries)
        count = self.partitions.app_count()
        if active is None or count == 0:
            raise_esp("ESP_FAIL", "no active otadata entry")
        inactive = 1 - active
        entry = entries[inactive]
        if entry.ota_seq == SEQ_UNUSED or not entry.crc_ok:
            raise_esp("ESP_FAIL", "no previous app in otadata")
        part = self.partitions.slot(slot_of(entry.ota_seq, count))
        running = self.partitions.running
        if part is None or running is None or part == running:
            raise_esp("ESP_FAIL", "the last boot app partition is the running one")
        if not skip_app_erase:
            self.flash.erase_range(part.offset, part.size)
        self.flash.erase_sector(otadata.offset + inactive * SECTOR_SIZE)
