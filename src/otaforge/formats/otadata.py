"""The otadata partition: two 4 KiB sectors, each starting with one ``esp_ota_select_entry_t``.

Sources: esp_flash_partitions.h (the struct), bootloader_common_loader.c
(``bootloader_common_ota_select_valid``/``_invalid``, ``bootloader_common_get_active_otadata``),
esp_ota_ops.c (``rewrite_ota_seq``: the CRC covers only the four ``ota_seq`` bytes).

Only the first 32 bytes of each sector are used; the rest stays erased (0xFF). An entry with a
bad CRC is not an error here: the bootloader simply treats it as invalid, so
:meth:`OtaSelectEntry.from_bytes` never raises on CRC and :meth:`OtaSelectEntry.is_valid` says.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from enum import IntEnum

from otaforge.errors import FormatError, TruncatedError
from otaforge.formats._binary import unpack_from
from otaforge.formats.record import record
from otaforge.formats.sector import OTADATA_SIZE as OTADATA_SIZE  # two copies, one sector each
from otaforge.formats.sector import SECTOR_SIZE

OTADATA_ENTRY_SIZE = 32
SEQ_UNUSED = 0xFFFFFFFF
SEQ_LABEL_SIZE = 20
ERASED_SEQ_LABEL = b"\xff" * SEQ_LABEL_SIZE

# esp_ota_select_entry_t: ota_seq, seq_label[20], ota_state, crc
_ENTRY = struct.Struct("<I20sII")
_SEQ = struct.Struct("<I")
assert _ENTRY.size == OTADATA_ENTRY_SIZE


class OtaImgState(IntEnum):
    """``esp_ota_img_states_t`` (esp_ota_ops.h / esp_flash_partitions.h)."""

    NEW = 0
    PENDING_VERIFY = 1
    VALID = 2
    INVALID = 3
    ABORTED = 4
    UNDEFINED = 0xFFFFFFFF


def ota_crc(seq: int) -> int:
    """CRC32 of the 4 little-endian ``ota_seq`` bytes, as ``esp_rom_crc32_le(UINT32_MAX, ...)``.

    Args:
        seq: the ``ota_seq`` value (0..0xFFFFFFFF).

    Returns:
        The CRC stored in the entry's ``crc`` field.
    """
    return zlib.crc32(_SEQ.pack(seq & 0xFFFFFFFF), 0xFFFFFFFF)


def state_name(state: int) -> str:
    """``esp_ota_img_states_t`` name of ``state`` (``"ESP_OTA_IMG_VALID"``), or its hex value."""
    try:
        return f"ESP_OTA_IMG_{OtaImgState(state).name}"
    except ValueError:
        return f"0x{state:08x}"


@record
class OtaSelectEntry:
    """One ``esp_ota_select_entry_t`` (32 bytes at the start of an otadata sector).

    Attributes:
        ota_seq: sequence number; slot = (ota_seq - 1) % number of OTA slots; 0xFFFFFFFF unused.
        seq_label: 20 bytes never written by ESP-IDF (normally erased 0xFF).
        ota_state: an ``esp_ota_img_states_t`` value (kept as int: flash may hold anything).
        crc: CRC32 over the ``ota_seq`` bytes as stored (may be wrong on a corrupt entry).
    """

    ota_seq: int
    seq_label: bytes
    ota_state: int
    crc: int

    @classmethod
    def make(cls, seq: int, state: int = OtaImgState.UNDEFINED) -> OtaSelectEntry:
        """The entry esp_ota_ops writes: CRC computed, ``seq_label`` left erased (0xFF x 20)."""
        return cls(seq, ERASED_SEQ_LABEL, int(state), ota_crc(seq))

    @classmethod
    def erased(cls) -> OtaSelectEntry:
        """What an erased sector reads back as (all 0xFF)."""
        return cls.from_bytes(b"\xff" * OTADATA_ENTRY_SIZE)

    @classmethod
    def from_bytes(cls, data: bytes) -> OtaSelectEntry:
        """Parse the first 32 bytes of ``data``; a bad CRC is kept, not raised.

        Raises:
            TruncatedError: fewer than 32 bytes.
        """
        seq, label, state, crc = unpack_from(_ENTRY, bytes(data), 0, "otadata entry")
        return cls(seq, label, state, crc)

    def to_bytes(self) -> bytes:
        """The 32-byte entry exactly as stored (fields as they are, CRC included)."""
        if len(self.seq_label) != SEQ_LABEL_SIZE:
            raise FormatError(f"otadata seq_label must be {SEQ_LABEL_SIZE} bytes")
        return _ENTRY.pack(self.ota_seq, self.seq_label, self.ota_state, self.crc)

    @property
    def crc_ok(self) -> bool:
        """True when ``crc`` matches ``ota_seq``."""
        return self.crc == ota_crc(self.ota_seq)

    def is_invalid(self) -> bool:
        """``bootloader_common_ota_select_invalid``: unused seq, or state INVALID/ABORTED."""
        return self.ota_seq == SEQ_UNUSED or self.ota_state in (
            OtaImgState.INVALID,
            OtaImgState.ABORTED,
        )

    def is_valid(self) -> bool:
        """``bootloader_common_ota_select_valid``: not invalid and the CRC matches."""
        return not self.is_invalid() and self.crc_ok

    @property
    def state(self) -> OtaImgState | None:
        """``ota_state`` as an enum member, or None for a value ESP-IDF never writes."""
        try:
            return OtaImgState(self.ota_state)
        except ValueError:
            return None

    def with_state(self, state: int) -> OtaSelectEntry:
        """A copy with ``ota_state`` replaced (CRC unchanged: it covers only ``ota_seq``)."""
        return OtaSelectEntry(self.ota_seq, self.seq_label, int(state), self.crc)

    def with_seq(self, seq: int) -> OtaSelectEntry:
        """A copy with ``ota_seq`` replaced and its CRC recomputed (``rewrite_ota_seq``)."""
        return OtaSelectEntry(seq, self.seq_label, self.ota_state, ota_crc(seq))


def read_otadata(data: bytes) -> tuple[OtaSelectEntry, OtaSelectEntry]:
    """The two entries of an otadata partition (entry 0 at offset 0, entry 1 at 0x1000).

    Args:
        data: the partition contents, at least ``0x1000 + 32`` bytes (normally 0x2000).

    Raises:
        TruncatedError: ``data`` is too short to hold the second entry.
    """
    raw = bytes(data)
    first = OtaSelectEntry.from_bytes(raw[:OTADATA_ENTRY_SIZE])
    second_raw = raw[SECTOR_SIZE : SECTOR_SIZE + OTADATA_ENTRY_SIZE]
    if len(second_raw) < OTADATA_ENTRY_SIZE:
        raise TruncatedError(
            f"otadata: {len(raw)} bytes; the partition needs two 0x1000-byte sectors "
            f"(at least 0x{SECTOR_SIZE + OTADATA_ENTRY_SIZE:x} bytes, normally 0x2000)"
        )
    return first, OtaSelectEntry.from_bytes(second_raw)


def otadata_bytes(entries: Sequence[OtaSelectEntry | None]) -> bytes:
    """A 0x2000-byte otadata partition image: each entry at its sector start, the rest 0xFF.

    ``None`` leaves that sector erased.
    """
    if len(entries) != 2:
        raise FormatError(f"otadata holds exactly 2 entries, got {len(entries)}")
    out = bytearray(b"\xff" * OTADATA_SIZE)
    for index, entry in enumerate(entries):
        if entry is not None:
            start = index * SECTOR_SIZE
            out[start : start + OTADATA_ENTRY_SIZE] = entry.to_bytes()
    return bytes(out)


def select_otadata(entries: Sequence[OtaSelectEntry], ok0: bool, ok1: bool,
                   use_max: bool = True) -> int | None:
    """``bootloader_common_select_otadata``: both ok -> larger (or smaller) seq, ties to 0.

    Returns:
        0 or 1, or None when neither entry is usable (the C code's -1).
    """
    if ok0 and ok1:
        seq0, seq1 = entries[0].ota_seq, entries[1].ota_seq
        if use_max:
            return 0 if seq0 >= seq1 else 1
        return 0 if seq0 <= seq1 else 1
    if ok0:
        return 0
    if ok1:
        return 1
    return None


def active_otadata(entries: Sequence[OtaSelectEntry]) -> int | None:
    """``bootloader_common_get_active_otadata``: index of the valid entry with the highest seq.

    Returns:
        0 or 1, or None when no entry is valid (the bootloader then boots factory / ota_0).
    """
    if len(entries) != 2:
        raise FormatError(f"otadata holds exactly 2 entries, got {len(entries)}")
    return select_otadata(entries, entries[0].is_valid(), entries[1].is_valid(), True)


def slot_for_seq(seq: int, ota_count: int) -> int:
    """OTA slot index (ota_N) an ``ota_seq`` selects: ``(seq - 1) % ota_count``.

    Computed in C's uint32 arithmetic, as the bootloader and esp_ota_ops.c do: seq 0 wraps to
    0xFFFFFFFF before the modulo.
    """
    if ota_count <= 0:
        raise FormatError("no OTA app partitions: an ota_seq selects nothing")
    return ((seq - 1) & 0xFFFFFFFF) % ota_count
