"""A chip's signature policy, applied once: :func:`verify_for_chip`.

Every place that decides whether an image's signature is good enough for a chip -- the update
server on upload, the agent before it makes a slot bootable, the emulated ``esp_ota_*`` API and
the emulated bootloader -- calls this function, so the chip facts it applies live in one place
(:class:`~otaforge.formats.chips.ChipSpec`):

* ``sbv2_schemes``: the Secure Boot v2 schemes the chip's bootloader can be configured for. A
  block of another scheme is never accepted (ESP32: RSA-3072 only; C2/C61: ECDSA only).
* ``sbv2_blocks``: how many blocks of the sector are examined (ESP32 ECO3: block 0 only).
* ``sbv1_app_signing``: whether the v1 signed-app scheme (68-byte ECDSA P-256 trailer) exists.

The image is parsed once here: its length (for the sector position) is walked only when the
caller does not already know it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from cryptography.hazmat.primitives.asymmetric import ec

from otaforge.crypto import keys as k
from otaforge.crypto.sbv1 import verify_v1
from otaforge.crypto.sbv2 import SignatureResult, verify_v2
from otaforge.errors import FormatError, InputError, SignatureInvalid
from otaforge.formats.app_image import app_image_length
from otaforge.formats.chips import ChipSpec, sbv2_schemes_text
from otaforge.formats.record import replace
from otaforge.formats.signature_block import (
    SECTOR_SIZE,
    V1_SIGNATURE_SIZE,
    has_signature_sector,
    read_sector,
    signature_sector_offset,
)

__all__ = ["verify_for_chip"]

TrustedKey = k.PrivateKey | k.PublicKey


def verify_for_chip(
    data: bytes,
    chip: ChipSpec,
    *,
    keys: Sequence[TrustedKey] | None = None,
    digests: Sequence[bytes] | None = None,
    revoked: Iterable[int] = frozenset(),
    image_len: int | None = None,
    version: int | None = None,
    strict: bool = False,
) -> SignatureResult:
    """Verify ``data``'s signature as ``chip``'s bootloader (or OTA code) would.

    Args:
        data: the signed image, or a slot's bytes starting with it.
        chip: the target chip; its ChipSpec row gives the policy.
        keys: trusted keys (the reported ``key_index`` is an index into them). Keys of a
            scheme the chip cannot verify are ignored; the v1 scheme uses the P-256 ones.
        digests: trusted key digests as burnt into eFuse (Secure Boot v2 only), when ``keys``
            is None; their index is the eFuse key slot.
        revoked: revoked indices of ``keys``/``digests``.
        image_len: the app image length, when the caller parsed it already (else walked).
        version: 2 (Secure Boot v2 sector), 1 (v1 signed-app trailer), or None: the sector
            if the image has one, else a 68-byte trailer ending the data where the chip has
            the v1 scheme.
        strict: check every block and refuse trailing data (a host tool, the server); False is
            the bootloader's rule (a damaged or untrusted block is skipped).

    Returns:
        The scheme, key index, block count and signed length.

    Raises:
        SignatureInvalid: unsigned; signed with a scheme the chip does not verify; no trusted
            key of a scheme the chip verifies; the v1 scheme on a chip without it; or any
            reason of :func:`~otaforge.crypto.sbv2.verify_v2` / :func:`~otaforge.crypto.sbv1.
            verify_v1` (digest mismatch, untrusted or revoked key, ...).
        InputError: neither keys nor digests, or digests for a v1 signature.
    """
    if keys is None and digests is None:
        raise InputError("verify_for_chip needs trusted keys or eFuse key digests")
    if image_len is None:
        image_len = app_image_length(data)
    if version is None:
        version = _detect_version(data, chip, image_len)
    if version == 1:
        return _verify_v1(data, chip, keys, image_len, strict)
    return _verify_v2(data, chip, keys, digests, set(revoked), image_len, strict)


def _detect_version(data: bytes, chip: ChipSpec, image_len: int | None) -> int:
    if image_len is not None and has_signature_sector(data, image_len):
        return 2
    if image_len is None:
        return 2  # not a walkable app image: verify_v2 says what the file's end holds
    if len(data) == image_len + V1_SIGNATURE_SIZE and chip.sbv1_app_signing:
        return 1
    raise SignatureInvalid(
        f"image is unsigned (no Secure Boot v2 signature sector{_v1_hint(chip)}); sign it "
        "(`otaforge image sign` or espsecure sign-data) first"
    )


def _v1_hint(chip: ChipSpec) -> str:
    return " and no v1 signature" if chip.sbv1_app_signing else ""


def _verify_v2(data: bytes, chip: ChipSpec, keys: Sequence[TrustedKey] | None,
               digests: Sequence[bytes] | None, revoked: set[int], image_len: int | None,
               strict: bool) -> SignatureResult:
    accepted = chip.sbv2_schemes
    if not accepted:
        raise SignatureInvalid(f"image carries a Secure Boot v2 signature, but {chip.name} "
                               f"verifies none ({sbv2_schemes_text(chip)})")
    scheme = accepted[0] if len(accepted) == 1 else None
    if keys is None:
        _check_block_schemes(data, chip, image_len)
        return verify_v2(data, digests=list(digests or []), revoked=revoked,
                         image_len=image_len, scheme=scheme, strict=strict,
                         max_blocks=chip.sbv2_blocks)
    positions = [i for i, key in enumerate(keys) if k.scheme_of(key) in accepted]
    if not positions:
        raise SignatureInvalid(
            f"image carries a Secure Boot v2 signature, but none of the {len(keys)} trusted "
            f"key(s) is of a scheme {chip.name} verifies ({sbv2_schemes_text(chip)})"
        )
    _check_block_schemes(data, chip, image_len)
    result = verify_v2(data, keys=[keys[i] for i in positions],
                       revoked={n for n, i in enumerate(positions) if i in revoked},
                       image_len=image_len, scheme=scheme, strict=strict,
                       max_blocks=chip.sbv2_blocks)
    return _reindexed(result, positions)


def _check_block_schemes(data: bytes, chip: ChipSpec, image_len: int | None) -> None:
    """Refuse a sector whose examined, well-formed blocks are all of schemes the chip lacks."""
    if image_len is None:
        return  # verify_v2 locates the sector (espsecure layout) and explains what it finds
    offset = signature_sector_offset(image_len)
    sector = data[offset : offset + SECTOR_SIZE]
    if len(sector) < SECTOR_SIZE:
        return
    try:
        slots = read_sector(sector)[: chip.sbv2_blocks]
    except FormatError:
        return
    schemes = [s.block.scheme for s in slots if s.block is not None]
    if schemes and not set(schemes) & set(chip.sbv2_schemes):
        raise SignatureInvalid(
            f"image is signed with {schemes[0]}, but {chip.name} only verifies "
            f"{sbv2_schemes_text(chip)} Secure Boot v2 signatures"
        )


def _verify_v1(data: bytes, chip: ChipSpec, keys: Sequence[TrustedKey] | None,
               image_len: int | None, strict: bool) -> SignatureResult:
    if not chip.sbv1_app_signing:
        raise SignatureInvalid(
            f"the v1 signed-app scheme (68-byte ECDSA trailer) does not exist on {chip.name}: "
            f"sign for Secure Boot v2 ({sbv2_schemes_text(chip)})"
        )
    if keys is None:
        raise InputError("a v1 signature is checked with keys, not eFuse digests")
    positions = [i for i, key in enumerate(keys) if _is_p256(key)]
    if not positions:
        raise SignatureInvalid(
            "image carries a v1 (ECDSA P-256) signature, but no trusted key is ECDSA P-256"
        )
    result = verify_v1(data, keys=[keys[i] for i in positions], image_len=image_len,
                       strict=strict)
    return _reindexed(result, positions)


def _is_p256(key: TrustedKey) -> bool:
    pub = k.as_public(key)
    return isinstance(pub, ec.EllipticCurvePublicKey) and isinstance(pub.curve, ec.SECP256R1)


def _reindexed(result: SignatureResult, positions: list[int]) -> SignatureResult:
    """``result`` with its key index mapped back to the caller's key list."""
    return replace(result, key_index=positions[result.key_index])
