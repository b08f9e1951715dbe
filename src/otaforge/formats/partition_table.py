"""ESP-IDF partition tables: the binary at 0x8000 and its CSV, as ``gen_esp32part.py`` makes them.

Sources: espressif/esp-idf components/partition_table/gen_esp32part.py (master, version 1.5),
components/bootloader_support/include/esp_flash_partitions.h (``esp_partition_info_t``).

Binary layout: one 32-byte ``esp_partition_info_t`` per partition (magic ``AA 50``, type,
subtype, offset, size, 16-byte label, flags), then the MD5 record (``EB EB``, 14 x ``FF``, MD5 of
all preceding records), then 0xFF up to 0xC00 bytes. :meth:`PartitionTable.verify` applies
gen_esp32part's table rules in its order; CSV text handling lives in :mod:`partition_csv`.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from otaforge.errors import (
    BadMagicError,
    ChecksumMismatch,
    InputError,
    PartitionTableError,
    TruncatedError,
)
from otaforge.formats._binary import unpack_from
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
    FLAG_NAMES,
    LITTLEFS,
    NUM_OTA_SLOTS,
    NVS,
    NVS_KEYS,
    NVS_RW_MIN_SIZE,
    OTA_0,
    OTA_DATA,
    OTADATA_SIZE,
    PARTITION_TABLE_TYPE,
    PHY,
    PRIMARY,
    SPIFFS,
    SUBTYPES,
    TABLE_SECTOR_SIZE,
    TEE_OTA,
    TEST,
    TYPES,
    UNDEFINED,
    CsvOptions,
    csv_row_text,
    decode_text,
    format_size,
    hx,
    keyword_for,
    offset_alignment,
    parse_csv,
    size_alignment,
)

__all__ = [
    "APP_TYPE", "BOOTLOADER_TYPE", "COREDUMP", "DATA_TYPE", "DEFAULT_TABLE_OFFSET", "EFUSE",
    "ESPHTTPD", "FACTORY", "FAT", "LITTLEFS", "NUM_OTA_SLOTS", "NVS", "NVS_KEYS", "OTADATA_SIZE",
    "OTA_0", "OTA_DATA", "PARTITION_TABLE_TYPE", "PHY", "SPIFFS", "SUBTYPES", "TEE_OTA", "TEST",
    "TYPES", "UNDEFINED", "Conversion", "Finding", "PartitionEntry", "PartitionTable",
    "check_ota_layout", "convert_table", "is_binary_table", "load_partition_table",
    "parse_flash_size",
]

MAX_TABLE_LENGTH = 0xC00  # the entries area of the sector; the rest is for a signature
ENTRY_SIZE = 32
ENTRY_MAGIC = b"\xaa\x50"
MD5_MAGIC = b"\xeb\xeb"
MD5_PREFIX = MD5_MAGIC + b"\xff" * 14
END_MARKER = b"\xff" * ENTRY_SIZE
FLAG_ENCRYPTED = 0x1
FLAG_READONLY = 0x2

# esp_partition_info_t: magic, type, subtype, offset, size, label[16], flags
_ENTRY = struct.Struct("<2sBBII16sI")
assert _ENTRY.size == ENTRY_SIZE


@dataclass(frozen=True)
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
    def from_bytes(cls, b: bytes) -> PartitionEntry:
        """Decode a 32-byte record (unknown flag bits are dropped, as gen_esp32part does).

        Raises:
            TruncatedError: fewer than 32 bytes. BadMagicError: not ``AA 50``.
            PartitionTableError: the label is not UTF-8.
        """
        magic, ptype, subtype, offset, size, label, flags = unpack_from(
            _ENTRY, b, 0, "partition entry")
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


def _is_primary_fixed(p: PartitionEntry) -> bool:
    return p.type in (BOOTLOADER_TYPE, PARTITION_TABLE_TYPE) and p.subtype == PRIMARY


@dataclass(frozen=True)
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
        digest = hashlib.md5()
        entries: list[PartitionEntry] = []
        for pos in range(0, len(data), ENTRY_SIZE):
            record = data[pos:pos + ENTRY_SIZE]
            if len(record) != ENTRY_SIZE:
                raise TruncatedError(
                    f"partition table: record at {hx(pos)} has only {len(record)} bytes "
                    "(the table length must be a multiple of 32 and end with an all-0xFF record)")
            if record == END_MARKER:
                return cls(tuple(entries))
            if md5 and record[:2] == MD5_MAGIC:
                if record[16:] != digest.digest():
                    raise ChecksumMismatch(
                        f"partition table MD5 mismatch at {hx(pos)}: computed "
                        f"{digest.hexdigest()}, stored {record[16:].hex()}")
                continue
            digest.update(record)
            try:
                entries.append(PartitionEntry.from_bytes(record))
            except BadMagicError as err:
                raise BadMagicError(f"partition table record at {hx(pos)}: {err}") from None
        raise TruncatedError(
            f"partition table ({len(data)} bytes) is missing its end-of-table marker "
            "(an all-0xFF record)")

    def to_bytes(self, *, md5: bool = True) -> bytes:
        """The 0xC00-byte binary: records, MD5 record, 0xFF padding (gen_esp32part ``to_binary``).

        Raises:
            PartitionTableError: a value does not fit, or too many partitions for 0xC00 bytes.
        """
        body = b"".join(e.to_bytes() for e in self.entries)
        if md5:
            body += MD5_PREFIX + hashlib.md5(body).digest()
        if len(body) >= MAX_TABLE_LENGTH:
            most = (MAX_TABLE_LENGTH - 1) // ENTRY_SIZE - (1 if md5 else 0)
            raise PartitionTableError(
                f"{len(self.entries)} partitions make a {len(body)}-byte binary table; it must be "
                f"shorter than {hx(MAX_TABLE_LENGTH)} bytes (at most {most} partitions)")
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
            _verify_entry(p, secure)
        self._verify_names()
        self._verify_layout(table_offset)
        for subtype, what in ((OTA_DATA, "otadata"), (TEE_OTA, "TEE otadata")):
            found = [p for p in self.entries if p.type == DATA_TYPE and p.subtype == subtype]
            if len(found) > 1:
                raise PartitionTableError(
                    f"found multiple {what} partitions ({_names(found)}); only one partition "
                    f"can have type data and subtype {keyword_for(subtype, SUBTYPES[DATA_TYPE])}",
                    line=found[1].line)
            if found and found[0].size != OTADATA_SIZE:
                raise PartitionTableError(
                    f"{what} partition {found[0].name!r} has size {hx(found[0].size)}; "
                    f"it must be {hx(OTADATA_SIZE)}", line=found[0].line)
        if flash_size is not None:
            self.verify_fits(flash_size)

    def _verify_names(self) -> None:
        seen: dict[str, PartitionEntry] = {}
        for p in self.entries:
            if p.name in seen:
                other = seen[p.name].line
                where = f" (also on line {other})" if other is not None else ""
                raise PartitionTableError(
                    f"partition name {p.name!r} is used twice{where}; partition names must be "
                    "unique", line=p.line)
            seen[p.name] = p

    def _verify_layout(self, table_offset: int) -> None:
        first_free = table_offset + TABLE_SECTOR_SIZE
        last: PartitionEntry | None = None
        for p in sorted(self.entries, key=lambda e: e.offset):
            if p.offset < first_free and not _is_primary_fixed(p):
                raise PartitionTableError(
                    f"partition {p.name!r} offset {hx(p.offset)} is below {hx(first_free)}, the "
                    f"end of the partition table sector at {hx(table_offset)}", line=p.line)
            if last is not None and p.offset < last.end:
                raise PartitionTableError(
                    f"partition {p.name!r} at offset {hx(p.offset)} overlaps {last.describe()}",
                    line=p.line)
            last = p

    def verify_fits(self, flash_size: int) -> None:
        """The ``--flash-size`` check: the partition with the highest offset must end in flash."""
        last = self.highest()
        if last is not None and last.end > flash_size:
            raise PartitionTableError(
                f"partitions occupy {last.end / 0x100000:.1f}MB of flash ({last.end} bytes), "
                f"which does not fit in a {format_size(flash_size)}B flash: partition "
                f"{last.name!r} ends at {hx(last.end)}", line=last.line)

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


def _verify_entry(p: PartitionEntry, secure: str | None) -> None:
    align = offset_alignment(p.type)
    what = f"partition {p.name!r}"
    if p.offset % align:
        raise PartitionTableError(
            f"{what}: offset {hx(p.offset)} is not aligned to {hx(align)}"
            f"{' (app partitions start on a 64 KiB boundary)' if p.is_app else ''}", line=p.line)
    size_align = size_alignment(p.type, secure)
    if p.is_app and p.size % size_align:
        raise PartitionTableError(
            f"{what}: size {hx(p.size)} is not aligned to {hx(size_align)}", line=p.line)
    if p.type == DATA_TYPE and p.subtype in (OTA_DATA, COREDUMP) and p.readonly:
        raise PartitionTableError(
            f"{what}: data/{p.subtype_name} partitions are always read-write and cannot be "
            "flagged readonly", line=p.line)
    if p.type == DATA_TYPE and p.subtype == NVS and p.size < NVS_RW_MIN_SIZE and not p.readonly:
        raise PartitionTableError(
            f"{what}: an NVS partition of size {hx(p.size)} must be flagged 'readonly' "
            f"(read/write NVS needs at least {hx(NVS_RW_MIN_SIZE)})", line=p.line)


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
    """Result of :func:`convert_table`: the table, the output bytes, and what they are."""

    __slots__ = ("output", "output_kind", "table")

    def __init__(self, table: PartitionTable, output: bytes, output_kind: str) -> None:
        self.table = table
        self.output = output
        self.output_kind = output_kind  # "binary" or "csv"


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
            f"partition table offset {hx(offset)}")
    if is_binary_table(data):
        table = PartitionTable.from_bytes(data, md5=md5)
    else:
        table = PartitionTable.from_csv(
            decode_text(data), offset, primary_bootloader_offset=primary_bootloader_offset,
            recovery_bootloader_offset=recovery_bootloader_offset)
    table.verify(flash_size, table_offset=offset, secure=secure)
    if is_binary_table(data):
        return Conversion(table, table.to_csv().encode("utf-8"), "csv")
    return Conversion(table, table.to_bytes(md5=md5), "binary")


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


# --- OTA layout checks (beyond gen_esp32part) ----------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One OTA layout finding. ``severity`` is "critical", "warning" or "ok"."""

    severity: str
    code: str
    message: str

    @property
    def critical(self) -> bool:
        """A finding that must fail ``partitions check``."""
        return self.severity == "critical"

    def __str__(self) -> str:
        return f"{self.severity.capitalize()}: {self.message}"


def check_ota_layout(table: PartitionTable, image_size: int | None = None) -> list[Finding]:
    """The seed's OTA checks: identical slot sizes, otadata present, image fits every slot.

    Also: contiguous ``ota_0..ota_N`` numbering and no duplicate slot (the app counts slots up
    to the first gap, the bootloader counts every 0x1X entry), at least one bootable app.

    Args:
        table: the (verified) partition table.
        image_size: size in bytes of the firmware image that must fit every OTA slot/factory.
    """
    out: list[Finding] = []
    slots = table.ota_slots()
    apps = [p for p in table.app_partitions() if p.is_ota_slot or p.subtype in (FACTORY, TEST)]
    if not apps:
        out.append(Finding("critical", "no-app",
                           "no factory, ota_N or test app partition: the bootloader has "
                           "nothing to boot"))
    if slots:
        out.extend(_slot_findings(table, slots))
    elif table.otadata() is not None:
        out.append(Finding("warning", "otadata-without-slots",
                           "an otadata partition but no ota_N app slots: OTA updates are "
                           "impossible with this table"))
    else:
        out.append(Finding("warning", "no-ota-slots",
                           "no ota_N app slots: this table cannot receive OTA updates"))
    if image_size is not None:
        out.extend(_image_findings(table, slots, image_size))
    return out


def _slot_findings(table: PartitionTable, slots: list[PartitionEntry]) -> list[Finding]:
    out: list[Finding] = []
    first = slots[0]
    for other in slots[1:]:
        if other.size != first.size:
            out.append(Finding(
                "critical", "slot-size",
                f"{first.name} and {other.name} must be identical size and large enough for "
                f"your firmware ({first.name} is {hx(first.size)}, {other.name} is "
                f"{hx(other.size)})"))
    numbers = [p.subtype - OTA_0 for p in slots]
    if len(set(numbers)) != len(numbers):
        dupes = sorted({f"ota_{n}" for n in numbers if numbers.count(n) > 1})
        out.append(Finding("critical", "slot-duplicate",
                           f"OTA slot subtype used twice: {', '.join(dupes)}"))
    if sorted(set(numbers)) != list(range(len(set(numbers)))):
        out.append(Finding(
            "critical", "slot-gap",
            f"OTA slots must be numbered ota_0, ota_1, ... without gaps (found "
            f"{', '.join(f'ota_{n}' for n in sorted(set(numbers)))}): the app and the bootloader "
            "would count them differently"))
    otadata = table.otadata()
    if otadata is None:
        out.append(Finding("critical", "otadata-missing",
                           f"{len(slots)} OTA slot(s) but no otadata partition (data, ota, "
                           f"size {hx(OTADATA_SIZE)}): the bootloader cannot select a slot"))
    if len(slots) == 1 and table.factory() is None:
        out.append(Finding("warning", "single-slot",
                           f"only one OTA slot ({first.name}) and no factory app: an update "
                           "would overwrite the running app"))
    elif len(slots) == 1:
        out.append(Finding("warning", "single-slot",
                           f"only one OTA slot ({first.name}): after the first update there is "
                           "no free slot for the next one"))
    if not out and otadata is not None:
        out.append(Finding("ok", "slots",
                           f"{len(slots)} OTA slots of {hx(first.size)} bytes each, otadata "
                           f"{otadata.name!r} at {hx(otadata.offset)}"))
    return out


def _image_findings(table: PartitionTable, slots: list[PartitionEntry],
                    image_size: int) -> list[Finding]:
    out: list[Finding] = []
    targets = [*([f] if (f := table.factory()) else []), *slots]
    if not targets:
        return [Finding("critical", "image-no-slot", "no factory or OTA slot to hold the image")]
    for p in targets:
        if image_size > p.size:
            out.append(Finding(
                "critical", "image-too-large",
                f"image of {image_size} bytes does not fit in {p.name} ({p.size} bytes, "
                f"{image_size - p.size} bytes too many)"))
        elif image_size * 20 > p.size * 19:
            out.append(Finding(
                "warning", "image-tight",
                f"image of {image_size} bytes leaves less than 5% of {p.name} free "
                f"({p.size - image_size} bytes)"))
    if not out:
        smallest = min(p.size for p in targets)
        out.append(Finding("ok", "image-fits",
                           f"image of {image_size} bytes fits every app slot "
                           f"({smallest - image_size} bytes free in the smallest)"))
    return out
