"""Chip policy as data: the ChipSpec facts of Secure Boot, and the one verify_for_chip() that
the server, the agent, the OTA API and the bootloader apply them through.

Every refusal reason has a case, named after the attack or mistake it stops.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from otaforge.crypto import keys as k
from otaforge.crypto.chip_policy import verify_for_chip
from otaforge.crypto.sbv1 import sign_v1
from otaforge.crypto.sbv2 import sign_v2
from otaforge.errors import InputError, SignatureInvalid
from otaforge.formats.app_image import AppImage
from otaforge.formats.chips import CHIPS, ChipSpec
from otaforge.formats.image_builder import build_image

ESP32, C6, C2, S3 = CHIPS["esp32"], CHIPS["esp32c6"], CHIPS["esp32c2"], CHIPS["esp32s3"]


def _app(chip: ChipSpec, version: str = "2.0") -> bytes:
    return build_image(version=version, chip=chip.name, size=40_000, seed=len(version))


def _digest(key: k.PrivateKey) -> bytes:
    return k.public_key_digest(key)


# --- the policy table ----------------------------------------------------------------------


def test_esp32_row_is_rsa_only_one_block_one_digest_v1_and_no_efuse_blk_rev() -> None:
    assert ESP32.sbv2_schemes == ("rsa3072",)
    assert (ESP32.sbv2_blocks, ESP32.key_digest_slots) == (1, 1)
    assert ESP32.sbv1_app_signing and not ESP32.checks_efuse_blk_rev


@pytest.mark.parametrize("spec", [c for c in CHIPS.values() if c.name != "esp32"],
                         ids=lambda c: c.name)
def test_later_chips_examine_three_blocks_and_check_efuse_blk_rev(spec: ChipSpec) -> None:
    assert (spec.sbv2_blocks, spec.key_digest_slots) == (3, 3)
    assert spec.checks_efuse_blk_rev and not spec.sbv1_app_signing
    assert set(spec.sbv2_schemes) <= set(k.SCHEMES)
    assert bool(spec.sbv2_schemes) == (spec.name not in NO_SECURE_BOOT_YET)


# soc_caps.h of ESP-IDF master: SOC_SECURE_BOOT_SUPPORTED not set (H4, S31), no soc_caps (E22)
NO_SECURE_BOOT_YET = {"esp32h4", "esp32s31", "esp32e22"}


@pytest.mark.parametrize("name", sorted(NO_SECURE_BOOT_YET))
def test_a_chip_without_secure_boot_trusts_no_signature(name: str) -> None:
    key = k.generate_key("ecdsa256")
    signed = sign_v2(_app(CHIPS[name]), [key])
    for trust in ({"keys": [k.as_public(key)]}, {"digests": [_digest(key)]}):
        with pytest.raises(SignatureInvalid, match="ESP-IDF has no Secure Boot v2 for"):
            verify_for_chip(signed, CHIPS[name], **trust)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(CHIPS))
def test_bootloader_offset_is_esptools(name: str) -> None:
    import esptool.targets as esptool_targets  # a dependency: missing esptool fails

    assert CHIPS[name].bootloader_offset == \
        esptool_targets.CHIP_DEFS[name].BOOTLOADER_FLASH_OFFSET


def test_which_chips_verify_which_schemes() -> None:
    ecdsa_only = {c.name for c in CHIPS.values() if "rsa3072" not in c.sbv2_schemes}
    rsa_only = {c.name for c in CHIPS.values() if c.sbv2_schemes == ("rsa3072",)}
    assert {"esp32c2", "esp32c61"} <= ecdsa_only
    assert {"esp32", "esp32s2", "esp32s3", "esp32c3"} <= rsa_only
    assert {"rsa3072", "ecdsa256"} <= set(C6.sbv2_schemes)


# --- verify_for_chip: accepted ---------------------------------------------------------------


def test_rsa_signed_esp32_image_verifies_and_reports_the_callers_key_index(
        v2_keys: dict[str, k.PrivateKey]) -> None:
    signed = sign_v2(_app(ESP32), [v2_keys["rsa3072"]])
    # the ECDSA key in front is of a scheme ESP32 cannot verify: skipped, index still 1
    result = verify_for_chip(signed, ESP32, keys=[v2_keys["ecdsa256"], v2_keys["rsa3072"]],
                             strict=True)
    assert (result.scheme, result.key_index, result.block_count) == ("rsa3072", 1, 1)


def test_ecdsa_signed_c6_image_verifies_against_efuse_digests(
        v2_keys: dict[str, k.PrivateKey], other_keys: dict[str, k.PrivateKey]) -> None:
    signed = sign_v2(_app(C6), [v2_keys["ecdsa256"]])
    result = verify_for_chip(signed, C6, digests=[_digest(other_keys["ecdsa256"]),
                                                  _digest(v2_keys["ecdsa256"])])
    assert (result.scheme, result.key_index) == ("ecdsa256", 1)


def test_v1_signed_esp32_image_is_found_and_verified_without_being_told(
        v2_keys: dict[str, k.PrivateKey]) -> None:
    signed = sign_v1(_app(ESP32), v2_keys["ecdsa256"])
    result = verify_for_chip(signed, ESP32, keys=[v2_keys["rsa3072"], v2_keys["ecdsa256"]],
                             strict=True)
    assert (result.scheme, result.key_index) == ("v1", 1)


def test_a_trusted_block_1_counts_where_the_chip_examines_three_blocks(
        v2_keys: dict[str, k.PrivateKey], other_keys: dict[str, k.PrivateKey]) -> None:
    signed = sign_v2(_app(S3), [other_keys["rsa3072"], v2_keys["rsa3072"]])
    result = verify_for_chip(signed, S3, digests=[_digest(v2_keys["rsa3072"])])
    assert (result.block_index, result.key_index) == (1, 0)


def test_the_image_length_the_caller_parsed_is_used_instead_of_walking_again(
        v2_keys: dict[str, k.PrivateKey], monkeypatch: pytest.MonkeyPatch) -> None:
    from otaforge.crypto import chip_policy

    signed = sign_v2(_app(C6), [v2_keys["rsa3072"]])
    image_len = AppImage.from_bytes(signed).image_len

    def walked(_: bytes) -> int:
        raise AssertionError("the image was walked a second time")

    monkeypatch.setattr(chip_policy, "app_image_length", walked)
    assert verify_for_chip(signed, C6, keys=[v2_keys["rsa3072"]], image_len=image_len,
                           strict=True).key_index == 0


# --- verify_for_chip: every refusal ------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    make: Callable[[dict[str, k.PrivateKey], dict[str, k.PrivateKey]], bytes]
    chip: ChipSpec
    trust: Callable[[dict[str, k.PrivateKey], dict[str, k.PrivateKey]], dict[str, Any]]
    reason: str
    version: int | None = None


def _keys(scheme: str) -> Callable[[dict[str, k.PrivateKey], dict[str, k.PrivateKey]],
                                   dict[str, Any]]:
    return lambda mine, _: {"keys": [mine[scheme]]}


def _digests(scheme: str, **extra: Any) -> Callable[
        [dict[str, k.PrivateKey], dict[str, k.PrivateKey]], dict[str, Any]]:
    return lambda mine, _: {"digests": [_digest(mine[scheme])], **extra}


REFUSALS = {
    "unsigned image on a fleet that requires signatures": Refusal(
        lambda mine, other: _app(C6), C6, _keys("ecdsa256"), "image is unsigned"),
    "ECDSA Secure Boot v2 image for an ESP32, even with its key's digest burned": Refusal(
        lambda mine, other: sign_v2(_app(ESP32), [mine["ecdsa256"]]), ESP32,
        _digests("ecdsa256"), "only verifies rsa3072"),
    "RSA image for an ECDSA-only ESP32-C2": Refusal(
        lambda mine, other: sign_v2(_app(C2), [mine["rsa3072"]]), C2, _digests("rsa3072"),
        "only verifies ecdsa256"),
    "fleet trusts only keys of schemes its chip cannot verify": Refusal(
        lambda mine, other: sign_v2(_app(ESP32), [mine["ecdsa256"]]), ESP32,
        _keys("ecdsa256"), r"none of the 1 trusted key\(s\) is of a scheme esp32 verifies"),
    "trusted key only in block 1 of an ESP32 image (block 0 is all it reads)": Refusal(
        lambda mine, other: sign_v2(_app(ESP32), [other["rsa3072"], mine["rsa3072"]]), ESP32,
        _digests("rsa3072"), "block 0 signature does not verify with key"),
    "signed by a key nobody trusts": Refusal(
        lambda mine, other: sign_v2(_app(C6), [other["ecdsa256"]]), C6,
        _digests("ecdsa256"), "does not verify with key"),
    "signed only by a revoked key": Refusal(
        lambda mine, other: sign_v2(_app(C6), [mine["ecdsa256"]]), C6,
        _digests("ecdsa256", revoked={0}), "key 0 revoked"),
    "image byte changed after signing": Refusal(
        lambda mine, other: _flip(sign_v2(_app(C6), [mine["ecdsa256"]]), 0x1000), C6,
        _digests("ecdsa256"), "image digest mismatch"),
    "v1 signed-app trailer on a chip that has no v1 scheme": Refusal(
        lambda mine, other: sign_v1(_app(C6), mine["ecdsa256"]), C6, _keys("ecdsa256"),
        "does not exist on esp32c6", version=1),
    "v1 signature, but the fleet holds no P-256 key": Refusal(
        lambda mine, other: sign_v1(_app(ESP32), mine["ecdsa256"]), ESP32,
        _keys("rsa3072"), "no trusted key is ECDSA P-256"),
    "v1 signature by another P-256 key": Refusal(
        lambda mine, other: sign_v1(_app(ESP32), other["ecdsa256"]), ESP32,
        _keys("ecdsa256"), "signature does not verify with key"),
}


def _flip(data: bytes, offset: int) -> bytes:
    out = bytearray(data)
    out[offset] ^= 0x01
    return bytes(out)


@pytest.mark.parametrize("name", REFUSALS)
def test_verify_for_chip_refuses(name: str, v2_keys: dict[str, k.PrivateKey],
                                 other_keys: dict[str, k.PrivateKey]) -> None:
    case = REFUSALS[name]
    data = case.make(v2_keys, other_keys)
    with pytest.raises(SignatureInvalid, match=case.reason):
        verify_for_chip(data, case.chip, version=case.version,
                        **case.trust(v2_keys, other_keys))


def test_no_trust_anchor_at_all_is_a_caller_error(v2_keys: dict[str, k.PrivateKey]) -> None:
    signed = sign_v2(_app(C6), [v2_keys["ecdsa256"]])
    with pytest.raises(InputError, match="needs trusted keys or eFuse key digests"):
        verify_for_chip(signed, C6)


def test_a_v1_signature_cannot_be_checked_against_efuse_digests(
        v2_keys: dict[str, k.PrivateKey]) -> None:
    signed = sign_v1(_app(ESP32), v2_keys["ecdsa256"])
    with pytest.raises(InputError, match="checked with keys, not eFuse digests"):
        verify_for_chip(signed, ESP32, digests=[_digest(v2_keys["ecdsa256"])], version=1)


def test_the_server_verifies_through_the_chip_policy_and_parses_the_image_once(
        v2_keys: dict[str, k.PrivateKey], monkeypatch: pytest.MonkeyPatch) -> None:
    """check_upload: one AppImage parse, then verify_for_chip with the length it found."""
    from otaforge.crypto import chip_policy
    from otaforge.server.service import FleetPolicy, check_upload

    parses: list[int] = []
    real = AppImage.from_bytes.__func__  # type: ignore[attr-defined]

    def counting(cls: type[AppImage], data: bytes, *, check: bool = True) -> AppImage:
        parses.append(len(data))
        return real(cls, data, check=check)  # type: ignore[no-any-return]

    monkeypatch.setattr(AppImage, "from_bytes", classmethod(counting))
    monkeypatch.setattr(chip_policy, "app_image_length", None)  # must not be needed
    pem = k.public_key_pem(v2_keys["rsa3072"]).decode()
    policy = FleetPolicy(chip="esp32", ota_slot_size=0x100000, require_signature=True,
                         public_keys=(pem,))
    checked = check_upload(sign_v2(_app(ESP32), [v2_keys["rsa3072"]]), policy)
    assert checked.signature is not None and checked.signature["scheme"] == "rsa3072"
    assert len(parses) == 1
    with pytest.raises(SignatureInvalid, match="only verifies rsa3072"):
        check_upload(sign_v2(_app(ESP32), [v2_keys["ecdsa256"]]), policy)
