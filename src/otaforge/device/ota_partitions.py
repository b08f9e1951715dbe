"""The partition queries of ``esp_ota_ops.c``: OTA slots, their count, the next update slot.

:class:`OtaPartitions` is the app's view of its partition table (read from flash at boot) and
of the partition it runs from; every other part of :class:`~otaforge.device.ota_ops.OtaOps`
asks it which partition is which.
"""

from __future__ import annotations

from otaforge.device.esp_err import raise_esp
from otaforge.device.flash import Flash
from otaforge.formats.app_desc import APP_DESC_MAGIC, APP_DESC_OFFSET, APP_DESC_SIZE, AppDesc
from otaforge.formats.otadata import slot_for_seq
from otaforge.formats.partition_table import (
    APP_TYPE,
    FACTORY,
    NUM_OTA_SLOTS,
    OTA_0,
    TEST,
    PartitionEntry,
    PartitionTable,
)

slot_of = slot_for_seq  # ``(ota_seq - 1) % ota_app_count`` in uint32 arithmetic


def read_partition_desc(flash: Flash, part: PartitionEntry) -> AppDesc | None:
    """The app description at offset 0x20 of ``part``, or None without the desc magic."""
    raw = flash.read(part.offset + APP_DESC_OFFSET, APP_DESC_SIZE)
    desc = AppDesc.from_bytes(raw, check_magic=False)
    return desc if desc.magic_word == APP_DESC_MAGIC else None


def partition_description(flash: Flash, partition: PartitionEntry | None) -> AppDesc:
    """``esp_ota_get_partition_description``: the ``esp_app_desc_t`` of an app partition.

    Raises:
        EspError: INVALID_ARG (NULL), NOT_SUPPORTED (not an app), NOT_FOUND (no desc magic).
    """
    if partition is None:
        raise_esp("ESP_ERR_INVALID_ARG", "partition is NULL")
    if partition.type != APP_TYPE:
        raise_esp("ESP_ERR_NOT_SUPPORTED", f"{partition.name} is not an app partition")
    desc = read_partition_desc(flash, partition)
    if desc is None:
        raise_esp("ESP_ERR_NOT_FOUND", f"{partition.name}: no app description")
    return desc


class OtaPartitions:
    """The partition table the app was built with and the partition it runs from.

    Args:
        table: the partition table (read from flash at boot).
        running: the partition the current app runs from (None: no app runs).
    """

    __slots__ = ("running", "table")

    def __init__(self, table: PartitionTable, running: PartitionEntry | None) -> None:
        self.table = table
        self.running = running

    def find(self, ptype: int, subtype: int) -> PartitionEntry | None:
        """The partition of that type and subtype, if any."""
        return self.table.find_by_type(ptype, subtype)

    def app_count(self) -> int:
        """``esp_ota_get_app_partition_count``: ota_N counted from ota_0 while they exist."""
        count = 0
        while count < NUM_OTA_SLOTS and self.find(APP_TYPE, OTA_0 + count) is not None:
            count += 1
        return count

    def slot(self, index: int) -> PartitionEntry | None:
        """The ota_<index> partition, if any."""
        return self.find(APP_TYPE, OTA_0 + index)

    def otadata(self) -> PartitionEntry | None:
        """The data/ota partition, if any."""
        return self.table.otadata()

    def verify(self, part: PartitionEntry | None) -> PartitionEntry:
        """``esp_partition_verify``: ``part`` itself when it is in the table.

        Raises:
            EspError: INVALID_ARG (NULL), NOT_FOUND (not in the table).
        """
        if part is None:
            raise_esp("ESP_ERR_INVALID_ARG", "partition is NULL")
        if part not in self.table.entries:
            raise_esp("ESP_ERR_NOT_FOUND", f"partition {part.name!r} is not in the table")
        return part

    def default_boot(self) -> PartitionEntry | None:
        """``find_default_boot_partition``: factory, else the first OTA slot, else test."""
        factory = self.find(APP_TYPE, FACTORY)
        if factory is not None:
            return factory
        for i in range(NUM_OTA_SLOTS):
            part = self.slot(i)
            if part is not None:
                return part
        return self.find(APP_TYPE, TEST)

    def next_update(self, start: PartitionEntry | None) -> PartitionEntry | None:
        """The OTA slot after ``start`` (default: the running partition) in subtype order,
        else the first OTA slot (``esp_ota_get_next_update_partition``)."""
        if start is None:
            start = self.running
        default: PartitionEntry | None = None
        next_is_result = False
        for i in range(NUM_OTA_SLOTS):
            part = self.slot(i)
            if part is None:
                continue
            if default is None:
                default = part
            if part == start:
                next_is_result = True
            elif next_is_result:
                return part
        return default
