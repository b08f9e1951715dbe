"""Signing keys for Secure Boot v2 and the v1 signed-app scheme, interchangeable with espsecure.

Private keys are PEM "traditional OpenSSL" files (``-----BEGIN RSA PRIVATE KEY-----`` /
``-----BEGIN EC PRIVATE KEY-----``), exactly what ``espsecure generate-signing-key`` writes, so
a key made by either tool is usable by the other.

The public key digest (:func:`public_key_digest`) is what is burnt into eFuse and what
``espsecure digest-sbv2-public-key`` writes: SHA-256 of the key fields as they are laid out in a
signature block (reference §4.2):

* RSA-3072: ``n`` (384 bytes LE) ‖ ``e`` (u32) ‖ ``rinv = 2^6144 mod n`` (384 bytes LE) ‖
  ``mdash = -n^-1 mod 2^32`` (u32) -- 776 bytes;
* ECDSA: ``curve_id`` (1 = P-192, 2 = P-256, 3 = P-384) ‖ X ‖ Y, each coordinate little-endian.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from otaforge.errors import InputError
from otaforge.formats.signature_key import (
    COORD_SIZES,
    CURVE_IDS,
    ecdsa_key_fields,
    rsa_key_fields,
)

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

RSA_BITS = 3072
RSA_EXPONENT = 65537
#: schemes ``generate_key`` makes; "ecdsa192" is only read (espsecure/older ESP32-C2 keys)
GENERATE_SCHEMES = ("rsa3072", "ecdsa256", "ecdsa384")
SCHEMES = ("rsa3072", "ecdsa192", "ecdsa256", "ecdsa384")
_CURVES: dict[str, type[ec.EllipticCurve]] = {  # curve ids and sizes: formats.signature_key
    "ecdsa192": ec.SECP192R1, "ecdsa256": ec.SECP256R1, "ecdsa384": ec.SECP384R1,
}


def generate_key(scheme: str) -> PrivateKey:
    """A new private key for ``scheme``.

    Args:
        scheme: "rsa3072", "ecdsa256" or "ecdsa384" (Secure Boot v2); the v1 signed-app
            scheme uses "ecdsa256" (also accepted as "v1").

    Raises:
        InputError: the scheme is not one otaforge generates.
    """
    if scheme == "v1":
        scheme = "ecdsa256"
    if scheme == "rsa3072":
        return rsa.generate_private_key(public_exponent=RSA_EXPONENT, key_size=RSA_BITS)
    if scheme in ("ecdsa256", "ecdsa384"):
        return ec.generate_private_key(_CURVES[scheme]())
    raise InputError(
        f"unknown signing scheme {scheme!r}: use one of {', '.join(GENERATE_SCHEMES)}"
    )


def _serialization() -> Any:
    """``cryptography.hazmat.primitives.serialization``'s Encoding/PrivateFormat/... names.

    They are defined in ``_serialization``; the public package also imports its SSH module
    (ciphers, DSA, Ed25519, ...), ~4 ms on every ``keys generate`` (benchmarked against
    espsecure).
    """
    from cryptography.hazmat.primitives import _serialization  # cryptography >= 3.4

    return _serialization


class _Ecdsa(ec.ECDSA):
    """``ec.ECDSA(algorithm, deterministic_signing)`` without the OpenSSL-backend import its
    ``__init__`` does (~3.7 ms per process) only to check that deterministic signing is
    supported. The OpenSSL that cryptography >= 42 bundles supports it; were it missing,
    signing itself raises (never a silently random signature: the v1 tests compare bytes with
    espsecure's)."""

    def __init__(self, algorithm: Any, deterministic: bool = False) -> None:
        self._otaforge_algorithm = algorithm
        self._otaforge_deterministic = deterministic

    @property
    def algorithm(self) -> Any:
        return self._otaforge_algorithm

    @property
    def deterministic_signing(self) -> bool:
        return self._otaforge_deterministic


def ecdsa(algorithm: Any, deterministic: bool = False) -> ec.ECDSA:
    """The ``ec.ECDSA`` signature algorithm for ``algorithm`` (a hash or ``Prehashed``);
    ``deterministic``: RFC 6979 nonces (the v1 signed-app scheme, as espsecure)."""
    return _Ecdsa(algorithm, deterministic)


def private_key_pem(key: PrivateKey) -> bytes:
    """The unencrypted PEM form espsecure writes and reads (traditional OpenSSL).

    Encoded by :mod:`otaforge.crypto.pem` (the same bytes as ``key.private_bytes(PEM,
    TraditionalOpenSSL, NoEncryption())``, without loading cryptography's SSH module).
    """
    from otaforge.crypto.pem import private_key_pem as encode

    return encode(key)


def public_key_pem(key: PrivateKey | PublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM (what ``espsecure extract-public-key --version 2`` writes)."""
    serialization = _serialization()

    return as_public(key).public_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PublicFormat.SubjectPublicKeyInfo,
    )


def scheme_of(key: PrivateKey | PublicKey) -> str:
    """The Secure Boot v2 scheme name of a key: "rsa3072", "ecdsa192/256/384".

    Raises:
        InputError: the key type, size or curve is not usable for Secure Boot.
    """
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        if key.key_size != RSA_BITS:
            raise InputError(
                f"RSA key has {key.key_size} bits; Secure Boot v2 needs RSA-3072 "
                "(make one with `otaforge keys generate --scheme rsa3072`)"
            )
        return "rsa3072"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        for scheme, curve in _CURVES.items():
            if isinstance(key.curve, curve):
                return scheme
        raise InputError(
            f"ECDSA key on curve {key.curve.name}; Secure Boot supports P-192, P-256, P-384"
        )
    raise InputError("unsupported key type: Secure Boot uses RSA-3072 or ECDSA keys")


def _pem_loaders() -> tuple[Any, Any]:
    """``load_pem_private_key`` and ``load_pem_public_key`` of ``cryptography``.

    ``cryptography.hazmat.primitives.serialization`` defines both as aliases of its Rust
    binding's functions, but importing that package also loads its SSH module (ciphers, DSA,
    Ed25519, ...): ~4 ms on every ``image sign``/``verify`` start, which is benchmarked
    against espsecure. Take the same functions from the binding, else from the package.
    """
    try:
        from cryptography.hazmat.bindings._rust import openssl as rust_openssl

        loaders = rust_openssl.keys
        return loaders.load_pem_private_key, loaders.load_pem_public_key
    except (ImportError, AttributeError):  # pragma: no cover - another cryptography layout
        from cryptography.hazmat.primitives import serialization

        return serialization.load_pem_private_key, serialization.load_pem_public_key


def _parse_pem(load: Callable[[], object], not_pem: str) -> object:
    """``load()``, with a parse failure as InputError ``not_pem: <first line of the reason>``."""
    try:
        return load()
    except (ValueError, TypeError, UnsupportedAlgorithm) as err:
        raise InputError(f"{not_pem}: {_first_line(err)}") from None


def load_private_key(pem: bytes) -> PrivateKey:
    """Load an unencrypted PEM private key (RSA-3072 or ECDSA P-192/256/384).

    Raises:
        InputError: not a PEM private key, encrypted, or not a Secure Boot key type.
    """
    if b"PUBLIC KEY-----" in pem and b"PRIVATE KEY-----" not in pem:
        raise InputError("this is a public key; signing needs the private key file")
    # The RSA consistency check costs ~90 ms per load (more than signing a 1.5 MB image);
    # signing back-verifies every signature it makes instead (crypto/sbv2.py).
    key = _parse_pem(
        lambda: _pem_loaders()[0](pem, password=None, unsafe_skip_rsa_key_validation=True),
        "not an unencrypted PEM private key (expected what `otaforge keys generate` or "
        "`espsecure generate-signing-key` writes)")
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise InputError("unsupported private key type: Secure Boot uses RSA-3072 or ECDSA")
    scheme_of(key)  # refuses key sizes and curves Secure Boot does not use
    return key


def load_public_key(pem: bytes) -> PublicKey:
    """Load a public key from a PEM public key or from a PEM private key.

    Raises:
        InputError: neither parses, or the key is not a Secure Boot key type.
    """
    if b"PRIVATE KEY-----" in pem:
        return load_private_key(pem).public_key()
    key = _parse_pem(lambda: _pem_loaders()[1](pem), "not a PEM public or private key")
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise InputError("unsupported public key type: Secure Boot uses RSA-3072 or ECDSA")
    scheme_of(key)  # refuses key sizes and curves Secure Boot does not use
    return key


def load_v1_public_key(data: bytes) -> ec.EllipticCurvePublicKey:
    """A v1 verification key: PEM (private or public), or the raw 64-byte X‖Y big-endian form
    of ``espsecure extract-public-key --version 1`` (65 bytes with a 0x04 prefix also accepted).

    Raises:
        InputError: not a P-256 key in one of those forms.
    """
    if len(data) in (64, 65) and b"-----" not in data:
        raw = data if len(data) == 65 else b"\x04" + data
        try:
            return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
        except ValueError:
            raise InputError("raw v1 public key is not a point on P-256") from None
    return _v1_key(load_public_key(data))


def _v1_key(key: PublicKey) -> ec.EllipticCurvePublicKey:
    """``key`` if it is an ECDSA P-256 key (the only kind the v1 scheme uses)."""
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InputError("the v1 signed-app scheme (ESP32) uses ECDSA P-256 keys only")
    return key


def as_public(key: PrivateKey | PublicKey) -> PublicKey:
    """The public half of ``key`` (or ``key`` itself)."""
    if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        return key.public_key()
    return key


def rsa_key_material(key: rsa.RSAPublicKey) -> bytes:
    """The 776-byte ``n ‖ e ‖ rinv ‖ mdash`` of an RSA-3072 signature block (little-endian)."""
    numbers = key.public_numbers()
    n = numbers.n
    rinv = (1 << (2 * RSA_BITS)) % n
    mdash = (-pow(n, -1, 1 << 32)) & 0xFFFFFFFF
    return rsa_key_fields(n, numbers.e, rinv, mdash)


def ec_point_le(key: ec.EllipticCurvePublicKey) -> bytes:
    """X ‖ Y, each little-endian (micro-ecc "native" order, as in a signature block)."""
    return ec_key_material(key)[1:][: 2 * coordinate_size(scheme_of(key))]


def ec_key_material(key: ec.EllipticCurvePublicKey) -> bytes:
    """``curve_id ‖ X ‖ Y`` as laid out in an ECDSA signature block (65 or 97 bytes).

    For P-192 the 48 point bytes are zero-padded to 64, as in the block.
    """
    numbers = key.public_numbers()
    return ecdsa_key_fields(curve_id_for(scheme_of(key)), numbers.x, numbers.y)


def key_material(key: PrivateKey | PublicKey) -> bytes:
    """The key bytes of a signature block, whose SHA-256 is the eFuse key digest."""
    pub = as_public(key)
    if isinstance(pub, rsa.RSAPublicKey):
        scheme_of(pub)
        return rsa_key_material(pub)
    return ec_key_material(pub)


def public_key_digest(key: PrivateKey | PublicKey) -> bytes:
    """The 32-byte key digest burnt into eFuse (``espsecure digest-sbv2-public-key``)."""
    return sha256(key_material(key))


def sha256(data: bytes) -> bytes:
    """SHA-256 via ``cryptography`` (OpenSSL), sparing the start-up cost of ``hashlib``."""
    h = hashes.Hash(hashes.SHA256())
    h.update(data)
    return h.finalize()


def sha384(data: bytes) -> bytes:
    """SHA-384 via ``cryptography`` (OpenSSL)."""
    h = hashes.Hash(hashes.SHA384())
    h.update(data)
    return h.finalize()


def v1_public_key_bytes(key: PrivateKey | PublicKey) -> bytes:
    """64 raw bytes X‖Y big-endian: ``espsecure extract-public-key --version 1`` output."""
    numbers = _v1_key(as_public(key)).public_numbers()
    return numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")


def coordinate_size(scheme: str) -> int:
    """Bytes per ECDSA coordinate / signature half for an ECDSA scheme."""
    return COORD_SIZES[CURVE_IDS[scheme]]


def curve_for(scheme: str) -> ec.EllipticCurve:
    """The ``cryptography`` curve object of an ECDSA scheme."""
    return _CURVES[scheme]()


def curve_id_for(scheme: str) -> int:
    """The signature block ``curve_id`` of an ECDSA scheme."""
    return CURVE_IDS[scheme]


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    first = text[0] if text else type(err).__name__
    if first.startswith("Unable to load PEM file"):  # cryptography's text ends in a FAQ URL
        return "no readable PEM block (-----BEGIN ...-----) in the file"
    return first
