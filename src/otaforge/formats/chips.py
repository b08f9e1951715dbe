"""Chip variants as data: one frozen ``ChipSpec`` row per ESP32 family member.

Sources: esp_app_format.h (``esp_chip_id_t``), esptool ``esptool/targets/*.py`` (memory maps,
flash frequency codes), components/bootloader/Kconfig.projbuild (secure_version eFuse width),
soc_caps.h (which Secure Boot v2 schemes each chip supports).
"""

from __future__ import annotations

from dataclasses import dataclass

from otaforge.errors import InputError


@dataclass(frozen=True)
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

    def is_mapped(self, load_addr: int) -> bool:
        """True when a segment at ``load_addr`` is flash-mapped (IROM/DROM)."""
        return any(lo <= load_addr < hi for lo, hi in (self.irom, self.drom))


_RSA = ("rsa3072",)
_RSA_ECDSA = ("rsa3072", "ecdsa256", "ecdsa384")

CHIPS: dict[str, ChipSpec] = {
    c.name: c
    for c in (
        ChipSpec("esp32", 0x0000, (0x400D0000, 0x40400000), (0x3F400000, 0x3F800000),
                 (0x40080000, 0x400A0000), (0x3FFAE000, 0x40000000), 32, _RSA, True),
        ChipSpec("esp32s2", 0x0002, (0x40080000, 0x40B80000), (0x3F000000, 0x3F3F0000),
                 (0x40020000, 0x40070000), (0x3FFB0000, 0x40000000), 16, _RSA),
        ChipSpec("esp32c3", 0x0005, (0x42000000, 0x42800000), (0x3C000000, 0x3C800000),
                 (0x4037C000, 0x403E0000), (0x3FC80000, 0x3FCE0000), 16, _RSA),
        ChipSpec("esp32s3", 0x0009, (0x42000000, 0x44000000), (0x3C000000, 0x3E000000),
                 (0x40370000, 0x403E0000), (0x3FC88000, 0x3FD00000), 16, _RSA),
        ChipSpec("esp32c2", 0x000C, (0x42000000, 0x42400000), (0x3C000000, 0x3C400000),
                 (0x4037C000, 0x403C0000), (0x3FCA0000, 0x3FCE0000), 4, ("ecdsa256",)),
        ChipSpec("esp32c6", 0x000D, (0x42000000, 0x42800000), (0x42800000, 0x43000000),
                 (0x40800000, 0x40880000), (0x40800000, 0x40880000), 16, _RSA_ECDSA),
        ChipSpec("esp32h2", 0x0010, (0x42000000, 0x42800000), (0x42800000, 0x43000000),
                 (0x40800000, 0x40850000), (0x40800000, 0x40850000), 16, _RSA_ECDSA),
        ChipSpec("esp32p4", 0x0012, (0x40000000, 0x44000000), (0x40000000, 0x44000000),
                 (0x4FF00000, 0x4FFA0000), (0x4FF00000, 0x4FFA0000), 16, _RSA_ECDSA),
        ChipSpec("esp32c61", 0x0014, (0x42000000, 0x44000000), (0x42000000, 0x44000000),
                 (0x40800000, 0x40850000), (0x40800000, 0x40850000), 16, _RSA_ECDSA),
        ChipSpec("esp32c5", 0x0017, (0x42000000, 0x44000000), (0x42000000, 0x44000000),
                 (0x40800000, 0x40860000), (0x40800000, 0x40860000), 9, _RSA_ECDSA),
    )
}

CHIPS_BY_ID: dict[int, ChipSpec] = {c.chip_id: c for c in CHIPS.values()}


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
