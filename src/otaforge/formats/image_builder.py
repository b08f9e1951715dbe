"""Deterministic synthetic ESP-IDF app images laid out like ``esptool elf2image`` output.

The layout follows what esptool's ``ESP32FirmwareImage.save`` produces for an IDF app:
segment 0 is the DROM segment that starts with ``esp_app_desc_t`` (so the description sits at
image offset 0x20), then DRAM and IRAM segments, then the IROM segment whose file offset is
congruent to its load address modulo the MMU page (RAM data, or a padding segment at load
address 0, fills the gap, as esptool does), then the rest of IRAM. Checksum and SHA-256 are
computed. Content comes from ``random.Random(seed)``, so a seed always gives the same bytes
and only the app description changes when ``version``/``secure_version`` change.
"""

from __future__ import annotations

import datetime
import hashlib
import random

from otaforge.errors import FormatError, InputError
from otaforge.formats._binary import align_up
from otaforge.formats.app_desc import APP_DESC_SIZE, AppDesc
from otaforge.formats.app_image import (
    IMAGE_HEADER_SIZE,
    SEGMENT_HEADER_SIZE,
    ImageHeader,
    Segment,
    assemble_image,
)
from otaforge.formats.chips import ChipSpec
from otaforge.formats.chips import chip as chip_spec

DEFAULT_IDF_VER = "v5.4.1"
DEFAULT_SIZE = 0x30000
MIN_SIZE = 0x1000
MAX_SIZE = 0xF00000
_FLASH_SIZE_CODES = {"1MB": 0, "2MB": 1, "4MB": 2, "8MB": 3, "16MB": 4, "32MB": 5, "64MB": 6,
                     "128MB": 7}
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_EPOCH = datetime.datetime(2025, 1, 1)
_TRAILER = 16 + 32  # worst-case checksum padding + appended hash


def build_date_time(seed: int) -> tuple[str, str]:
    """``__DATE__``/``__TIME__`` strings derived from ``seed`` (never from the wall clock)."""
    moment = _EPOCH + datetime.timedelta(seconds=random.Random(seed).randrange(365 * 86400))
    date = f"{_MONTHS[moment.month - 1]} {moment.day:2d} {moment.year}"
    return date, moment.strftime("%H:%M:%S")


def _speed_code(spec: ChipSpec) -> int:
    names = dict(spec.flash_freq)
    for wanted in ("40m", "30m", "24m"):
        if wanted in names:
            return names[wanted]
    return 0


def _rand4(rng: random.Random, length: int) -> bytes:
    return rng.randbytes(align_up(max(length, 0), 4))


def build_image(*, version: str, project: str = "otaforge-demo", secure_version: int = 0,
                chip: str = "esp32", size: int | None = None, seed: int = 0,
                idf_ver: str = DEFAULT_IDF_VER, date: str | None = None,
                time: str | None = None, min_chip_rev_full: int = 0,
                max_chip_rev_full: int = 0, hash_appended: bool = True,
                spi_mode: int = 2, flash_size: str = "2MB",
                app_elf_sha256: bytes | None = None) -> bytes:
    """A valid app image (esptool ``image-info`` reports checksum and hash valid).

    Args:
        version: ``esp_app_desc_t.version`` (at most 31 bytes).
        project: ``project_name`` (at most 31 bytes).
        secure_version: anti-rollback ``secure_version``.
        chip: esptool chip name.
        size: approximate total size in bytes (default 192 KiB; at least 4 KiB).
        seed: content seed; the same arguments always give the same bytes.
        idf_ver: ``idf_ver`` string.
        date: ``__DATE__`` override (default derived from ``seed``).
        time: ``__TIME__`` override (default derived from ``seed``).
        min_chip_rev_full: header ``min_chip_rev_full``.
        max_chip_rev_full: header ``max_chip_rev_full`` (0 = unset).
        hash_appended: append the SHA-256 (as ``elf2image`` does by default).
        spi_mode: header flash mode (2 = DIO).
        flash_size: header flash size ("2MB").
        app_elf_sha256: 32-byte ELF hash to record (default derived from the content seed).

    Raises:
        InputError: unknown chip, size out of range, or a field that does not fit.
    """
    spec = chip_spec(chip)
    total = DEFAULT_SIZE if size is None else size
    if not MIN_SIZE <= total <= MAX_SIZE:
        raise InputError(f"--size {total}: choose between {MIN_SIZE} and {MAX_SIZE} bytes")
    if flash_size not in _FLASH_SIZE_CODES:
        raise InputError(f"flash size {flash_size!r}: choose one of {', '.join(_FLASH_SIZE_CODES)}")
    rng = random.Random(seed)
    default_date, default_time = build_date_time(seed)
    desc = AppDesc(
        secure_version=secure_version, version=version, project_name=project,
        time=default_time if time is None else time, date=default_date if date is None else date,
        idf_ver=idf_ver,
        app_elf_sha256=app_elf_sha256 or hashlib.sha256(f"elf:{seed}".encode()).digest(),
        mmu_page_size=spec.mmu_page_size.bit_length() - 1,
    )
    try:
        desc_bytes = desc.to_bytes()
    except FormatError as err:  # a string too long for its field: the user's input
        raise InputError(str(err)) from None
    segments, entry = _layout(spec, rng, desc_bytes, total)
    header = ImageHeader(
        spi_mode=spi_mode, spi_speed=_speed_code(spec), spi_size=_FLASH_SIZE_CODES[flash_size],
        entry_addr=entry, chip_id=spec.chip_id, min_chip_rev=min_chip_rev_full // 100,
        min_chip_rev_full=min_chip_rev_full, max_chip_rev_full=max_chip_rev_full,
        hash_appended=1 if hash_appended else 0,
    )
    return assemble_image(header, segments)


def _layout(spec: ChipSpec, rng: random.Random, desc: bytes,
            total: int) -> tuple[list[Segment], int]:
    """Segments and entry point of a ``total``-byte image.

    Raises:
        InputError: the image would not fit the chip's flash-mapped address ranges.
    """
    page = spec.mmu_page_size
    body = total - IMAGE_HEADER_SIZE - _TRAILER
    with_irom = total >= page + 0x2000
    drom_len = max(APP_DESC_SIZE + 64, align_up(body * 18 // 100, 4))
    dram_len = min(align_up(max(body * 3 // 100, 64), 4), 0x8000)
    iram_cap = spec.iram[1] - spec.iram[0] - 0x1000
    if spec.iram == spec.dram:
        iram_cap -= dram_len + 0x100
    iram_len = min(align_up(max(body * 12 // 100, 64), 4), iram_cap & ~3)
    if not with_irom:  # small image: everything in DROM/DRAM/IRAM, no mapping alignment
        drom_len = align_up(max(body - dram_len - iram_len - 3 * SEGMENT_HEADER_SIZE,
                                APP_DESC_SIZE), 4)
    irom_vaddr_offset = 0x20
    unified = spec.irom == spec.drom
    irom_len_guess = max(body - drom_len - dram_len - iram_len, 0)
    drom_base = spec.drom[0]
    if unified:  # one bus: put rodata after the text's virtual range
        drom_base += align_up(irom_len_guess + irom_vaddr_offset + page, page)
    drom = Segment(drom_base + 0x20, desc + _rand4(rng, drom_len - APP_DESC_SIZE))
    iram_lo = spec.iram[0]
    dram_addr = spec.dram[0] if spec.iram != spec.dram else iram_lo + align_up(iram_len, 0x100)
    dram = Segment(dram_addr, _rand4(rng, dram_len))
    iram_data = _rand4(rng, iram_len)
    entry = iram_lo + (rng.randrange(max(min(iram_len, 0x400) // 4, 1)) * 4)
    if not with_irom:
        return [drom, dram, Segment(iram_lo, iram_data)], entry
    pos = IMAGE_HEADER_SIZE + 2 * SEGMENT_HEADER_SIZE + len(drom.data) + len(dram.data)
    # IROM data must start at a file offset == its load address (mod page): the smallest such
    # offset leaving room for a filler segment (header + 4 bytes) before the IROM header
    target = align_up(pos + 3 * SEGMENT_HEADER_SIZE + 4 - irom_vaddr_offset, page) \
        + irom_vaddr_offset
    filler = target - SEGMENT_HEADER_SIZE - pos  # bytes for filler segments incl. headers
    segs = [drom, dram]
    if len(iram_data) >= filler - SEGMENT_HEADER_SIZE:  # IRAM fills the gap exactly
        first_iram = filler - SEGMENT_HEADER_SIZE
        segs.append(Segment(iram_lo, iram_data[:first_iram]))
    else:  # IRAM, then a padding segment at load address 0 (as esptool inserts)
        first_iram = min(len(iram_data), filler - 2 * SEGMENT_HEADER_SIZE - 4)
        pad = filler - 2 * SEGMENT_HEADER_SIZE - first_iram
        segs.append(Segment(iram_lo, iram_data[:first_iram]))
        segs.append(Segment(0, b"\x00" * pad))
    rest_iram = iram_data[first_iram:]
    irom_len = align_up(max(total - target - _TRAILER - SEGMENT_HEADER_SIZE - len(rest_iram), 4),
                        4)
    irom = Segment(spec.irom[0] + irom_vaddr_offset, _rand4(rng, irom_len))
    for seg, (_, end) in ((drom, spec.drom), (irom, spec.irom)):
        if seg.load_addr + len(seg.data) > end:
            raise InputError(f"--size {total}: too large for {spec.name}'s flash-mapped address "
                             f"space (a segment would end past 0x{end:08x}); choose a smaller size")
    segs.append(irom)
    if rest_iram:
        segs.append(Segment(iram_lo + first_iram, rest_iram))
    return segs, entry
