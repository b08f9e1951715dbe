"""Private keys as "traditional OpenSSL" PEM (what espsecure writes), without cryptography's
serialization package.

``key.private_bytes(...)`` makes cryptography's Rust code import
``cryptography.hazmat.primitives.serialization``, which loads its SSH module (ciphers, DSA,
Ed25519, dataclasses...): about 9 ms of every ``keys generate``, benchmarked against espsecure.
The two layouts are small and DER is canonical, so the bytes are the same as OpenSSL's
(``tests/crypto/test_pem.py`` compares them with cryptography's own output):

- RSA: PKCS #1 ``RSAPrivateKey`` (RFC 8017 A.1.2), ``-----BEGIN RSA PRIVATE KEY-----``
- EC: ``ECPrivateKey`` (RFC 5915) with the named curve and the public key,
  ``-----BEGIN EC PRIVATE KEY-----``
"""

from __future__ import annotations

import binascii

from cryptography.hazmat.primitives.asymmetric import ec, rsa

# named-curve OIDs, DER-encoded (RFC 5480): secp192r1, secp256r1 (prime256v1), secp384r1
_CURVE_OIDS = {
    "secp192r1": bytes.fromhex("06082a8648ce3d030101"),
    "secp256r1": bytes.fromhex("06082a8648ce3d030107"),
    "secp384r1": bytes.fromhex("06052b81040022"),
}


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _length(len(body)) + body


def _integer(value: int) -> bytes:
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")  # room for a 0 sign byte
    while len(body) > 1 and body[0] == 0 and body[1] < 0x80:
        body = body[1:]
    return _tlv(0x02, body)


def _pem(label: str, der: bytes) -> bytes:
    text = binascii.b2a_base64(der, newline=False).decode("ascii")  # base64 module: start-up
    lines = [text[i:i + 64] for i in range(0, len(text), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----", ""]).encode()


def rsa_private_der(key: rsa.RSAPrivateKey) -> bytes:
    """PKCS #1 ``RSAPrivateKey`` DER."""
    priv = key.private_numbers()
    pub = priv.public_numbers
    values = (0, pub.n, pub.e, priv.d, priv.p, priv.q, priv.dmp1, priv.dmq1, priv.iqmp)
    return _tlv(0x30, b"".join(_integer(v) for v in values))


def ec_private_der(key: ec.EllipticCurvePrivateKey) -> bytes:
    """RFC 5915 ``ECPrivateKey`` DER (named curve, uncompressed public key)."""
    oid = _CURVE_OIDS.get(key.curve.name)
    if oid is None:
        raise ValueError(f"no OID known for curve {key.curve.name}")
    size = (key.curve.key_size + 7) // 8
    pub = key.public_key().public_numbers()
    point = b"\x04" + pub.x.to_bytes(size, "big") + pub.y.to_bytes(size, "big")
    body = (_integer(1) + _tlv(0x04, key.private_numbers().private_value.to_bytes(size, "big"))
            + _tlv(0xA0, oid) + _tlv(0xA1, _tlv(0x03, b"\x00" + point)))
    return _tlv(0x30, body)


def private_key_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    """The unencrypted traditional-OpenSSL PEM of ``key`` (as espsecure writes it).

    A curve Secure Boot does not use (no OID here) goes through cryptography itself.
    """
    if isinstance(key, rsa.RSAPrivateKey):
        return _pem("RSA PRIVATE KEY", rsa_private_der(key))
    if key.curve.name not in _CURVE_OIDS:
        from cryptography.hazmat.primitives import serialization

        return key.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.TraditionalOpenSSL,
                                 serialization.NoEncryption())
    return _pem("EC PRIVATE KEY", ec_private_der(key))
