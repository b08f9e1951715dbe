"""Chip variants as data: one frozen ``ChipSpec`` row per ESP32 family member.

Sources: esp_app_format.h (``esp_chip_id_t``), esptool 5.6.0 ``esptool/targets/*.py``
(``IMAGE_CHIP_ID``, ``IROM_MAP_*``/``DROM_MAP_*``, ``MEMORY_MAP``, ``FLASH_FREQUENCY``) and
``esptool/bin_image.py`` (``MMU_PAGE_SIZE_CONF``), components/bootloader/Kconfig.projbuild
(secure_version eFuse width; espefuse's efuse_defs/*.yaml SECURE_VERSION for the chips
esptool 5.6 added), soc_caps.h (which Secure Boot v2 schemes each chip supports).
Every id and range here was checked against the installed esptool targets.
"""

from __future__ import annotations

from otaforge.errors import InputError
from otaforge.formats.record import record

MemoryMap = tuple[tuple[int, int, str], ...]


@record
class ChipSpec:
    """What otaforge needs to know about one chip.

    Attributes:
        name: esptool's ``--chip`` name, e.g. ``"esp32s3"``.
        chip_id: ``esp_chip_id_t`` written at image header offset 12.
        irom: (start, end) of the instruction-bus flash mapping (mapped segments).
        drom: (start, end) of the data-bus flash mapping (mapped segments; app desc lives here).
        iram: (start, end) of internal instruction RAM (loaded segments).
        dram: (start, end) of internal data RAM (loaded segments).
        secure_version_bits: usable bits of the SECURE_VERSION eFuse (anti-rollback maximum).
        sbv2_schemes: Secure Boot v2 signature schemes the ROM/bootloader accepts.
        sbv1_app_signing: whether the v1-style ECDSA signed-app scheme exists (ESP32 only).
        mmu_page_size: default flash MMU page size in bytes.
        display_name: esptool's ``CHIP_NAME`` ("ESP32-S3").
        mmu_page_sizes: configurable MMU page sizes (empty: fixed at ``mmu_page_size``).
        flash_freq: esptool's flash frequency names and their header nibble codes.
        memory_map: esptool's ``MEMORY_MAP`` rows (start, end, type) for labelling segments.
        sbv2_blocks: signature blocks of a sector the bootloader examines
            (``SECURE_BOOT_NUM_BLOCKS``: ESP32 ECO3 reads block 0 only).
        key_digest_slots: Secure Boot v2 public key digests the eFuses hold (ESP32: one, in BLK2).
        checks_efuse_blk_rev: the bootloader checks the app's min/max eFuse block revision
            (``bootloader_common_check_efuse_blk_validity``; not on ESP32).
        bootloader_offset: flash offset of the second-stage bootloader (esptool's
            ``BOOTLOADER_FLASH_OFFSET``, ``CONFIG_BOOTLOADER_OFFSET_IN_FLASH``).
    """

    name: str
    chip_id: int
    irom: tuple[int, int]
    drom: tuple[int, int]
    iram: tuple[int, int]
    dram: tuple[int, int]
    secure_version_bits: int
    sbv2_schemes: tuple[str, ...]
    sbv1_app_signing: bool = False
    mmu_page_size: int = 0x10000
    display_name: str = ""
    mmu_page_sizes: tuple[int, ...] = ()
    flash_freq: tuple[tuple[str, int], ...] = (("80m", 0xF), ("40m", 0x0), ("26m", 0x1),
                                              ("20m", 0x2))
    memory_map: MemoryMap = ()
    sbv2_blocks: int = 3
    key_digest_slots: int = 3
    checks_efuse_blk_rev: bool = True
    bootloader_offset: int = 0x0

    def is_mapped(self, load_addr: int) -> bool:
        """True when a segment at ``load_addr`` is flash-mapped (IROM/DROM)."""
        return any(lo <= load_addr < hi for lo, hi in (self.irom, self.drom))

    def memory_types(self, load_addr: int) -> list[str]:
        """esptool's memory-type labels for a segment starting at ``load_addr``."""
        return [kind for lo, hi, kind in self.memory_map if lo <= load_addr < hi]

    def flash_freq_name(self, code: int) -> str | None:
        """The flash frequency name for header nibble ``code`` (first match, as esptool)."""
        return next((name for name, value in self.flash_freq if value == code), None)

    def page_size_for(self, desc_mmu_page_size_log2: int) -> int:
        """MMU page size an image uses: the app desc's value on configurable chips."""
        if self.mmu_page_sizes and desc_mmu_page_size_log2:
            size = 1 << desc_mmu_page_size_log2
            if size in self.mmu_page_sizes:
                return size
        return self.mmu_page_size


_RSA = ("rsa3072",)
_RSA_ECDSA = ("rsa3072", "ecdsa256", "ecdsa384")
_RSA_P256 = ("rsa3072", "ecdsa256")  # SOC_SECURE_BOOT_V2_RSA + _ECC, no P-384 (ESP32-H21)
# ESP-IDF master's soc_caps.h does not (yet) enable SOC_SECURE_BOOT_SUPPORTED for ESP32-H4 and
# ESP32-S31, and has no soc_caps.h for ESP32-E22: otaforge accepts no Secure Boot v2 signature
# for them rather than guess a scheme.
_NO_SBV2: tuple[str, ...] = ()
_PAD = (0x00000000, 0x00010000, "PADDING")
_C6_PAGES = (0x2000, 0x4000, 0x8000, 0x10000)


def _riscv_map(drom: tuple[int, int], ram: tuple[int, int], irom_mask: tuple[int, int],
               drom_mask: tuple[int, int], rtc: tuple[int, int]) -> MemoryMap:
    """The MEMORY_MAP shape shared by the unified-bus RISC-V chips (C5/C6/C61/H2/P4)."""
    return (
        _PAD, (*drom, "DROM"), (*ram, "DRAM"), (*ram, "BYTE_ACCESSIBLE"),
        (*drom_mask, "DROM_MASK"), (*irom_mask, "IROM_MASK"), (*drom, "IROM"),
        (*ram, "IRAM"), (*rtc, "RTC_IRAM"), (*rtc, "RTC_DRAM"),
        (0x600FE000, 0x60100000, "MEM_INTERNAL2"),
    )


CHIPS: dict[str, ChipSpec] = {
    c.name: c
    for c in (
        ChipSpec(
            "esp32", 0x0000, (0x400D0000, 0x40400000), (0x3F400000, 0x3F800000),
            (0x40080000, 0x400A0000), (0x3FFAE000, 0x40000000), 32, _RSA, True,
            display_name="ESP32", sbv2_blocks=1, key_digest_slots=1, checks_efuse_blk_rev=False,
            bootloader_offset=0x1000,
            memory_map=(
                _PAD, (0x3F400000, 0x3F800000, "DROM"), (0x3F800000, 0x3FC00000, "EXTRAM_DATA"),
                (0x3FF80000, 0x3FF82000, "RTC_DRAM"), (0x3FF90000, 0x40000000, "BYTE_ACCESSIBLE"),
                (0x3FFAE000, 0x40000000, "DRAM"), (0x3FFE0000, 0x3FFFFFFC, "DIRAM_DRAM"),
                (0x40000000, 0x40070000, "IROM"), (0x40070000, 0x40078000, "CACHE_PRO"),
                (0x40078000, 0x40080000, "CACHE_APP"), (0x40080000, 0x400A0000, "IRAM"),
                (0x400A0000, 0x400BFFFC, "DIRAM_IRAM"), (0x400C0000, 0x400C2000, "RTC_IRAM"),
                (0x400D0000, 0x40400000, "IROM"), (0x50000000, 0x50002000, "RTC_DATA"),
            ),
        ),
        ChipSpec(
            "esp32s2", 0x0002, (0x40080000, 0x40B80000), (0x3F000000, 0x3F3F0000),
            (0x40020000, 0x40070000), (0x3FFB0000, 0x40000000), 16, _RSA,
            display_name="ESP32-S2", bootloader_offset=0x1000,
            memory_map=(
                _PAD, (0x3F000000, 0x3FF80000, "DROM"), (0x3F500000, 0x3FF80000, "EXTRAM_DATA"),
                (0x3FF9E000, 0x3FFA0000, "RTC_DRAM"), (0x3FF9E000, 0x40000000, "BYTE_ACCESSIBLE"),
                (0x3FF9E000, 0x40072000, "MEM_INTERNAL"), (0x3FFB0000, 0x40000000, "DRAM"),
                (0x40000000, 0x4001A100, "IROM_MASK"), (0x40020000, 0x40070000, "IRAM"),
                (0x40070000, 0x40072000, "RTC_IRAM"), (0x40080000, 0x40800000, "IROM"),
                (0x50000000, 0x50002000, "RTC_DATA"),
            ),
        ),
        ChipSpec(
            "esp32c3", 0x0005, (0x42000000, 0x42800000), (0x3C000000, 0x3C800000),
            (0x4037C000, 0x403E0000), (0x3FC80000, 0x3FCE0000), 16, _RSA,
            display_name="ESP32-C3",
            memory_map=(
                _PAD, (0x3C000000, 0x3C800000, "DROM"), (0x3FC80000, 0x3FCE0000, "DRAM"),
                (0x3FC88000, 0x3FD00000, "BYTE_ACCESSIBLE"), (0x3FF00000, 0x3FF20000, "DROM_MASK"),
                (0x40000000, 0x40060000, "IROM_MASK"), (0x42000000, 0x42800000, "IROM"),
                (0x4037C000, 0x403E0000, "IRAM"), (0x50000000, 0x50002000, "RTC_IRAM"),
                (0x50000000, 0x50002000, "RTC_DRAM"), (0x600FE000, 0x60100000, "MEM_INTERNAL2"),
            ),
        ),
        ChipSpec(
            "esp32s3", 0x0009, (0x42000000, 0x44000000), (0x3C000000, 0x3E000000),
            (0x40370000, 0x403E0000), (0x3FC88000, 0x3FD00000), 16, _RSA,
            display_name="ESP32-S3",
            memory_map=(
                _PAD, (0x3C000000, 0x3D000000, "DROM"), (0x3D000000, 0x3E000000, "EXTRAM_DATA"),
                (0x600FE000, 0x60100000, "RTC_DRAM"), (0x3FC88000, 0x3FD00000, "BYTE_ACCESSIBLE"),
                (0x3FC88000, 0x403E2000, "MEM_INTERNAL"), (0x3FC88000, 0x3FD00000, "DRAM"),
                (0x40000000, 0x4001A100, "IROM_MASK"), (0x40370000, 0x403E0000, "IRAM"),
                (0x600FE000, 0x60100000, "RTC_IRAM"), (0x42000000, 0x42800000, "IROM"),
                (0x50000000, 0x50002000, "RTC_DATA"),
            ),
        ),
        ChipSpec(
            "esp32c2", 0x000C, (0x42000000, 0x42400000), (0x3C000000, 0x3C400000),
            (0x4037C000, 0x403C0000), (0x3FCA0000, 0x3FCE0000), 4, ("ecdsa256",),
            display_name="ESP32-C2", mmu_page_sizes=(0x4000, 0x8000, 0x10000),
            flash_freq=(("60m", 0xF), ("30m", 0x0), ("20m", 0x1), ("15m", 0x2)),
            memory_map=(
                _PAD, (0x3C000000, 0x3C400000, "DROM"), (0x3FCA0000, 0x3FCE0000, "DRAM"),
                (0x3FC88000, 0x3FD00000, "BYTE_ACCESSIBLE"), (0x3FF00000, 0x3FF50000, "DROM_MASK"),
                (0x40000000, 0x40090000, "IROM_MASK"), (0x42000000, 0x42400000, "IROM"),
                (0x4037C000, 0x403C0000, "IRAM"),
            ),
        ),
        ChipSpec(
            "esp32c6", 0x000D, (0x42000000, 0x42800000), (0x42800000, 0x43000000),
            (0x40800000, 0x40880000), (0x40800000, 0x40880000), 16, _RSA_ECDSA,
            display_name="ESP32-C6", mmu_page_sizes=_C6_PAGES,
            flash_freq=(("80m", 0x0), ("40m", 0x0), ("20m", 0x2)),
            memory_map=_riscv_map((0x42000000, 0x43000000), (0x40800000, 0x40880000),
                                  (0x40000000, 0x4004AC00), (0x4004AC00, 0x40050000),
                                  (0x50000000, 0x50004000)),
        ),
        ChipSpec(
            "esp32h2", 0x0010, (0x42000000, 0x42800000), (0x42800000, 0x43000000),
            (0x40800000, 0x40880000), (0x40800000, 0x40880000), 16, _RSA_ECDSA,
            display_name="ESP32-H2", mmu_page_sizes=_C6_PAGES,
            flash_freq=(("48m", 0xF), ("24m", 0x0), ("16m", 0x1), ("12m", 0x2)),
            memory_map=_riscv_map((0x42000000, 0x43000000), (0x40800000, 0x40880000),
                                  (0x40000000, 0x4004AC00), (0x4004AC00, 0x40050000),
                                  (0x50000000, 0x50004000)),
        ),
        ChipSpec(
            "esp32p4", 0x0012, (0x40000000, 0x4C000000), (0x40000000, 0x4C000000),
            (0x4FF00000, 0x4FFA0000), (0x4FF00000, 0x4FFA0000), 16, _RSA_ECDSA,
            display_name="ESP32-P4", bootloader_offset=0x2000,
            memory_map=_riscv_map((0x40000000, 0x4C000000), (0x4FF00000, 0x4FFA0000),
                                  (0x4FC00000, 0x4FC20000), (0x4FC00000, 0x4FC20000),
                                  (0x50108000, 0x50110000)),
        ),
        ChipSpec(
            "esp32c61", 0x0014, (0x42000000, 0x42800000), (0x42800000, 0x43000000),
            (0x40800000, 0x40860000), (0x40800000, 0x40860000), 16, ("ecdsa256",),
            display_name="ESP32-C61", mmu_page_sizes=_C6_PAGES,
            flash_freq=(("80m", 0xF), ("40m", 0x0), ("20m", 0x2)),
            memory_map=_riscv_map((0x42000000, 0x44000000), (0x40800000, 0x40860000),
                                  (0x40000000, 0x4004AC00), (0x4004AC00, 0x40050000),
                                  (0x50000000, 0x50004000)),
        ),
        ChipSpec(
            "esp32c5", 0x0017, (0x42000000, 0x44000000), (0x42000000, 0x44000000),
            (0x40800000, 0x40860000), (0x40800000, 0x40860000), 9, _RSA_ECDSA,
            display_name="ESP32-C5", bootloader_offset=0x2000,
            flash_freq=(("80m", 0xF), ("40m", 0x0), ("20m", 0x2)),
            memory_map=_riscv_map((0x42000000, 0x44000000), (0x40800000, 0x40860000),
                                  (0x40000000, 0x4003A000), (0x4003A000, 0x40040000),
                                  (0x50000000, 0x50004000)),
        ),
        ChipSpec(
            "esp32h21", 0x0019, (0x42000000, 0x43000000), (0x42000000, 0x43000000),
            (0x40800000, 0x40850000), (0x40800000, 0x40850000), 16, _RSA_P256,
            display_name="ESP32-H21", mmu_page_sizes=_C6_PAGES,
            flash_freq=(("48m", 0xF), ("24m", 0x0)),
            memory_map=(
                _PAD, (0x42000000, 0x43000000, "DROM"), (0x40800000, 0x40850000, "DRAM"),
                (0x40800000, 0x40850000, "BYTE_ACCESSIBLE"), (0x40000000, 0x40020000, "DROM_MASK"),
                (0x40000000, 0x40020000, "IROM_MASK"), (0x42000000, 0x43000000, "IROM"),
                (0x40800000, 0x40850000, "IRAM"), (0x50000000, 0x50001000, "RTC_IRAM"),
                (0x50000000, 0x50001000, "RTC_DRAM"), (0x40800000, 0x40850000, "MEM_INTERNAL"),
            ),
        ),
        ChipSpec(
            "esp32h4", 0x001C, (0x42000000, 0x44000000), (0x42000000, 0x44000000),
            (0x40810000, 0x40860000), (0x40810000, 0x40860000), 16, _NO_SBV2,
            display_name="ESP32-H4", mmu_page_sizes=_C6_PAGES, bootloader_offset=0x2000,
            flash_freq=(("48m", 0xF), ("24m", 0x0)),
            memory_map=(
                _PAD, (0x42000000, 0x44000000, "DROM"), (0x40810000, 0x40860000, "DRAM"),
                (0x40810000, 0x40860000, "BYTE_ACCESSIBLE"), (0x40000000, 0x40020000, "DROM_MASK"),
                (0x40000000, 0x40020000, "IROM_MASK"), (0x42000000, 0x44000000, "IROM"),
                (0x40810000, 0x40860000, "IRAM"), (0x40810000, 0x40860000, "MEM_INTERNAL"),
            ),
        ),
        ChipSpec(
            "esp32e22", 0x001F, (0x3C000000, 0x40000000), (0x3C000000, 0x40000000),
            (0x30FE0000, 0x31200000), (0x31000000, 0x31200000), 16, _NO_SBV2,
            display_name="ESP32-E22",
            flash_freq=(("80m", 0xF), ("40m", 0x0), ("26m", 0x1), ("20m", 0x2)),
            memory_map=(
                _PAD, (0x3C000000, 0x40000000, "DROM"), (0x31000000, 0x31200000, "DRAM"),
                (0x31000000, 0x31200000, "BYTE_ACCESSIBLE"), (0x30000000, 0x30120000, "DROM_MASK"),
                (0x30000000, 0x30120000, "IROM_MASK"), (0x3C000000, 0x40000000, "IROM"),
                (0x30FE0000, 0x31200000, "IRAM"), (0xC0000000, 0xC0008000, "RTC_IRAM"),
                (0xC0000000, 0xC0008000, "RTC_DRAM"),
            ),
        ),
        ChipSpec(
            "esp32s31", 0x0020, (0x40000000, 0x54000000), (0x40000000, 0x54000000),
            (0x2F000000, 0x2F080000), (0x2F000000, 0x2F080000), 16, _NO_SBV2,
            display_name="ESP32-S31", mmu_page_sizes=(0x8000, 0x10000, 0x20000, 0x40000),
            bootloader_offset=0x2000,
            flash_freq=(("80m", 0xF), ("40m", 0x0), ("20m", 0x2)),
            memory_map=(
                _PAD, (0x40000000, 0x54000000, "DROM"), (0x2F000000, 0x2F080000, "DRAM"),
                (0x2F000000, 0x2F080000, "BYTE_ACCESSIBLE"), (0x2F800000, 0x2F850000, "DROM_MASK"),
                (0x2F800000, 0x2F850000, "IROM_MASK"), (0x40000000, 0x54000000, "IROM"),
                (0x2F000000, 0x2F080000, "IRAM"), (0x2E000000, 0x2E008000, "RTC_IRAM"),
                (0x2E000000, 0x2E008000, "RTC_DRAM"),
            ),
        ),
    )
}

CHIPS_BY_ID: dict[int, ChipSpec] = {c.chip_id: c for c in CHIPS.values()}


def format_rev(full: int) -> str:
    """A full revision (major*100+minor, as in the image header and eFuses) as ``vMAJOR.MINOR``."""
    return f"v{full // 100}.{full % 100}"


def sbv2_schemes_text(spec: ChipSpec) -> str:
    """``rsa3072, ecdsa256`` for messages; says so when the chip has no Secure Boot v2."""
    return ", ".join(spec.sbv2_schemes) or f"none: ESP-IDF has no Secure Boot v2 for {spec.name}"


def chip(name: str) -> ChipSpec:
    """Look a chip up by esptool name (``esp32``, ``esp32-s3`` and ``ESP32S3`` all work).

    Raises:
        InputError: unknown chip name.
    """
    key = name.lower().replace("-", "").replace("_", "")
    try:
        return CHIPS[key]
    except KeyError:
        raise InputError(
            f"unknown chip {name!r}: choose one of {', '.join(CHIPS)}"
        ) from None


def chip_by_id(chip_id: int) -> ChipSpec | None:
    """The chip with image-header ``chip_id``, or None for an id otaforge does not know."""
    return CHIPS_BY_ID.get(chip_id)
