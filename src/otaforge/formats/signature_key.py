"""The key fields of a Secure Boot v2 signature block, whose SHA-256 is the eFuse key digest.

Kept apart from :mod:`otaforge.formats.signature_block` so that making or loading a key
(:mod:`otaforge.crypto.keys`) does not import the image parsers (reference §4.2):

* RSA-3072: ``n`` (384 bytes LE) ‖ ``e`` (u32) ‖ ``rinv`` (384 bytes LE) ‖ ``mdash`` (u32);
* ECDSA: ``curve_id`` ‖ X ‖ Y, each coordinate little-endian (P-192 zero-padded to 64 bytes).
"""

from __future__ import annotations

import struct

CURVE_ID_P192 = 1
CURVE_ID_P256 = 2
CURVE_ID_P384 = 3
RSA_KEY_FIELDS = struct.Struct("<384sI384sI")  # n, e, rinv, mdash

#: ECDSA scheme name -> the block's ``curve_id``
CURVE_IDS = {"ecdsa192": CURVE_ID_P192, "ecdsa256": CURVE_ID_P256, "ecdsa384": CURVE_ID_P384}
SCHEME_NAMES = {curve_id: scheme for scheme, curve_id in CURVE_IDS.items()}
#: bytes per coordinate (and per signature half) of each curve id, little-endian in a block
COORD_SIZES = {CURVE_ID_P192: 24, CURVE_ID_P256: 32, CURVE_ID_P384: 48}
_ECDSA_POINT_FIELD = 64  # P-192/P-256 blocks keep 64 point bytes (P-192 zero-padded)


def rsa_key_fields(n: int, e: int, rinv: int, mdash: int) -> bytes:
    """The 776-byte ``n ‖ e ‖ rinv ‖ mdash`` of an RSA-3072 block (little-endian)."""
    return RSA_KEY_FIELDS.pack(n.to_bytes(384, "little"), e, rinv.to_bytes(384, "little"), mdash)


def ecdsa_key_fields(curve_id: int, x: int, y: int) -> bytes:
    """``curve_id ‖ X ‖ Y`` as an ECDSA block holds them (65 or 97 bytes)."""
    size = COORD_SIZES[curve_id]
    point = x.to_bytes(size, "little") + y.to_bytes(size, "little")
    if curve_id != CURVE_ID_P384:
        point = point.ljust(_ECDSA_POINT_FIELD, b"\x00")
    return bytes([curve_id]) + point
