"""Partition table CSV text, read and written exactly as ESP-IDF's ``gen_esp32part.py`` does.

Sources: espressif/esp-idf components/partition_table/gen_esp32part.py (master, ``__version__``
1.5): ``PartitionTable.from_file``/``from_csv``/``to_csv``, ``PartitionDefinition.from_csv``/
``parse_type``/``parse_subtype``/``parse_address``/``parse_size``/``to_csv``, ``parse_int``,
``get_encoding``. The rules this module reproduces, in gen_esp32part's order:

* text encoding from a BOM (UTF-8-sig, UTF-16, UTF-32), else strict UTF-8;
* lines split with ``str.splitlines``; ``$VAR``/``${VAR}`` expanded from the environment; a line
  that still *starts* with ``$NAME`` is an unknown variable; after ``strip()``, empty lines and
  lines starting with ``#`` are skipped (there are no trailing comments: a ``#`` in the flags
  column is an unknown flag);
* fields split on ``,`` and stripped, missing trailing fields empty, fields after the sixth ignored;
* numbers are Python ``int(v, 0)`` with any number of case-insensitive ``K``/``M`` suffixes,
  type/subtype keywords are matched case-insensitively after a number fails;
* an empty offset is placed after the previous partition, rounded up to 0x10000 for app
  partitions and 0x1000 for every other type; a negative size ``-X`` means "ends at X".
"""

from __future__ import annotations

import codecs
import os
import re

from otaforge.errors import PartitionTableError
from otaforge.formats.sector import SECTOR_SIZE

APP_TYPE = 0x00
DATA_TYPE = 0x01
BOOTLOADER_TYPE = 0x02
PARTITION_TABLE_TYPE = 0x03

# app subtypes
FACTORY = 0x00
OTA_0 = 0x10
NUM_OTA_SLOTS = 16
TEST = 0x20
TEE_0 = 0x30
# data subtypes
OTA_DATA = 0x00
PHY = 0x01
NVS = 0x02
COREDUMP = 0x03
NVS_KEYS = 0x04
EFUSE = 0x05
UNDEFINED = 0x06
ESPHTTPD = 0x80
FAT = 0x81
SPIFFS = 0x82
LITTLEFS = 0x83
TEE_OTA = 0x90
# bootloader / partition_table subtypes
PRIMARY = 0x00

DEFAULT_TABLE_OFFSET = 0x8000
NVS_RW_MIN_SIZE = 0x3000

# Keyword tables in gen_esp32part's dict order: the order decides which name ``to_csv`` prints
# and the order of the "Known keywords" list.
TYPES: dict[str, int] = {
    "bootloader": BOOTLOADER_TYPE,
    "partition_table": PARTITION_TABLE_TYPE,
    "app": APP_TYPE,
    "data": DATA_TYPE,
}
SUBTYPES: dict[int, dict[str, int]] = {
    BOOTLOADER_TYPE: {"primary": 0x00, "ota": 0x01, "recovery": 0x02},
    PARTITION_TABLE_TYPE: {"primary": 0x00, "ota": 0x01},
    APP_TYPE: {
        "factory": FACTORY,
        "test": TEST,
        **{f"ota_{n}": OTA_0 + n for n in range(NUM_OTA_SLOTS)},
        "tee_0": TEE_0,
        "tee_1": TEE_0 + 1,
    },
    DATA_TYPE: {
        "ota": OTA_DATA, "phy": PHY, "nvs": NVS, "coredump": COREDUMP, "nvs_keys": NVS_KEYS,
        "efuse": EFUSE, "undefined": UNDEFINED, "esphttpd": ESPHTTPD, "fat": FAT,
        "spiffs": SPIFFS, "littlefs": LITTLEFS, "tee_ota": TEE_OTA,
    },
}
FLAG_NAMES = ("encrypted", "readonly")  # bit 0, bit 1

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
)
_UNKNOWN_VAR = re.compile(r"(?<!\\)\$([A-Za-z_][A-Za-z0-9_]*)")
# gen_esp32part recurses once per suffix and dies of RecursionError long before this many
_MAX_SUFFIXES = 900


def gen_says(text: str) -> str:
    """`` (gen_esp32part: TEXT)``: ESP-IDF's own wording, appended to otaforge's message.

    People and scripts that know gen_esp32part.py's messages find them in ours; otaforge's
    text before it says more (names, lines, what to do).
    """
    return f" (gen_esp32part: {text})"


def hx(value: int) -> str:
    """``0x1000`` / ``-0x1000`` for messages (values from a CSV may be negative)."""
    return f"-0x{-value:x}" if value < 0 else f"0x{value:x}"


def offset_alignment(ptype: int) -> int:
    """Required offset alignment: 0x10000 for app partitions, 0x1000 for every other type."""
    return 0x10000 if ptype == APP_TYPE else 0x1000


def size_alignment(ptype: int, secure: str | None = None) -> int:
    """Required size alignment: app 0x1000 (0x10000 with ``secure="v1"``), others 1."""
    if ptype != APP_TYPE:
        return 1
    return 0x10000 if secure == "v1" else 0x1000


def decode_text(data: bytes) -> str:
    """Decode CSV bytes as gen_esp32part does: encoding from a BOM, else strict UTF-8.

    Raises:
        PartitionTableError: the bytes are not valid text in that encoding.
    """
    encoding = next((enc for bom, enc in _BOMS if data.startswith(bom)), "utf-8")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        raise PartitionTableError(
            f"not a partition table: a binary table starts with bytes aa 50 (this starts with "
            f"{data[:2].hex(' ') or 'nothing'}), and as CSV it is not valid {encoding} text "
            f"(byte 0x{data[err.start]:02x} at offset {err.start}); save a CSV as UTF-8"
        ) from None


def parse_int(value: str, keywords: dict[str, int] | None = None, *, line: int | None = None,
              field: str = "value") -> int:
    """gen_esp32part's ``parse_int``: ``int(v, 0)`` with K/M suffixes, else a keyword.

    Raises:
        PartitionTableError: neither a number nor a known keyword.
    """
    text = value  # as written, for messages (gen_esp32part names it without the suffixes)
    multiplier = 1
    for _ in range(_MAX_SUFFIXES):
        lowered = value.lower()
        if lowered.endswith("k"):
            multiplier *= 1024
        elif lowered.endswith("m"):
            multiplier *= 1024 * 1024
        else:
            break
        value = value[:-1]
    else:
        raise PartitionTableError(f"{field} has too many K/M suffixes"
                                  f"{gen_says(f'Invalid field value {value}')}", line=line)
    try:
        return int(value, 0) * multiplier
    except ValueError:
        pass
    if not keywords:
        expected = ("a number: this partition type has no subtype names" if field == "subtype"
                    else "a number such as 0x10000, 65536, 64K or 1M")
        raise PartitionTableError(f"invalid {field} {text!r}: expected {expected}"
                                  f"{gen_says(f'Invalid field value {value}')}",
                                  line=line) from None
    try:
        return keywords[value.lower()] * multiplier
    except KeyError:
        known = ", ".join(keywords)
        raise PartitionTableError(
            f"{field} {text!r} is not valid. Known keywords: {known} (or a number)"
            + gen_says(f"Value '{value}' is not valid. Known keywords: {known}"),
            line=line,
        ) from None


class CsvRow:
    """One partition line as parsed, before and after offsets are filled in (mutable)."""

    __slots__ = ("encrypted", "line", "name", "offset", "readonly", "size", "subtype", "type")

    def __init__(self, name: str, ptype: int, subtype: int, offset: int | None, size: int,
                 encrypted: bool, readonly: bool, line: int) -> None:
        self.name = name
        self.type = ptype
        self.subtype = subtype
        self.offset = offset
        self.size = size
        self.encrypted = encrypted
        self.readonly = readonly
        self.line = line

    def key(self) -> tuple[str, int, int, int | None, int]:
        """The fields gen_esp32part's ``PartitionDefinition.__eq__`` compares."""
        return (self.name, self.type, self.subtype, self.offset, self.size)

    @property
    def is_primary_fixed(self) -> bool:
        """Primary bootloader / primary partition table: placed by options, not by the CSV."""
        return self.type in (BOOTLOADER_TYPE, PARTITION_TABLE_TYPE) and self.subtype == PRIMARY


class CsvOptions:
    """The command-line settings gen_esp32part's CSV parsing depends on."""

    __slots__ = ("primary_bootloader_offset", "recovery_bootloader_offset", "table_offset")

    def __init__(self, table_offset: int = DEFAULT_TABLE_OFFSET,
                 primary_bootloader_offset: int | None = None,
                 recovery_bootloader_offset: int | None = None) -> None:
        self.table_offset = table_offset
        self.primary_bootloader_offset = primary_bootloader_offset
        self.recovery_bootloader_offset = recovery_bootloader_offset


def _bootloader_offset_missing(which: str, line: int) -> PartitionTableError:
    option = f"--{which.lower()}-bootloader-offset"
    return PartitionTableError(
        f"{which} bootloader offset is not defined: a 'bootloader' partition needs {option}"
        f"{gen_says(f'{which} bootloader offset is not defined. Please use {option}')}",
        line=line)


def _parse_offset(text: str, ptype: int, subtype: int, opts: CsvOptions, line: int) -> int | None:
    if ptype == BOOTLOADER_TYPE and subtype == PRIMARY:
        if opts.primary_bootloader_offset is None:
            raise _bootloader_offset_missing("Primary", line)
        return opts.primary_bootloader_offset
    if ptype == BOOTLOADER_TYPE and subtype == 0x02:
        if opts.recovery_bootloader_offset is None:
            raise _bootloader_offset_missing("Recovery", line)
        return opts.recovery_bootloader_offset
    if ptype == PARTITION_TABLE_TYPE and subtype == PRIMARY:
        return opts.table_offset
    if text == "":
        return None
    return parse_int(text, line=line, field="offset")


def _parse_size(text: str, ptype: int, opts: CsvOptions, line: int) -> int:
    if ptype == BOOTLOADER_TYPE:
        if opts.primary_bootloader_offset is None:
            raise _bootloader_offset_missing("Primary", line)
        return opts.table_offset - opts.primary_bootloader_offset
    if ptype == PARTITION_TABLE_TYPE:
        return SECTOR_SIZE  # the table occupies one flash sector
    if text == "":
        raise PartitionTableError("the size field can't be empty"
                                  + gen_says("Size field can't be empty"), line=line)
    return parse_int(text, line=line, field="size")


def parse_line(text: str, line: int, opts: CsvOptions) -> CsvRow:
    """Parse one non-comment CSV line (``Name, Type, SubType, Offset, Size, Flags``)."""
    fields = [f.strip() for f in (text + ",,,,").split(",")]
    name = fields[0]
    if fields[1] == "":
        raise PartitionTableError(f"partition {name!r}: the type field can't be empty"
                                  + gen_says("Field 'type' can't be left empty."), line=line)
    ptype = parse_int(fields[1], TYPES, line=line, field="type")
    if fields[2] == "":
        if ptype == APP_TYPE:
            raise PartitionTableError(
                f"app partition {name!r} cannot have an empty subtype (use factory, ota_N or test)"
                f"{gen_says('App partition cannot have an empty subtype')}", line=line)
        subtype = UNDEFINED
    else:
        subtype = parse_int(fields[2], SUBTYPES.get(ptype, {}), line=line, field="subtype")
    offset = _parse_offset(fields[3], ptype, subtype, opts, line)
    size = _parse_size(fields[4], ptype, opts, line)
    flags = set()
    for flag in fields[5].split(":"):
        if flag in FLAG_NAMES:
            flags.add(flag)
        elif flag:
            raise PartitionTableError(
                f"the flags column contains unknown flag {flag!r} "
                "(known: encrypted, readonly; separate them with ':')"
                + gen_says(f"CSV flag column contains unknown flag '{flag}'"), line=line)
    return CsvRow(name, ptype, subtype, offset, size,
                  "encrypted" in flags, "readonly" in flags, line)


def _expand(raw: str, line: int) -> str:
    if "$" not in raw:
        return raw
    expanded = os.path.expandvars(raw)
    m = _UNKNOWN_VAR.match(expanded)
    if m:
        raise PartitionTableError(f"unknown variable '{m.group(1)}' (not set in the environment)"
                                  + gen_says(f"unknown variable '{m.group(1)}'"), line=line)
    return expanded


def parse_csv(text: str, opts: CsvOptions) -> list[CsvRow]:
    """Parse CSV text into rows with every offset filled in and negative sizes resolved.

    Raises:
        PartitionTableError: a line does not parse, or an explicit offset overlaps the
            previous partition (or the partition table itself), naming the line.
    """
    rows: list[CsvRow] = []
    for index, raw in enumerate(text.splitlines()):
        stripped = _expand(raw, index + 1).strip()
        if stripped and not stripped.startswith("#"):
            rows.append(parse_line(stripped, index + 1, opts))
    _place(rows, opts)
    return rows


def _place(rows: list[CsvRow], opts: CsvOptions) -> None:
    """Fill empty offsets and resolve negative sizes, in file order (gen_esp32part's fix-up)."""
    last_end = opts.table_offset + SECTOR_SIZE
    previous: CsvRow | None = None
    for row in rows:
        if row.is_primary_fixed:
            continue
        if row.offset is not None and row.offset < last_end:
            if row.key() == rows[0].key() or previous is None:
                raise PartitionTableError(
                    f"partition {row.name!r} at offset {hx(row.offset)} overlaps the partition "
                    f"table sector at {hx(opts.table_offset)}: use offset {hx(last_end)} or higher"
                    + gen_says(f"Partitions overlap. Partition sets offset {hx(row.offset)}. But "
                               "partition table occupies the whole sector "
                               f"{hx(opts.table_offset)}. Use a free offset {hx(last_end)} or "
                               "higher."), line=row.line)
            raise PartitionTableError(
                f"partition {row.name!r} at offset {hx(row.offset)} overlaps the previous "
                f"partition {previous.name!r} ({hx(previous.offset or 0)}-{hx(last_end)}, line "
                f"{previous.line}); leave the offset empty or use {hx(last_end)} or higher"
                + gen_says(f"Partitions overlap. Partition sets offset {hx(row.offset)}. "
                           f"Previous partition ends {hx(last_end)}"), line=row.line)
        if row.offset is None:
            pad_to = offset_alignment(row.type)
            if last_end % pad_to:
                last_end += pad_to - last_end % pad_to
            row.offset = last_end
        if row.size < 0:
            end = -row.size
            row.size = end - row.offset
            if row.size < 0:  # gen_esp32part fails later, packing a negative size
                raise PartitionTableError(
                    f"partition {row.name!r}: size {hx(-end)} means 'ends at {hx(end)}', but "
                    f"the partition starts at {hx(row.offset)}: give a size, or an end address "
                    f"above the start", line=row.line)
        last_end = row.offset + row.size
        previous = row


def keyword_for(value: int, keywords: dict[str, int]) -> str:
    """The first keyword naming ``value`` (gen_esp32part ``lookup_keyword``), else decimal."""
    for name, number in keywords.items():
        if number == value:
            return name
    return f"{value}"


def format_size(size: int) -> str:
    """``NM`` if a whole number of MiB, else ``NK`` if of KiB, else ``0x...`` (as to_csv)."""
    for unit, suffix in ((0x100000, "M"), (0x400, "K")):
        if size % unit == 0:
            return f"{size // unit}{suffix}"
    return f"0x{size:x}"


def csv_row_text(name: str, ptype: int, subtype: int, offset: int, size: int,
                 flags: list[str]) -> str:
    """One ``to_csv`` line: ``name,type,subtype,0xoffset,size,flags``."""
    return ",".join((
        name,
        keyword_for(ptype, TYPES),
        keyword_for(subtype, SUBTYPES.get(ptype, {})),
        f"0x{offset:x}",
        format_size(size),
        ":".join(flags),
    ))


CSV_HEADER = "# ESP-IDF Partition Table\n# Name, Type, SubType, Offset, Size, Flags\n"
