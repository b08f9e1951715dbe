"""ESP-IDF app images: header, extended header, segments, XOR checksum, appended SHA-256.

Sources: esp_app_format.h (``esp_image_header_t``, ``esp_image_segment_header_t``),
components/bootloader_support/src/esp_image_format.c (``image_load``: order of checks and
their messages), bootloader_common_loader.c (``bootloader_common_check_chip_validity``),
esptool ``bin_image.py`` (the same layout as esptool reads and writes it).

:meth:`AppImage.from_bytes` parses the structure and :func:`walk_segments` is the one walk over
segment headers (also used by :func:`app_image_length` and by
:func:`otaforge.formats.image_verify.verify_image`, the bootloader's ``image_load`` in verify
mode). Bytes after ``image_len`` (erased 0xFF of a slot, a Secure Boot signature sector) are
ignored, exactly as the bootloader ignores them.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence

from otaforge.errors import (
    BadMagicError,
    ChecksumMismatch,
    FormatError,
    TruncatedError,
)
from otaforge.formats._binary import Reader, align_up, unpack_from
from otaforge.formats.app_desc import APP_DESC_MAGIC, APP_DESC_SIZE, AppDesc
from otaforge.formats.chips import ChipSpec, chip_by_id
from otaforge.formats.record import field, record

ESP_IMAGE_MAGIC = 0xE9
ESP_CHECKSUM_MAGIC = 0xEF
ESP_IMAGE_MAX_SEGMENTS = 16
IMAGE_HEADER_SIZE = 24
SEGMENT_HEADER_SIZE = 8
HASH_LEN = 32
SIXTEEN_MB = 0x1000000
WP_PIN_DISABLED = 0xEE
ESP8266_V2_IMAGE_MAGIC = 0xEA  # esptool bin_image.py ESP8266V2FirmwareImage.IMAGE_V2_MAGIC

# magic, segment_count, spi_mode, spi_speed:4|spi_size:4, entry_addr, wp_pin, spi_pin_drv[3],
# chip_id, min_chip_rev, min_chip_rev_full, max_chip_rev_full, reserved[4], hash_appended
_HEADER = struct.Struct("<BBBBIB3sHBHH4sB")
_SEGMENT = struct.Struct("<II")  # load_addr, data_len
assert _HEADER.size == IMAGE_HEADER_SIZE and _SEGMENT.size == SEGMENT_HEADER_SIZE

SPI_MODES = ("QIO", "QOUT", "DIO", "DOUT", "FAST_READ", "SLOW_READ")
FLASH_SIZES = ("1MB", "2MB", "4MB", "8MB", "16MB", "32MB", "64MB", "128MB")
PIN_DRIVE_NAMES = ("clk_drv", "q_drv", "d_drv", "cs0_drv", "hd_drv", "wp_drv")
FLASH_SIZE_BYTES = tuple(0x100000 << code for code in range(len(FLASH_SIZES)))  # by spi_size


def xor_checksum(chunks: Sequence[bytes], seed: int = ESP_CHECKSUM_MAGIC) -> int:
    """XOR of every byte in ``chunks``, starting from ``seed`` (the image checksum byte)."""
    acc = seed
    for chunk in chunks:
        width = len(chunk)
        if not width:
            continue
        value = int.from_bytes(chunk, "little")
        while width > 1:  # fold halves together: O(n log n) bit ops in C, no Python loop/byte
            half = (width + 1) // 2
            value = (value & ((1 << (half * 8)) - 1)) ^ (value >> (half * 8))
            width = half
        acc ^= value
    return acc


@record
class ImageHeader:
    """``esp_image_header_t``: 8-byte common header plus 16-byte extended header."""

    magic: int = ESP_IMAGE_MAGIC
    segment_count: int = 0
    spi_mode: int = 0
    spi_speed: int = 0
    spi_size: int = 0
    entry_addr: int = 0
    wp_pin: int = WP_PIN_DISABLED
    spi_pin_drv: bytes = b"\x00\x00\x00"
    chip_id: int = 0
    min_chip_rev: int = 0
    min_chip_rev_full: int = 0
    max_chip_rev_full: int = 0
    hash_appended: int = 1
    reserved: bytes = b"\x00" * 4

    @classmethod
    def from_bytes(cls, data: bytes) -> ImageHeader:
        """Parse the first 24 bytes (magic is *not* checked here; see :func:`check_magic`).

        Raises:
            TruncatedError: fewer than 24 bytes.
        """
        (magic, count, mode, speed_size, entry, wp, drv, chip_id, min_rev, min_full, max_full,
         reserved, hash_appended) = unpack_from(_HEADER, data, 0, "image header")
        return cls(magic, count, mode, speed_size & 0x0F, speed_size >> 4, entry, wp, drv,
                   chip_id, min_rev, min_full, max_full, hash_appended, reserved)

    def to_bytes(self) -> bytes:
        """The 24 header bytes."""
        try:
            return _HEADER.pack(
                self.magic, self.segment_count, self.spi_mode,
                (self.spi_size << 4) | (self.spi_speed & 0x0F), self.entry_addr, self.wp_pin,
                self.spi_pin_drv, self.chip_id, self.min_chip_rev, self.min_chip_rev_full,
                self.max_chip_rev_full, self.reserved, self.hash_appended,
            )
        except struct.error as err:
            raise FormatError(f"image header field out of range: {err}") from None

    @property
    def chip(self) -> ChipSpec | None:
        """The chip named by ``chip_id``, or None for an id otaforge does not know."""
        return chip_by_id(self.chip_id)

    @property
    def pin_drive(self) -> dict[str, int]:
        """``spi_pin_drv``'s six 4-bit drive strengths, as esptool names them."""
        nibbles = [n for byte in self.spi_pin_drv for n in (byte & 0x0F, byte >> 4)]
        return dict(zip(PIN_DRIVE_NAMES, nibbles, strict=True))

    @property
    def wp_pin_disabled(self) -> bool:
        """``wp_pin`` is 0xEE: the flash write-protect pin is not used."""
        return self.wp_pin == WP_PIN_DISABLED


@record
class Segment:
    """One image segment: where it loads/maps and its data (length a multiple of 4)."""

    load_addr: int
    data: bytes

    def header_bytes(self) -> bytes:
        """The 8-byte ``esp_image_segment_header_t``."""
        return _SEGMENT.pack(self.load_addr, len(self.data))


@record
class SegmentSpan:
    """Where one segment sits in an image file, as its 8-byte header declares it."""

    index: int
    load_addr: int
    offset: int  # file offset of the segment's data (just after its header)
    length: int

    @property
    def end(self) -> int:
        """File offset just after the segment's data."""
        return self.offset + self.length


def walk_segments(data: bytes, count: int, what: str = "app image") -> Iterator[SegmentSpan]:
    """The ``count`` segment headers after the image header, in file order.

    Each span is yielded as soon as its header is read and before its data is bounds-checked,
    so a caller can apply ``process_segment``'s checks (length rules, MMU alignment) in the
    bootloader's order; resuming the walk skips over the data.

    Raises:
        TruncatedError: a segment header or its data runs past the end of ``data``.
    """
    reader = Reader(data, what, IMAGE_HEADER_SIZE)
    for index in range(count):
        load_addr, length = reader.unpack(_SEGMENT, f"segment {index} header")
        yield SegmentSpan(index, load_addr, reader.offset, length)
        reader.skip(length, f"segment {index} data")


def app_image_length(data: bytes) -> int | None:
    """esp_image_format.c's image length (header, segments, checksum pad, appended hash).

    Walks the segment headers only (no checksum or hash is computed); None when ``data`` is
    not an app image (no 0xE9 magic, more than 16 segments) or its segments run past the end.
    """
    try:
        header = ImageHeader.from_bytes(data)
        if header.magic != ESP_IMAGE_MAGIC or header.segment_count > ESP_IMAGE_MAX_SEGMENTS:
            return None
        end = IMAGE_HEADER_SIZE
        for span in walk_segments(data, header.segment_count):
            end = span.end
    except TruncatedError:
        return None
    # the checksum byte is the last of the 16-byte-aligned block, then the optional hash
    length = align_up(end + 1, 16) + (HASH_LEN if header.hash_appended == 1 else 0)
    return length if length <= len(data) else None


@record
class AppImage:
    """A parsed app image.

    Attributes:
        header: the 24-byte header.
        segments: segments in file order.
        checksum: the stored checksum byte.
        sha256: the stored appended SHA-256, or None when ``hash_appended`` is 0.
        app_desc: the ``esp_app_desc_t`` at the start of segment 0, or None if absent.
        image_len: esp_image_format.c's length: header, segments, padding, checksum, hash.
        segment_offsets: file offset of each segment's *data*.
        calc_checksum: the checksum computed over the segment data.
        calc_sha256: SHA-256 over ``[0, image_len - 32)`` (None without an appended hash).
    """

    header: ImageHeader
    segments: tuple[Segment, ...]
    checksum: int
    sha256: bytes | None
    app_desc: AppDesc | None
    image_len: int
    segment_offsets: tuple[int, ...] = field(default=(), compare=False)
    calc_checksum: int = field(default=-1, compare=False)
    calc_sha256: bytes | None = field(default=None, compare=False)

    @property
    def checksum_valid(self) -> bool:
        """The stored checksum byte matches the segment data."""
        return self.checksum == self.calc_checksum

    @property
    def hash_valid(self) -> bool | None:
        """The appended SHA-256 matches (None when no hash is appended)."""
        if self.sha256 is None:
            return None
        return self.sha256 == self.calc_sha256

    @property
    def chip(self) -> ChipSpec | None:
        """The chip the header names (None for an unknown chip id)."""
        return self.header.chip

    @classmethod
    def from_bytes(cls, data: bytes, *, check: bool = True) -> AppImage:
        """Parse an app image; bytes after ``image_len`` are ignored.

        Args:
            data: the image (or a whole slot: trailing 0xFF or a signature sector is fine).
            check: raise ``ChecksumMismatch`` on a wrong checksum or appended hash. With
                ``check=False`` the result carries ``checksum_valid``/``hash_valid`` instead
                (``image info`` reports them).

        Raises:
            TruncatedError: the data ends inside the structure.
            BadMagicError: the first byte is not 0xE9.
            ChecksumMismatch: (``check``) checksum or SHA-256 wrong.
        """
        data = bytes(data)
        try:
            return cls._parse(data, check)
        except TruncatedError as err:
            raise _truncated(err) from None

    @classmethod
    def _parse(cls, data: bytes, check: bool) -> AppImage:
        header = ImageHeader.from_bytes(data)
        check_esp32_family(header)
        check_magic(header)
        segments: list[Segment] = []
        offsets: list[int] = []
        end = IMAGE_HEADER_SIZE
        for span in walk_segments(data, header.segment_count):
            offsets.append(span.offset)
            end = span.end
            segments.append(Segment(span.load_addr, data[span.offset : end]))
        reader = Reader(data, "app image", end)
        pad = 15 - (end % 16)
        reader.read(pad, "padding before the checksum")
        checksum = reader.read(1, "checksum byte")[0]
        image_len = reader.offset
        stored_hash: bytes | None = None
        calc_hash: bytes | None = None
        if header.hash_appended:
            stored_hash = reader.read(HASH_LEN, "appended SHA-256")
            import hashlib  # not at module level: v1 verification walks images without it
            calc_hash = hashlib.sha256(memoryview(data)[:image_len]).digest()
            image_len += HASH_LEN
        image = cls(
            header=header,
            segments=tuple(segments),
            checksum=checksum,
            sha256=stored_hash,
            app_desc=_desc_of(segments),
            image_len=image_len,
            segment_offsets=tuple(offsets),
            calc_checksum=xor_checksum([s.data for s in segments]) & 0xFF,
            calc_sha256=calc_hash,
        )
        if check:
            image.raise_if_corrupt()
        return image

    def raise_if_corrupt(self) -> None:
        """Raise ``ChecksumMismatch`` with the bootloader's message if checksum/hash are wrong."""
        if not self.checksum_valid:
            raise ChecksumMismatch(
                f"Checksum failed. Calculated 0x{self.calc_checksum:x} read 0x{self.checksum:x} "
                "(the image is corrupt: download or flash it again)"
            )
        if self.hash_valid is False:
            raise ChecksumMismatch(
                "Image hash failed - image is corrupt (appended SHA-256 "
                f"{(self.sha256 or b'').hex()} does not match the computed "
                f"{(self.calc_sha256 or b'').hex()})"
            )

    def to_bytes(self) -> bytes:
        """Serialise with segment count, checksum and SHA-256 recomputed.

        Raises:
            FormatError: a segment length is not a multiple of 4, or too many segments.
        """
        return assemble_image(self.header, self.segments)

    def with_app_desc(self, desc: AppDesc) -> AppImage:
        """A copy whose segment 0 starts with ``desc`` (checksum/hash recomputed on write).

        Raises:
            FormatError: the image has no app description in segment 0.
        """
        if self.app_desc is None or not self.segments:
            raise FormatError("this image has no esp_app_desc_t in segment 0 to replace")
        first = self.segments[0]
        new_first = Segment(first.load_addr, desc.to_bytes() + first.data[APP_DESC_SIZE:])
        return AppImage.from_bytes(assemble_image(self.header, (new_first, *self.segments[1:])))


_TRUNCATED_HINT = " (the image is truncated: an incomplete download or copy?)"


def _truncated(err: TruncatedError) -> TruncatedError:
    text = str(err)
    return TruncatedError(text if text.endswith(_TRUNCATED_HINT) else text + _TRUNCATED_HINT)


def check_magic(header: ImageHeader, addr: int = 0) -> None:
    """Raise ``BadMagicError`` unless the image header starts with 0xE9."""
    if header.magic != ESP_IMAGE_MAGIC:
        raise BadMagicError(
            f"image at 0x{addr:x} has invalid magic byte (nothing flashed here?): "
            f"0x{header.magic:02x}, expected 0x{ESP_IMAGE_MAGIC:02x}"
            f"{_MAGIC_HINTS.get(header.magic, '')}"
        )


_ESP8266_HINT = ("otaforge supports the ESP32 family only "
                 "('esptool --chip esp8266 image-info' reads ESP8266 images)")


def check_esp32_family(header: ImageHeader, addr: int = 0, *, known_chip: bool = False) -> None:
    """Refuse an ESP8266 image the way ``esptool image-info`` tells the two apart.

    esptool calls an image ESP8266 when its magic is 0xEA (the "v2" OTA image), or when the
    0xE9 header has no valid ESP32 extended header: ``hash_appended`` (byte 23) not 0 or 1,
    or a chip id no esptool target has. (An ESP8266 header is 8 bytes; bytes 8..23 are already
    segment data there.) Parsing checks the first two signs; ``known_chip`` adds the third
    (``image info`` auto-detection, as esptool's; the bootloader path reports a wrong chip).

    Raises:
        FormatError: the header is an ESP8266 image's.
    """
    where = f"image at 0x{addr:x}"
    if header.magic == ESP8266_V2_IMAGE_MAGIC:
        raise FormatError(f"{where} is an ESP8266 \"v2\" image (magic 0xea): {_ESP8266_HINT}")
    if header.magic != ESP_IMAGE_MAGIC:
        return
    if header.hash_appended not in (0, 1):
        why = f"byte 23 (hash_appended) is 0x{header.hash_appended:02x}, not 0 or 1"
    elif known_chip and header.chip is None:
        why = f"chip id {header.chip_id} is no ESP32-family chip's"
    else:
        return
    raise FormatError(
        f"{where} is an ESP8266 image, not an ESP32-family one ({why}): {_ESP8266_HINT}"
    )


# what a user most often points ``image info`` at by mistake, by first byte
_MAGIC_HINTS = {
    0x7F: " (this is an ELF file: build/<project>.bin is the app image; or run "
          "'esptool elf2image')",
    0xAA: " (this looks like a partition table: try 'otaforge partitions check')",
    0xFF: " (erased flash: 0xFF)",
}


def _desc_of(segments: Sequence[Segment]) -> AppDesc | None:
    if not segments or len(segments[0].data) < APP_DESC_SIZE:
        return None
    head = segments[0].data[:APP_DESC_SIZE]
    if int.from_bytes(head[:4], "little") != APP_DESC_MAGIC:
        return None
    return AppDesc.from_bytes(head)


def assemble_image(header: ImageHeader, segments: Sequence[Segment]) -> bytes:
    """Header + segments + zero padding + checksum (+ SHA-256 when ``hash_appended``).

    ``segment_count`` is taken from ``segments``; checksum and hash are computed.

    Raises:
        FormatError: more than 16 segments, or a segment length not a multiple of 4.
    """
    if len(segments) > ESP_IMAGE_MAX_SEGMENTS:
        raise FormatError(f"{len(segments)} segments; an image holds at most 16")
    for index, seg in enumerate(segments):
        if len(seg.data) % 4:
            raise FormatError(f"segment {index} length 0x{len(seg.data):x} is not a multiple of 4")
    hdr = ImageHeader(**{**header.__dict__, "segment_count": len(segments)})
    parts = [hdr.to_bytes()]
    for seg in segments:
        parts.append(seg.header_bytes())
        parts.append(seg.data)
    body = b"".join(parts)
    checksum = xor_checksum([s.data for s in segments]) & 0xFF
    body += b"\x00" * (15 - len(body) % 16) + bytes([checksum])
    if hdr.hash_appended:
        import hashlib
        body += hashlib.sha256(body).digest()
    return body


def image_sha256(data: bytes) -> str:
    """Hex SHA-256 of ``data`` (the whole file as given), e.g. for release records."""
    import hashlib
    return hashlib.sha256(data).hexdigest()
