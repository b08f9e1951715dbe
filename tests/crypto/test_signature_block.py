"""formats/signature_block.py: the 1216-byte block layout, the sector, and where it sits."""

from __future__ import annotations

import contextlib
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otaforge.crypto import sbv2
from otaforge.errors import BadMagicError, ChecksumMismatch, FormatError, TruncatedError
from otaforge.formats.app_image import app_image_length
from otaforge.formats.signature_block import (
    SECTOR_SIZE,
    SIG_BLOCK_SIZE,
    SignatureBlock,
    build_sector,
    find_signature_sector,
    read_sector,
    signature_length,
    summarize_signatures,
)
from tests.crypto.conftest import small_image


@pytest.mark.parametrize("scheme", ["rsa3072", "ecdsa256", "ecdsa384"])
def test_block_round_trips_byte_for_byte(scheme: str, v2_keys: dict) -> None:
    signed = sbv2.sign_v2(small_image(), [v2_keys[scheme]])
    raw = signed[-SECTOR_SIZE:][:SIG_BLOCK_SIZE]
    block = SignatureBlock.from_bytes(raw)
    assert block.scheme == scheme
    assert block.to_bytes() == raw
    # layout facts from reference §4.2
    assert raw[0] == 0xE7
    assert raw[1] == (2 if scheme == "rsa3072" else 3)
    assert struct.unpack_from("<I", raw, 1196)[0] == zlib.crc32(raw[:1196])
    assert raw[1200:] == bytes(16)
    if scheme == "ecdsa384":
        assert (raw[2], raw[52]) == (1, 3)  # sha_version SHA-384, curve id P-384
    elif scheme == "ecdsa256":
        assert (raw[2], raw[36]) == (0, 2)


def test_rsa_key_fields_are_little_endian(v2_keys: dict) -> None:
    key = v2_keys["rsa3072"]
    signed = sbv2.sign_v2(small_image(), [key])
    block = SignatureBlock.from_bytes(signed[-SECTOR_SIZE:])
    n, e, rinv, mdash = block.rsa_fields()
    numbers = key.public_key().public_numbers()
    assert (n, e) == (numbers.n, numbers.e)
    assert rinv == pow(2, 6144, n)
    assert (mdash * n) % 2**32 == 2**32 - 1  # mdash = -n^-1 mod 2^32


def test_bad_magic_crc_and_truncation_are_distinct_format_errors(v2_keys: dict) -> None:
    raw = sbv2.sign_v2(small_image(), [v2_keys["ecdsa256"]])[-SECTOR_SIZE:][:SIG_BLOCK_SIZE]
    with pytest.raises(BadMagicError, match="bad magic"):
        SignatureBlock.from_bytes(b"\xe8" + raw[1:])
    with pytest.raises(ChecksumMismatch, match="bad CRC"):
        SignatureBlock.from_bytes(raw[:100] + bytes([raw[100] ^ 1]) + raw[101:])
    with pytest.raises(TruncatedError):
        SignatureBlock.from_bytes(raw[:-1])
    bad_version = bytearray(raw)
    bad_version[1] = 0x04
    bad_version[1196:1200] = struct.pack("<I", zlib.crc32(bytes(bad_version[:1196])))
    with pytest.raises(FormatError, match="unknown version"):
        SignatureBlock.from_bytes(bytes(bad_version))


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=SIG_BLOCK_SIZE + 8))
def test_parser_is_total_on_hostile_bytes(data: bytes) -> None:
    """Only FormatError subclasses escape, whatever the bytes."""
    for candidate in (data, b"\xe7" + data[1:], _with_crc(b"\xe7" + data[1:])):
        with contextlib.suppress(FormatError):
            SignatureBlock.from_bytes(candidate)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=SIG_BLOCK_SIZE), st.sampled_from(["rsa", "p256", "p192", "p384"]))
def test_any_well_formed_block_writes_back_the_same_bytes(data: bytes, kind: str) -> None:
    raw = bytearray(data.ljust(SIG_BLOCK_SIZE, b"\x5a"))
    raw[0] = 0xE7
    raw[1] = 2 if kind == "rsa" else 3
    if kind == "p384":
        raw[2], raw[52] = 1, 3
    elif kind != "rsa":
        raw[2], raw[36] = 0, (2 if kind == "p256" else 1)
    candidate = _with_crc(bytes(raw))
    block = SignatureBlock.from_bytes(candidate)
    assert block.to_bytes() == candidate
    assert block.scheme == {"rsa": "rsa3072", "p256": "ecdsa256", "p192": "ecdsa192",
                            "p384": "ecdsa384"}[kind]


def _with_crc(raw: bytes) -> bytes:
    if len(raw) < SIG_BLOCK_SIZE:
        return raw
    return raw[:1196] + struct.pack("<I", zlib.crc32(raw[:1196])) + raw[1200:]


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64), st.integers(0, SECTOR_SIZE), st.sampled_from([0xE7, 0xFF]))
def test_sector_reader_is_total(chunk: bytes, at: int, first: int) -> None:
    sector = bytearray(b"\xff" * SECTOR_SIZE)
    sector[at : at + len(chunk)] = chunk
    sector = sector[:SECTOR_SIZE]
    sector[0] = first
    slots = read_sector(bytes(sector))
    assert [s.index for s in slots] == [0, 1, 2]


def test_sector_layout_three_blocks_then_ff(v2_keys: dict) -> None:
    signed = sbv2.sign_v2(small_image(), [v2_keys["ecdsa256"]] * 3)
    sector = signed[-SECTOR_SIZE:]
    assert [s.block is not None for s in read_sector(sector)] == [True, True, True]
    assert sector[3 * SIG_BLOCK_SIZE :] == b"\xff" * 448
    with pytest.raises(FormatError):
        build_sector([])


def test_signature_length_matches_esp_image_format() -> None:
    assert signature_length(None, 5000) == 0
    assert signature_length("v1", 5000) == 68
    assert signature_length("rsa3072", 5000) == 8192 - 5000 + 4096
    assert signature_length("ecdsa256", 8192) == 4096
    with pytest.raises(FormatError):
        signature_length("dsa", 10)


def test_sector_is_found_at_4k_after_the_app_image(app_template: bytes, v2_keys: dict) -> None:
    assert app_image_length(app_template) == len(app_template)
    signed = sbv2.sign_v2(app_template, [v2_keys["ecdsa256"]])
    offset = len(signed) - SECTOR_SIZE
    assert find_signature_sector(signed) == offset
    # on a flash partition: erased 0xFF after the sector
    partition = signed + b"\xff" * 0x10000
    assert find_signature_sector(partition) == offset
    assert find_signature_sector(partition, image_len=len(app_template)) == offset
    assert find_signature_sector(app_template) is None
    assert find_signature_sector(app_template + b"\xff" * 0x3000) is None


def test_summary_lists_blocks_with_key_digests(app_template: bytes, v2_keys: dict) -> None:
    from otaforge.crypto.keys import public_key_digest

    keys = [v2_keys["rsa3072"], v2_keys["rsa3072"]]
    summary = summarize_signatures(sbv2.sign_v2(app_template, keys))
    assert [(s.index, s.scheme, s.digest_ok) for s in summary] == [
        (0, "rsa3072", True), (1, "rsa3072", True)]
    assert summary[0].key_digest == public_key_digest(keys[0])
    assert summarize_signatures(app_template) == []
