"""The synthetic image builder, with the real esptool (PyPI) as the oracle.

``otaforge image build`` makes the firmware the demo and the other tests use, so every image
it makes must be one that esptool and the bootloader accept.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otaforge.errors import InputError
from otaforge.formats.app_desc import APP_DESC_SIZE
from otaforge.formats.app_image import AppImage
from otaforge.formats.chips import CHIPS, chip
from otaforge.formats.image_builder import build_date_time, build_image
from otaforge.formats.image_verify import verify_image
from tests.conftest import tool


def esptool_image_info(path: Path) -> str:
    """``esptool image-info`` output (the oracle); fails the test if esptool fails."""
    proc = subprocess.run([tool("esptool"), "image-info", str(path)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


ORACLE_CASES = [
    ("esp32", 0x30000), ("esp32", 600_000), ("esp32s2", 0x8000), ("esp32s3", 300_000),
    ("esp32c2", 0x20000), ("esp32c3", 1_200_000), ("esp32c5", 0x30000), ("esp32c6", 0x40000),
    ("esp32c61", 0x18000), ("esp32h2", 0x30000), ("esp32p4", 0x50000),
]


@pytest.mark.parametrize(("chip_name", "size"), ORACLE_CASES)
def test_esptool_calls_built_images_valid(tmp_path: Path, chip_name: str, size: int) -> None:
    data = build_image(version=f"2.{size}.0", project=f"proj-{chip_name}", secure_version=5,
                       chip=chip_name, size=size, seed=size)
    path = tmp_path / "app.bin"
    path.write_bytes(data)
    out = esptool_image_info(path)
    assert f"Detected image type: {CHIPS[chip_name].display_name.upper()}" in out
    assert re.search(r"Checksum: 0x[0-9a-f]{2} \(valid\)", out), out
    assert re.search(r"Validation hash: [0-9a-f]{64} \(valid\)", out), out
    assert f"Project name: proj-{chip_name}\n" in out
    assert f"App version: 2.{size}.0\n" in out
    assert "ESP-IDF: v5.4.1\n" in out
    assert "Secure version: 5\n" in out
    assert "MMU page size: 64 KB" in out
    # the app description is in the first segment, which esptool labels DROM
    first_segment = out.split("------------\n", 1)[1].splitlines()[0]
    assert "DROM" in first_segment and first_segment.split()[3] == "0x00000018"
    verify_image(data, chip=chip(chip_name), partition_size=0x200000)


def test_version_edit_keeps_content_and_stays_valid_for_esptool(tmp_path: Path) -> None:
    old = build_image(version="1.0.0", seed=42)
    new = build_image(version="1.0.1", secure_version=1, seed=42)
    a, b = AppImage.from_bytes(old), AppImage.from_bytes(new)
    assert len(old) == len(new)
    assert a.segments[0].data[APP_DESC_SIZE:] == b.segments[0].data[APP_DESC_SIZE:]
    assert a.segments[1:] == b.segments[1:]
    path = tmp_path / "new.bin"
    path.write_bytes(new)
    out = esptool_image_info(path)
    assert "App version: 1.0.1\n" in out and "Secure version: 1\n" in out


def test_deterministic_for_a_seed() -> None:
    assert build_image(version="1", seed=3) == build_image(version="1", seed=3)
    assert build_image(version="1", seed=3) != build_image(version="1", seed=4)


def test_date_time_come_from_seed_not_wall_clock() -> None:
    desc = AppImage.from_bytes(build_image(version="1", seed=9)).app_desc
    assert desc is not None
    assert (desc.date, desc.time) == build_date_time(9)
    assert re.fullmatch(r"[A-Z][a-z]{2} [ \d]\d \d{4}", desc.date)
    assert re.fullmatch(r"\d\d:\d\d:\d\d", desc.time)


def test_layout_looks_like_an_idf_app() -> None:
    image = verify_image(build_image(version="1", size=600_000), chip=chip("esp32"))
    spec = chip("esp32")
    kinds = [spec.memory_types(s.load_addr) for s in image.segments]
    assert "DROM" in kinds[0] and "DRAM" in kinds[1] and "IRAM" in kinds[2]
    assert any("IROM" in k and s.load_addr >= spec.irom[0]
               for k, s in zip(kinds, image.segments, strict=True))
    assert spec.iram[0] <= image.header.entry_addr < spec.iram[1]
    assert image.header.wp_pin == 0xEE and image.header.hash_appended == 1


@pytest.mark.parametrize("size", [0x1000, 0x11000, 0x12000, 0x20000, 0x10_0000, 0x40_0000])
def test_size_is_approximately_the_requested_total(size: int) -> None:
    data = build_image(version="1", size=size)
    assert abs(len(data) - size) <= 64
    verify_image(data, chip=chip("esp32"))


@pytest.mark.parametrize("bad", [{"size": 100}, {"size": 0x2000000}, {"size": 0x800000},
                                 {"chip": "esp8266"},
                                 {"version": "v" * 32}, {"project": "p" * 40},
                                 {"flash_size": "3MB"}])
def test_bad_options_raise_input_error(bad: dict[str, object]) -> None:
    args: dict[str, object] = {"version": "1", **bad}
    with pytest.raises(InputError):
        build_image(**args)  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None)
@given(version=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=31),
       secure_version=st.integers(0, 0xFFFFFFFF), seed=st.integers(0, 2**32),
       size=st.integers(0x1000, 0x60000), chip_name=st.sampled_from(sorted(CHIPS)))
def test_build_parse_round_trip_property(version: str, secure_version: int, seed: int,
                                         size: int, chip_name: str) -> None:
    data = build_image(version=version, secure_version=secure_version, seed=seed, size=size,
                       chip=chip_name)
    image = verify_image(data, chip=chip(chip_name))
    assert image.to_bytes() == data
    assert image.app_desc is not None
    assert (image.app_desc.version, image.app_desc.secure_version) == (version, secure_version)
    assert len(image.segments) <= 16
