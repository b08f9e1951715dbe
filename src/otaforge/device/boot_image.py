"""Per-image checks of ESP-IDF's second-stage bootloader: load verification and anti-rollback.

Sources (espressif/esp-idf, components/bootloader_support/src/):

* ``esp_image_format.c``: ``bootloader_load_image`` -> ``image_load(ESP_IMAGE_LOAD)``: partition
  size <= 16 MiB, header (magic, chip id and revision, segment count), segments (length, MMU
  alignment, eFuse block revision from segment 0 on non-ESP32 chips), checksum, fit in the
  partition with the signature (``process_appended_hash_and_sig``), then either the appended
  SHA-256 (``verify_simple_hash``) or, when signatures are checked on boot, only the signature
  (``verify_secure_boot_signature``: its digest covers the simple hash, which is then not
  compared on its own).
* ``bootloader_utility.c``: ``bootloader_common_get_partition_description`` (the
  ``esp_app_desc_t`` at image offset 0x20, magic ``0xABCD5432``), ``check_anti_rollback``.
* ``bootloader_common_loader.c``: ``bootloader_common_check_chip_validity``.
"""

from __future__ import annotations

from otaforge.device.boot_table import Reader
from otaforge.device.config import BootConfig
from otaforge.device.efuse import BootEfuses
from otaforge.errors import (
    ChecksumMismatch,
    FlashError,
    OtaforgeError,
    SignatureInvalid,
)
from otaforge.formats.app_desc import APP_DESC_OFFSET, APP_DESC_SIZE
from otaforge.formats.app_desc import app_secure_version as desc_secure_version
from otaforge.formats.app_image import SIXTEEN_MB, ImageHeader
from otaforge.formats.partition_table import PartitionEntry
from otaforge.formats.sector import SECTOR_SIZE
from otaforge.formats.signature_block import signature_length


def read_padded(read: Reader, addr: int, n: int) -> bytes:
    """``n`` bytes at ``addr``; what lies past the end of a dump (or the chip) reads 0xFF."""
    try:
        data = bytes(read(addr, n))[:n]
    except FlashError:  # runs past the chip: keep what is readable, sector by sector
        out = bytearray()
        pos, end = addr, addr + n
        while pos < end:
            step = min(SECTOR_SIZE - pos % SECTOR_SIZE, end - pos)
            try:
                out += bytes(read(pos, step))[:step]
            except FlashError:
                break
            pos += step
        data = bytes(out)
    return data + b"\xff" * (n - len(data))


def app_secure_version(read: Reader, part: PartitionEntry | None) -> int | None:
    """``bootloader_common_get_partition_description`` -> ``secure_version``; None on failure.

    Fails (None) for a missing partition, offset 0 (``ESP_ERR_INVALID_ARG``) or a wrong
    ``esp_app_desc_t`` magic at image offset 0x20 (``ESP_ERR_NOT_FOUND``).
    """
    if part is None or part.offset == 0:
        return None
    return desc_secure_version(read_padded(read, part.offset, APP_DESC_OFFSET + APP_DESC_SIZE))


def image_load_error(read: Reader, part: PartitionEntry, config: BootConfig,
                     efuse: BootEfuses) -> str | None:
    """``bootloader_load_image`` (full verification): None when the image loads, else why.

    Partition size <= 16 MiB, then :func:`~otaforge.formats.image_verify.verify_image` (magic,
    chip id and revision, segments, eFuse block revision, checksum, fit with the signature,
    SHA-256); with ``secure_boot_v2`` the signature sector against the eFuse key digests
    (revoked slots refused), with ``signed_app_v1`` the 68-byte ECDSA trailer against the
    embedded key -- and then the appended SHA-256 is not compared on its own (the signed digest
    covers it). Both go through :func:`~otaforge.crypto.chip_policy.verify_for_chip` with the
    chip's policy. Reads past the end of a short dump count as erased flash.
    """
    from otaforge.formats.image_verify import verify_image

    if part.size > SIXTEEN_MB:
        return f"partition size 0x{part.size:x} invalid, larger than 16MB"
    data = read_padded(read, part.offset, part.size)
    sig_len = 0
    try:
        rev = config.chip_rev
        if rev is None:  # unknown revision: the image's min_chip_rev_full is taken as met
            rev = ImageHeader.from_bytes(data).min_chip_rev_full
        if config.checks_signature:
            image_len = _image_len(data, config, rev)
            sig_len = signature_length("v2" if config.secure_boot_v2 else "v1", image_len)
        try:
            image_len = verify_image(data, chip=config.chip, chip_rev=rev,
                                     partition_size=part.size, sig_len=sig_len,
                                     addr=part.offset).image_len
        except ChecksumMismatch:
            if not config.checks_signature or not _only_hash_wrong(data):
                raise
            image_len = _image_len(data, config, rev)
        _check_efuse_blk_rev(data, config)
        if config.checks_signature:
            _verify_signature(data[: image_len + sig_len], image_len, config, efuse)
    except OtaforgeError as err:
        return str(err)
    return None


def _image_len(data: bytes, config: BootConfig, rev: int) -> int:
    """The image length (header .. appended hash) after the checks that precede the fit check."""
    from otaforge.formats.app_image import AppImage
    from otaforge.formats.image_verify import verify_image

    try:
        return verify_image(data, chip=config.chip, chip_rev=rev).image_len
    except ChecksumMismatch:
        if not _only_hash_wrong(data):
            raise
        return AppImage.from_bytes(data, check=False).image_len


def _check_efuse_blk_rev(data: bytes, config: BootConfig) -> None:
    """The segment-0 eFuse block revision check (see :func:`check_efuse_blk_rev`)."""
    from otaforge.formats.image_verify import check_efuse_blk_rev

    check_efuse_blk_rev(data, config.chip, config.efuse_blk_rev)


def _only_hash_wrong(data: bytes) -> bool:
    """The XOR checksum is right and only the appended SHA-256 differs."""
    from otaforge.formats.app_image import AppImage

    image = AppImage.from_bytes(data, check=False)
    return image.checksum_valid and image.hash_valid is False


def _verify_signature(signed: bytes, image_len: int, config: BootConfig,
                      efuse: BootEfuses) -> None:
    """Secure Boot v2 against eFuse key digests, or the v1 ECDSA trailer (raises on failure)."""
    from otaforge.crypto.chip_policy import verify_for_chip

    if config.secure_boot_v2:
        verify_for_chip(signed, config.chip, digests=list(efuse.key_digests),
                        revoked=efuse.revoked, image_len=image_len, version=2)
        return
    from otaforge.crypto.keys import load_public_key, load_v1_public_key

    raw = config.v1_public_key
    if raw is None:
        raise SignatureInvalid("the bootloader has no signature verification key")
    key = load_public_key(raw) if raw.lstrip().startswith(b"-----") else load_v1_public_key(raw)
    verify_for_chip(signed, config.chip, keys=[key], image_len=image_len, version=1,
                    strict=True)
