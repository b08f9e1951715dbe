"""The v1 signed-app scheme (ESP32): a 68-byte ECDSA P-256 trailer, as ``espsecure sign-data
--version 1`` writes it (reference §4.4).

Trailer = ``uint32 0`` (version) ‖ r (32 bytes, big-endian) ‖ s (32 bytes, big-endian); the
signature is ECDSA P-256 / SHA-256 over every byte before the trailer (deterministic, RFC 6979,
so signing the same image twice gives the same bytes, as espsecure does).
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from otaforge.crypto import keys as k
from otaforge.crypto.signature_result import SignatureResult, image_digest
from otaforge.errors import InputError, SignatureInvalid, TruncatedError
from otaforge.formats.signature_block import (
    V1_SIGNATURE_SIZE,
    parse_v1_signature,
    v1_signature,
)

__all__ = ["V1_SIGNATURE_SIZE", "sign_v1", "verify_v1"]


def _p256_private(key: k.PrivateKey) -> ec.EllipticCurvePrivateKey:
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve,
                                                                          ec.SECP256R1):
        raise InputError(
            "the v1 signed-app scheme (ESP32) signs with ECDSA P-256 keys only "
            "(make one with `otaforge keys generate --version 1`)"
        )
    return key


def sign_v1(image: bytes, key: k.PrivateKey) -> bytes:
    """``image`` followed by its 68-byte v1 signature.

    Raises:
        InputError: the key is not ECDSA P-256.
    """
    sk = _p256_private(key)
    der = sk.sign(image, k.ecdsa(hashes.SHA256(), deterministic=True))
    try:  # back-verify, as espsecure does
        sk.public_key().verify(der, image, k.ecdsa(hashes.SHA256()))
    except InvalidSignature:
        raise InputError("the key made a signature that does not verify: the key file is "
                         "damaged") from None
    r, s = utils.decode_dss_signature(der)
    return image + v1_signature(r, s)


def _signed_len(data: bytes, image_len: int | None) -> int:
    """Where the trailer starts: after ``image_len`` (device), else at the file end (espsecure).

    An app image followed by more than 68 bytes whose last 68 do not start with version 0 is
    read as a partition: the trailer right after the image, erased flash after it.
    """
    if image_len is not None:
        return image_len
    from otaforge.formats.app_image import app_image_length  # only when no image_len is given

    walked = app_image_length(data)
    if walked is not None:
        if len(data) <= walked:
            raise SignatureInvalid("no signature: nothing follows the app image")
        if len(data) < walked + V1_SIGNATURE_SIZE:
            raise SignatureInvalid(
                f"truncated signature: {len(data) - walked} of {V1_SIGNATURE_SIZE} bytes "
                "after the image"
            )
        if data[-V1_SIGNATURE_SIZE:][:4] != bytes(4):
            return walked
    if len(data) < V1_SIGNATURE_SIZE:
        raise SignatureInvalid(f"no signature: the file is only {len(data)} bytes")
    return len(data) - V1_SIGNATURE_SIZE


def verify_v1(
    data: bytes,
    *,
    keys: Sequence[k.PrivateKey | k.PublicKey] | None = None,
    image_len: int | None = None,
    strict: bool = True,
) -> SignatureResult:
    """Verify a v1 signed image (the trailer right after ``image_len`` or at the file end).

    Args:
        data: the signed file, or a partition's bytes.
        keys: trusted P-256 keys (private or public); the index of the one that verifies is
            reported.
        image_len: the app image length, when ``data`` continues after the trailer.
        strict: refuse bytes after the trailer other than erased flash (0xFF); the device
            (``strict=False``) ignores them.

    Raises:
        SignatureInvalid: no or truncated signature, bad version, or no key verifies.
        InputError: no keys, or a key that is not P-256.
    """
    if not keys:
        raise InputError("verify_v1 needs at least one trusted ECDSA P-256 key")
    publics = [k.as_public(key) for key in keys]
    for pub in publics:
        if not isinstance(pub, ec.EllipticCurvePublicKey) or \
                not isinstance(pub.curve, ec.SECP256R1):
            raise InputError("the v1 signed-app scheme (ESP32) uses ECDSA P-256 keys only")
    signed_len = _signed_len(data, image_len)
    try:
        version, r, s = parse_v1_signature(data[signed_len : signed_len + V1_SIGNATURE_SIZE])
    except TruncatedError as err:
        raise SignatureInvalid(str(err)) from None
    if version != 0:
        raise SignatureInvalid(
            f"no signature: signature version field is 0x{version:08x}, expected 0 "
            "(unsigned image, or signed for Secure Boot v2?)"
        )
    if strict and data[signed_len + V1_SIGNATURE_SIZE :].strip(b"\xff"):
        raise SignatureInvalid(
            "trailing data: bytes after the signature are not erased flash (data appended "
            "after signing)"
        )
    content = data[:signed_len]
    der = utils.encode_dss_signature(r, s)
    for index, pub in enumerate(publics):
        assert isinstance(pub, ec.EllipticCurvePublicKey)
        try:
            pub.verify(der, content, k.ecdsa(hashes.SHA256()))
        except InvalidSignature:
            continue
        return SignatureResult("v1", index, 1, signed_len, 0, image_digest(content, "v1"))
    listed = ", ".join(f"{i} ({k.public_key_digest(p).hex()[:16]}...)"
                       for i, p in enumerate(publics))
    raise SignatureInvalid(
        f"signature does not verify with key {listed}: wrong key, or the image or its "
        "signature changed after signing"
    )
