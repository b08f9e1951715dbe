"""crypto/keys.py: key generation, PEM loading and the eFuse key digest."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from otaforge.crypto import keys as k
from otaforge.errors import InputError
from tests.crypto.conftest import V2_SCHEMES


@pytest.mark.parametrize("scheme", V2_SCHEMES)
def test_generated_key_round_trips_as_espsecure_pem(scheme: str, v2_keys: dict) -> None:
    key = v2_keys[scheme]
    pem = k.private_key_pem(key)
    header = b"-----BEGIN RSA PRIVATE KEY-----" if scheme == "rsa3072" \
        else b"-----BEGIN EC PRIVATE KEY-----"
    assert pem.startswith(header)
    loaded = k.load_private_key(pem)
    assert k.scheme_of(loaded) == scheme
    assert k.public_key_digest(loaded) == k.public_key_digest(key)
    # public key from the private PEM and from the public PEM agree
    assert k.public_key_digest(k.load_public_key(pem)) == \
        k.public_key_digest(k.load_public_key(k.public_key_pem(key)))


def test_rsa_is_3072_bit_e65537(v2_keys: dict) -> None:
    key = v2_keys["rsa3072"]
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 3072 and key.public_key().public_numbers().e == 65537
    assert len(k.key_material(key)) == 776


def test_ecdsa_key_material_is_curve_id_then_le_point(v2_keys: dict) -> None:
    key = v2_keys["ecdsa256"]
    material = k.key_material(key)
    numbers = key.public_key().public_numbers()
    assert material[0] == 2 and len(material) == 65
    assert material[1:33] == numbers.x.to_bytes(32, "little")
    assert k.key_material(v2_keys["ecdsa384"])[0] == 3


def test_unsupported_and_malformed_keys_are_input_errors() -> None:
    small_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(InputError, match="RSA-3072"):
        k.load_private_key(k.private_key_pem(small_rsa))
    other_curve = ec.generate_private_key(ec.SECP521R1())
    with pytest.raises(InputError, match="curve"):
        k.load_private_key(k.private_key_pem(other_curve))
    for junk in (b"", b"not a key", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"):
        with pytest.raises(InputError):
            k.load_public_key(junk)
    with pytest.raises(InputError, match="unknown signing scheme"):
        k.generate_key("rsa2048")
    with pytest.raises(InputError, match="P-256"):
        k.load_v1_public_key(b"\x00" * 64)
