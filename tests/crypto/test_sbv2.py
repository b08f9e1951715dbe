"""crypto/sbv2.py: Secure Boot v2 signing, verification, key revocation and tampering.

Scenario names follow the attacks they cover (reliability matrix §6): a changed byte in the
image or in any signature block, a wrong key, an unsigned image, a cut-off signature sector,
a revoked key.
"""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otaforge.crypto import keys as k
from otaforge.crypto import sbv2
from otaforge.errors import InputError, SignatureInvalid
from otaforge.formats.signature_block import CRC_OFFSET, SECTOR_SIZE, SIG_BLOCK_SIZE
from tests.crypto.conftest import V2_SCHEMES, small_image

SCHEMES = pytest.mark.parametrize("scheme", V2_SCHEMES)
# (key fields start, signature start, signature end) per scheme, reference §4.2
SIG_RANGE = {"rsa3072": (36, 812, 1196), "ecdsa256": (36, 101, 165), "ecdsa384": (52, 149, 245)}


def _with_crc(block: bytes) -> bytes:
    """Recompute a block's CRC, as ESP-IDF's corrupt_sig_block() does."""
    return block[:1196] + struct.pack("<I", zlib.crc32(block[:1196])) + block[1200:]


def _replace_block(signed: bytes, index: int, block: bytes) -> bytes:
    start = len(signed) - SECTOR_SIZE + index * SIG_BLOCK_SIZE
    return signed[:start] + block + signed[start + SIG_BLOCK_SIZE :]


@SCHEMES
def test_sign_pads_to_4k_and_appends_one_sector(scheme: str, v2_keys: dict) -> None:
    image = small_image(5000)
    signed = sbv2.sign_v2(image, [v2_keys[scheme]])
    assert len(signed) == 12288  # espsecure: 5000 -> 12288
    assert signed[:5000] == image
    assert signed[5000:8192] == b"\xff" * 3192
    result = sbv2.verify_v2(signed, keys=[v2_keys[scheme]])
    assert (result.scheme, result.key_index, result.block_count, result.signed_len) == (
        scheme, 0, 1, 8192)


@SCHEMES
def test_verify_from_efuse_digests_alone_reports_the_matching_index(
        scheme: str, v2_keys: dict, other_keys: dict) -> None:
    signed = sbv2.sign_v2(small_image(), [v2_keys[scheme]])
    efuse = [k.public_key_digest(other_keys[scheme]), k.public_key_digest(v2_keys[scheme])]
    result = sbv2.verify_v2(signed, digests=efuse)
    assert result.key_index == 1
    # ESP32-C2 burns only the first 16 bytes of the digest
    assert sbv2.verify_v2(signed, digests=[efuse[1][:16]]).key_index == 0


def test_three_keys_one_sector_any_trusted_unrevoked_key_passes(v2_keys: dict) -> None:
    keys = [k.generate_key("ecdsa256") for _ in range(3)]
    signed = sbv2.sign_v2(small_image(), keys)
    digests = [k.public_key_digest(key) for key in keys]
    assert sbv2.verify_v2(signed, digests=digests).key_index == 0
    assert sbv2.verify_v2(signed, digests=digests, revoked={0}).key_index == 1
    result = sbv2.verify_v2(signed, digests=digests, revoked={0, 1})
    assert (result.key_index, result.block_index, result.block_count) == (2, 2, 3)
    with pytest.raises(SignatureInvalid, match="key 2 revoked"):
        sbv2.verify_v2(signed, digests=digests, revoked={0, 1, 2})
    assert sbv2.signature_key_digests(signed) == digests


def test_append_adds_blocks_and_keeps_the_old_ones(v2_keys: dict) -> None:
    first, second = k.generate_key("rsa3072"), v2_keys["rsa3072"]
    once = sbv2.sign_v2(small_image(), [first])
    twice = sbv2.sign_v2(once, [second], append_to=once)
    assert len(twice) == len(once)
    assert twice[-SECTOR_SIZE:][:SIG_BLOCK_SIZE] == once[-SECTOR_SIZE:][:SIG_BLOCK_SIZE]
    assert sbv2.verify_v2(twice, keys=[second]).block_index == 1
    assert sbv2.verify_v2(twice, keys=[first]).block_index == 0
    with pytest.raises(InputError, match="at most 3"):
        sbv2.sign_v2(twice, [first, second], append_to=twice)


def test_mixed_schemes_in_one_sector_are_refused(v2_keys: dict) -> None:
    with pytest.raises(InputError, match="one scheme"):
        sbv2.sign_v2(small_image(), [v2_keys["rsa3072"], v2_keys["ecdsa256"]])


@SCHEMES
def test_wrong_key_unsigned_and_truncated_have_distinct_reasons(
        scheme: str, v2_keys: dict, other_keys: dict, app_template: bytes) -> None:
    signed = sbv2.sign_v2(app_template, [v2_keys[scheme]])
    with pytest.raises(SignatureInvalid, match="signature does not verify with key 0") as wrong:
        sbv2.verify_v2(signed, keys=[other_keys[scheme]])
    with pytest.raises(SignatureInvalid, match="no signature sector") as unsigned:
        sbv2.verify_v2(app_template, keys=[v2_keys[scheme]])
    with pytest.raises(SignatureInvalid, match="truncated signature sector") as truncated:
        sbv2.verify_v2(signed[:-100], keys=[v2_keys[scheme]])
    reasons = {str(e.value).split(":")[0] for e in (wrong, unsigned, truncated)}
    assert len(reasons) == 3


@SCHEMES
def test_every_single_byte_change_of_the_block_is_rejected(scheme: str, v2_keys: dict) -> None:
    """Raw corruption: each of the 1216 bytes XOR 0x01 (and the sector fill after the block)."""
    key = v2_keys[scheme]
    signed = sbv2.sign_v2(small_image(3000), [key])
    base = len(signed) - SECTOR_SIZE
    for offset in range(SECTOR_SIZE):
        bad = bytearray(signed)
        bad[base + offset] ^= 0x01
        with pytest.raises(SignatureInvalid):
            sbv2.verify_v2(bytes(bad), keys=[key])


@SCHEMES
def test_idf_corrupt_sig_block_each_byte_with_crc_fixed_is_rejected(
        scheme: str, v2_keys: dict) -> None:
    """ESP-IDF's secure-boot test: corrupt one byte, recompute the CRC ("image valid,
    signature bad"). Here every byte of the CRC-covered part, not only the signature."""
    key = v2_keys[scheme]
    signed = sbv2.sign_v2(small_image(3000), [key])
    block = signed[-SECTOR_SIZE:][:SIG_BLOCK_SIZE]
    key_start, sig_start, sig_end = SIG_RANGE[scheme]
    for offset in range(1196):
        delta = (zlib.crc32(bytes(offset)) & 0xFF) or 1
        bad = bytearray(block)
        bad[offset] ^= delta
        tampered = _replace_block(signed, 0, _with_crc(bytes(bad)))
        with pytest.raises(SignatureInvalid) as err:
            sbv2.verify_v2(tampered, keys=[key])
        if sig_start <= offset < sig_end:
            assert "signature does not verify" in str(err.value)
        elif 4 <= offset < key_start:
            assert "image digest mismatch" in str(err.value)


@SCHEMES
def test_device_mode_ignores_only_uncovered_bytes(scheme: str, v2_keys: dict) -> None:
    """strict=False is the bootloader: the 16 padding bytes after the CRC are not checked,
    but a changed signature byte still fails."""
    key = v2_keys[scheme]
    signed = sbv2.sign_v2(small_image(3000), [key])
    block = signed[-SECTOR_SIZE:][:SIG_BLOCK_SIZE]
    padded = _replace_block(signed, 0, block[:1200] + b"\x01" * 16)
    assert sbv2.verify_v2(padded, keys=[key], strict=False).key_index == 0
    with pytest.raises(SignatureInvalid, match="padding"):
        sbv2.verify_v2(padded, keys=[key])
    _, sig_start, _ = SIG_RANGE[scheme]
    bad = bytearray(block)
    bad[sig_start] ^= 0x80
    with pytest.raises(SignatureInvalid, match="signature does not verify"):
        sbv2.verify_v2(_replace_block(signed, 0, _with_crc(bytes(bad))), keys=[key],
                       strict=False)


def test_device_mode_skips_a_damaged_block_host_mode_does_not(v2_keys: dict) -> None:
    keys = [k.generate_key("ecdsa256"), k.generate_key("ecdsa256")]
    signed = sbv2.sign_v2(small_image(), keys)
    block0 = bytearray(signed[-SECTOR_SIZE:][:SIG_BLOCK_SIZE])
    block0[1196] ^= 0xFF  # CRC
    tampered = _replace_block(signed, 0, bytes(block0))
    assert sbv2.verify_v2(tampered, keys=keys, strict=False).block_index == 1
    with pytest.raises(SignatureInvalid, match="block 0 bad CRC"):
        sbv2.verify_v2(tampered, keys=keys)
    # ESP32 ECO3 looks at block 0 only
    with pytest.raises(SignatureInvalid, match="bad CRC"):
        sbv2.verify_v2(tampered, keys=keys, strict=False, max_blocks=1)


def test_bad_magic_is_named(v2_keys: dict) -> None:
    key = v2_keys["ecdsa256"]
    signed = bytearray(sbv2.sign_v2(small_image(), [key]))
    signed[-SECTOR_SIZE] = 0xE6
    with pytest.raises(SignatureInvalid, match="bad magic"):
        sbv2.verify_v2(bytes(signed), keys=[key])


@settings(max_examples=25, deadline=None)
@given(offset=st.integers(0, 8191), delta=st.integers(1, 255))
def test_any_changed_image_byte_fails_with_digest_mismatch(
        v2_keys: dict, offset: int, delta: int) -> None:
    key = v2_keys["ecdsa256"]
    signed = bytearray(sbv2.sign_v2(small_image(5000), [key]))
    signed[offset] ^= delta
    with pytest.raises(SignatureInvalid, match="image digest mismatch"):
        sbv2.verify_v2(bytes(signed), keys=[key])


def test_partition_bytes_with_erased_tail_verify(app_template: bytes, v2_keys: dict) -> None:
    key = v2_keys["rsa3072"]
    signed = sbv2.sign_v2(app_template, [key])
    slot = signed + b"\xff" * 0x20000
    assert sbv2.verify_v2(slot, digests=[k.public_key_digest(key)]).signed_len == \
        len(signed) - SECTOR_SIZE
    assert sbv2.verify_v2(slot, keys=[key], image_len=len(app_template)).key_index == 0


def test_keys_or_digests_are_required(v2_keys: dict) -> None:
    signed = sbv2.sign_v2(small_image(), [v2_keys["ecdsa256"]])
    with pytest.raises(InputError):
        sbv2.verify_v2(signed)
    with pytest.raises(SignatureInvalid, match="none trusted"):
        sbv2.verify_v2(signed, digests=[])


@pytest.mark.parametrize("size", [1, 4095, 4096, 4097, 8192])
def test_sizes_on_and_off_the_4k_boundary(size: int, v2_keys: dict) -> None:
    key = v2_keys["ecdsa256"]
    signed = sbv2.sign_v2(small_image(size), [key])
    padded = -(-size // SECTOR_SIZE) * SECTOR_SIZE
    assert len(signed) == padded + SECTOR_SIZE
    assert sbv2.verify_v2(signed, keys=[key]).signed_len == padded


def test_a_damaged_rsa_key_never_produces_a_signature(v2_keys: dict) -> None:
    """Keys load without OpenSSL's slow consistency check, so signing back-verifies."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    good = v2_keys["rsa3072"].private_numbers()
    broken = rsa.RSAPrivateNumbers(good.p, good.q, good.d ^ 2, good.dmp1 ^ 2, good.dmq1 ^ 2,
                                   good.iqmp, good.public_numbers)
    pem = k.private_key_pem(broken.private_key(unsafe_skip_rsa_key_validation=True))
    key = k.load_private_key(pem)
    with pytest.raises(InputError, match="does not verify"):
        sbv2.sign_v2(small_image(), [key])


def test_signed_apps_without_hardware_secure_boot_trust_the_running_apps_first_block(
        app_template: bytes) -> None:
    """CONFIG_SECURE_SIGNED_ON_UPDATE_NO_SECURE_BOOT: trusted key = running app's first valid
    block; only the new image's block 0 counts (espressif/esp-idf#10917)."""
    a, b = k.generate_key("rsa3072"), k.generate_key("rsa3072")
    running = sbv2.sign_v2(app_template, [a]) + b"\xff" * 0x1000
    assert sbv2.verify_v2_against_running_app(sbv2.sign_v2(small_image(), [a, b]),
                                              running).block_index == 0
    with pytest.raises(SignatureInvalid, match="does not verify"):
        sbv2.verify_v2_against_running_app(sbv2.sign_v2(small_image(), [b, a]), running)
    with pytest.raises(SignatureInvalid, match="running app is not signed"):
        sbv2.verify_v2_against_running_app(sbv2.sign_v2(small_image(), [a]), app_template)
    # block 0 of the running app damaged: IDF packs the valid digests, so block 1's key counts
    damaged = bytearray(sbv2.sign_v2(app_template, [a, b]))
    damaged[-SECTOR_SIZE + CRC_OFFSET] ^= 1
    assert sbv2.verify_v2_against_running_app(sbv2.sign_v2(small_image(), [b]),
                                              bytes(damaged)).key_index == 0
    with pytest.raises(SignatureInvalid, match="does not verify"):
        sbv2.verify_v2_against_running_app(sbv2.sign_v2(small_image(), [a]), bytes(damaged))


def test_trailing_data_after_the_sector_is_refused_on_the_host(
        app_template: bytes, v2_keys: dict) -> None:
    """Reliability matrix row 26 (RFC 9124 THREAT.IMG.EXTRA); erased 0xFF flash is fine."""
    key = v2_keys["ecdsa256"]
    signed = sbv2.sign_v2(app_template, [key])
    with pytest.raises(SignatureInvalid, match="trailing data"):
        sbv2.verify_v2(signed + b"payload", keys=[key])
    assert sbv2.verify_v2(signed + b"payload", keys=[key], strict=False).key_index == 0
    assert sbv2.verify_v2(signed + b"\xff" * 100, keys=[key]).key_index == 0


# --- scenario table: attack / fault -> the reason verification gives ----------------------

def _flip(data: bytes, offset: int, mask: int = 0x01) -> bytes:
    out = bytearray(data)
    out[offset] ^= mask
    return bytes(out)


def _edit_block(signed: bytes, index: int, offset: int, value: int, fix_crc: bool) -> bytes:
    start = len(signed) - SECTOR_SIZE + index * SIG_BLOCK_SIZE
    block = bytearray(signed[start : start + SIG_BLOCK_SIZE])
    block[offset] = value
    raw = _with_crc(bytes(block)) if fix_crc else bytes(block)
    return _replace_block(signed, index, raw)


def _mixed_sector(keys: dict) -> bytes:
    rsa_signed = sbv2.sign_v2(small_image(), [keys["rsa3072"]])
    ec_signed = sbv2.sign_v2(small_image(), [keys["ecdsa256"]])
    return _replace_block(rsa_signed, 1, ec_signed[-SECTOR_SIZE:][:SIG_BLOCK_SIZE])


def _gap_sector(keys: dict) -> bytes:
    two = sbv2.sign_v2(small_image(), [keys["ecdsa256"], keys["ecdsa256"]])
    moved = _replace_block(two, 2, two[-SECTOR_SIZE + SIG_BLOCK_SIZE :][:SIG_BLOCK_SIZE])
    return _replace_block(moved, 1, b"\xff" * SIG_BLOCK_SIZE)


# attack -> (make the tampered bytes from (signed image, keys), reason expected)
ATTACKS = {
    "image byte flipped after signing": (lambda s, _: _flip(s, 10), "image digest mismatch"),
    "padding before the sector changed": (lambda s, _: _flip(s, 5000), "image digest mismatch"),
    "signature byte flipped, CRC recomputed": (
        lambda s, _: _edit_block(s, 0, 120, s[-SECTOR_SIZE + 120] ^ 0x40, True),
        "signature does not verify with the key in the block"),
    "block CRC damaged": (lambda s, _: _flip(s, len(s) - SECTOR_SIZE + 1196), "block 0 bad CRC"),
    "block magic damaged": (lambda s, _: _flip(s, len(s) - SECTOR_SIZE), "bad magic"),
    "unknown block version, CRC recomputed": (
        lambda s, _: _edit_block(s, 0, 1, 0x09, True), "unknown version"),
    "reserved bytes set, CRC recomputed": (
        lambda s, _: _edit_block(s, 0, 500, 0x01, True), "reserved/padding"),
    "padding after the CRC set": (
        lambda s, _: _flip(s, len(s) - SECTOR_SIZE + 1210), "reserved/padding"),
    "sector fill after the blocks changed": (lambda s, _: _flip(s, len(s) - 10), "fill"),
    "data appended after signing": (lambda s, _: s + b"extra", "trailing data"),
    "signature sector cut short": (lambda s, _: s[:-2000], "truncated signature sector"),
    "signature stripped": (lambda s, _: s[:-SECTOR_SIZE].rstrip(b"\xff"), "no signature sector"),
    "blocks of two schemes in one sector": (lambda _, keys: _mixed_sector(keys), "differs"),
    "block after an empty slot": (lambda _, keys: _gap_sector(keys), "contiguous"),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_attack_is_rejected_with_its_reason(attack: str, v2_keys: dict) -> None:
    make, reason = ATTACKS[attack]
    key = v2_keys["ecdsa256"]
    tampered = make(sbv2.sign_v2(small_image(5000), [key]), v2_keys)
    with pytest.raises(SignatureInvalid, match=reason):
        sbv2.verify_v2(tampered, keys=[key, v2_keys["rsa3072"]])
