"""The bootloader's verification of an app image: esp_image_format.c ``image_load`` (verify mode).

Sources: components/bootloader_support/src/esp_image_format.c (``image_load``,
``process_segment``: order of checks and their messages), bootloader_common_loader.c
(``bootloader_common_check_chip_validity``, ``bootloader_common_check_efuse_blk_validity``).

:func:`verify_image` parses with :meth:`otaforge.formats.app_image.AppImage.from_bytes` and adds
what the bootloader checks on top: partition size, chip id and revision, segment count and
lengths, MMU alignment of flash-mapped segments, eFuse block revision, fit in the slot.
:func:`require_app_image` is the gate for inputs that must be a sound image (``flash compose``
apps, ``partitions check --image``).
"""

from __future__ import annotations

from otaforge.errors import FormatError, ImageRejected, RefusalCode, TruncatedError
from otaforge.formats.app_desc import efuse_blk_rev_range, mmu_page_size_log2
from otaforge.formats.app_image import (
    ESP_IMAGE_MAX_SEGMENTS,
    SIXTEEN_MB,
    AppImage,
    ImageHeader,
    _truncated,
    check_esp32_family,
    check_magic,
    walk_segments,
)
from otaforge.formats.chips import ChipSpec, chip_by_id, format_rev

__all__ = ["check_chip", "check_efuse_blk_rev", "require_app_image", "verify_image"]


def check_chip(header: ImageHeader, chip: ChipSpec, chip_rev: int) -> None:
    """``bootloader_common_check_chip_validity`` for an application image."""
    if header.chip_id != chip.chip_id:
        raise ImageRejected(
            f"mismatch chip ID, expected {chip.chip_id}, found {header.chip_id} "
            f"(this image is for {_chip_label(header.chip_id)}, not {chip.name})",
            code=RefusalCode.WRONG_CHIP,
        )
    if chip_rev < header.min_chip_rev_full:
        raise ImageRejected(
            f"Image requires chip rev >= {format_rev(header.min_chip_rev_full)}, "
            f"but chip is {format_rev(chip_rev)}",
            code=RefusalCode.CHIP_REVISION,
        )
    max_rev = header.max_chip_rev_full
    if max_rev not in (0, 0xFFFF) and chip_rev > max_rev:
        raise ImageRejected(
            f"Image requires chip rev <= {format_rev(max_rev)}, but chip is {format_rev(chip_rev)}",
            code=RefusalCode.CHIP_REVISION,
        )


def _chip_label(chip_id: int) -> str:
    spec = chip_by_id(chip_id)
    return spec.name if spec else f"unknown chip id {chip_id}"


def _scan_segments(raw: bytes, header: ImageHeader, chip: ChipSpec | None, addr: int) -> None:
    """Walk segment headers as ``process_segment`` does: length rules, then MMU alignment."""
    spec = chip or header.chip
    page = spec.page_size_for(mmu_page_size_log2(raw)) if spec else 0x10000
    for seg in walk_segments(raw, header.segment_count, f"image at 0x{addr:x}"):
        if seg.length % 4 or seg.length >= SIXTEEN_MB:
            raise ImageRejected(f"invalid segment length 0x{seg.length:x} (segment {seg.index})")
        if spec is not None and spec.is_mapped(seg.load_addr) \
                and seg.offset % page != seg.load_addr % page:
            raise ImageRejected(
                f"Segment {seg.index} load address 0x{seg.load_addr:08x}, doesn't match data "
                f"0x{seg.offset:08x} (flash-mapped segments need file offset == address modulo "
                f"the 0x{page:x} MMU page)"
            )


def check_efuse_blk_rev(
    data: bytes, chip: ChipSpec | None, efuse_blk_rev: int | None
) -> None:
    """``bootloader_common_check_efuse_blk_validity`` on segment 0 (chips whose ChipSpec has
    ``checks_efuse_blk_rev``: all but ESP32).

    ``process_segment_data`` reads ``min/max_efuse_blk_rev_full`` where ``esp_app_desc_t`` keeps
    them (see :func:`~otaforge.formats.app_desc.efuse_blk_rev_range`) without checking the
    descriptor's magic; a field counts only when it is neither 0 nor 0xFFFF (``IS_FIELD_SET``).
    ``efuse_blk_rev`` None: not checked.

    Raises:
        ImageRejected: the chip's eFuse block revision is outside the image's range.
    """
    if efuse_blk_rev is None or chip is None or not chip.checks_efuse_blk_rev:
        return
    if len(data) < 2 or data[1] == 0:  # no segment 0
        return
    lo, hi = efuse_blk_rev_range(data)
    if lo not in (0, 0xFFFF) and efuse_blk_rev < lo:
        raise ImageRejected(
            f"Image requires efuse blk rev >= {format_rev(lo)}, "
            f"but chip is {format_rev(efuse_blk_rev)}",
            code=RefusalCode.CHIP_REVISION,
        )
    if hi not in (0, 0xFFFF) and efuse_blk_rev > hi:
        raise ImageRejected(
            f"Image requires efuse blk rev <= {format_rev(hi)}, "
            f"but chip is {format_rev(efuse_blk_rev)}",
            code=RefusalCode.CHIP_REVISION,
        )


def verify_image(data: bytes, *, chip: ChipSpec | None = None, chip_rev: int = 0,
                 partition_size: int | None = None, sig_len: int = 0, addr: int = 0,
                 efuse_blk_rev: int | None = None) -> AppImage:
    """esp_image_format.c ``image_load`` in verify mode, in the bootloader's order.

    Checks: partition size <= 16 MiB; magic; chip id and chip revision (when ``chip`` is
    given); segment count <= 16; each segment length (%4, < 16 MiB) and MMU alignment of
    flash-mapped segments; eFuse block revision (when ``efuse_blk_rev`` is given, non-ESP32);
    checksum; fit in the partition (``image_len + sig_len``); appended SHA-256.

    Args:
        data: the slot contents from offset 0 (trailing bytes after ``image_len`` ignored).
        chip: the device's chip; None skips the chip id/revision checks.
        chip_rev: the device's chip revision, major*100+minor.
        partition_size: the slot size; None skips the fit check.
        sig_len: space the signature needs after the image (see signature_length()).
        addr: flash address of the image, only used in messages.
        efuse_blk_rev: the device's eFuse block revision (major*100+minor), None to skip.

    Returns:
        The parsed image.

    Raises:
        TruncatedError / BadMagicError / ChecksumMismatch: the bytes are not a sound image.
        ImageRejected: a sound image this device must not run (chip, revision, layout, size).
    """
    if partition_size is not None and partition_size > SIXTEEN_MB:
        raise ImageRejected(f"partition size 0x{partition_size:x} invalid, larger than 16MB")
    raw = bytes(data)
    try:
        return _verify(raw, chip, chip_rev, partition_size, sig_len, addr, efuse_blk_rev)
    except TruncatedError as err:
        if partition_size is not None and len(raw) >= partition_size:
            # the whole slot was given and the image runs past its end
            raise ImageRejected(
                f"Image doesn't fit in partition length {partition_size}: {err}",
                code=RefusalCode.TOO_LARGE,
            ) from None
        raise _truncated(err) from None


def _verify(raw: bytes, chip: ChipSpec | None, chip_rev: int, partition_size: int | None,
            sig_len: int, addr: int, efuse_blk_rev: int | None) -> AppImage:
    header = ImageHeader.from_bytes(raw)
    check_magic(header, addr)
    if chip is not None:
        check_chip(header, chip, chip_rev)
    if header.segment_count > ESP_IMAGE_MAX_SEGMENTS:
        raise ImageRejected(
            f"image at 0x{addr:x} segment count {header.segment_count} exceeds max "
            f"{ESP_IMAGE_MAX_SEGMENTS}"
        )
    _scan_segments(raw, header, chip, addr)
    image = AppImage.from_bytes(raw, check=False)
    check_efuse_blk_rev(raw, chip, efuse_blk_rev)
    if not image.checksum_valid:
        image.raise_if_corrupt()
    if partition_size is not None and image.image_len + sig_len > partition_size:
        raise ImageRejected(
            f"Image length {image.image_len + sig_len} doesn't fit in partition length "
            f"{partition_size}",
            code=RefusalCode.TOO_LARGE,
        )
    image.raise_if_corrupt()
    return image


def require_app_image(data: bytes, source: str, chip: ChipSpec | None = None) -> AppImage:
    """``data`` parsed as a sound app image, or one clear error naming ``source``.

    For inputs that must be an image a bootloader can load (``flash compose`` apps,
    ``partitions check --image``): empty files, garbage, ESP8266 images, a wrong checksum or
    appended SHA-256, and (with ``chip``) an image for another chip are refused.

    Raises:
        FormatError: ``data`` is not a sound app image (exit 2 in the CLI).
    """
    if not data:
        raise FormatError(f"{source}: empty file, not an app image")
    try:
        image = AppImage.from_bytes(data)
        check_esp32_family(image.header, known_chip=True)
    except FormatError as err:
        raise type(err)(f"{source}: not an app image: {err}") from None
    if chip is not None and image.chip is not None and image.chip.chip_id != chip.chip_id:
        raise FormatError(f"{source}: an {image.chip.display_name} image, but the target chip "
                          f"is {chip.display_name}: build it for {chip.name} (or pass --chip)")
    return image
