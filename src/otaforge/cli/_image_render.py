"""``image info`` reports: the data (:func:`image_report`) and its text/JSON rendering.

Used by ``otaforge image info`` (``cli/image.py``); the text form follows ``esptool
image-info``'s sections. ``image_hash`` is the SHA-256 appended to the image (esptool's
"Validation hash"), ``file_sha256`` the hash of the whole file as given (what a server's
release records and ``image build`` prints).

Exit policy of ``image info``: the report is printed for every file that parses as an image;
the exit code is 0 when checksum and hash (when appended) are valid, 1 when either is invalid.
A file that is not an image at all (bad magic, truncated) prints an error and exits 2.
"""

from __future__ import annotations

from otaforge.formats.app_image import FLASH_SIZES, SPI_MODES, AppImage
from otaforge.formats.chips import ChipSpec, format_rev

TYPE_CHECKING = False  # no typing import at run time (start-up)
if TYPE_CHECKING:
    from typing import Any


def _signatures(data: bytes, image: AppImage) -> tuple[list[dict[str, Any]], bool]:
    """(Secure Boot v2 blocks, v1 trailer present) of what follows the image in ``data``.

    The signature module is imported only when something follows the image, so that the
    common ``image info`` on an unsigned build does not pay for it.
    """
    if len(data) <= image.image_len:
        return [], False
    from otaforge.formats.signature_block import (
        SIG_BLOCK_VERSION_ECDSA,
        SIG_BLOCK_VERSION_RSA,
        block_headers,
        has_v1_signature,
    )

    labels = {SIG_BLOCK_VERSION_RSA: "RSA-3072 (Secure Boot v2)",
              SIG_BLOCK_VERSION_ECDSA: "ECDSA (Secure Boot v2)"}
    blocks = [{"index": b.index, "offset": b.offset, "version": b.version,
               "scheme": labels.get(b.version, f"unknown version 0x{b.version:02x}"),
               "crc_valid": b.crc_valid}
              for b in block_headers(data, image.image_len)]
    return blocks, has_v1_signature(data, image.image_len)


def _bootloader_desc(image: AppImage) -> dict[str, object] | None:
    """``esp_bootloader_desc_t`` of a bootloader image (an app has an app description)."""
    if image.app_desc is not None:
        return None
    from otaforge.formats.bootloader_desc import find_bootloader_desc

    boot = find_bootloader_desc(image)
    return boot.to_json() if boot is not None else None


def _file_sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _chip_name(image: AppImage) -> str:
    spec = image.chip
    return spec.name if spec else f"unknown-{image.header.chip_id}"


def image_report(data: bytes, image: AppImage, file_hash: bool = True) -> dict[str, Any]:
    """The JSON-able report of ``image info`` (keys are the documented ``--json`` keys).

    ``file_hash=False`` leaves ``file_sha256`` None (the text report does not show it).
    """
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
    blocks, sbv1 = _signatures(data, image)
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
        "image_hash": image.sha256.hex() if image.sha256 is not None else None,
        "calc_image_hash": image.calc_sha256.hex() if image.calc_sha256 is not None else None,
        "hash_valid": image.hash_valid,
        "file_sha256": _file_sha256(data) if file_hash else None,
        "app_desc": desc.to_json() if desc else None,
        "signature_blocks": blocks,
        "sbv1_signature": sbv1,
        "bootloader_desc": _bootloader_desc(image),
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
    wp = " (disabled)" if hdr.wp_pin_disabled else ""
    lines.append(f"WP pin: {hdr.wp_pin:#02x}{wp}")
    drive = ", ".join(f"{name}: {value:#x}" for name, value in hdr.pin_drive.items())
    lines.append(f"Flash pins drive settings: {drive}")
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
        lines.append(f"Offset: {blocks[0]['offset']:#x}")
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
