"""``image info`` reports: the data (:func:`image_report`) and its text/JSON rendering.

Typer-free and rich-free: the argparse fast path (``cli/fast_image.py``) and the typer command
(``cli/image.py``) both use it. The text form follows ``esptool image-info``'s sections.

Exit policy of ``image info``: the report is printed for every file that parses as an image;
the exit code is 0 when checksum and hash (when appended) are valid, 1 when either is invalid.
A file that is not an image at all (bad magic, truncated) prints an error and exits 2.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Any

from otaforge.formats.app_image import (
    FLASH_SIZES,
    SIG_SECTOR_MAGIC,
    SPI_MODES,
    AppImage,
    signature_sector_offset,
)
from otaforge.formats.chips import ChipSpec, format_rev

SIG_BLOCK_SIZE = 1216
SIG_BLOCKS_PER_SECTOR = 3
SBV1_SIGNATURE_LEN = 68
_SIG_SCHEMES = {0x02: "RSA-3072 (Secure Boot v2)", 0x03: "ECDSA (Secure Boot v2)"}


@dataclass(frozen=True)
class SignatureBlockInfo:
    """What ``image info`` shows about one 0xE7 block of a signature sector."""

    index: int
    offset: int
    version: int
    crc_valid: bool

    @property
    def scheme(self) -> str:
        return _SIG_SCHEMES.get(self.version, f"unknown version 0x{self.version:02x}")


def signature_blocks(data: bytes, image: AppImage) -> list[SignatureBlockInfo]:
    """Signature blocks (magic 0xE7) in the sector after ``image_len``; empty when unsigned."""
    start = signature_sector_offset(image)
    found = []
    for index in range(SIG_BLOCKS_PER_SECTOR):
        offset = start + index * SIG_BLOCK_SIZE
        block = data[offset : offset + SIG_BLOCK_SIZE]
        if len(block) < SIG_BLOCK_SIZE or block[0] != SIG_SECTOR_MAGIC:
            break
        crc_ok = zlib.crc32(block[:1196]) == int.from_bytes(block[1196:1200], "little")
        found.append(SignatureBlockInfo(index, offset, block[1], crc_ok))
    return found


BOOTLOADER_DESC_MAGIC = 0x50
_BOOT_DESC = struct.Struct("<BxxBI32s24s16x")  # esp_bootloader_desc_t (80 bytes)


def bootloader_desc(image: AppImage) -> dict[str, Any] | None:
    """``esp_bootloader_desc_t`` of a bootloader image, found as ``esptool image-info`` does.

    esptool takes the last DRAM segment of at least 80 bytes when no DROM segment exists.
    """
    spec = image.chip
    if spec is None or image.app_desc is not None:
        return None
    candidate = None
    for seg in image.segments:
        kinds = spec.memory_types(seg.load_addr)
        if "DROM" in kinds:
            return None
        if "DRAM" in kinds and len(seg.data) >= _BOOT_DESC.size:
            candidate = seg.data
    if candidate is None or candidate[0] != BOOTLOADER_DESC_MAGIC:
        return None
    _, secure_version, version, idf_ver, date_time = _BOOT_DESC.unpack_from(candidate)
    return {"secure_version": secure_version, "version": version, "idf_ver": _text(idf_ver),
            "date_time": _text(date_time)}


def _text(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("utf-8", errors="replace")


def has_v1_signature(data: bytes, image: AppImage) -> bool:
    """True when exactly a 68-byte v1 ECDSA trailer (version word 0) follows ``image_len``."""
    tail = data[image.image_len:]
    return len(tail) == SBV1_SIGNATURE_LEN and tail[:4] == b"\x00\x00\x00\x00"


def _chip_name(image: AppImage) -> str:
    spec = image.chip
    return spec.name if spec else f"unknown-{image.header.chip_id}"


def image_report(data: bytes, image: AppImage) -> dict[str, Any]:
    """The JSON-able report of ``image info`` (keys are the documented ``--json`` keys)."""
    spec = image.chip
    hdr = image.header
    segments = [
        {
            "index": index,
            "load_addr": seg.load_addr,
            "length": len(seg.data),
            "file_offset": offset - 8,
            "memory_types": spec.memory_types(seg.load_addr) if spec else [],
        }
        for index, (seg, offset) in enumerate(zip(image.segments, image.segment_offsets,
                                                  strict=True))
    ]
    desc = image.app_desc
    return {
        "chip": _chip_name(image),
        "chip_id": hdr.chip_id,
        "size": len(data),
        "image_len": image.image_len,
        "entry_addr": hdr.entry_addr,
        "flash_mode": SPI_MODES[hdr.spi_mode] if hdr.spi_mode < len(SPI_MODES) else None,
        "flash_size": FLASH_SIZES[hdr.spi_size] if hdr.spi_size < len(FLASH_SIZES) else None,
        "flash_freq": spec.flash_freq_name(hdr.spi_speed) if spec else None,
        "min_chip_rev_full": hdr.min_chip_rev_full,
        "max_chip_rev_full": hdr.max_chip_rev_full,
        "segments": segments,
        "checksum": image.checksum,
        "calc_checksum": image.calc_checksum,
        "checksum_valid": image.checksum_valid,
        "sha256": image.sha256.hex() if image.sha256 is not None else None,
        "calc_sha256": image.calc_sha256.hex() if image.calc_sha256 is not None else None,
        "hash_valid": image.hash_valid,
        "app_desc": desc.to_json() if desc else None,
        "signature_blocks": [
            {"index": b.index, "offset": b.offset, "version": b.version, "scheme": b.scheme,
             "crc_valid": b.crc_valid}
            for b in signature_blocks(data, image)
        ],
        "sbv1_signature": has_v1_signature(data, image),
        "bootloader_desc": bootloader_desc(image),
    }


def is_valid(report: dict[str, Any]) -> bool:
    """Checksum valid and the appended hash (when present) valid."""
    return bool(report["checksum_valid"]) and report["hash_valid"] is not False


def _title(lines: list[str], text: str) -> None:
    lines += ["", text, "=" * len(text)]


def render_text(report: dict[str, Any], image: AppImage, spec: ChipSpec | None) -> str:
    """esptool-style sections: header, extended header, segments, footer, app information."""
    hdr = image.header
    label = spec.display_name if spec else f"Unknown chip (id {hdr.chip_id})"
    lines = [f"Image size: {report['size']} bytes", f"Detected image type: {label.upper()}"]
    _title(lines, f"{label} Image Header")
    lines.append("Image version: 1")
    lines.append(f"Entry point: {hdr.entry_addr:#8x}" if hdr.entry_addr else "Entry point not set")
    lines.append(f"Segments: {len(image.segments)}")
    lines.append(f"Flash size: {report['flash_size'] or f'invalid ({hdr.spi_size:#x})'}")
    lines.append(f"Flash freq: {report['flash_freq'] or f'invalid ({hdr.spi_speed:#x})'}")
    lines.append(f"Flash mode: {report['flash_mode'] or f'invalid ({hdr.spi_mode})'}")
    _title(lines, f"{label} Extended Image Header")
    wp = " (disabled)" if hdr.wp_pin == 0xEE else ""
    lines.append(f"WP pin: {hdr.wp_pin:#02x}{wp}")
    drv = hdr.spi_pin_drv
    lines.append(
        f"Flash pins drive settings: clk_drv: {drv[0] & 0xF:#x}, q_drv: {drv[0] >> 4:#x}, "
        f"d_drv: {drv[1] & 0xF:#x}, cs0_drv: {drv[1] >> 4:#x}, hd_drv: {drv[2] & 0xF:#x}, "
        f"wp_drv: {drv[2] >> 4:#x}"
    )
    lines.append(f"Chip ID: {hdr.chip_id} ({spec.display_name if spec else 'Unknown ID'})")
    lines.append(f"Minimal chip revision: {format_rev(hdr.min_chip_rev_full)}, "
                 f"(legacy min_rev = {hdr.min_chip_rev})")
    lines.append(f"Maximal chip revision: {format_rev(hdr.max_chip_rev_full)}")
    _title(lines, "Segments Information")
    lines.append(f"{'Segment':>7}  {'Length':>7}  {'Load addr':>10}  {'File offs':>10}  "
                 "Memory types")
    lines.append(f"{'-' * 7}  {'-' * 7}  {'-' * 10}  {'-' * 10}  {'-' * 12}")
    for seg in report["segments"]:
        lines.append(f"{seg['index']:7}  {seg['length']:#07x}  {seg['load_addr']:#010x}  "
                     f"{seg['file_offset']:#010x}  {', '.join(seg['memory_types'])}")
    _title(lines, f"{label} Image Footer")
    checksum_state = "valid" if image.checksum_valid else \
        f"invalid - calculated {image.calc_checksum:#04x}"
    lines.append(f"Checksum: {image.checksum:#04x} ({checksum_state})")
    if image.calc_sha256 is not None:
        state = "valid" if image.hash_valid else "invalid"
        lines.append(f"Validation hash: {image.calc_sha256.hex()} ({state})")
        if not image.hash_valid and image.sha256 is not None:  # esptool shows only the computed
            lines.append(f"Stored hash: {image.sha256.hex()} (appended to the image)")
    desc = image.app_desc if _esptool_shows_app_desc(report) else None
    if desc is not None:
        _title(lines, "Application Information")
        lines += [
            f"Project name: {desc.project_name}",
            f"App version: {desc.version}",
            f"Compile time: {desc.date} {desc.time}",
            f"ELF file SHA256: {desc.elf_sha256_hex}",
            f"ESP-IDF: {desc.idf_ver}",
            f"Minimal eFuse block revision: {desc.min_efuse_blk_rev_full // 100}."
            f"{desc.min_efuse_blk_rev_full % 100}",
            f"Maximal eFuse block revision: {desc.max_efuse_blk_rev_full // 100}."
            f"{desc.max_efuse_blk_rev_full % 100}",
        ]
        if desc.mmu_page_size:
            lines.append(f"MMU page size: {2 ** desc.mmu_page_size // 1024} KB")
        lines.append(f"Secure version: {desc.secure_version}")
    boot = report["bootloader_desc"]
    if boot is not None:
        _title(lines, "Bootloader Information")
        lines += [f"Bootloader version: {boot['version']}", f"ESP-IDF: {boot['idf_ver']}",
                  f"Compile time: {boot['date_time']}"]
    blocks = report["signature_blocks"]
    if blocks:
        _title(lines, "Signature Sector")
        lines.append(f"Offset: {signature_sector_offset(image):#x}")
        for block in blocks:
            crc = "CRC valid" if block["crc_valid"] else "CRC INVALID"
            lines.append(f"Block {block['index']}: {block['scheme']}, {crc}")
    if report["sbv1_signature"]:
        _title(lines, "Signature")
        lines.append(f"68-byte ECDSA signature (v1 signed app) at {image.image_len:#x}")
    if not is_valid(report):
        lines += ["", "Image is INVALID: the bootloader would refuse it."]
    return "\n".join(lines) + "\n"


def _esptool_shows_app_desc(report: dict[str, Any]) -> bool:
    """esptool image-info reads the app description from the first DROM segment only."""
    first_drom = next((seg["index"] for seg in report["segments"]
                       if "DROM" in seg["memory_types"]), None)
    return first_drom == 0


def render_json(report: dict[str, Any]) -> str:
    """The report as indented JSON (``json`` is imported only here)."""
    import json

    return json.dumps(report, indent=2) + "\n"
