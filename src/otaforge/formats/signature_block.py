"""Secure Boot v2 signature blocks and the 4 KiB signature sector (reference §4.2-4.3).

A signed image is ``content ‖ sector`` where ``content`` is the app image padded with 0xFF to a
4 KiB boundary and the sector holds up to three 1216-byte blocks (0xFF in unused slots and in
the 448 bytes after them). Field names follow ESP-IDF's ``ets_secure_boot_sig_block_t``.

This module only parses and lays out bytes (magic, version, CRC); which key signed a block and
whether the signature verifies is :mod:`otaforge.crypto.sbv2`'s job.
"""

from __future__ import annotations

import struct
import zlib

from otaforge.errors import BadMagicError, ChecksumMismatch, FormatError, TruncatedError
from otaforge.formats._binary import align_up
from otaforge.formats.record import field, record
from otaforge.formats.sector import SECTOR_SIZE as SECTOR_SIZE  # a signature sector is one
from otaforge.formats.signature_key import (
    COORD_SIZES,
    CURVE_ID_P192,
    CURVE_ID_P256,
    CURVE_ID_P384,
    RSA_KEY_FIELDS,
    SCHEME_NAMES,
)

SIG_BLOCK_SIZE = 1216
SIG_BLOCK_MAX_COUNT = 3
SIG_BLOCK_MAGIC = 0xE7
SIG_BLOCK_VERSION_RSA = 0x02
SIG_BLOCK_VERSION_ECDSA = 0x03
ECDSA_SHA_256 = 0x00
ECDSA_SHA_384 = 0x01
CRC_OFFSET = 1196  # the CRC covers block[0:1196]
V1_SIGNATURE_SIZE = 68  # uint32 version 0 + ECDSA P-256 r‖s

# magic, version, sha_version/_reserved1, _reserved2, then per scheme:
_RSA = struct.Struct("<BBBB32s384sI384sI384sI16s")
_ECDSA256 = struct.Struct("<BBBB32sB64s64s1031sI16s")  # also P-192 (zero-padded)
_ECDSA384 = struct.Struct("<BBBB48sB96s96s951sI16s")
_HEAD = struct.Struct("<BBBB")
_CRC = struct.Struct("<I")
_V1_TRAILER = struct.Struct("<I32s32s")  # v1 signed app: version 0, r, s (big-endian)
assert _RSA.size == _ECDSA256.size == _ECDSA384.size == SIG_BLOCK_SIZE
assert _V1_TRAILER.size == V1_SIGNATURE_SIZE


def block_crcs(raw: bytes) -> tuple[int, int]:
    """``(stored, computed)`` CRC32 of a 1216-byte block (the CRC covers its first 1196 bytes)."""
    (stored,) = _CRC.unpack_from(raw, CRC_OFFSET)
    return int(stored), zlib.crc32(raw[:CRC_OFFSET])


def v1_signature(r: int, s: int) -> bytes:
    """The 68-byte v1 signed-app trailer: version 0, then r and s big-endian."""
    return _V1_TRAILER.pack(0, r.to_bytes(32, "big"), s.to_bytes(32, "big"))


def parse_v1_signature(trailer: bytes) -> tuple[int, int, int]:
    """``(version, r, s)`` of a 68-byte v1 trailer.

    Raises:
        TruncatedError: fewer than 68 bytes.
    """
    if len(trailer) < V1_SIGNATURE_SIZE:
        raise TruncatedError(
            f"truncated signature: {len(trailer)} of {V1_SIGNATURE_SIZE} bytes after the image"
        )
    version, r, s = _V1_TRAILER.unpack_from(trailer)
    return int(version), int.from_bytes(r, "big"), int.from_bytes(s, "big")


@record
class SignatureBlock:
    """One 1216-byte Secure Boot v2 signature block.

    Attributes:
        version: 0x02 RSA-3072 (RSA-PSS) or 0x03 ECDSA.
        image_digest: SHA-256 (SHA-384 for P-384) of the signed content.
        key: the key fields as laid out in the block, whose SHA-256 is the eFuse digest:
            RSA ``n ‖ e ‖ rinv ‖ mdash`` (776 bytes); ECDSA ``curve_id ‖ point`` (65/97 bytes).
        signature: RSA signature byte-reversed (384), or ECDSA ``r ‖ s`` little-endian (64/96).
        sha_version: ECDSA hash: 0 SHA-256, 1 SHA-384 (0 for RSA).
        magic_byte: 0xE7.
        reserved: the ECDSA block's zero bytes after the signature (empty for RSA).
        padding: the 16 bytes after the CRC (zero).
        block_crc: CRC32 of block[0:1196]; computed on write, checked on read.
    """

    version: int
    image_digest: bytes
    key: bytes
    signature: bytes
    sha_version: int = ECDSA_SHA_256
    magic_byte: int = SIG_BLOCK_MAGIC
    reserved2: int = 0
    reserved: bytes = field(default=b"")
    padding: bytes = field(default=b"\x00" * 16)

    @property
    def scheme(self) -> str:
        """"rsa3072", "ecdsa192", "ecdsa256" or "ecdsa384"."""
        if self.version == SIG_BLOCK_VERSION_RSA:
            return "rsa3072"
        return SCHEME_NAMES.get(self.curve_id, f"ecdsa-curve{self.curve_id}")

    @property
    def curve_id(self) -> int:
        """ECDSA curve id (0 for RSA blocks)."""
        return self.key[0] if self.version == SIG_BLOCK_VERSION_ECDSA else 0

    @property
    def block_crc(self) -> int:
        """The CRC32 this block carries when written."""
        return zlib.crc32(self._body())

    def _body(self) -> bytes:
        if self.version == SIG_BLOCK_VERSION_RSA:
            n, e, rinv, mdash = RSA_KEY_FIELDS.unpack(self.key)
            return _RSA.pack(self.magic_byte, self.version, self.sha_version, self.reserved2,
                             self.image_digest, n, e, rinv, mdash, self.signature, 0,
                             self.padding)[:CRC_OFFSET]
        layout = _ECDSA384 if self.curve_id == CURVE_ID_P384 else _ECDSA256
        reserved = self.reserved or bytes(1031 if layout is _ECDSA256 else 951)
        return layout.pack(self.magic_byte, self.version, self.sha_version, self.reserved2,
                           self.image_digest, self.key[0], self.key[1:], self.signature,
                           reserved, 0, self.padding)[:CRC_OFFSET]

    def to_bytes(self) -> bytes:
        """The 1216 bytes with the CRC computed."""
        body = self._body()
        return body + _CRC.pack(zlib.crc32(body)) + self.padding

    @classmethod
    def from_bytes(cls, data: bytes, index: int = 0) -> SignatureBlock:
        """Parse one block, checking magic, version, curve and CRC.

        Args:
            data: at least 1216 bytes (only the first 1216 are read).
            index: the block's slot in its sector, for messages.

        Raises:
            TruncatedError: fewer than 1216 bytes.
            BadMagicError: magic is not 0xE7.
            ChecksumMismatch: the CRC does not match.
            FormatError: unknown version, hash or curve.
        """
        if len(data) < SIG_BLOCK_SIZE:
            raise TruncatedError(
                f"signature block {index}: needs {SIG_BLOCK_SIZE} bytes, only {len(data)} left"
            )
        raw = bytes(data[:SIG_BLOCK_SIZE])
        magic, version, sha_version, reserved2 = _HEAD.unpack_from(raw, 0)
        if magic != SIG_BLOCK_MAGIC:
            raise BadMagicError(
                f"block {index} bad magic 0x{magic:02x} (expected 0xe7): not a signature block"
            )
        crc, calc = block_crcs(raw)
        if crc != calc:
            raise ChecksumMismatch(
                f"block {index} bad CRC: stored 0x{crc:08x}, computed 0x{calc:08x}"
            )
        if version == SIG_BLOCK_VERSION_RSA:
            f = _RSA.unpack(raw)
            key = RSA_KEY_FIELDS.pack(f[5], f[6], f[7], f[8])
            return cls(version, f[4], key, f[9], sha_version, magic, reserved2, b"", f[11])
        if version != SIG_BLOCK_VERSION_ECDSA:
            raise FormatError(
                f"block {index} unknown version 0x{version:02x} (0x02 RSA, 0x03 ECDSA)"
            )
        layout = _ECDSA384 if sha_version == ECDSA_SHA_384 else _ECDSA256
        if sha_version not in (ECDSA_SHA_256, ECDSA_SHA_384):
            raise FormatError(f"block {index} unknown ECDSA hash version {sha_version}")
        f = layout.unpack(raw)
        curve_id = f[5]
        expected = (CURVE_ID_P384,) if layout is _ECDSA384 else (CURVE_ID_P192, CURVE_ID_P256)
        if curve_id not in expected:
            raise FormatError(
                f"block {index} curve id {curve_id} does not fit its hash version {sha_version}"
            )
        return cls(version, f[4], bytes([curve_id]) + f[6], f[7], sha_version, magic,
                   reserved2, f[8], f[10])

    # --- field views -------------------------------------------------------------------

    def rsa_fields(self) -> tuple[int, int, int, int]:
        """``(n, e, rinv, mdash)`` of an RSA block as integers."""
        n, e, rinv, mdash = RSA_KEY_FIELDS.unpack(self.key)
        return (int.from_bytes(n, "little"), e, int.from_bytes(rinv, "little"), mdash)

    def ecdsa_point(self) -> tuple[int, int]:
        """``(x, y)`` of an ECDSA block's public key."""
        size = COORD_SIZES[self.curve_id]
        point = self.key[1:]
        return (int.from_bytes(point[:size], "little"),
                int.from_bytes(point[size : 2 * size], "little"))

    def ecdsa_rs(self) -> tuple[int, int]:
        """``(r, s)`` of an ECDSA block's signature."""
        size = COORD_SIZES[self.curve_id]
        return (int.from_bytes(self.signature[:size], "little"),
                int.from_bytes(self.signature[size : 2 * size], "little"))


@record
class SlotState:
    """What one of the three block slots of a sector holds.

    Attributes:
        index: 0..2.
        block: the parsed block, or None.
        empty: the slot is all 0xFF (never written).
        error: why the slot is neither empty nor a valid block (bad magic, CRC, version).
    """

    index: int
    block: SignatureBlock | None
    empty: bool
    error: str = ""


def read_sector(sector: bytes) -> list[SlotState]:
    """The three slots of a 4096-byte signature sector.

    Raises:
        TruncatedError: the sector is shorter than 4096 bytes.
    """
    if len(sector) < SECTOR_SIZE:
        raise TruncatedError(
            f"truncated signature sector: {len(sector)} of {SECTOR_SIZE} bytes present"
        )
    slots = []
    for i in range(SIG_BLOCK_MAX_COUNT):
        raw = sector[i * SIG_BLOCK_SIZE : (i + 1) * SIG_BLOCK_SIZE]
        if raw == b"\xff" * SIG_BLOCK_SIZE:
            slots.append(SlotState(i, None, True))
            continue
        try:
            slots.append(SlotState(i, SignatureBlock.from_bytes(raw, i), False))
        except FormatError as err:
            slots.append(SlotState(i, None, False, str(err)))
    return slots


def sector_fill_ok(sector: bytes) -> bool:
    """The 448 bytes after the three slots are 0xFF, as espsecure writes them."""
    tail = sector[SIG_BLOCK_MAX_COUNT * SIG_BLOCK_SIZE : SECTOR_SIZE]
    return tail == b"\xff" * len(tail)


def build_sector(blocks: list[SignatureBlock]) -> bytes:
    """A 4096-byte sector holding ``blocks`` (1..3), 0xFF elsewhere.

    Raises:
        FormatError: no block or more than three.
    """
    if not 1 <= len(blocks) <= SIG_BLOCK_MAX_COUNT:
        raise FormatError(
            f"a signature sector holds 1 to {SIG_BLOCK_MAX_COUNT} blocks, not {len(blocks)}"
        )
    return b"".join(b.to_bytes() for b in blocks).ljust(SECTOR_SIZE, b"\xff")


def signature_sector_offset(image_len: int) -> int:
    """Where the Secure Boot v2 sector of an image of ``image_len`` bytes starts (4 KiB aligned)."""
    return align_up(image_len, SECTOR_SIZE)


def has_signature_sector(data: bytes, image_len: int) -> bool:
    """True when a 0xE7 block magic sits at :func:`signature_sector_offset` in ``data``."""
    offset = signature_sector_offset(image_len)
    return len(data) > offset and data[offset] == SIG_BLOCK_MAGIC


def find_signature_sector(image: bytes, image_len: int | None = None) -> int | None:
    """Offset of the signature sector in ``image``, or None when it has none.

    With ``image_len`` (the app image length, e.g. when reading a flash partition) the sector
    is at ``ALIGN_UP(image_len, 4096)`` as the bootloader looks for it. Without it, a file
    whose last 4 KiB start with a block magic is taken as espsecure lays it out (sector = last
    4 KiB); otherwise the app image is walked to find its length.

    The returned offset may leave fewer than 4096 bytes (a truncated sector); callers check.
    """
    if image_len is not None:
        offset = signature_sector_offset(image_len)
        return offset if len(image) > offset else None
    if len(image) >= SECTOR_SIZE and len(image) % SECTOR_SIZE == 0 \
            and image[-SECTOR_SIZE] == SIG_BLOCK_MAGIC:
        return len(image) - SECTOR_SIZE
    # imported only here: signing and verifying espsecure-layout files (the common case, a
    # start-up-timed command) never need the image parser
    from otaforge.formats.app_image import app_image_length

    walked = app_image_length(image)
    if walked is not None:
        offset = signature_sector_offset(walked)
        if len(image) > offset and image[offset] != 0xFF:
            return offset
        return None
    if len(image) % SECTOR_SIZE:
        # a cut-off file: a block magic at the last sector boundary means a truncated sector;
        # a whole sector (magic, 0xFF fill) just before it means data appended after signing
        offset = len(image) - len(image) % SECTOR_SIZE
        if image[offset] == SIG_BLOCK_MAGIC:
            return offset
        before = offset - SECTOR_SIZE
        if before >= 0 and image[before] == SIG_BLOCK_MAGIC \
                and sector_fill_ok(image[before:offset]):
            return before
        return None
    if len(image) >= SECTOR_SIZE and _looks_like_sector(image[-SECTOR_SIZE:]):
        return len(image) - SECTOR_SIZE  # a damaged sector (e.g. block 0's magic changed)
    return None


def _looks_like_sector(sector: bytes) -> bool:
    """A sector whose fill after the slots is 0xFF, that is not all 0xFF, or has a magic."""
    magics = any(sector[i * SIG_BLOCK_SIZE] == SIG_BLOCK_MAGIC for i in range(1, 3))
    fill = sector[SIG_BLOCK_MAX_COUNT * SIG_BLOCK_SIZE :]
    return magics or (fill == b"\xff" * len(fill) and sector != b"\xff" * SECTOR_SIZE)


def signature_length(scheme: str | None, image_len: int) -> int:
    """Extra partition space a signed image needs after ``image_len`` (esp_image_format.c).

    Args:
        scheme: None/"none" (unsigned), "v1"/"ecdsa_v1" (68-byte v1 signature), or "v2" /
            "rsa3072" / "ecdsa192" / "ecdsa256" / "ecdsa384" (Secure Boot v2 sector).
        image_len: the app image length (§3.3).

    Raises:
        FormatError: unknown scheme.
    """
    if scheme in (None, "none", ""):
        return 0
    if scheme in ("v1", "ecdsa_v1"):
        return V1_SIGNATURE_SIZE
    if scheme in ("v2", "rsa3072", "ecdsa192", "ecdsa256", "ecdsa384"):
        return signature_sector_offset(image_len) - image_len + SECTOR_SIZE
    raise FormatError(f"unknown signing scheme {scheme!r}")


def has_v1_signature(data: bytes, image_len: int) -> bool:
    """True when exactly a 68-byte v1 trailer (version word 0) follows the image in ``data``."""
    tail = data[image_len:]
    return len(tail) == V1_SIGNATURE_SIZE and tail[:4] == bytes(4)


@record
class BlockHeader:
    """A slot of a signature sector that starts with the block magic, as ``image info`` lists it.

    Attributes:
        index: slot 0..2.
        offset: file offset of the block.
        version: the version byte (0x02 RSA, 0x03 ECDSA; anything else is unknown).
        crc_valid: the block's CRC32 over its first 1196 bytes matches.
    """

    index: int
    offset: int
    version: int
    crc_valid: bool


def block_headers(data: bytes, image_len: int) -> list[BlockHeader]:
    """The blocks of the sector after ``image_len`` up to the first slot without the magic.

    Only magic, version and CRC are read (the blocks need not parse); empty when unsigned.
    """
    start = signature_sector_offset(image_len)
    found = []
    for index in range(SIG_BLOCK_MAX_COUNT):
        offset = start + index * SIG_BLOCK_SIZE
        raw = data[offset : offset + SIG_BLOCK_SIZE]
        if len(raw) < SIG_BLOCK_SIZE or raw[0] != SIG_BLOCK_MAGIC:
            break
        stored, computed = block_crcs(raw)
        found.append(BlockHeader(index, offset, raw[1], stored == computed))
    return found


@record
class BlockSummary:
    """One slot of a signature sector, for ``image info``.

    Attributes:
        index: slot 0..2.
        scheme: "rsa3072", "ecdsa256", ... ("" when the slot is not a valid block).
        key_digest: SHA-256 of the block's key fields (the eFuse digest of its key).
        digest_ok: the block's image digest matches the content before the sector.
        error: why the slot is not a valid block ("" when it is).
    """

    index: int
    scheme: str
    key_digest: bytes
    digest_ok: bool
    error: str = ""


def summarize_signatures(image: bytes, image_len: int | None = None) -> list[BlockSummary]:
    """The non-empty slots of ``image``'s signature sector (empty list: unsigned/truncated).

    Checks structure and image digests only; signatures are verified by ``image verify``.
    """
    import hashlib

    offset = find_signature_sector(image, image_len)
    if offset is None or len(image) < offset + SECTOR_SIZE:
        return []
    content = image[:offset]
    out = []
    for slot in read_sector(image[offset : offset + SECTOR_SIZE]):
        if slot.empty:
            continue
        block = slot.block
        if block is None:
            out.append(BlockSummary(slot.index, "", b"", False, slot.error))
            continue
        algo = hashlib.sha384 if block.scheme == "ecdsa384" else hashlib.sha256
        out.append(BlockSummary(slot.index, block.scheme, hashlib.sha256(block.key).digest(),
                                algo(content).digest() == block.image_digest))
    return out
