"""esp_delta_ota patch files: the 64-byte header, the detools sequential header, the resume record.

An esp_delta_ota patch (``esp_delta_ota_patch_gen.py`` of espressif/idf-extra-components) is::

    0    <I    magic 0xfccdde10 (little-endian)
    4    32s   validation hash of the BASE image: the SHA-256 appended to it, as
               ``esptool image-info`` prints it and ``esp_partition_get_sha256`` returns it
    36   28s   reserved, zero
    64   ...   a detools patch: sequential, heatshrink-compressed

The detools part starts with one byte ``p1 u3 u4`` (padding bit, patch type, compression),
then the size of the new image as a detools size (first byte: bit 7 "more", bit 6 sign,
6 value bits; further bytes: bit 7 "more", 7 value bits, least significant group first).
With heatshrink the compressed stream starts with one byte holding ``window_sz2 - 4`` (high
nibble) and ``lookahead_sz2 - 3`` (low nibble); the stock esp_delta_ota decoder is built with
window 8, lookahead 7 and refuses anything else.

The decompressed stream is ``size(0)`` (no data-format patch), then chunks of
``size(diff) diff-bytes size(extra) extra-bytes size(adjustment)`` until the new image is
complete; diff bytes are added (mod 256) to the base bytes at the current base offset.

:class:`ResumeRecord` is otaforge's own layout for the state of an interrupted apply (the
device keeps it in flash so a power cut resumes instead of starting over).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from otaforge.errors import BadMagicError, FormatError, TruncatedError
from otaforge.formats._binary import unpack_from

DELTA_MAGIC = 0xFCCDDE10
HEADER_SIZE = 64
DIGEST_SIZE = 32
RESERVED_SIZE = HEADER_SIZE - 4 - DIGEST_SIZE
_HEADER = struct.Struct("<I32s28s")

PATCH_TYPE_SEQUENTIAL = 0
COMPRESSION_NAMES = {0: "none", 1: "lzma", 2: "crle", 3: "bz2", 4: "heatshrink", 5: "zstd",
                     6: "lz4"}
COMPRESSION_HEATSHRINK = 4
PATCH_TYPE_NAMES = {0: "sequential", 1: "in-place", 2: "hdiffpatch"}
# what the stock esp_delta_ota build (HEATSHRINK_DYNAMIC_ALLOC=0) accepts
STOCK_WINDOW_SZ2 = 8
STOCK_LOOKAHEAD_SZ2 = 7


@dataclass(frozen=True)
class DeltaHeader:
    """The 64-byte esp_delta_ota header.

    Attributes:
        base_sha256: the validation hash the base (running) image must have.
        reserved: the 28 reserved bytes (zero from Espressif's generator).
    """

    base_sha256: bytes
    reserved: bytes = bytes(RESERVED_SIZE)

    @classmethod
    def from_bytes(cls, data: bytes) -> DeltaHeader:
        """Parse the header at the start of ``data``.

        Raises:
            TruncatedError: fewer than 64 bytes.
            BadMagicError: the magic is not 0xfccdde10 (not an esp_delta_ota patch).
        """
        if len(data) < HEADER_SIZE:
            raise TruncatedError(f"delta patch: {len(data)} bytes, shorter than the "
                                 f"{HEADER_SIZE}-byte esp_delta_ota header")
        magic, digest, reserved = unpack_from(_HEADER, data, 0, "esp_delta_ota header")
        if magic != DELTA_MAGIC:
            raise BadMagicError(f"delta patch: magic 0x{magic:08x}, expected 0x{DELTA_MAGIC:08x} "
                                "(not an esp_delta_ota patch; a bare detools patch has no "
                                "header: make it with 'otaforge delta create')")
        return cls(bytes(digest), bytes(reserved))

    def to_bytes(self) -> bytes:
        """The 64 header bytes."""
        if len(self.base_sha256) != DIGEST_SIZE:
            raise FormatError(f"base hash is {len(self.base_sha256)} bytes, expected 32")
        return _HEADER.pack(DELTA_MAGIC, self.base_sha256, self.reserved)


@dataclass(frozen=True)
class DetoolsHeader:
    """The start of the detools patch after the esp_delta_ota header.

    Attributes:
        patch_type: 0 sequential, 1 in-place, 2 hdiffpatch.
        compression: detools compression number (4 heatshrink).
        to_size: size of the image the patch rebuilds.
        window_sz2, lookahead_sz2: heatshrink parameters (None for other compressions or an
            empty image).
        data_offset: offset (from the start of the detools patch) of the compressed stream,
            after the heatshrink parameter byte.
    """

    patch_type: int
    compression: int
    to_size: int
    window_sz2: int | None
    lookahead_sz2: int | None
    data_offset: int

    @property
    def compression_name(self) -> str:
        """detools' name of the compression."""
        return COMPRESSION_NAMES.get(self.compression, f"unknown({self.compression})")

    @property
    def patch_type_name(self) -> str:
        """detools' name of the patch type."""
        return PATCH_TYPE_NAMES.get(self.patch_type, f"unknown({self.patch_type})")

    @property
    def stock_applicable(self) -> bool:
        """Can the stock esp_delta_ota (heatshrink 8/7 only) apply this patch?"""
        return (self.patch_type == PATCH_TYPE_SEQUENTIAL
                and self.compression == COMPRESSION_HEATSHRINK
                and self.window_sz2 == STOCK_WINDOW_SZ2
                and self.lookahead_sz2 == STOCK_LOOKAHEAD_SZ2)

    @classmethod
    def from_bytes(cls, data: bytes) -> DetoolsHeader:
        """Parse the detools header at the start of ``data`` (the patch after 64 bytes).

        Raises:
            TruncatedError: the data ends inside the header.
            FormatError: a negative or oversized image size.
        """
        if not data:
            raise TruncatedError("delta patch: no detools patch after the 64-byte header")
        patch_type = (data[0] >> 4) & 0x7
        compression = data[0] & 0xF
        to_size, offset = unpack_size(data, 1, "detools header: new image size")
        if to_size < 0:
            raise FormatError(f"detools header: negative new image size {to_size}")
        window = lookahead = None
        if compression == COMPRESSION_HEATSHRINK and to_size > 0:
            if offset >= len(data):
                raise TruncatedError("detools header: ends before the heatshrink parameters")
            window = (data[offset] >> 4) + 4
            lookahead = (data[offset] & 0xF) + 3
            offset += 1
        return cls(patch_type, compression, to_size, window, lookahead, offset)


def unpack_size(data: bytes, offset: int, what: str) -> tuple[int, int]:
    """A detools size at ``offset``: (value, offset after it).

    Raises:
        TruncatedError: the data ends inside the size.
        FormatError: more than 9 bytes (not a size detools writes).
    """
    value, shift, pos = 0, 6, offset
    if pos >= len(data):
        raise TruncatedError(f"{what}: the data ends at offset {pos}")
    byte = data[pos]
    pos += 1
    negative = bool(byte & 0x40)
    value = byte & 0x3F
    while byte & 0x80:
        if pos >= len(data):
            raise TruncatedError(f"{what}: the data ends inside a size at offset {pos}")
        if pos - offset >= 9:
            raise FormatError(f"{what}: size at offset {offset} is longer than 9 bytes")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
    return (-value if negative else value), pos


def pack_size(value: int) -> bytes:
    """The detools encoding of ``value`` (inverse of :func:`unpack_size`)."""
    out = bytearray()
    magnitude = abs(value)
    first = (0x40 if value < 0 else 0) | (magnitude & 0x3F)
    magnitude >>= 6
    if magnitude:
        first |= 0x80
    out.append(first)
    while magnitude:
        byte = magnitude & 0x7F
        magnitude >>= 7
        out.append(byte | (0x80 if magnitude else 0))
    return bytes(out)


# --- the resume record ---------------------------------------------------------------------

RESUME_VERSION = 1
# version, patch sha256, base sha256, to_offset, from_offset, phase, remaining,
# patch (compressed) offset, pending bits, pending bit count, backref index, backref count,
# window bits, window
_RESUME = struct.Struct("<B32s32sIqBIIBBHHB")
PHASES = ("dfpatch", "diff_size", "diff_data", "extra_size", "extra_data", "adjustment", "done")


@dataclass(frozen=True)
class ResumeRecord:
    """Where an interrupted apply stands: enough to go on without starting over.

    Attributes:
        patch_sha256: SHA-256 of the whole patch file (which patch this is).
        base_sha256: the base image's validation hash (from the patch header).
        to_offset: bytes of the new image written (a multiple of the flash sector).
        from_offset: the applier's position in the base image.
        phase: index into :data:`PHASES`: what the applier reads next.
        remaining: bytes left in the current diff/extra data.
        patch_offset: offset in the patch file of the next compressed byte to fetch.
        bits, bit_count: compressed bits fetched but not yet decoded (fewer than 8).
        backref_index, backref_count: a heatshrink back-reference half copied.
        window_sz2: heatshrink window bits.
        window: the heatshrink window (the last 2**window_sz2 decompressed bytes).
    """

    patch_sha256: bytes
    base_sha256: bytes
    to_offset: int
    from_offset: int
    phase: int
    remaining: int
    patch_offset: int
    bits: int
    bit_count: int
    backref_index: int
    backref_count: int
    window_sz2: int
    window: bytes

    def to_bytes(self) -> bytes:
        """The record's bytes (fixed head + window)."""
        return _RESUME.pack(RESUME_VERSION, self.patch_sha256, self.base_sha256,
                            self.to_offset, self.from_offset, self.phase, self.remaining,
                            self.patch_offset, self.bits, self.bit_count, self.backref_index,
                            self.backref_count, self.window_sz2) + self.window

    @classmethod
    def from_bytes(cls, data: bytes) -> ResumeRecord:
        """Parse a record written by :meth:`to_bytes`.

        Raises:
            FormatError: wrong version, truncated, or a window of the wrong size.
        """
        fields = unpack_from(_RESUME, data, 0, "delta resume record")
        if fields[0] != RESUME_VERSION:
            raise FormatError(f"delta resume record version {fields[0]}, expected "
                              f"{RESUME_VERSION}")
        window = bytes(data[_RESUME.size:])
        window_sz2 = fields[12]
        if not 4 <= window_sz2 <= 15 or len(window) != 1 << window_sz2 \
                or fields[5] >= len(PHASES):
            raise FormatError("delta resume record: inconsistent window or phase")
        return cls(bytes(fields[1]), bytes(fields[2]), fields[3], fields[4], fields[5],
                   fields[6], fields[7], fields[8], fields[9], fields[10], fields[11],
                   window_sz2, window)
