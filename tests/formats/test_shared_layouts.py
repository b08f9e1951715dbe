"""The layouts other layers read through formats/ instead of re-declaring them: the segment walk,
the app description's head and eFuse fields, the lenient partition record of the bootloader,
the signature sector's position, the bootloader description and the key fields of a block.
"""

from __future__ import annotations

import pytest

from otaforge.errors import BadMagicError, TruncatedError
from otaforge.formats.app_desc import (
    APP_DESC_OFFSET,
    app_desc_magic,
    app_secure_version,
    efuse_blk_rev_range,
    mmu_page_size_log2,
)
from otaforge.formats.app_image import AppImage, ImageHeader, app_image_length, walk_segments
from otaforge.formats.bootloader_desc import BootloaderDesc
from otaforge.formats.image_builder import build_image
from otaforge.formats.partition_entry import PartitionEntry
from otaforge.formats.sector import SECTOR_SIZE
from otaforge.formats.signature_block import (
    has_signature_sector,
    signature_length,
    signature_sector_offset,
)
from otaforge.formats.signature_key import CURVE_ID_P192, CURVE_ID_P384, ecdsa_key_fields

IMAGE = build_image(version="1.2.3", secure_version=7, size=70_000, seed=3)


def test_the_walk_finds_the_segments_the_parser_finds() -> None:
    image = AppImage.from_bytes(IMAGE)
    header = ImageHeader.from_bytes(IMAGE)
    spans = list(walk_segments(IMAGE, header.segment_count))
    assert [s.offset for s in spans] == list(image.segment_offsets)
    assert [(s.load_addr, s.length) for s in spans] == \
        [(seg.load_addr, len(seg.data)) for seg in image.segments]
    assert app_image_length(IMAGE) == image.image_len


def test_the_walk_yields_a_segment_before_checking_its_data_is_there() -> None:
    """So image_load's length and MMU rules run before the truncation check, as on a chip."""
    header = ImageHeader.from_bytes(IMAGE)
    cut = IMAGE[: AppImage.from_bytes(IMAGE).segment_offsets[0] + 16]
    walk = walk_segments(cut, header.segment_count)
    first = next(walk)
    assert first.index == 0 and first.end > len(cut)
    with pytest.raises(TruncatedError, match="segment 0 data"):
        next(walk)


@pytest.mark.parametrize(("name", "data"), [
    ("cut inside a segment", IMAGE[:5000]),
    ("not an image", b"\x7fELF" + bytes(60)),
    ("shorter than a header", IMAGE[:10]),
    ("17 segments", IMAGE[:1] + bytes([17]) + IMAGE[2:]),
])
def test_app_image_length_is_none_for_what_is_not_a_whole_image(name: str, data: bytes) -> None:
    assert app_image_length(data) is None, name


def test_app_description_head_without_parsing_the_image() -> None:
    assert app_desc_magic(IMAGE) == 0xABCD5432
    assert app_secure_version(IMAGE) == 7
    no_desc = IMAGE[:APP_DESC_OFFSET] + bytes(4) + IMAGE[APP_DESC_OFFSET + 4 :]
    assert app_secure_version(no_desc) is None and mmu_page_size_log2(no_desc) == 0
    assert app_desc_magic(IMAGE[:APP_DESC_OFFSET + 2]) is None


def test_efuse_blk_revs_read_past_the_end_as_erased_flash() -> None:
    assert efuse_blk_rev_range(IMAGE) == (0, 0)
    assert efuse_blk_rev_range(IMAGE[:0xD1]) == (0xFF00 | IMAGE[0xD0], 0xFFFF)


def test_the_bootloaders_partition_record_reading_never_refuses() -> None:
    record = PartitionEntry("nvs", 1, 2, 0x9000, 0x6000).to_bytes()
    bad_label = record[:12] + b"\xff\xfeab" + record[16:]
    with pytest.raises(BadMagicError):
        PartitionEntry.from_bytes(b"\xeb\xeb" + record[2:])
    lenient = PartitionEntry.from_bytes(b"\xeb\xeb" + bad_label[2:], strict=False)
    assert (lenient.type, lenient.offset, lenient.size) == (1, 0x9000, 0x6000)
    assert lenient.name.endswith("ab") and "\ufffd" in lenient.name


def test_the_signature_sector_sits_one_sector_boundary_after_the_image() -> None:
    image_len = AppImage.from_bytes(IMAGE).image_len
    offset = signature_sector_offset(image_len)
    assert offset % SECTOR_SIZE == 0 and 0 <= offset - image_len < SECTOR_SIZE
    assert signature_length("v2", image_len) == offset - image_len + SECTOR_SIZE
    assert not has_signature_sector(IMAGE, image_len)
    signed_like = IMAGE.ljust(offset, b"\xff") + b"\xe7" + b"\xff" * (SECTOR_SIZE - 1)
    assert has_signature_sector(signed_like, image_len)


def test_bootloader_description_fields() -> None:
    raw = bytes([0x50, 0, 0, 3]) + (9).to_bytes(4, "little") + b"v5.4.1".ljust(32, b"\x00") \
        + b"Jan  1 2026 00:00:00".ljust(24, b"\x00") + bytes(16)
    assert BootloaderDesc.from_bytes(raw) == BootloaderDesc(3, 9, "v5.4.1", "Jan  1 2026 00:00:00")
    with pytest.raises(TruncatedError):
        BootloaderDesc.from_bytes(raw[:79])


def test_ecdsa_key_fields_pad_p192_to_the_p256_field_but_not_p384() -> None:
    assert len(ecdsa_key_fields(CURVE_ID_P192, 1, 2)) == 65
    assert len(ecdsa_key_fields(CURVE_ID_P384, 1, 2)) == 97
