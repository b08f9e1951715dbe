"""otaforge's NVS layout on the emulated device's nvs partition (not ESP-IDF's page format).

The ``nvs.h`` API of otaforge's host layer stores its keys here, on flash, so they survive
reboots and can be cut by power failures like any other flash write. ESP-IDF's own NVS pages
(32-byte entries, 126 per 4 KiB page, page states) are not reproduced: what matters to the
firmware is the API's behaviour, not the bytes (an ESP-IDF NVS partition is therefore not
readable here; ``nvs_flash_init`` returns ESP_ERR_NVS_NO_FREE_PAGES on one, as ESP-IDF does on a
partition it cannot use, and the usual erase-then-init recovers).

The partition is two halves. A half starts with a header (magic, generation, CRC); the valid
header with the higher generation marks the live half. Records follow the header, each
word-aligned: magic, kind, value type, namespace/key/value lengths, CRC-32 over the rest, then
the bytes. The first erased or damaged record ends the log (a torn append is simply not there).
Compaction writes the live state to the other half, then programs its header last.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

from otaforge.errors import FormatError
from otaforge.formats._binary import align_up, unpack_from

HALF_MAGIC = 0x4E56_4C47  # "GLVN"
RECORD_MAGIC = 0x5A4E
_HALF = struct.Struct("<III")  # magic, generation, crc32(magic, generation)
_RECORD = struct.Struct("<HBBBBHI")  # magic, kind, type, ns_len, key_len, value_len, crc
HALF_HEADER_SIZE = 16  # header padded to 16 bytes
MAX_VALUE = 4000


class RecordKind(IntEnum):
    """What a record does."""

    SET = 1
    ERASE_KEY = 2
    ERASE_NAMESPACE = 3
    NAMESPACE = 4


@dataclass(frozen=True)
class NvsRecord:
    """One log record."""

    kind: RecordKind
    namespace: str
    key: str = ""
    type: int = 0
    value: bytes = b""

    def to_bytes(self) -> bytes:
        """The record, padded to a 4-byte word with 0xFF.

        Raises:
            FormatError: a name or value that does not fit the field widths.
        """
        ns, key = self.namespace.encode(), self.key.encode()
        if len(ns) > 15 or len(key) > 15 or len(self.value) > MAX_VALUE:
            raise FormatError("NVS record: namespace/key longer than 15 bytes or value too long")
        body = ns + key + self.value
        crc = zlib.crc32(bytes([self.kind, self.type, len(ns), len(key)])
                         + len(self.value).to_bytes(2, "little") + body)
        raw = _RECORD.pack(RECORD_MAGIC, self.kind, self.type, len(ns), len(key),
                           len(self.value), crc) + body
        return raw.ljust(align_up(len(raw), 4), b"\xff")


def half_header(generation: int) -> bytes:
    """The header that marks a half live with ``generation``."""
    crc = zlib.crc32(_HALF.pack(HALF_MAGIC, generation, 0)[:8])
    return _HALF.pack(HALF_MAGIC, generation, crc).ljust(HALF_HEADER_SIZE, b"\xff")


def parse_half_header(data: bytes) -> int | None:
    """The generation of a valid half header, else None (erased or damaged)."""
    magic, generation, crc = unpack_from(_HALF, data, 0, "NVS half header")
    if magic != HALF_MAGIC or crc != zlib.crc32(data[:8]):
        return None
    return int(generation)


def parse_records(data: bytes, offset: int = HALF_HEADER_SIZE) -> tuple[list[NvsRecord], int]:
    """The records of one half from ``offset``, and where the next record goes."""
    records: list[NvsRecord] = []
    while offset + _RECORD.size <= len(data):
        magic, kind, vtype, ns_len, key_len, value_len, crc = _RECORD.unpack_from(data, offset)
        start = offset + _RECORD.size
        end = start + ns_len + key_len + value_len
        if magic != RECORD_MAGIC or end > len(data) or kind not in RecordKind._value2member_map_:
            break
        body = data[start:end]
        head = bytes([kind, vtype, ns_len, key_len]) + value_len.to_bytes(2, "little")
        if zlib.crc32(head + body) != crc:
            break
        records.append(NvsRecord(RecordKind(kind), body[:ns_len].decode(errors="replace"),
                                 body[ns_len : ns_len + key_len].decode(errors="replace"),
                                 vtype, bytes(body[ns_len + key_len :])))
        offset = align_up(end, 4)
    return records, offset


def is_erased(data: bytes) -> bool:
    """Whether ``data`` is all 0xFF."""
    return data.count(0xFF) == len(data)
