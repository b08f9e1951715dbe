"""Secure Boot v2 signing and verification, byte-compatible with `espsecure sign-data -v 2`.

Signing pads the image with 0xFF to a 4 KiB boundary and appends a 4 KiB signature sector with
one 1216-byte block per key (up to three, for key revocation). RSA-3072 blocks carry an RSA-PSS
(MGF1-SHA256, salt 32) signature over the SHA-256 of the padded content; ECDSA blocks sign the
SHA-256 (P-192/P-256) or SHA-384 (P-384) digest.

Verification checks every block: magic, CRC, version, scheme, image digest and signature (with
the key embedded in the block), then that a block's key is trusted: its digest equals one of
the given keys' or eFuse digests and that key index is not revoked. ``strict=False`` gives the
device's behaviour instead (any one good, trusted block suffices, damaged blocks are skipped).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from otaforge.crypto import keys as k
from otaforge.crypto.signature_result import SignatureResult as SignatureResult
from otaforge.crypto.signature_result import image_digest as image_digest
from otaforge.errors import InputError, SignatureInvalid
from otaforge.formats.signature_block import (
    ECDSA_SHA_256,
    ECDSA_SHA_384,
    SECTOR_SIZE,
    SIG_BLOCK_MAX_COUNT,
    SIG_BLOCK_VERSION_ECDSA,
    SIG_BLOCK_VERSION_RSA,
    SignatureBlock,
    SlotState,
    build_sector,
    find_signature_sector,
    read_sector,
    sector_fill_ok,
    signature_length,
)

__all__ = [
    "SECTOR_SIZE",
    "SignatureResult",
    "block_key_digest",
    "image_digest",
    "pad_content",
    "sign_v2",
    "signature_key_digests",
    "signature_length",
    "split_signed",
    "verify_v2",
    "verify_v2_against_running_app",
]

_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)


def block_key_digest(block: SignatureBlock) -> bytes:
    """SHA-256 of the block's key fields: the digest burnt into eFuse for its key."""
    return k.sha256(block.key)


# --- signing -----------------------------------------------------------------------------


def _make_block(content: bytes, key: k.PrivateKey) -> SignatureBlock:
    scheme = k.scheme_of(key)
    digest = image_digest(content, scheme)
    if isinstance(key, rsa.RSAPrivateKey):
        sig = key.sign(digest, _PSS, utils.Prehashed(hashes.SHA256()))
        return SignatureBlock(SIG_BLOCK_VERSION_RSA, digest, k.key_material(key), sig[::-1])
    hash_alg: hashes.HashAlgorithm = hashes.SHA384() if scheme == "ecdsa384" else hashes.SHA256()
    der = key.sign(digest, k.ecdsa(utils.Prehashed(hash_alg)))
    r, s = utils.decode_dss_signature(der)
    size = k.coordinate_size(scheme)
    rs = r.to_bytes(size, "little") + s.to_bytes(size, "little")
    sha_version = ECDSA_SHA_384 if scheme == "ecdsa384" else ECDSA_SHA_256
    return SignatureBlock(SIG_BLOCK_VERSION_ECDSA, digest, k.key_material(key),
                          rs.ljust(64, b"\x00") if scheme == "ecdsa192" else rs, sha_version)


def pad_content(image: bytes) -> bytes:
    """``image`` padded with 0xFF to a multiple of 4096 (what espsecure signs)."""
    return image + b"\xff" * (-len(image) % SECTOR_SIZE)


def split_signed(data: bytes) -> tuple[bytes, list[SignatureBlock]]:
    """``(content, valid_blocks)`` of an espsecure-style signed file (sector = last 4 KiB).

    Returns ``(data, [])`` when the last sector holds no valid block (an unsigned file).
    """
    if len(data) < SECTOR_SIZE or len(data) % SECTOR_SIZE:
        return data, []
    slots = read_sector(data[-SECTOR_SIZE:])
    blocks = []
    for slot in slots:
        if slot.block is None:
            break
        blocks.append(slot.block)
    return (data[:-SECTOR_SIZE], blocks) if blocks else (data, [])


def sign_v2(image: bytes, keys: Sequence[k.PrivateKey],
            append_to: bytes | None = None) -> bytes:
    """Sign ``image`` for Secure Boot v2: padded content plus a signature sector.

    Args:
        image: the unsigned image (padded with 0xFF to 4 KiB here).
        keys: 1-3 private keys; one block each, in order, all of one scheme.
        append_to: an image already signed: its blocks are kept and the new ones added after
            them (``espsecure sign-data --append-signatures``). ``image`` must then be that
            signed image, its content, or empty.

    Returns:
        The signed image bytes.

    Raises:
        InputError: no key, too many blocks, mixed schemes, or ``append_to`` whose existing
            blocks do not sign this image.
    """
    if not keys:
        raise InputError("no signing key given")
    existing: list[SignatureBlock] = []
    if append_to is not None:
        content, existing = split_signed(append_to)
        content = pad_content(content)
        if image and pad_content(image) not in (content, pad_content(append_to)):
            raise InputError("image differs from the signed image given to append to")
        for i, block in enumerate(existing):
            if block.image_digest != image_digest(content, block.scheme):
                raise InputError(
                    f"existing signature block {i} does not sign this image content "
                    "(image changed after signing?): sign it afresh without --append"
                )
    else:
        content = pad_content(image)
    if len(existing) + len(keys) > SIG_BLOCK_MAX_COUNT:
        raise InputError(
            f"{len(existing)} existing + {len(keys)} new signature blocks: a sector holds at "
            f"most {SIG_BLOCK_MAX_COUNT} (ESP32 ECO3 checks only the first)"
        )
    schemes = {b.scheme for b in existing} | {k.scheme_of(key) for key in keys}
    if len(schemes) > 1:
        raise InputError(
            f"signature blocks of one image must use one scheme, got {', '.join(sorted(schemes))}"
            ": ESP-IDF only accepts blocks of its configured scheme"
        )
    new_blocks = [_make_block(content, key) for key in keys]
    for i, block in enumerate(new_blocks):
        if not _signature_ok(block):  # a corrupt key or a faulted signing never goes out
            raise InputError(f"key {i} made a signature that does not verify: the key file "
                             "is damaged (regenerate it or restore it from backup)")
    blocks = existing + new_blocks
    return content + build_sector(blocks)


# --- verification ------------------------------------------------------------------------


def _signature_ok(block: SignatureBlock) -> bool:
    """Does the block's signature verify with the public key embedded in it?"""
    try:
        if block.version == SIG_BLOCK_VERSION_RSA:
            n, e, _, _ = block.rsa_fields()
            if n.bit_length() != k.RSA_BITS or e < 3 or e % 2 == 0:
                return False
            pub = rsa.RSAPublicNumbers(e, n).public_key()
            pub.verify(block.signature[::-1], block.image_digest, _PSS,
                       utils.Prehashed(hashes.SHA256()))
            return True
        scheme = block.scheme
        x, y = block.ecdsa_point()
        ec_pub = ec.EllipticCurvePublicNumbers(x, y, k.curve_for(scheme)).public_key()
        r, s = block.ecdsa_rs()
        hash_alg: hashes.HashAlgorithm = (hashes.SHA384() if scheme == "ecdsa384"
                                          else hashes.SHA256())
        ec_pub.verify(utils.encode_dss_signature(r, s), block.image_digest,
                      k.ecdsa(utils.Prehashed(hash_alg)))
        return True
    except (InvalidSignature, ValueError, KeyError):
        return False


def _locate(data: bytes, image_len: int | None) -> tuple[bytes, bytes]:
    offset = find_signature_sector(data, image_len)
    if offset is None:
        raise SignatureInvalid(
            "no signature sector: the image is unsigned (sign it with `otaforge image sign`)"
        )
    sector = data[offset : offset + SECTOR_SIZE]
    if len(sector) < SECTOR_SIZE:
        raise SignatureInvalid(
            f"truncated signature sector: {len(sector)} of {SECTOR_SIZE} bytes at offset "
            f"0x{offset:x} (file cut short in transfer?)"
        )
    return data[:offset], sector


def _trusted_index(digest: bytes, trusted: Sequence[bytes]) -> int | None:
    for i, want in enumerate(trusted):
        if len(want) in (16, 32) and digest[: len(want)] == want:
            return i
    return None


def _check_slot(slot: SlotState, content: bytes, scheme: str | None, strict: bool,
                digests: dict[str, bytes]) -> str:
    """'' when the slot holds a good block, else the reason it does not.

    ``digests`` caches the content digest per scheme (one pass over a 1.5 MB image each).
    """
    if slot.block is None:
        return slot.error or f"block {slot.index} is empty"
    block = slot.block
    if scheme is not None and block.scheme != scheme:
        return f"block {slot.index} scheme {block.scheme} differs from expected {scheme}"
    if strict and (block.padding != bytes(16) or block.reserved.strip(b"\x00")
                   or block.reserved2 or (block.version == SIG_BLOCK_VERSION_RSA
                                          and block.sha_version)):
        return f"block {slot.index} has non-zero reserved/padding bytes (altered block)"
    hash_name = "sha384" if block.scheme == "ecdsa384" else "sha256"
    if hash_name not in digests:
        digests[hash_name] = image_digest(content, block.scheme)
    if block.image_digest != digests[hash_name]:
        return f"block {slot.index} image digest mismatch: the image changed after signing"
    if not _signature_ok(block):
        return f"block {slot.index} signature does not verify with the key in the block"
    return ""


def verify_v2(
    data: bytes,
    *,
    keys: Sequence[k.PrivateKey | k.PublicKey] | None = None,
    digests: Sequence[bytes] | None = None,
    revoked: Iterable[int] = frozenset(),
    image_len: int | None = None,
    scheme: str | None = None,
    strict: bool = True,
    max_blocks: int = SIG_BLOCK_MAX_COUNT,
) -> SignatureResult:
    """Verify a Secure Boot v2 signed image.

    Args:
        data: the signed file, or a partition's bytes (then pass ``image_len``, or the app
            image is walked to find the sector at ALIGN_UP(image_len, 4096)).
        keys: trusted keys (private or public); their index is the reported key index.
        digests: trusted key digests as burnt into eFuse (32 bytes, or 16 on ESP32-C2), used
            when ``keys`` is None.
        revoked: indices of ``keys``/``digests`` that are revoked.
        image_len: the app image length, when ``data`` has bytes after the sector.
        scheme: the scheme the device is configured for; default: that of the keys/block 0.
        strict: check every block (host tool). False: the bootloader's rule -- damaged or
            untrusted blocks are skipped and one good trusted block suffices.
        max_blocks: blocks the device examines (1 on ESP32 ECO3).

    Returns:
        Which key index matched, in which block.

    Raises:
        SignatureInvalid: with the reason ("no signature sector", "truncated signature
            sector", "block N bad CRC", "bad magic", "image digest mismatch", "signature does
            not verify with key ...", "key N revoked").
        InputError: neither keys nor digests given.
    """
    if keys is None and digests is None:
        raise InputError("verify_v2 needs trusted keys or eFuse key digests")
    trusted = ([k.public_key_digest(key) for key in keys] if keys is not None
               else list(digests or []))
    content, sector = _locate(data, image_len)
    slots = read_sector(sector)[:max_blocks]
    present = [s for s in slots if not s.empty]
    if not present:
        raise SignatureInvalid("no signature sector: the signature sector holds no block")
    if scheme is None:  # blocks must agree with each other (ESP-IDF configures one scheme)
        first = next((s.block for s in present if s.block is not None), None)
        scheme = first.scheme if first is not None else None
    if strict:
        _strict_layout(slots, sector)
        _no_trailing_data(data, len(content) + SECTOR_SIZE)
    revoked_set = set(revoked)
    reasons: list[str] = []
    good: list[tuple[int, SignatureBlock]] = []
    content_digests: dict[str, bytes] = {}
    for slot in present:
        reason = _check_slot(slot, content, scheme, strict, content_digests)
        if reason and strict:
            raise SignatureInvalid(reason)
        if reason:
            reasons.append(reason)
        elif slot.block is not None:
            good.append((slot.index, slot.block))
    for block_index, block in good:
        index = _trusted_index(block_key_digest(block), trusted)
        if index is None:
            reasons.append(
                f"block {block_index} signature does not verify with "
                f"{_describe(trusted, keys)}: block is {block.scheme}, signed by key digest "
                f"{block_key_digest(block).hex()[:16]}..."
            )
        elif index in revoked_set:
            reasons.append(f"key {index} revoked (block {block_index} is signed with it)")
        else:
            return SignatureResult(block.scheme, index, len(present), len(content),
                                   block_index, block.image_digest)
    raise SignatureInvalid("; ".join(reasons))


def _no_trailing_data(data: bytes, end: int) -> None:
    """Bytes after the sector must be erased flash (0xFF) or absent (RFC 9124 IMG.EXTRA)."""
    tail = data[end:]
    if tail.strip(b"\xff"):
        raise SignatureInvalid(
            f"trailing data: {len(tail)} bytes after the signature sector are not erased "
            "flash (data appended after signing)"
        )


def _strict_layout(slots: list[SlotState], sector: bytes) -> None:
    seen_empty = False
    for slot in slots:
        if slot.empty:
            seen_empty = True
        elif seen_empty:
            raise SignatureInvalid(
                f"block {slot.index} follows an empty slot: blocks must be contiguous"
            )
    if not sector_fill_ok(sector):
        raise SignatureInvalid("signature sector fill after the blocks is not 0xFF (altered)")


def _describe(trusted: Sequence[bytes],
              keys: Sequence[k.PrivateKey | k.PublicKey] | None) -> str:
    if not trusted:
        return "key (none trusted)"
    kinds = ([k.scheme_of(key) for key in keys] if keys is not None
             else ["eFuse digest"] * len(trusted))
    listed = ", ".join(f"{i} ({kind} {d.hex()[:16]}...)"
                       for i, (kind, d) in enumerate(zip(kinds, trusted, strict=True)))
    return f"key {listed}"


def signature_key_digests(data: bytes, image_len: int | None = None) -> list[bytes]:
    """Key digests of the valid blocks (magic and CRC) of a signed image, packed in slot order
    (``esp_secure_boot_get_signature_blocks_for_running_app``'s table).

    Raises:
        SignatureInvalid: the image has no (or a truncated) signature sector.
    """
    _, sector = _locate(data, image_len)
    return [block_key_digest(s.block) for s in read_sector(sector) if s.block is not None]


def verify_v2_against_running_app(new: bytes, running: bytes, *,
                                  new_image_len: int | None = None,
                                  running_image_len: int | None = None) -> SignatureResult:
    """OTA check with signed apps but without hardware Secure Boot
    (``CONFIG_SECURE_SIGNED_ON_UPDATE_NO_SECURE_BOOT``, secure_boot_signatures_app.c).

    The trusted key is the one of the running app's first valid block (magic and CRC):
    ``calculate_image_public_key_digests`` packs the valid blocks' digests from index 0, and
    with one block checked only that first entry is compared. Only block 0 of the new image is
    checked against it. So the running app must itself be signed, and the new image's first
    block must use that key (espressif/esp-idf#10917). (IDF before the ECDSA v2 rework kept
    the digests at their slot index, so a damaged block 0 trusted nothing.)

    Raises:
        SignatureInvalid: the running app is unsigned, or the new image's block 0 is not a
            valid signature by the running app's key.
    """
    try:
        trusted = signature_key_digests(running, running_image_len)
    except SignatureInvalid as err:
        trusted, reason = [], str(err)
    else:
        reason = "no valid signature block"
    if not trusted:
        raise SignatureInvalid(
            f"running app is not signed ({reason}), so no update can be verified: without "
            "hardware Secure Boot the trusted key comes from the running app"
        )
    return verify_v2(new, digests=trusted[:1], image_len=new_image_len, strict=False,
                     max_blocks=1)
