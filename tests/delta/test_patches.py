"""otaforge's esp_delta_ota patches against Espressif's generator, verify_patch and detools.

Oracles: ``esp_delta_ota_patch_gen.py`` (``../shared/fixtures/esp-idf``) and detools' own
applier; real images from ``../shared/fixtures`` and releases made from them.
"""

from __future__ import annotations

import io
from pathlib import Path

import detools
import pytest

from otaforge.delta.applier import apply_patch
from otaforge.delta.create import apply_checked, create_patch, patch_info, validation_hash
from otaforge.errors import BadMagicError, DigestMismatch, FormatError, RefusalCode
from otaforge.formats.app_image import AppImage
from otaforge.formats.delta_patch import DELTA_MAGIC, HEADER_SIZE, pack_size, unpack_size
from tests.delta.conftest import KINDS, REAL_IMAGES, make_release, patch_gen


def _detools_apply(base: bytes, patch: bytes) -> bytes:
    out = io.BytesIO()
    detools.apply_patch(io.BytesIO(base), io.BytesIO(patch[HEADER_SIZE:]), out)
    return out.getvalue()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("path", "chip"), REAL_IMAGES, ids=[p for p, _ in REAL_IMAGES])
def test_detools_rebuilds_the_new_image(shared_fixtures: Path, path: str, chip: str,
                                        kind: str) -> None:
    base = (shared_fixtures / path).read_bytes()
    new = make_release(base, kind)
    made = create_patch(base, new)
    assert _detools_apply(base, made.patch) == new
    assert apply_patch(base, made.patch) == new
    assert made.patch[:4] == DELTA_MAGIC.to_bytes(4, "little")
    assert made.patch[4:36] == AppImage.from_bytes(base).sha256
    assert made.patch[36:64] == bytes(28)
    info = patch_info(made.patch)
    assert info.detools.stock_applicable and info.detools.to_size == len(new)
    assert len(made.patch) < len(new)


@pytest.mark.parametrize("kind", KINDS)
def test_same_bytes_as_espressifs_generator(shared_fixtures: Path, hello_world: bytes,
                                            kind: str, tmp_path: Path) -> None:
    """Never larger than the generator's patch: byte for byte the same patch."""
    new = make_release(hello_world, kind)
    (tmp_path / "new.bin").write_bytes(new)
    base = shared_fixtures / "esp-idf" / "hello_world_esp32.bin"
    out = patch_gen(shared_fixtures, "create_patch", "--chip", "esp32", "--base_binary", base,
                    "--new_binary", "new.bin", "--patch_file_name", "gen.bin", cwd=tmp_path)
    assert "Patch file verified successfully" in out
    theirs = (tmp_path / "gen.bin").read_bytes()
    ours = create_patch(hello_world, new).patch
    assert ours == theirs
    # and the generator's patch, applied by otaforge (header checked), rebuilds the image
    assert apply_checked(hello_world, theirs) == new


def test_verify_patch_accepts_otaforges_patch(shared_fixtures: Path, tmp_path: Path) -> None:
    base_path = shared_fixtures / "esptool" / "esp_idf_blink_esp32s2.bin"
    base = base_path.read_bytes()
    new = make_release(base, "code")
    (tmp_path / "new.bin").write_bytes(new)
    (tmp_path / "p.bin").write_bytes(create_patch(base, new).patch)
    out = patch_gen(shared_fixtures, "verify_patch", "--base_binary", base_path,
                    "--patch_file_name", "p.bin", "--new_binary", "new.bin", cwd=tmp_path)
    assert "Patch file verified successfully" in out
    # the oracle can fail: a patch for another image does not verify
    (tmp_path / "other.bin").write_bytes(make_release(base, "larger"))
    out = patch_gen(shared_fixtures, "verify_patch", "--base_binary", base_path,
                    "--patch_file_name", "p.bin", "--new_binary", "other.bin", cwd=tmp_path)
    assert "Failed to verify the patch" in out


def test_header_mismatch_is_refused_naming_both_hashes(hello_world: bytes) -> None:
    new = make_release(hello_world, "version")
    patch = create_patch(hello_world, new).patch
    with pytest.raises(DigestMismatch) as caught:
        apply_checked(new, patch)
    assert caught.value.code == RefusalCode.DIGEST_MISMATCH
    message = str(caught.value)
    assert validation_hash(hello_world).hex() in message
    assert validation_hash(new).hex() in message


def test_not_a_patch_and_corrupt_patches(hello_world: bytes) -> None:
    new = make_release(hello_world, "code")
    patch = create_patch(hello_world, new).patch
    with pytest.raises(BadMagicError):
        apply_checked(hello_world, patch[HEADER_SIZE:])  # a bare detools patch
    with pytest.raises(FormatError):
        apply_checked(hello_world, patch[:HEADER_SIZE + 40])  # truncated
    with pytest.raises(FormatError):
        apply_checked(hello_world, patch + b"\x00\x55\xaa")  # trailing data
    lzma = io.BytesIO()
    detools.create_patch(io.BytesIO(hello_world), io.BytesIO(new), lzma, compression="lzma")
    with pytest.raises(FormatError, match="heatshrink only"):
        apply_checked(hello_world, patch[:HEADER_SIZE] + lzma.getvalue())


def test_signed_images_rebuild_byte_for_byte_and_still_verify(hello_world: bytes) -> None:
    from otaforge.crypto import keys as k
    from otaforge.crypto.chip_policy import verify_for_chip
    from otaforge.crypto.sbv2 import sign_v2
    from otaforge.formats.chips import chip

    key = k.generate_key("rsa3072")
    base = sign_v2(hello_world, [key])
    new = sign_v2(make_release(hello_world, "code"), [key])
    rebuilt = apply_checked(base, create_patch(base, new).patch)
    assert rebuilt == new
    # Secure Boot v2 (the ESP32's ECO3 scheme) still verifies the rebuilt image's sector
    result = verify_for_chip(rebuilt, chip("esp32"), keys=[key], version=2)
    assert result.scheme == "rsa3072" and result.key_index == 0


@pytest.mark.parametrize("value", [0, 1, 63, 64, -1, -64, 8191, 1 << 40, -(1 << 40)])
def test_detools_size_encoding(value: int) -> None:
    from detools.common import pack_size as detools_pack_size

    assert pack_size(value) == detools_pack_size(value)
    assert unpack_size(pack_size(value), 0, "size") == (value, len(pack_size(value)))
