"""NOR flash semantics, copy-on-write storage, file-backed images and power-cut injection."""

from __future__ import annotations

import subprocess
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otaforge.device.flash import ERASED_SECTOR, SECTOR_SIZE, FileFlash, Flash, MemoryFlash
from otaforge.device.powercut import PowerCutPlan, parse_modes
from otaforge.errors import FlashError, InputError, PowerCut
from tests.conftest import tool

MB = 1024 * 1024


def test_fresh_flash_reads_erased_and_is_a_flash() -> None:
    flash = MemoryFlash(4 * MB)
    assert isinstance(flash, Flash)
    assert flash.read(0x1234, 100) == b"\xff" * 100
    assert flash.read(4 * MB - 4, 4) == b"\xff" * 4


def test_program_only_clears_bits() -> None:
    flash = MemoryFlash(MB)
    flash.program(0x10, b"\xf0\x0f\xaa")
    flash.program(0x10, b"\x3c\xff\x55")  # non-strict: AND
    assert flash.read(0x10, 3) == bytes([0xF0 & 0x3C, 0x0F, 0xAA & 0x55])


def test_erase_sets_the_whole_sector_to_ff_and_nothing_else() -> None:
    flash = MemoryFlash(MB)
    flash.program(SECTOR_SIZE - 2, b"\x00" * 4)  # straddles sectors 0 and 1
    flash.erase_sector(0)
    assert flash.read(SECTOR_SIZE - 2, 4) == b"\xff\xff\x00\x00"


def test_erase_must_be_sector_aligned_and_in_range() -> None:
    flash = MemoryFlash(MB)
    with pytest.raises(FlashError, match="aligned"):
        flash.erase_sector(0x800)
    with pytest.raises(FlashError, match="aligned"):
        flash.erase_range(0, 0x800)
    with pytest.raises(FlashError, match="outside"):
        flash.erase_sector(MB)
    with pytest.raises(FlashError, match="outside"):
        flash.program(MB - 2, b"1234")


def test_strict_mode_refuses_a_second_program_without_erase() -> None:
    """reliability-matrix row 19: MCUboot write_safe."""
    flash = MemoryFlash(MB, strict=True)
    flash.program(0x100, b"\xff\xff\xff\xff")  # programming 0xFF still counts as written
    with pytest.raises(FlashError, match="already programmed"):
        flash.program(0x102, b"\x00\x00")
    flash.erase_sector(0)
    flash.program(0x102, b"\x00\x00")
    assert flash.read(0x100, 4) == b"\xff\xff\x00\x00"


def test_strict_mode_treats_base_image_bytes_as_programmed() -> None:
    flash = MemoryFlash(MB, base=b"\x00" * 16, strict=True)
    with pytest.raises(FlashError):
        flash.program(0, b"\x00")
    flash.program(16, b"\x01")  # past the base: erased


def test_base_image_is_shared_and_never_modified() -> None:
    base = bytes(range(256)) * 64  # 16 KiB
    a = MemoryFlash(MB, base)
    b = MemoryFlash(MB, base)
    a.erase_sector(0)
    assert a.read(0, 4) == b"\xff" * 4
    assert b.read(0, 4) == base[:4]
    assert base[:4] == bytes(range(4))
    assert a.read(len(base), 4) == b"\xff" * 4


def test_fork_is_copy_on_write() -> None:
    flash = MemoryFlash(MB)
    flash.program(0, b"\x00" * 8)
    twin = flash.fork()
    twin.erase_sector(0)
    twin.program(SECTOR_SIZE, b"\x11")
    assert flash.read(0, 8) == b"\x00" * 8
    assert flash.read(SECTOR_SIZE, 1) == b"\xff"
    assert twin.read(0, 8) == b"\xff" * 8
    assert twin.op_count == 2 and flash.op_count == 1


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["erase", "program"]),
                          st.integers(0, 4 * SECTOR_SIZE - 1),
                          st.binary(min_size=1, max_size=300)), max_size=12))
def test_sparse_flash_matches_a_plain_bytearray_model(ops: list[tuple[str, int, bytes]]) -> None:
    size = 8 * SECTOR_SIZE
    base = bytes((i * 7) & 0xFF for i in range(3 * SECTOR_SIZE + 100))
    flash = MemoryFlash(size, base)
    model = bytearray(base + b"\xff" * (size - len(base)))
    for kind, addr, data in ops:
        if kind == "erase":
            start = addr // SECTOR_SIZE * SECTOR_SIZE
            flash.erase_sector(start)
            model[start : start + SECTOR_SIZE] = ERASED_SECTOR
        else:
            flash.program(addr, data)
            for i, byte in enumerate(data):
                model[addr + i] &= byte
    assert flash.to_bytes() == bytes(model)
    assert flash.read(SECTOR_SIZE - 5, 2 * SECTOR_SIZE + 9) == \
        bytes(model[SECTOR_SIZE - 5 : 3 * SECTOR_SIZE + 4])


def test_idle_devices_cost_well_under_a_mebibyte_each() -> None:
    """Thousands of 8 MB devices over one shared base: only changed sectors are owned."""
    base = bytes(2 * MB)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    devices = []
    for _ in range(200):
        flash = MemoryFlash(8 * MB, base)
        flash.erase_range(0x200000, 150 * SECTOR_SIZE)  # a 600 KB update's worth
        for addr in range(0x200000, 0x200000 + 150 * SECTOR_SIZE, SECTOR_SIZE):
            flash.program(addr, b"\x5a" * SECTOR_SIZE)
        devices.append(flash)
    per_device = (tracemalloc.get_traced_memory()[0] - before) / len(devices)
    tracemalloc.stop()
    assert per_device < 1 * MB
    assert devices[0].private_bytes() == 150 * SECTOR_SIZE


# --- file-backed flash -------------------------------------------------------------------


def test_file_flash_round_trips_and_writes_atomically(tmp_path: Path) -> None:
    path = tmp_path / "flash.bin"
    path.write_bytes(b"\x00" * SECTOR_SIZE + b"\xff" * SECTOR_SIZE)
    flash = FileFlash(path)
    assert flash.size == 2 * SECTOR_SIZE
    flash.erase_sector(0)
    flash.program(SECTOR_SIZE, b"\x12\x34")
    assert path.read_bytes()[:1] == b"\x00"  # not written until save()
    flash.save()
    again = FileFlash(path)
    assert again.read(0, 2) == b"\xff\xff"
    assert again.read(SECTOR_SIZE, 2) == b"\x12\x34"
    assert [p.name for p in tmp_path.iterdir()] == ["flash.bin"]


def test_file_flash_pads_a_short_image_to_the_flash_size(tmp_path: Path) -> None:
    path = tmp_path / "merged.bin"
    path.write_bytes(b"\xe9" + b"\x00" * 99)
    flash = FileFlash(path, size=MB)
    assert flash.read(0, 1) == b"\xe9" and flash.read(100, 4) == b"\xff" * 4
    flash.save()
    assert len(path.read_bytes()) == MB


def test_file_flash_without_file_needs_a_size(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="flash size"):
        FileFlash(tmp_path / "missing.bin")
    flash = FileFlash(tmp_path / "new.bin", size=MB)
    assert flash.read(0, 4) == b"\xff" * 4


def test_file_flash_layout_is_what_esptool_merge_bin_writes(tmp_path: Path) -> None:
    """Addresses in the file are flash addresses, as esptool lays a merged image out."""
    part = tmp_path / "blob.bin"
    part.write_bytes(b"\xe9" + bytes(range(1, 64)))
    merged = tmp_path / "merged.bin"
    subprocess.run([tool("esptool"), "--chip", "esp32", "merge-bin", "-o", str(merged),
                    "--pad-to-size", "1MB", "0x20000", str(part)],
                   check=True, capture_output=True)
    flash = FileFlash(merged)
    assert flash.size == MB
    assert flash.read(0x20000, 64) == part.read_bytes()
    assert flash.read(0x1F000, 16) == b"\xff" * 16


# --- power cuts --------------------------------------------------------------------------


def _cut(plan: PowerCutPlan) -> MemoryFlash:
    flash = MemoryFlash(MB, base=b"\x00" * (2 * SECTOR_SIZE))
    flash.arm(plan)
    with pytest.raises(PowerCut):
        flash.program(2 * SECTOR_SIZE, b"\xaa" * 8)  # op 0
        flash.erase_sector(0)  # op 1
        flash.program(2 * SECTOR_SIZE + 64, bytes(64))  # op 2
    return flash


def test_cut_before_an_op_leaves_it_undone() -> None:
    flash = _cut(PowerCutPlan(1, "before"))
    assert flash.read(0, 4) == b"\x00" * 4
    assert flash.read(2 * SECTOR_SIZE, 8) == b"\xaa" * 8


def test_cut_after_an_op_leaves_it_done_and_nothing_later() -> None:
    flash = _cut(PowerCutPlan(1, "after"))
    assert flash.read(0, SECTOR_SIZE) == ERASED_SECTOR
    assert flash.read(2 * SECTOR_SIZE + 64, 4) == b"\xff" * 4


def test_torn_erase_leaves_a_prefix_erased_and_the_rest_old() -> None:
    flash = _cut(PowerCutPlan(1, "torn", torn_fraction=0.25))
    assert flash.read(0, 1024) == b"\xff" * 1024
    assert flash.read(1024, SECTOR_SIZE - 1024) == b"\x00" * (SECTOR_SIZE - 1024)


def test_torn_program_leaves_a_four_byte_aligned_prefix() -> None:
    flash = _cut(PowerCutPlan(2, "torn", torn_fraction=0.5))
    assert flash.read(2 * SECTOR_SIZE + 64, 64) == bytes(32) + b"\xff" * 32


@pytest.mark.parametrize("seed", range(20))
def test_seeded_tears_are_strictly_partial_and_replayable(seed: int) -> None:
    plan = PowerCutPlan(5, "torn", seed=seed)
    done = plan.torn_length(32)
    assert 4 <= done <= 28 and done % 4 == 0
    assert PowerCutPlan(5, "torn", seed=seed).torn_length(32) == done


def test_a_fired_cut_keeps_the_device_off_until_power_returns() -> None:
    flash = MemoryFlash(MB)
    flash.arm(PowerCutPlan(0, "after"))
    with pytest.raises(PowerCut):
        flash.erase_sector(0)
    with pytest.raises(PowerCut, match="device is off"):
        flash.erase_sector(SECTOR_SIZE)
    flash.power_restore()
    flash.erase_sector(SECTOR_SIZE)
    assert flash.op_count == 2


def test_observer_sees_every_counted_op_in_order() -> None:
    seen: list[tuple[int, str, int, bytes]] = []
    flash = MemoryFlash(MB)
    flash.observer = lambda i, kind, addr, data: seen.append((i, kind, addr, data))
    flash.erase_range(0, 2 * SECTOR_SIZE)
    flash.program(4, b"ab")
    assert seen == [(0, "erase", 0, b""), (1, "erase", SECTOR_SIZE, b""), (2, "program", 4, b"ab")]


def test_bad_plans_and_modes_are_input_errors() -> None:
    with pytest.raises(InputError):
        PowerCutPlan(-1)
    with pytest.raises(InputError):
        PowerCutPlan(0, "sideways")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="unknown power-cut mode"):
        parse_modes("before,midway")
    assert parse_modes(" torn,before,torn") == ("torn", "before")


def test_block_erase_is_one_op_and_tears_across_sectors() -> None:
    flash = MemoryFlash(MB, base=b"\x00" * 0x20000)
    flash.erase_block(0x10000)
    assert flash.op_count == 1 and flash.read(0x10000, 0x10000) == b"\xff" * 0x10000
    with pytest.raises(FlashError, match="aligned"):
        flash.erase_block(0x1000)
    flash.arm(PowerCutPlan(0, "torn", torn_fraction=0.25))
    with pytest.raises(PowerCut, match="16384 of 65536"):
        flash.erase_block(0)
    assert flash.read(0, 0x4000) == b"\xff" * 0x4000
    assert flash.read(0x4000, 0xC000) == b"\x00" * 0xC000
