"""crypto/sbv1.py: the ESP32 v1 signed-app scheme (68-byte ECDSA P-256 trailer)."""

from __future__ import annotations

import pytest

from otaforge.crypto import keys as k
from otaforge.crypto import sbv1
from otaforge.errors import InputError, SignatureInvalid
from tests.crypto.conftest import small_image


@pytest.fixture(scope="module")
def v1_key() -> k.PrivateKey:
    return k.generate_key("v1")


def test_trailer_layout_and_determinism(v1_key: k.PrivateKey) -> None:
    image = small_image(5000)
    signed = sbv1.sign_v1(image, v1_key)
    assert len(signed) == 5068 and signed[:5000] == image
    assert signed[5000:5004] == bytes(4)  # version 0
    assert sbv1.sign_v1(image, v1_key) == signed  # RFC 6979, like espsecure
    result = sbv1.verify_v1(signed, keys=[k.generate_key("v1"), v1_key])
    assert (result.scheme, result.key_index, result.signed_len) == ("v1", 1, 5000)


def test_raw_64_byte_public_key_verifies(v1_key: k.PrivateKey) -> None:
    signed = sbv1.sign_v1(small_image(), v1_key)
    raw = k.v1_public_key_bytes(v1_key)
    assert len(raw) == 64
    assert sbv1.verify_v1(signed, keys=[k.load_v1_public_key(raw)]).key_index == 0
    assert sbv1.verify_v1(signed, keys=[k.load_v1_public_key(b"\x04" + raw)]).key_index == 0


def test_wrong_key_unsigned_truncated_distinct(v1_key: k.PrivateKey, app_template: bytes) -> None:
    signed = sbv1.sign_v1(app_template, v1_key)
    with pytest.raises(SignatureInvalid, match="signature does not verify with key 0"):
        sbv1.verify_v1(signed, keys=[k.generate_key("v1")])
    with pytest.raises(SignatureInvalid, match="no signature"):
        sbv1.verify_v1(app_template, keys=[v1_key])
    with pytest.raises(SignatureInvalid, match="truncated signature"):
        sbv1.verify_v1(signed[:-10], keys=[v1_key])


def test_every_trailer_byte_and_sampled_image_bytes_are_covered(v1_key: k.PrivateKey) -> None:
    signed = sbv1.sign_v1(small_image(2000), v1_key)
    for offset in [*range(len(signed) - 68, len(signed)), *range(0, 2000, 97)]:
        bad = bytearray(signed)
        bad[offset] ^= 0x01
        with pytest.raises(SignatureInvalid):
            sbv1.verify_v1(bytes(bad), keys=[v1_key])


def test_partition_bytes_with_erased_tail(v1_key: k.PrivateKey, app_template: bytes) -> None:
    slot = sbv1.sign_v1(app_template, v1_key) + b"\xff" * 0x8000
    assert sbv1.verify_v1(slot, keys=[v1_key]).signed_len == len(app_template)
    assert sbv1.verify_v1(slot, keys=[v1_key], image_len=len(app_template)).key_index == 0


def test_only_p256_keys(v2_keys: dict) -> None:
    with pytest.raises(InputError, match="P-256"):
        sbv1.sign_v1(small_image(), v2_keys["ecdsa384"])
    with pytest.raises(InputError, match="P-256"):
        sbv1.sign_v1(small_image(), v2_keys["rsa3072"])
    with pytest.raises(InputError):
        sbv1.verify_v1(small_image(), keys=[])


def test_trailing_data_after_the_signature_is_refused(v1_key: k.PrivateKey,
                                                      app_template: bytes) -> None:
    signed = sbv1.sign_v1(app_template, v1_key)
    with pytest.raises(SignatureInvalid, match="trailing data"):
        sbv1.verify_v1(signed + b"payload", keys=[v1_key])
    assert sbv1.verify_v1(signed + b"payload", keys=[v1_key], strict=False).key_index == 0
