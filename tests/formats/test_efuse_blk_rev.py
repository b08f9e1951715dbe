"""eFuse block revision check on segment 0, as bootloader_common_check_efuse_blk_validity.

A min or max of 0 or 0xFFFF means "not set" (IS_FIELD_SET); the fields are read at image
offset 0xD0/0xD2 whether or not the app description's magic is there.
"""

from __future__ import annotations

import struct

import pytest

from otaforge.errors import ImageRejected
from otaforge.formats.chips import chip
from otaforge.formats.image_verify import check_efuse_blk_rev

C3 = chip("esp32c3")


def _image(lo: int, hi: int, magic: bool = True) -> bytes:
    data = bytearray(0x100)
    data[0], data[1] = 0xE9, 1
    if magic:
        struct.pack_into("<I", data, 0x20, 0xABCD5432)
    struct.pack_into("<HH", data, 0xD0, lo, hi)
    return bytes(data)


@pytest.mark.parametrize(
    ("lo", "hi", "chip_rev", "ok"),
    [
        pytest.param(0, 0, 7, True, id="both unset (0)"),
        pytest.param(0xFFFF, 0xFFFF, 7, True, id="min 0xFFFF means unset"),
        pytest.param(100, 0, 99, False, id="chip below min"),
        pytest.param(100, 0, 100, True, id="chip at min"),
        pytest.param(0, 199, 200, False, id="chip above max"),
        pytest.param(0, 199, 199, True, id="chip at max"),
    ],
)
def test_efuse_blk_rev_range(lo: int, hi: int, chip_rev: int, ok: bool) -> None:
    if ok:
        check_efuse_blk_rev(_image(lo, hi), C3, chip_rev)
    else:
        with pytest.raises(ImageRejected, match="efuse blk rev"):
            check_efuse_blk_rev(_image(lo, hi), C3, chip_rev)


def test_checked_even_without_app_desc_magic() -> None:
    with pytest.raises(ImageRejected):
        check_efuse_blk_rev(_image(300, 0, magic=False), C3, 100)


def test_esp32_and_unknown_revision_are_not_checked() -> None:
    check_efuse_blk_rev(_image(300, 0), chip("esp32"), 100)
    check_efuse_blk_rev(_image(300, 0), C3, None)
