"""The partition table as ESP-IDF's second-stage bootloader reads and classifies it.

Sources (espressif/esp-idf, components/bootloader_support/src/):

* ``flash_partitions.c``: ``esp_partition_table_verify`` -- up to 96 records; ``0x50AA`` records
  must lie within the chip size (uint32 arithmetic), at most one ``0xEBEB`` MD5 record whose
  digest covers the records before it (a missing MD5 is accepted), the table ends at a record
  starting ``FF FF FF FF``; ``num_partitions = records - md5_found``.
* ``bootloader_utility.c``: ``bootloader_utility_load_partition_table`` fills
  ``bootloader_state_t`` (factory, test, ``ota[subtype & 0x0F]``, ``app_count``, ``ota_info``;
  the last record of a kind wins) and ``index_to_partition``.

The bootloader iterates the first ``num_partitions`` records, so with the MD5 record in the
middle of a table the MD5 record itself is iterated (as a record of type 0xFF) and the last real
record is dropped; :func:`read_partition_table` returns exactly those records.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from otaforge.errors import InputError, PartitionTableError
from otaforge.formats.partition_entry import ENTRY_MAGIC, ENTRY_SIZE
from otaforge.formats.partition_table import (
    APP_TYPE,
    DATA_TYPE,
    FACTORY,
    MAX_TABLE_LENGTH,
    MD5_MAGIC,
    MD5_PREFIX,
    NUM_OTA_SLOTS,
    OTA_0,
    OTA_DATA,
    TEST,
    PartitionEntry,
)

Reader = Callable[[int, int], bytes]
"""A flash reader: ``read(addr, n)`` -> up to ``n`` bytes (short reads count as erased 0xFF)."""

# bootloader_config.h
FACTORY_INDEX = -1
TEST_APP_INDEX = -2
INVALID_INDEX = -99

_ERASED_MAGIC = b"\xff\xff"


def read_partition_table(read: Reader, offset: int = 0x8000,
                         flash_size: int | None = None) -> tuple[PartitionEntry, ...]:
    """The partition records as the bootloader takes them (``esp_partition_table_verify``).

    Up to 96 records from ``offset``: 0x50AA entries (within ``flash_size`` when given), at most
    one 0xEBEB MD5 record whose digest covers the records before it (a missing MD5 is fine),
    ending at a record starting ``FF FF FF FF``. The first ``n - has_md5`` records are returned,
    as the bootloader iterates them.

    Raises:
        PartitionTableError: the bootloader's reason ("partition 3 invalid magic number 0x...").
    """
    raw = bytes(read(offset, MAX_TABLE_LENGTH))[:MAX_TABLE_LENGTH]
    raw = raw.ljust(MAX_TABLE_LENGTH, b"\xff")
    md5_found = 0
    records: list[PartitionEntry] = []
    for num in range(MAX_TABLE_LENGTH // ENTRY_SIZE):
        record = raw[num * ENTRY_SIZE : (num + 1) * ENTRY_SIZE]
        rec = PartitionEntry.from_bytes(record, strict=False)
        records.append(rec)
        magic = record[:2]
        if magic == ENTRY_MAGIC:
            end = rec.end & 0xFFFFFFFF  # uint32 sum, as in C
            if flash_size is not None and (rec.offset > flash_size or end > flash_size):
                raise PartitionTableError(
                    f"partition {num} invalid - offset 0x{rec.offset:x} size 0x{rec.size:x} "
                    f"exceeds flash chip size 0x{flash_size:x}")
        elif magic == MD5_MAGIC:
            if md5_found:
                raise PartitionTableError("Only one MD5 checksum is allowed")
            if hashlib.md5(raw[: num * ENTRY_SIZE]).digest() != record[len(MD5_PREFIX) :]:
                raise PartitionTableError("Incorrect MD5 checksum")
            md5_found = 1
        elif magic == _ERASED_MAGIC and rec.type == 0xFF and rec.subtype == 0xFF:
            return tuple(records[: num - md5_found])
        else:
            raise PartitionTableError(
                f"partition {num} invalid magic number 0x{int.from_bytes(magic, 'little'):x}")
    raise PartitionTableError("partition table has no terminating entry, not valid")


def require_partition_table(read: Reader, source: str,
                            offset: int = 0x8000) -> tuple[PartitionEntry, ...]:
    """The partition records of a flash that must hold a table (e.g. ``device run --flash``).

    Raises:
        InputError: garbage where the table belongs, or no table at all (erased flash),
            with what to do: make a flash with ``otaforge flash compose``.
    """
    hint = "make one with 'otaforge flash compose --partitions P.csv --factory app.bin -o FILE'"
    try:
        entries = read_partition_table(read, offset)
    except PartitionTableError as err:
        raise InputError(f"{source}: not a flash image: no valid partition table at "
                         f"0x{offset:x} ({err}); {hint}") from None
    if not entries:
        raise InputError(f"{source}: no partition table at 0x{offset:x} (erased or empty "
                         f"flash); {hint}")
    return entries


@dataclass(frozen=True)
class BootState:
    """``bootloader_state_t``: where factory, test, ota[N] and otadata are (last entry wins).

    ``app_count`` counts every app ota_N entry; ``ota`` is indexed by ``subtype & 0x0F``, so a
    table with a gap (ota_0, ota_2) has a missing slot 1 and an unreachable ota_2, as on a chip.
    """

    entries: tuple[PartitionEntry, ...]
    factory: PartitionEntry | None
    test: PartitionEntry | None
    ota: Mapping[int, PartitionEntry]
    app_count: int
    ota_info: PartitionEntry | None

    @classmethod
    def from_entries(cls, entries: tuple[PartitionEntry, ...]) -> BootState:
        """Classify records as ``bootloader_utility_load_partition_table`` does."""
        factory = test = ota_info = None
        ota: dict[int, PartitionEntry] = {}
        app_count = 0
        for part in entries:
            if part.type == APP_TYPE and part.subtype == FACTORY:
                factory = part
            elif part.type == APP_TYPE and part.subtype == TEST:
                test = part
            elif part.type == APP_TYPE and part.subtype & 0xF0 == OTA_0:
                ota[part.subtype & 0x0F] = part
                app_count += 1
            elif part.type == DATA_TYPE and part.subtype == OTA_DATA:
                ota_info = part
        return cls(entries, factory, test, ota, app_count, ota_info)

    @property
    def has_factory(self) -> bool:
        """``bs->factory.offset != 0``: how the bootloader asks "is there a factory app"."""
        return self.factory is not None and self.factory.offset != 0

    def partition_at(self, index: int) -> PartitionEntry | None:
        """``index_to_partition``: factory, test app, or OTA slot ``index`` (< app_count)."""
        if index == FACTORY_INDEX:
            return self.factory
        if index == TEST_APP_INDEX:
            return self.test
        if 0 <= index < NUM_OTA_SLOTS and index < self.app_count:
            return self.ota.get(index)
        return None

    def slot_of(self, part: PartitionEntry | None) -> int | None:
        """The OTA slot number ``part`` occupies, or None (factory, test, not an OTA slot)."""
        return next((i for i, p in self.ota.items() if p is part), None)


def index_name(index: int) -> str:
    """``log_invalid_app_partition``'s name for a boot index."""
    if index == FACTORY_INDEX:
        return "Factory app partition"
    if index == TEST_APP_INDEX:
        return "Factory test app partition"
    return f"OTA app partition slot {index}"
