"""``crypto/pem.py`` writes the same bytes as cryptography's own traditional-OpenSSL PEM."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from otaforge.crypto import keys as k
from otaforge.crypto.pem import private_key_pem


def _reference(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


@pytest.mark.parametrize("scheme", ["rsa3072", "ecdsa256", "ecdsa384"])
def test_generated_keys_encode_as_openssl_does(scheme: str) -> None:
    for _ in range(3 if scheme == "rsa3072" else 20):  # EC: scalars with leading zero bytes
        key = k.generate_key(scheme)
        assert private_key_pem(key) == _reference(key)
        assert k.private_key_pem(key) == _reference(key)


@pytest.mark.parametrize("curve", [ec.SECP192R1(), ec.SECP256R1(), ec.SECP384R1()])
def test_small_scalars_keep_their_fixed_width(curve: ec.EllipticCurve) -> None:
    for value in (1, 2, 0xFF, 0x80, 0x1234):
        key = ec.derive_private_key(value, curve)
        assert private_key_pem(key) == _reference(key)


def test_rsa_with_other_sizes_and_exponents() -> None:
    for size, exponent in ((1024, 3), (2048, 65537)):
        key = rsa.generate_private_key(public_exponent=exponent, key_size=size)
        assert private_key_pem(key) == _reference(key)


def test_other_curves_go_through_cryptography() -> None:
    key = ec.generate_private_key(ec.SECP521R1())
    assert private_key_pem(key) == _reference(key)
