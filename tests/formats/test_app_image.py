"""App image parsing and esp_image_format.c verification, on real Espressif images.

Golden: ../shared/fixtures/esptool/*.bin (made by esptool/ESP-IDF). Threat scenarios: every
check of ``image_load`` (magic, chip id, chip revision, segment count/length/alignment,
checksum, appended SHA-256, fit in partition) and hostile input for every parser.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otaforge.errors import (
    BadMagicError,
    ChecksumMismatch,
    FormatError,
    ImageRejected,
    TruncatedError,
)
from otaforge.formats.app_desc import APP_DESC_MAGIC, AppDesc, read_app_desc
from otaforge.formats.app_image import (
    AppImage,
    ImageHeader,
    Segment,
    assemble_image,
    image_sha256,
    xor_checksum,
)
from otaforge.formats.chips import CHIPS, chip
from otaforge.formats.image_builder import build_image
from otaforge.formats.image_verify import verify_image
from otaforge.formats.signature_block import has_signature_sector


@pytest.fixture(scope="module")
def template(shared_fixtures: Path) -> bytes:
    return (shared_fixtures / "esptool" / "esp32-app-template.bin").read_bytes()


@pytest.fixture(scope="module")
def blink(shared_fixtures: Path) -> bytes:
    return (shared_fixtures / "esptool" / "esp_idf_blink_esp32s2.bin").read_bytes()


# --- golden: real images ------------------------------------------------------------------


def test_app_template_fields_match_esptool(template: bytes) -> None:
    image = AppImage.from_bytes(template)
    assert image.chip is not None and image.chip.name == "esp32"
    assert image.header.entry_addr == 0x4008167C
    assert [(s.load_addr, len(s.data)) for s in image.segments] == [
        (0x3F400020, 0x18C0C), (0x3FFB0000, 0x02D8C), (0x40080000, 0x04648),
        (0x400D0018, 0x67A90), (0x40084648, 0x0B3F0),
    ]
    assert [o - 8 for o in image.segment_offsets] == [0x18, 0x18C2C, 0x1B9C0, 0x20010, 0x87AA8]
    assert image.checksum == 0x7C and image.checksum_valid
    assert image.sha256 is not None and image.sha256.hex().startswith("dd3f0a322c19d184")
    assert image.hash_valid
    assert image.image_len == len(template) == 601808
    desc = image.app_desc
    assert desc is not None
    assert (desc.project_name, desc.version, desc.idf_ver, desc.secure_version) == (
        "app-template", "1cd5752", "v4.0-dev-30-g31ca6e399", 0)
    assert (desc.date, desc.time) == ("Mar 18 2019", "10:47:33")


def test_blink_s2_fields_match_esptool(blink: bytes) -> None:
    image = AppImage.from_bytes(blink)
    assert image.chip is not None and image.chip.name == "esp32s2"
    assert len(image.segments) == 6 and image.checksum == 0x18
    desc = image.app_desc
    assert desc is not None
    assert desc.project_name == "blink"
    assert desc.version == "qa-test-v5.0-20220830-4-g4532e6"
    assert desc.idf_ver == "v5.0-beta1-427-g4532e6e0b2-dirt"
    assert desc.elf_sha256_hex.startswith("3059e6b55a965865")


@pytest.mark.parametrize("name", ["esp32-app-template.bin", "esp_idf_blink_esp32s2.bin",
                                  "bootloader_esp32.bin"])
def test_real_images_rebuild_byte_for_byte(shared_fixtures: Path, name: str) -> None:
    data = (shared_fixtures / "esptool" / name).read_bytes()
    image = AppImage.from_bytes(data)
    assert image.to_bytes() == data[: image.image_len]
    for field in ("version", "project_name", "idf_ver"):
        if image.app_desc is not None:
            assert getattr(read_app_desc(data), field) == getattr(image.app_desc, field)


def test_bootloader_image_has_no_app_desc(shared_fixtures: Path) -> None:
    data = (shared_fixtures / "esptool" / "bootloader_esp32.bin").read_bytes()
    image = verify_image(data)
    assert image.app_desc is None and image.sha256 is None and image.hash_valid is None


def test_real_images_pass_bootloader_verification(template: bytes, blink: bytes) -> None:
    verify_image(template, chip=chip("esp32"), partition_size=0x100000)
    verify_image(blink, chip=chip("esp32s2"), chip_rev=100, partition_size=0x100000)


def test_version_edit_of_real_image_gives_valid_image(template: bytes) -> None:
    image = AppImage.from_bytes(template)
    assert image.app_desc is not None
    edited = image.with_app_desc(image.app_desc.replace(version="9.9.9", secure_version=4))
    data = edited.to_bytes()
    again = verify_image(data, chip=chip("esp32"))
    assert again.app_desc is not None
    assert (again.app_desc.version, again.app_desc.secure_version) == ("9.9.9", 4)
    assert [s.data for s in again.segments[1:]] == [s.data for s in image.segments[1:]]


# --- verify_image: the bootloader's checks, in its order ------------------------------------


def _patch(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new):]


def _rehash(data: bytes) -> bytes:
    """Recompute checksum and hash after editing header fields (structure unchanged)."""
    image = AppImage.from_bytes(data, check=False)
    return assemble_image(ImageHeader.from_bytes(data), image.segments)


def _c3(min_chip_rev_full: int = 0, max_chip_rev_full: int = 0) -> bytes:
    return build_image(version="1.0", chip="esp32c3", size=0x20000, seed=1,
                       min_chip_rev_full=min_chip_rev_full, max_chip_rev_full=max_chip_rev_full)


@dataclass(frozen=True)
class Reject:
    name: str
    make: Callable[[], bytes]
    error: type[Exception]
    message: str
    chip_rev: int = 0
    partition_size: int | None = None
    sig_len: int = 0


def _segment_len_patch(new_len: int) -> bytes:
    data = _c3()
    return _patch(data, 24 + 4, struct.pack("<I", new_len))


REJECTS = [
    Reject("erased slot (nothing flashed)", lambda: b"\xff" * 0x1000, BadMagicError,
           "invalid magic byte"),
    Reject("partition table flashed as app", lambda: b"\xaa\x50" + b"\x00" * 200, BadMagicError,
           "nothing flashed here"),
    Reject("valid image for the wrong chip", lambda: build_image(version="1", chip="esp32s3"),
           ImageRejected, "mismatch chip ID, expected 5, found 9"),
    Reject("chip revision below min_chip_rev_full", lambda: _c3(min_chip_rev_full=3),
           ImageRejected, r"requires chip rev >= v0\.3, but chip is v0\.2", chip_rev=2),
    Reject("chip revision above max_chip_rev_full", lambda: _c3(max_chip_rev_full=99),
           ImageRejected, r"requires chip rev <= v0\.99, but chip is v1\.0", chip_rev=100),
    Reject("segment count above 16", lambda: _patch(_c3(), 1, b"\x11"), ImageRejected,
           "segment count 17 exceeds max 16"),
    Reject("segment length not a multiple of 4", lambda: _segment_len_patch(0x102),
           ImageRejected, "invalid segment length 0x102"),
    Reject("segment length 16 MiB", lambda: _segment_len_patch(0x1000000), ImageRejected,
           "invalid segment length 0x1000000"),
    Reject("mapped segment not MMU aligned",
           lambda: _rehash(_patch(_c3(), 24, struct.pack("<I", 0x3C000040))), ImageRejected,
           "Segment 0 load address 0x3c000040, doesn't match data 0x00000020"),
    Reject("flipped bit in segment data (bad checksum)",
           lambda: _patch(_c3(), 0x400, bytes([_c3()[0x400] ^ 0x10])), ChecksumMismatch,
           "Checksum failed"),
    Reject("flipped bit in a header (bad hash)", lambda: _patch(_c3(), 2, b"\x03"),
           ChecksumMismatch, "Image hash failed - image is corrupt"),
    Reject("image larger than the slot", _c3, ImageRejected, "doesn't fit in partition length",
           partition_size=0x10000),
    Reject("image fits but its signature sector does not", _c3, ImageRejected,
           "doesn't fit in partition length 131072", partition_size=0x20000, sig_len=0x1000),
    Reject("partition above 16 MiB", _c3, ImageRejected, "larger than 16MB",
           partition_size=0x1000001),
    Reject("truncated download", lambda: _c3()[:0x8000], TruncatedError, "truncated"),
]


@pytest.mark.parametrize("case", REJECTS, ids=lambda c: c.name)
def test_verify_image_rejects(case: Reject) -> None:
    with pytest.raises(case.error, match=case.message):
        verify_image(case.make(), chip=chip("esp32c3"), chip_rev=case.chip_rev,
                     partition_size=case.partition_size, sig_len=case.sig_len)


def test_chip_rev_inside_range_and_unset_max_pass() -> None:
    verify_image(_c3(min_chip_rev_full=3, max_chip_rev_full=199), chip=chip("esp32c3"),
                 chip_rev=101)
    verify_image(_c3(max_chip_rev_full=0xFFFF), chip=chip("esp32c3"), chip_rev=9999)


def test_efuse_block_revision_from_app_desc() -> None:
    image = AppImage.from_bytes(_c3())
    assert image.app_desc is not None
    data = image.with_app_desc(image.app_desc.replace(min_efuse_blk_rev_full=2,
                                                      max_efuse_blk_rev_full=99)).to_bytes()
    verify_image(data, chip=chip("esp32c3"), efuse_blk_rev=3)
    with pytest.raises(ImageRejected, match=r"efuse blk rev >= v0\.2, but chip is v0\.1"):
        verify_image(data, chip=chip("esp32c3"), efuse_blk_rev=1)
    with pytest.raises(ImageRejected, match=r"efuse blk rev <= v0\.99, but chip is v1\.0"):
        verify_image(data, chip=chip("esp32c3"), efuse_blk_rev=100)


def test_exact_fit_and_trailing_bytes_are_accepted() -> None:
    data = _c3()
    verify_image(data, chip=chip("esp32c3"), partition_size=len(data))
    slot = data + b"\xff" * 0x3000  # erased rest of the slot
    image = verify_image(slot, chip=chip("esp32c3"), partition_size=len(slot))
    assert image.image_len == len(data)
    signed_like = data + b"\xff" * (-len(data) % 0x1000) + b"\xe7\x02" + b"\x00" * 1214
    assert has_signature_sector(signed_like, verify_image(signed_like).image_len)
    assert not has_signature_sector(slot, image.image_len)


def test_image_running_past_the_end_of_its_slot_is_rejected() -> None:
    data = _c3()
    with pytest.raises(ImageRejected, match="doesn't fit in partition length 65536"):
        verify_image(data[:0x10000], partition_size=0x10000)


def test_check_false_reports_instead_of_raising() -> None:
    data = _c3()
    bad = _patch(data, 0x400, bytes([data[0x400] ^ 1]))
    image = AppImage.from_bytes(bad, check=False)
    assert image.checksum_valid is False and image.hash_valid is False
    with pytest.raises(ChecksumMismatch):
        AppImage.from_bytes(bad)


def test_unhashed_image_has_hash_valid_none() -> None:
    data = build_image(version="1", hash_appended=False)
    image = verify_image(data)
    assert image.sha256 is None and image.hash_valid is None
    assert image.image_len == len(data) and len(data) % 16 == 0


def test_assemble_rejects_bad_segments() -> None:
    with pytest.raises(FormatError, match="multiple of 4"):
        assemble_image(ImageHeader(), [Segment(0x3FFB0000, b"abc")])
    with pytest.raises(FormatError, match="at most 16"):
        assemble_image(ImageHeader(), [Segment(0, b"")] * 17)


def test_xor_checksum_equals_bytewise_xor() -> None:
    rng = random.Random(5)
    chunks = [rng.randbytes(n) for n in (0, 1, 3, 4, 17, 1000)]
    expected = 0xEF
    for chunk in chunks:
        for byte in chunk:
            expected ^= byte
    assert xor_checksum(chunks) == expected


def test_image_sha256_is_hex_of_whole_file() -> None:
    assert image_sha256(b"abc") == hashlib.sha256(b"abc").hexdigest()


# --- app description ----------------------------------------------------------------------


def test_app_desc_layout_offsets() -> None:
    desc = AppDesc(secure_version=7, version="v1", project_name="p", time="12:00:00",
                   date="Jan  1 2025", idf_ver="v5.4.1", app_elf_sha256=bytes(range(32)),
                   min_efuse_blk_rev_full=1, max_efuse_blk_rev_full=99, mmu_page_size=16)
    raw = desc.to_bytes()
    assert len(raw) == 256
    assert raw[0:4] == struct.pack("<I", APP_DESC_MAGIC)
    assert raw[4:8] == struct.pack("<I", 7)
    assert raw[16:18] == b"v1" and raw[48:49] == b"p" and raw[80:88] == b"12:00:00"
    assert raw[96:107] == b"Jan  1 2025" and raw[112:118] == b"v5.4.1"
    assert raw[144:176] == bytes(range(32))
    assert raw[176:181] == struct.pack("<HHB", 1, 99, 16)
    assert AppDesc.from_bytes(raw) == desc


@pytest.mark.parametrize(("field", "value"), [("version", "x" * 32), ("project_name", "p" * 40),
                                             ("time", "t" * 16), ("idf_ver", "v" * 32),
                                             ("secure_version", 1 << 32)])
def test_app_desc_fields_that_do_not_fit(field: str, value: object) -> None:
    with pytest.raises(FormatError):
        AppDesc().replace(**{field: value}).to_bytes()


def test_app_desc_bad_magic_and_truncation() -> None:
    with pytest.raises(BadMagicError, match="0xabcd5432"):
        AppDesc.from_bytes(b"\x00" * 256)
    with pytest.raises(TruncatedError):
        AppDesc.from_bytes(b"\x32\x54\xcd\xab")
    with pytest.raises(TruncatedError, match="0x120"):
        read_app_desc(b"\xe9" + b"\x00" * 100)
    with pytest.raises(BadMagicError, match="0xE9"):
        read_app_desc(b"\xff" * 0x200)
    with pytest.raises(BadMagicError):
        read_app_desc(b"")


def test_app_desc_non_utf8_strings_decode_with_replacement() -> None:
    raw = bytearray(AppDesc(version="1").to_bytes())
    raw[16:20] = b"\xff\xfe1\x00"
    assert AppDesc.from_bytes(bytes(raw)).version == "\ufffd\ufffd1"


_TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=15)


@settings(max_examples=40, deadline=None)
@given(version=_TEXT, project=_TEXT, idf=_TEXT, sv=st.integers(0, 0xFFFFFFFF),
       elf=st.binary(min_size=32, max_size=32), mmu=st.integers(0, 255))
def test_app_desc_round_trip_property(version: str, project: str, idf: str, sv: int,
                                      elf: bytes, mmu: int) -> None:
    desc = AppDesc(secure_version=sv, version=version, project_name=project, idf_ver=idf,
                   app_elf_sha256=elf, mmu_page_size=mmu)
    assert AppDesc.from_bytes(desc.to_bytes()) == desc


# --- hostile input: only FormatError, never struct.error/IndexError/UnicodeDecodeError ------


def test_every_truncation_of_a_real_image_raises_format_error(blink: bytes) -> None:
    image = AppImage.from_bytes(blink)
    cuts = sorted({0, 1, 8, 23, 24, 31, 0x20 + 100, image.image_len - 33, image.image_len - 1,
                   *[o - 1 for o in image.segment_offsets], *image.segment_offsets})
    for cut in cuts:
        with pytest.raises(TruncatedError, match="truncated"):
            AppImage.from_bytes(blink[:cut])


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_raise_only_format_errors(data: bytes) -> None:
    for parse in (lambda d: AppImage.from_bytes(d, check=False), verify_image, read_app_desc,
                  lambda d: verify_image(d, chip=CHIPS["esp32"], partition_size=0x1000)):
        with contextlib.suppress(FormatError, ImageRejected):
            parse(data)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_mutated_real_structure_raises_only_otaforge_errors(data: st.DataObject) -> None:
    base = _c3()
    offset = data.draw(st.integers(0, 0x200), label="offset")
    new = data.draw(st.binary(min_size=1, max_size=8), label="bytes")
    with contextlib.suppress(FormatError, ImageRejected):
        verify_image(_patch(base, offset, new), chip=CHIPS["esp32c3"])


# --- reliability matrix rows 21-24 (agent-side image checks use these parsers) --------------


def _matrix_image() -> bytes:
    return build_image(version="2.0", chip="esp32", size=0x20000, seed=11)


MATRIX_ROWS = [
    ("row 21: header truncated to 180 B", lambda: read_app_desc(_matrix_image()[:180]),
     TruncatedError, "app description needs 0x120"),
    ("row 22: HTML error page instead of the image",
     lambda: verify_image(b"<!DOCTYPE html><html>502 Bad Gateway</html>" + b" " * 300),
     BadMagicError, "invalid magic byte"),
    ("row 22: JSON instead of the image", lambda: read_app_desc(b'{"error": "x"}' + b" " * 300),
     BadMagicError, "expected 0xE9"),
    ("row 23: chip_id byte 13 patched to 0xFE",
     lambda: verify_image(_patch(_matrix_image(), 13, b"\xfe"), chip=chip("esp32")),
     ImageRejected, "mismatch chip ID, expected 0, found 65024"),
    ("row 24: min_chip_rev_full patched above the chip",
     lambda: verify_image(_patch(_matrix_image(), 0x0F, struct.pack("<H", 301)),
                          chip=chip("esp32"), chip_rev=300),
     ImageRejected, r"chip rev >= v3\.1, but chip is v3\.0"),
    ("row 24: max_chip_rev_full patched below the chip",
     lambda: verify_image(_patch(_matrix_image(), 0x11, struct.pack("<H", 199)),
                          chip=chip("esp32"), chip_rev=300),
     ImageRejected, r"chip rev <= v1\.99, but chip is v3\.0"),
    ("row 25: image one byte larger than the slot",
     lambda: verify_image(_matrix_image(), partition_size=len(_matrix_image()) - 1),
     ImageRejected, "doesn't fit in partition length"),
]


@pytest.mark.parametrize(("name", "run", "error", "message"), MATRIX_ROWS,
                         ids=[row[0] for row in MATRIX_ROWS])
def test_reliability_matrix_rows(name: str, run: Callable[[], object], error: type[Exception],
                                 message: str) -> None:
    with pytest.raises(error, match=message):
        run()


def test_layouts_are_explicit_little_endian() -> None:
    from otaforge.formats import app_desc, app_image, otadata

    layouts = [app_image._HEADER, app_image._SEGMENT, app_desc._DESC, otadata._ENTRY,
               otadata._SEQ]
    assert all(layout.format.startswith("<") for layout in layouts)
    assert [layout.size for layout in layouts[:4]] == [24, 8, 256, 32]


_SEGMENTS = st.lists(
    st.builds(Segment, st.integers(0, 0xFFFFFFFF),
              st.integers(0, 64).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n))),
    max_size=16,
)


@settings(max_examples=60, deadline=None)
@given(segments=_SEGMENTS, entry=st.integers(0, 0xFFFFFFFF), chip_id=st.integers(0, 0xFFFF),
       revs=st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)),
       hashed=st.integers(0, 1), mode=st.integers(0, 5))
def test_image_round_trip_property(segments: list[Segment], entry: int, chip_id: int,
                                   revs: tuple[int, int], hashed: int, mode: int) -> None:
    header = ImageHeader(segment_count=len(segments), spi_mode=mode, entry_addr=entry,
                         chip_id=chip_id, min_chip_rev_full=revs[0], max_chip_rev_full=revs[1],
                         hash_appended=hashed)
    data = assemble_image(header, segments)
    image = AppImage.from_bytes(data + b"\xff" * 7)
    assert image.header == header and list(image.segments) == segments
    assert image.image_len == len(data) and image.to_bytes() == data
    assert (image.sha256 is not None) == bool(hashed)


