"""ESP-IDF partition tables: the binary at 0x8000 and its CSV, as ``gen_esp32part.py`` makes them.

Sources: espressif/esp-idf components/partition_table/gen_esp32part.py (master, version 1.5),
components/bootloader_support/include/esp_flash_partitions.h (``esp_partition_info_t``).

Binary layout: one 32-byte ``esp_partition_info_t`` per partition (magic ``AA 50``, type,
subtype, offset, size, 16-byte label, flags), then the MD5 record (``EB EB``, 14 x ``FF``, MD5 of
all preceding records), then 0xFF up to 0xC00 bytes. :meth:`PartitionTable.verify` applies
gen_esp32part's table rules in its order. One record is :mod:`partition_entry`
(:class:`PartitionEntry`, re-exported here); CSV text handling lives in :mod:`partition_csv`;
the OTA layout checks beyond gen_esp32part live in :mod:`ota_layout`.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable

from otaforge.errors import (
    BadMagicError,
    ChecksumMismatch,
    InputError,
    PartitionTableError,
    TruncatedError,
)
from otaforge.formats.partition_csv import (
    APP_TYPE,
    BOOTLOADER_TYPE,
    COREDUMP,
    CSV_HEADER,
    DATA_TYPE,
    DEFAULT_TABLE_OFFSET,
    EFUSE,
    ESPHTTPD,
    FACTORY,
    FAT,
    LITTLEFS,
    NUM_OTA_SLOTS,
    NVS,
    NVS_KEYS,
    OTA_0,
    OTA_DATA,
    PARTITION_TABLE_TYPE,
    PHY,
    PRIMARY,
    SPIFFS,
    SUBTYPES,
    TEE_OTA,
    TEST,
    TYPES,
    UNDEFINED,
    CsvOptions,
    decode_text,
    format_size,
    gen_says,
    hx,
    keyword_for,
    parse_csv,
)
from otaforge.formats.partition_entry import (
    ENTRY_MAGIC,
    ENTRY_SIZE,
    FLAG_ENCRYPTED,
    FLAG_READONLY,
    PartitionEntry,
    verify_entry,
)
from otaforge.formats.record import record
from otaforge.formats.sector import OTADATA_SIZE, SECTOR_SIZE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from hashlib import md5 as _md5
else:
    try:  # the builtin MD5: importing hashlib loads OpenSSL (~2 ms) for a 3 KB table
        from _md5 import md5 as _md5
    except ImportError:  # a Python built without it
        from hashlib import md5 as _md5

__all__ = [
    "APP_TYPE", "BOOTLOADER_TYPE", "COREDUMP", "DATA_TYPE", "DEFAULT_TABLE_OFFSET", "EFUSE",
    "ESPHTTPD", "FACTORY", "FAT", "LITTLEFS", "NUM_OTA_SLOTS", "NVS", "NVS_KEYS", "OTADATA_SIZE",
    "OTA_0", "OTA_DATA", "PARTITION_TABLE_TYPE", "PHY", "SPIFFS", "SUBTYPES", "TEE_OTA", "TEST",
    "TYPES", "UNDEFINED", "Conversion", "PartitionEntry", "PartitionTable", "convert_table",
    "is_binary_table", "load_partition_table", "parse_flash_size", "table_warnings",
]

MAX_TABLE_LENGTH = 0xC00  # the entries area of the sector; the rest is for a signature
MD5_MAGIC = b"\xeb\xeb"
MD5_PREFIX = MD5_MAGIC + b"\xff" * 14
END_MARKER = b"\xff" * ENTRY_SIZE


def _is_primary_fixed(p: PartitionEntry) -> bool:
    return p.type in (BOOTLOADER_TYPE, PARTITION_TABLE_TYPE) and p.subtype == PRIMARY


@record
class PartitionTable:
    """A partition table: entries in table (= CSV file) order; never sorted."""

    entries: tuple[PartitionEntry, ...]

    # --- binary -------------------------------------------------------------------------

    @classmethod
    def from_bytes(cls, data: bytes, *, md5: bool = True) -> PartitionTable:
        """Parse a binary table as gen_esp32part does (stops at the all-0xFF record).

        Raises:
            TruncatedError: no end marker, or a partial record before it.
            ChecksumMismatch: an MD5 record does not match the records before it.
            BadMagicError / PartitionTableError: a malformed record.
        """
        digest = _md5()
        entries: list[PartitionEntry] = []
        for pos in range(0, len(data), ENTRY_SIZE):
            record = data[pos:pos + ENTRY_SIZE]
            if len(record) != ENTRY_SIZE:
                raise TruncatedError(
                    f"partition table: record at {hx(pos)} has only {len(record)} bytes "
                    "(the table length must be a multiple of 32 and end with an all-0xFF record)"
                    + gen_says("Partition table length must be a multiple of 32 bytes"))
            if record == END_MARKER:
                return cls(tuple(entries))
            if md5 and record[:2] == MD5_MAGIC:
                if record[16:] != digest.digest():
                    raise ChecksumMismatch(
                        f"partition table MD5 mismatch at {hx(pos)}: computed "
                        f"{digest.hexdigest()}, stored {record[16:].hex()}"
                        + gen_says(f"MD5 checksums don't match! (computed: 0x{digest.hexdigest()}"
                                   f", parsed: 0x{binascii.hexlify(record[16:])!s})"))
                continue
            digest.update(record)
            try:
                entries.append(PartitionEntry.from_bytes(record))
            except BadMagicError as err:
                raise BadMagicError(
                    f"partition table record at {hx(pos)}: {err}"
                    + gen_says(f"Invalid magic bytes ({record[:2]!r}) for partition definition")
                ) from None
        raise TruncatedError(
            f"partition table ({len(data)} bytes) is missing its end-of-table marker "
            "(an all-0xFF record)" + gen_says("Partition table is missing an end-of-table marker"))

    def to_bytes(self, *, md5: bool = True) -> bytes:
        """The 0xC00-byte binary: records, MD5 record, 0xFF padding (gen_esp32part ``to_binary``).

        Raises:
            PartitionTableError: a value does not fit, or too many partitions for 0xC00 bytes.
        """
        body = b"".join(e.to_bytes() for e in self.entries)
        if md5:
            body += MD5_PREFIX + _md5(body).digest()
        if len(body) >= MAX_TABLE_LENGTH:
            most = (MAX_TABLE_LENGTH - 1) // ENTRY_SIZE - (1 if md5 else 0)
            raise PartitionTableError(
                f"{len(self.entries)} partitions make a {len(body)}-byte binary table; it must be "
                f"shorter than {hx(MAX_TABLE_LENGTH)} bytes (at most {most} partitions)"
                + gen_says(f"Binary partition table length ({len(body)}) longer than max"))
        return body + b"\xff" * (MAX_TABLE_LENGTH - len(body))

    # --- CSV ----------------------------------------------------------------------------

    @classmethod
    def from_csv(cls, text: str, offset: int = DEFAULT_TABLE_OFFSET, *,
                 primary_bootloader_offset: int | None = None,
                 recovery_bootloader_offset: int | None = None) -> PartitionTable:
        """Parse CSV text; empty offsets are placed as gen_esp32part places them. No verify.

        Args:
            text: the CSV.
            offset: flash offset of the partition table (``--offset``).
            primary_bootloader_offset: where the primary bootloader is (``bootloader`` entries).
            recovery_bootloader_offset: for ``bootloader, recovery`` partitions.

        Raises:
            PartitionTableError: naming the line and the rule.
        """
        opts = CsvOptions(offset, primary_bootloader_offset, recovery_bootloader_offset)
        rows = parse_csv(text, opts)
        return cls(tuple(
            PartitionEntry(r.name, r.type, r.subtype, r.offset if r.offset is not None else 0,
                           r.size, r.encrypted, r.readonly, line=r.line) for r in rows))

    def to_csv(self) -> str:
        """CSV text exactly as gen_esp32part writes it for a binary input."""
        return CSV_HEADER + "".join(e.to_csv() + "\n" for e in self.entries)

    # --- rules --------------------------------------------------------------------------

    def verify(self, flash_size: int | None = None, *, table_offset: int = DEFAULT_TABLE_OFFSET,
               secure: str | None = None) -> None:
        """gen_esp32part's checks in its order: each partition, names, overlaps, otadata, flash.

        Args:
            flash_size: flash size in bytes (``--flash-size``); None skips the fit check.
            table_offset: where the table itself lives (``--offset``).
            secure: "v1" or "v2" (``--secure``): app size alignment.

        Raises:
            PartitionTableError: the first rule broken, naming the partition and its line.
        """
        for p in self.entries:
            verify_entry(p, secure)
        self._verify_names()
        self._verify_layout(table_offset)
        for subtype, what, code in ((OTA_DATA, "otadata", "0"), (TEE_OTA, "TEE otadata", "0x90")):
            found = [p for p in self.entries if p.type == DATA_TYPE and p.subtype == subtype]
            keyword = keyword_for(subtype, SUBTYPES[DATA_TYPE])
            if len(found) > 1:
                raise PartitionTableError(
                    f"found multiple {what} partitions ({_names(found)}); only one partition "
                    f"can have type data and subtype {keyword}"
                    + gen_says(f"Found multiple {what} partitions. Only one partition can be "
                               f'defined with type="data"(1) and subtype="{keyword}"({code}).'),
                    line=found[1].line)
            if found and found[0].size != OTADATA_SIZE:
                raise PartitionTableError(
                    f"{what} partition {found[0].name!r} has size {hx(found[0].size)}; "
                    f"it must be {hx(OTADATA_SIZE)}"
                    + gen_says(f"{what} partition must have size = {hx(OTADATA_SIZE)}"),
                    line=found[0].line)
        if flash_size is not None:
            self.verify_fits(flash_size)

    def _verify_names(self) -> None:
        seen: dict[str, PartitionEntry] = {}
        for p in self.entries:
            if p.name in seen:
                other = seen[p.name].line
                where = f" (also on line {other})" if other is not None else ""
                raise PartitionTableError(
                    f"partition name {p.name!r} is used twice{where}"
                    + gen_says("Partition names must be unique"), line=p.line)
            seen[p.name] = p

    def _verify_layout(self, table_offset: int) -> None:
        first_free = table_offset + SECTOR_SIZE
        last: PartitionEntry | None = None
        for p in sorted(self.entries, key=lambda e: e.offset):
            if p.offset < first_free and not _is_primary_fixed(p):
                raise PartitionTableError(
                    f"partition {p.name!r} offset {hx(p.offset)} is below {hx(first_free)}, the "
                    f"end of the partition table sector at {hx(table_offset)}"
                    + gen_says(f"Partition offset {hx(p.offset)} is below {hx(first_free)}"),
                    line=p.line)
            if last is not None and p.offset < last.end:
                raise PartitionTableError(
                    f"partition {p.name!r} at offset {hx(p.offset)} overlaps {last.describe()}"
                    + gen_says(f"Partition at {hx(p.offset)} overlaps "
                               f"{hx(last.offset)}-{hx(last.end - 1)}"), line=p.line)
            last = p

    def verify_fits(self, flash_size: int) -> None:
        """The ``--flash-size`` check: the partition with the highest offset must end in flash."""
        last = self.highest()
        if last is not None and last.end > flash_size:
            mb = 0x100000
            raise PartitionTableError(
                f"partitions occupy {last.end / mb:.1f}MB of flash ({last.end} bytes), "
                f"which does not fit in a {format_size(flash_size)}B flash: partition "
                f"{last.name!r} ends at {hx(last.end)}"
                + gen_says(f"Partitions tables occupies {last.end / mb:.1f}MB of flash "
                           f"({last.end} bytes) which does not fit in configured flash size "
                           f"{int(flash_size / mb)}MB. Change the flash size in menuconfig under "
                           "the 'Serial Flasher Config' menu."), line=last.line)

    # --- queries ------------------------------------------------------------------------

    def highest(self) -> PartitionEntry | None:
        """The partition with the highest offset (first in table order on a tie)."""
        best: PartitionEntry | None = None
        for p in self.entries:
            if best is None or p.offset > best.offset:
                best = p
        return best

    def flash_end(self) -> int:
        """End of the highest partition (gen_esp32part ``flash_size()``); 0 if empty."""
        last = self.highest()
        return 0 if last is None else last.end

    def find(self, name: str) -> PartitionEntry | None:
        """The first partition labelled ``name``."""
        return next((p for p in self.entries if p.name == name), None)

    def find_by_type(self, ptype: int, subtype: int) -> PartitionEntry | None:
        """The first partition of this type and subtype (as esp_partition_find_first)."""
        return next((p for p in self.entries if p.type == ptype and p.subtype == subtype), None)

    def ota_slots(self) -> list[PartitionEntry]:
        """App ``ota_N`` partitions sorted by subtype (then table order)."""
        return sorted((p for p in self.entries if p.is_ota_slot), key=lambda p: p.subtype)

    def factory(self) -> PartitionEntry | None:
        """The app/factory partition."""
        return self.find_by_type(APP_TYPE, FACTORY)

    def test_app(self) -> PartitionEntry | None:
        """The app/test partition."""
        return self.find_by_type(APP_TYPE, TEST)

    def otadata(self) -> PartitionEntry | None:
        """The data/ota (otadata) partition."""
        return self.find_by_type(DATA_TYPE, OTA_DATA)

    def app_partitions(self) -> list[PartitionEntry]:
        """Every app partition, in table order."""
        return [p for p in self.entries if p.is_app]


def _names(entries: Iterable[PartitionEntry]) -> str:
    return ", ".join(repr(p.name) for p in entries)


def is_binary_table(data: bytes) -> bool:
    """gen_esp32part's test: binary when the first two bytes are the entry magic ``AA 50``."""
    return data[:2] == ENTRY_MAGIC


def load_partition_table(data: bytes, offset: int = DEFAULT_TABLE_OFFSET, *,
                         primary_bootloader_offset: int | None = None,
                         recovery_bootloader_offset: int | None = None) -> PartitionTable:
    """Parse a binary table or CSV text, decided by content as gen_esp32part decides."""
    if is_binary_table(data):
        return PartitionTable.from_bytes(data)
    return PartitionTable.from_csv(
        decode_text(data), offset, primary_bootloader_offset=primary_bootloader_offset,
        recovery_bootloader_offset=recovery_bootloader_offset)


class Conversion:
    """Result of :func:`convert_table`: the table, the output bytes, what they are, warnings."""

    __slots__ = ("output", "output_kind", "table", "warnings")

    def __init__(self, table: PartitionTable, output: bytes, output_kind: str,
                 warnings: list[str] | None = None) -> None:
        self.table = table
        self.output = output
        self.output_kind = output_kind  # "binary" or "csv"
        self.warnings = warnings or []


def table_warnings(table: PartitionTable) -> list[str]:
    """gen_esp32part's verify warnings: a name that is a type or subtype keyword of another kind.

    ``ota_0, app, ota_1`` is accepted, but is almost always a typo that makes the label and the
    slot disagree. Also warns about a table without partitions (gen_esp32part accepts it).
    """
    out: list[str] = []
    all_subtypes = {name for names in SUBTYPES.values() for name in names}
    for p in table.entries:
        where = f"line {p.line}: " if p.line is not None else ""
        if p.name in TYPES and TYPES[p.name] != p.type:
            out.append(f"{where}partition {p.name!r} is named like the partition type "
                       f"{p.name!r} but has type {p.type_name}: mistake in the partition table?"
                       + gen_says(f"Partition has name '{p.name}' which is a partition type, but "
                                  f"does not match this partition's type (0x{p.type:x}). "
                                  "Mistake in partition table?"))
        if p.name in all_subtypes and SUBTYPES.get(p.type, {}).get(p.name) != p.subtype:
            out.append(f"{where}partition {p.name!r} is named like the subtype {p.name!r} but is "
                       f"{p.type_name}/{p.subtype_name}: mistake in the partition table?"
                       + gen_says(f"Partition has name '{p.name}' which is a partition subtype, "
                                  f"but this partition has non-matching type 0x{p.type:x} and "
                                  f"subtype 0x{p.subtype:x}. Mistake in partition table?"))
    if not table.entries:
        out.append("the table has no partitions (an empty CSV, or the wrong file?)")
    return out


def _unknown_flag_warnings(data: bytes) -> list[str]:
    """gen_esp32part's "unknown flag(s)" warning for each record of a binary table."""
    out = []
    for pos in range(0, len(data) - ENTRY_SIZE + 1, ENTRY_SIZE):
        record = data[pos:pos + ENTRY_SIZE]
        if record[:2] != ENTRY_MAGIC:
            break
        unknown = int.from_bytes(record[28:32], "little") & ~(FLAG_ENCRYPTED | FLAG_READONLY)
        if unknown:
            out.append(f"partition table record at {hx(pos)} has unknown flag bit(s) "
                       f"0x{unknown:08x} (a newer binary format?); they are dropped"
                       + gen_says(f"Partition definition had unknown flag(s) 0x{unknown:08x}. "
                                  "Newer binary format?"))
    return out


def convert_table(data: bytes, *, flash_size: int | None = None,
                  offset: int = DEFAULT_TABLE_OFFSET,
                  primary_bootloader_offset: int | None = None,
                  recovery_bootloader_offset: int | None = None,
                  secure: str | None = None, md5: bool = True) -> Conversion:
    """CSV -> binary or binary -> CSV, with gen_esp32part's checks (its ``main``).

    Raises:
        InputError: bad options. FormatError subclasses: the input breaks a rule.
    """
    if primary_bootloader_offset is not None and primary_bootloader_offset >= offset:
        raise InputError(
            f"primary bootloader offset {hx(primary_bootloader_offset)} must be below the "
            f"partition table offset {hx(offset)}"
            + gen_says("Unsupported configuration. Primary bootloader must be below partition "
                       f"table. Check --primary-bootloader-offset={primary_bootloader_offset:#x} "
                       f"and --offset={offset:#x}"))
    if is_binary_table(data):
        table = PartitionTable.from_bytes(data, md5=md5)
    else:
        table = PartitionTable.from_csv(
            decode_text(data), offset, primary_bootloader_offset=primary_bootloader_offset,
            recovery_bootloader_offset=recovery_bootloader_offset)
    table.verify(flash_size, table_offset=offset, secure=secure)
    warnings = table_warnings(table)
    if is_binary_table(data):
        warnings = _unknown_flag_warnings(data) + warnings
        return Conversion(table, table.to_csv().encode("utf-8"), "csv", warnings)
    return Conversion(table, table.to_bytes(md5=md5), "binary", warnings)


_FLASH_UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1024, "KIB": 1024, "M": 0x100000, "MB": 0x100000,
                "MIB": 0x100000, "G": 0x40000000, "GB": 0x40000000}


def parse_flash_size(text: str) -> int:
    """Parse a flash size: gen_esp32part's ``1MB``..``128MB``, or ``4M``, ``512KB``, ``0x400000``.

    Raises:
        InputError: not a size.
    """
    stripped = text.strip().upper()
    number = stripped.rstrip("BKIMG")
    unit = stripped[len(number):]
    try:
        value = int(number, 0) * _FLASH_UNITS[unit]
    except (ValueError, KeyError):
        raise InputError(
            f"flash size {text!r} is not a size: use e.g. 4MB, 16MB, 0x400000") from None
    if value <= 0:
        raise InputError(f"flash size {text!r} must be positive")
    return value
