"""The pure decision core: scenario tables named after the bad input or attack they cover."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otaforge.agent.decision import (
    BootStep,
    DeviceFacts,
    Refusal,
    UpdatePlan,
    boot_step,
    check_header,
    check_image,
    plan_offer,
    refusal_for,
    refusal_for_device,
)
from otaforge.crypto.keys import generate_key, public_key_digest
from otaforge.crypto.sbv2 import sign_v2
from otaforge.device.esp_err import esp_error
from otaforge.errors import (
    BadMagicError,
    ChecksumMismatch,
    OtaforgeError,
    SignatureInvalid,
)
from otaforge.errors import RefusalCode as Code
from otaforge.formats.chips import chip
from otaforge.formats.image_builder import build_image
from otaforge.formats.otadata import OtaImgState
from tests.agent._inputs import facts as _facts
from tests.agent._inputs import image as _image
from tests.agent._inputs import offer as _offer
from tests.agent._inputs import rsa_key as _key


@dataclass(frozen=True)
class Case:
    facts: dict[str, object]
    offer: dict[str, object]
    expect: Code | None


# fmt: off
OFFER_CASES = {
    "new version is planned":        Case({}, {}, None),
    "same version as running":       Case({"running_version": "1.1.0"}, {}, Code.SAME_VERSION),
    "version that already failed":   Case({"last_invalid_version": "1.1.0"}, {}, Code.KNOWN_BAD),
    "secure_version below eFuse":    Case({"efuse_secure_version": 2}, {}, Code.SECURE_VERSION),
    "below eFuse, no anti-rollback": Case({"efuse_secure_version": 2, "anti_rollback": False},
                                          {}, None),
    "larger than the slot":          Case({"slot_size": 0x1000}, {}, Code.TOO_LARGE),
}
# fmt: on


@pytest.mark.parametrize("case", OFFER_CASES.values(), ids=OFFER_CASES.keys())
def test_plan_offer(case: Case) -> None:
    result = plan_offer(_facts(**case.facts), _offer(_image()))
    if case.expect is None:
        assert isinstance(result, UpdatePlan) and result
    else:
        assert isinstance(result, Refusal) and not result
        assert result.code == case.expect
        assert result.skip == (case.expect in (Code.SAME_VERSION, Code.KNOWN_BAD))


def _html() -> bytes:
    return b"<!DOCTYPE html><html><body>Login required</body></html>" + b" " * 2000


# fmt: off
HEADER_CASES = {
    "HTML page instead of image":   (_html, {}, Code.NOT_AN_IMAGE),
    "JSON instead of image":        (lambda: b'{"error": "nope"}' + b" " * 1200, {},
                                     Code.NOT_AN_IMAGE),
    "random garbage":               (lambda: bytes(range(256)) * 5, {}, Code.NOT_AN_IMAGE),
    "header truncated to 180 B":    (lambda: _image()[:180], {}, Code.TRUNCATED),
    "wrong chip (esp32s3 image)":   (lambda: _image(chip_name="esp32s3"), {}, Code.WRONG_CHIP),
    "chip revision too old":        (lambda: _image(min_rev=300), {}, Code.CHIP_REVISION),
    "chip revision too new":        (lambda: _image(max_rev=99), {"chip_rev": 300},
                                     Code.CHIP_REVISION),
    "same version as running":      (lambda: _image(version="1.0.0"), {}, Code.SAME_VERSION),
    "secure_version below eFuse":   (lambda: _image(secure_version=0), {},
                                     Code.SECURE_VERSION),
    "announced size over the slot": (lambda: _image(), {"slot_size": 0x10000}, Code.TOO_LARGE),
}
# fmt: on


@pytest.mark.parametrize("make,facts,expect", HEADER_CASES.values(), ids=HEADER_CASES.keys())
def test_check_header_refuses(make: object, facts: dict[str, object], expect: Code) -> None:
    data = make()  # type: ignore[operator]
    with pytest.raises(OtaforgeError) as info:
        check_header(_facts(**facts), data[:1024], len(data))
    assert refusal_for(info.value).code == expect


def test_check_header_accepts_and_returns_app_desc() -> None:
    desc = check_header(_facts(), _image()[:1024], len(_image()))
    assert (desc.version, desc.secure_version) == ("1.1.0", 1)


def test_check_header_refuses_image_of_another_release() -> None:
    other = _image(version="1.2.0")
    with pytest.raises(OtaforgeError) as info:
        check_header(_facts(), other[:1024], len(other), _offer(_image()))
    assert refusal_for(info.value).code == Code.VERSION_MISMATCH


def test_check_image_accepts_exact_release() -> None:
    app = check_image(_facts(), _image(), _offer(_image()))
    assert app.app_desc is not None and app.app_desc.version == "1.1.0"


# fmt: off
IMAGE_CASES = {
    "truncated image (64000 B)":  (lambda d: d[:64000], Code.DIGEST_MISMATCH),
    "one byte flipped":           (lambda d: d[:5000] + bytes([d[5000] ^ 1]) + d[5001:],
                                   Code.DIGEST_MISMATCH),
    "trailing data appended":     (lambda d: d + b"\x00" * 16, Code.DIGEST_MISMATCH),
}
# fmt: on


@pytest.mark.parametrize("mutate,expect", IMAGE_CASES.values(), ids=IMAGE_CASES.keys())
def test_check_image_refuses_other_bytes(mutate: object, expect: Code) -> None:
    data = _image()
    with pytest.raises(OtaforgeError) as info:
        check_image(_facts(), mutate(data), _offer(data))  # type: ignore[operator]
    assert refusal_for(info.value).code == expect


def test_check_image_without_offer_catches_truncation_by_validation() -> None:
    with pytest.raises(OtaforgeError) as info:
        check_image(_facts(), _image()[:64000])
    assert refusal_for(info.value).code in (Code.TRUNCATED, Code.CORRUPT)


def _signed_facts() -> DeviceFacts:
    return _facts(require_signature=True, key_digests=(public_key_digest(_key()),))


def test_signed_image_by_burned_key_is_accepted() -> None:
    signed = sign_v2(_image(), [_key()])  # type: ignore[list-item]
    check_image(_signed_facts(), signed, _offer(signed))


# fmt: off
SIGNATURE_CASES = {
    "unsigned image":              lambda: _image(),
    "signed by an unknown key":    lambda: sign_v2(_image(), [generate_key("rsa3072")]),
    "signature byte flipped":      lambda: _flip(sign_v2(_image(), [_key()]), -4096 + 100),
}
# fmt: on


def test_ecdsa_signature_refused_on_esp32_even_with_burned_key() -> None:
    """ESP32's Secure Boot v2 verifies RSA-3072 only; an ECDSA block never counts there."""
    key = generate_key("ecdsa256")
    data = sign_v2(_image(), [key])
    burned = (public_key_digest(key),)
    with pytest.raises(OtaforgeError) as info:
        check_image(_facts(require_signature=True, key_digests=burned), data, _offer(data))
    assert refusal_for(info.value).code == Code.BAD_SIGNATURE
    c6 = _facts(require_signature=True, key_digests=burned, chip=chip("esp32c6"))
    c6_image = build_image(version="1.1.0", secure_version=1, chip="esp32c6", size=0x20000)
    signed_c6 = sign_v2(c6_image, [key])
    check_image(c6, signed_c6, _offer(signed_c6))  # ECDSA is fine on an ESP32-C6


def _flip(data: bytes, at: int) -> bytes:
    pos = at % len(data)
    return data[:pos] + bytes([data[pos] ^ 0xFF]) + data[pos + 1:]


@pytest.mark.parametrize("make", SIGNATURE_CASES.values(), ids=SIGNATURE_CASES.keys())
def test_bad_or_missing_signature_is_refused(make: object) -> None:
    data = make()  # type: ignore[operator]
    with pytest.raises(OtaforgeError) as info:
        check_image(_signed_facts(), data, _offer(data))
    assert refusal_for(info.value).code == Code.BAD_SIGNATURE


@pytest.mark.parametrize("state,updated,expect", [
    (OtaImgState.PENDING_VERIFY, True, BootStep.SELF_TEST),
    (OtaImgState.PENDING_VERIFY, False, BootStep.SELF_TEST),
    (OtaImgState.VALID, False, BootStep.NOTHING),
    (None, False, BootStep.NOTHING),
    (OtaImgState.UNDEFINED, True, BootStep.NO_ROLLBACK_BOOTLOADER),
    (OtaImgState.NEW, True, BootStep.NO_ROLLBACK_BOOTLOADER),
])
def test_boot_step(state: OtaImgState | None, updated: bool, expect: BootStep) -> None:
    assert boot_step(state, updated) == expect


@settings(max_examples=200, deadline=None)
@given(prefix=st.binary(max_size=1100), announced=st.one_of(st.none(), st.integers(0, 1 << 24)))
def test_check_header_is_total_on_untrusted_bytes(prefix: bytes, announced: int | None) -> None:
    """Any bytes from the network: a desc, or an otaforge error that maps to a refusal."""
    try:
        check_header(_facts(), prefix, announced)
    except OtaforgeError as err:
        assert refusal_for(err).reason


@settings(max_examples=60, deadline=None)
@given(at=st.integers(0, 1023), value=st.integers(0, 255))
def test_check_header_single_byte_corruption_never_crashes(at: int, value: int) -> None:
    data = bytearray(_image()[:1024])
    data[at] = value
    try:
        check_header(_facts(), bytes(data), len(_image()))
    except OtaforgeError as err:
        assert refusal_for(err).code in set(Code)


@pytest.mark.parametrize("name,cause,expect", [
    ("ESP_ERR_OTA_SMALL_SEC_VER", None, Code.SECURE_VERSION),
    ("ESP_ERR_OTA_VALIDATE_FAILED", SignatureInvalid("block 0 does not verify"),
     Code.BAD_SIGNATURE),
    ("ESP_ERR_OTA_VALIDATE_FAILED", BadMagicError("invalid magic byte"), Code.NOT_AN_IMAGE),
    ("ESP_ERR_OTA_VALIDATE_FAILED", ChecksumMismatch("checksum mismatch"), Code.CORRUPT),
    ("ESP_ERR_OTA_VALIDATE_FAILED", None, Code.CORRUPT),
    ("ESP_ERR_INVALID_SIZE", None, None),
])
def test_refusal_for_device_errors(name: str, cause: OtaforgeError | None,
                                   expect: Code | None) -> None:
    err = esp_error(name, f"ota_0: {cause}", cause)  # type: ignore[arg-type]
    refusal = refusal_for_device(err)
    assert (refusal.code if refusal is not None else None) == expect


@pytest.mark.parametrize("announced", [64000, 0x20000 + 4096], ids=["shorter", "longer"])
def test_check_header_refuses_announced_size_other_than_the_release(announced: int) -> None:
    """Truncated or padded downloads are refused from the first bytes, before any erase."""
    with pytest.raises(OtaforgeError) as info:
        check_header(_facts(), _image()[:1024], announced, _offer(_image()))
    assert refusal_for(info.value).code == Code.DIGEST_MISMATCH



@lru_cache
def _signed_release() -> bytes:
    return sign_v2(_image(), [_key()])  # type: ignore[list-item]


@settings(max_examples=40, deadline=None)
@given(at=st.integers(0, 1199), bit=st.integers(0, 7))
def test_any_flip_in_signature_block_is_refused(at: int, bit: int) -> None:
    """Matrix row 27: a flipped bit anywhere in block 0 up to its CRC (the 16 pad bytes after
    the CRC are not covered by anything, as in ESP-IDF) makes the image unbootable here."""
    data = bytearray(_signed_release())
    data[len(data) - 4096 + at] ^= 1 << bit
    with pytest.raises(OtaforgeError) as info:
        check_image(_signed_facts(), bytes(data))
    assert refusal_for(info.value).code == Code.BAD_SIGNATURE
