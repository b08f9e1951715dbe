"""One ESP-IDF partition table record: ``esp_partition_info_t``, 32 bytes.

Sources: espressif/esp-idf components/bootloader_support/include/esp_flash_partitions.h
(``esp_partition_info_t``), components/partition_table/gen_esp32part.py
(``PartitionDefinition.to_binary``/``from_binary``/``verify``). The table that holds these
records is :class:`otaforge.formats.partition_table.PartitionTable`.
"""

from __future__ import annotations

import struct

from otaforge.errors import BadMagicError, PartitionTableError
from otaforge.formats._binary import unpack_from
from otaforge.formats.partition_csv import (
    APP_TYPE,
    COREDUMP,
    DATA_TYPE,
    FLAG_NAMES,
    NUM_OTA_SLOTS,
    NVS,
    NVS_RW_MIN_SIZE,
    OTA_0,
    OTA_DATA,
    SUBTYPES,
    TYPES,
    csv_row_text,
    gen_says,
    hx,
    keyword_for,
    offset_alignment,
    size_alignment,
)
from otaforge.formats.record import field, record

__all__ = ["ENTRY_MAGIC", "ENTRY_SIZE", "FLAG_ENCRYPTED", "FLAG_READONLY", "PartitionEntry",
           "verify_entry"]

ENTRY_SIZE = 32
ENTRY_MAGIC = b"\xaa\x50"
FLAG_ENCRYPTED = 0x1
FLAG_READONLY = 0x2

# esp_partition_info_t: magic, type, subtype, offset, size, label[16], flags
_ENTRY = struct.Struct("<2sBBII16sI")
assert _ENTRY.size == ENTRY_SIZE


@record
class PartitionEntry:
    """One ``esp_partition_info_t`` record.

    Attributes:
        name: the label (at most 16 bytes are stored; longer names are cut, as gen_esp32part does).
        type: 0 app, 1 data, 2 bootloader, 3 partition_table, 0x40-0xFE custom.
        subtype: meaning depends on ``type`` (see :data:`SUBTYPES`).
        offset: absolute flash address.
        size: bytes.
        encrypted: flags bit 0.
        readonly: flags bit 1.
        line: CSV line the entry came from (not part of equality).
    """

    name: str
    type: int
    subtype: int
    offset: int
    size: int
    encrypted: bool = False
    readonly: bool = False
    line: int | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_bytes(cls, b: bytes, *, strict: bool = True) -> PartitionEntry:
        """Decode a 32-byte record (unknown flag bits are dropped, as gen_esp32part does).

        Args:
            b: the record.
            strict: gen_esp32part's reading (magic checked, label must be UTF-8). False is the
                bootloader's: the fields are taken as they are (the caller classifies the
                record by its magic) and a non-UTF-8 label is decoded with replacement.

        Raises:
            TruncatedError: fewer than 32 bytes. BadMagicError: not ``AA 50`` (strict).
            PartitionTableError: the label is not UTF-8 (strict).
        """
        magic, ptype, subtype, offset, size, label, flags = unpack_from(
            _ENTRY, b, 0, "partition entry")
        if not strict:
            return cls(label.split(b"\x00", 1)[0].decode("utf-8", errors="replace"), ptype,
                       subtype, offset, size, bool(flags & FLAG_ENCRYPTED),
                       bool(flags & FLAG_READONLY))
        if magic != ENTRY_MAGIC:
            raise BadMagicError(
                f"partition entry has magic {magic.hex(' ')}, expected aa 50 "
                "(not a partition table, or the wrong offset?)")
        raw = label.split(b"\x00", 1)[0]
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise PartitionTableError(
                f"partition label {raw!r} at offset {hx(offset)} is not valid UTF-8") from None
        return cls(name, ptype, subtype, offset, size,
                   bool(flags & FLAG_ENCRYPTED), bool(flags & FLAG_READONLY))

    def to_bytes(self) -> bytes:
        """Encode as 32 bytes (label UTF-8, cut to 16 bytes).

        Raises:
            PartitionTableError: a field does not fit its binary width.
        """
        for what, value, top in (("type", self.type, 0xFF), ("subtype", self.subtype, 0xFF),
                                 ("offset", self.offset, 0xFFFFFFFF),
                                 ("size", self.size, 0xFFFFFFFF)):
            if not 0 <= value <= top:
                raise PartitionTableError(
                    f"partition {self.name!r}: {what} {hx(value)} does not fit the binary table "
                    f"(0..{hx(top)})", line=self.line)
        flags = (FLAG_ENCRYPTED if self.encrypted else 0) | (FLAG_READONLY if self.readonly else 0)
        return _ENTRY.pack(ENTRY_MAGIC, self.type, self.subtype, self.offset, self.size,
                           self.name.encode("utf-8"), flags)

    @property
    def end(self) -> int:
        """First address after the partition."""
        return self.offset + self.size

    @property
    def is_app(self) -> bool:
        """Type app (0x00)."""
        return self.type == APP_TYPE

    @property
    def is_ota_slot(self) -> bool:
        """An ``ota_N`` app slot (subtype 0x10..0x1F)."""
        return self.type == APP_TYPE and OTA_0 <= self.subtype < OTA_0 + NUM_OTA_SLOTS

    @property
    def ota_index(self) -> int | None:
        """N of an ``ota_N`` slot, else None."""
        return self.subtype - OTA_0 if self.is_ota_slot else None

    @property
    def type_name(self) -> str:
        """CSV keyword of the type (``app``), or its decimal number for custom types."""
        return keyword_for(self.type, TYPES)

    @property
    def subtype_name(self) -> str:
        """CSV keyword of the subtype (``ota_0``), or its decimal number."""
        return keyword_for(self.subtype, SUBTYPES.get(self.type, {}))

    @property
    def flag_names(self) -> list[str]:
        """Set flags in CSV order (``encrypted``, ``readonly``)."""
        set_flags = {"encrypted": self.encrypted, "readonly": self.readonly}
        return [name for name in FLAG_NAMES if set_flags[name]]

    def to_csv(self) -> str:
        """One CSV line as gen_esp32part writes it (no newline)."""
        return csv_row_text(self.name, self.type, self.subtype, self.offset, self.size,
                            self.flag_names)

    def describe(self) -> str:
        """``'name' (0xstart-0xend)`` for messages."""
        return f"{self.name!r} ({hx(self.offset)}-{hx(self.end)})"


def verify_entry(p: PartitionEntry, secure: str | None) -> None:
    """gen_esp32part ``PartitionDefinition.verify``: alignment and flag rules of one entry.

    Args:
        p: the entry.
        secure: "v1" or "v2" (``--secure``): app size alignment.

    Raises:
        PartitionTableError: the first rule broken, naming the partition and its line.
    """
    align = offset_alignment(p.type)
    what = f"partition {p.name!r}"
    invalid = f"Partition {p.name} invalid: "  # gen_esp32part's ValidationError prefix
    kind = f"'{p.name}' partition of type {p.type} and subtype {p.subtype}"
    if p.offset % align:
        raise PartitionTableError(
            f"{what}: offset {hx(p.offset)} is not aligned to {hx(align)}"
            f"{' (app partitions start on a 64 KiB boundary)' if p.is_app else ''}"
            + gen_says(f"{invalid}Offset {hx(p.offset)} is not aligned to {hx(align)}"),
            line=p.line)
    size_align = size_alignment(p.type, secure)
    if p.is_app and p.size % size_align:
        raise PartitionTableError(
            f"{what}: size {hx(p.size)} is not aligned to {hx(size_align)}"
            + gen_says(f"{invalid}Size {hx(p.size)} is not aligned to {hx(size_align)}"),
            line=p.line)
    if p.type == DATA_TYPE and p.subtype in (OTA_DATA, COREDUMP) and p.readonly:
        raise PartitionTableError(
            f"{what}: data/{p.subtype_name} partitions are always read-write and cannot be "
            "flagged readonly"
            + gen_says(f"{invalid}{kind} is always read-write and cannot be read-only"),
            line=p.line)
    if p.type == DATA_TYPE and p.subtype == NVS and p.size < NVS_RW_MIN_SIZE and not p.readonly:
        raise PartitionTableError(
            f"{what}: an NVS partition of size {hx(p.size)} must be flagged 'readonly' "
            f"(read/write NVS needs at least {hx(NVS_RW_MIN_SIZE)})"
            + gen_says(f"{invalid}{kind} of this size ({hx(p.size)}) must be flagged as "
                       f"'readonly' (the size of read/write NVS has to be at least "
                       f"{hx(NVS_RW_MIN_SIZE)})"), line=p.line)
