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

from dataclasses import dataclass

from otaforge.device.boot_table import Reader
from otaforge.errors import (
    ChecksumMismatch,
    FlashError,
    InputError,
    OtaforgeError,
    SignatureInvalid,
)
from otaforge.formats.app_desc import APP_DESC_OFFSET, APP_DESC_SIZE
from otaforge.formats.app_desc import app_secure_version as desc_secure_version
from otaforge.formats.app_image import SIXTEEN_MB, ImageHeader
from otaforge.formats.chips import ChipSpec
from otaforge.formats.partition_table import PartitionEntry
from otaforge.formats.sector import SECTOR_SIZE
from otaforge.formats.signature_block import signature_length


@dataclass(frozen=True)
class BootConfig:
    """The bootloader's build configuration (fixed at manufacturing; OTA never changes it).

    Attributes:
        chip: the target chip (``CONFIG_IDF_TARGET``): image chip id must match.
        chip_rev: the chip's full revision (major*100+minor) for min/max revision checks;
            None: unknown -- the image's own minimum is taken as met (an image whose maximum
            is below its minimum still fails, as it does on every chip).
        rollback: ``CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE``.
        anti_rollback: ``CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK``.
        secure_boot_v2: ``CONFIG_SECURE_BOOT_V2_ENABLED``: signatures checked against eFuse.
        signed_app_v1: ``CONFIG_SECURE_SIGNED_ON_BOOT`` with the v1 ECDSA scheme.
        factory_reset: ``CONFIG_BOOTLOADER_FACTORY_RESET`` (long hold on the reset pin).
        app_test: ``CONFIG_BOOTLOADER_APP_TEST`` (long hold on the test pin).
        partition_table_offset: ``CONFIG_PARTITION_TABLE_OFFSET``.
        flash_size: the flash size the bootloader header declares (``g_rom_flashchip.chip_size``);
            partitions beyond it fail the table check. None: not checked.
        data_factory_reset: ``CONFIG_BOOTLOADER_DATA_FACTORY_RESET``: data partition labels
            erased on factory reset (comma or space separated).
        ota_data_erase: ``CONFIG_BOOTLOADER_OTA_DATA_ERASE``: factory reset also erases otadata
            (Kconfig default is n; otaforge's devices enable it so a reset boots factory).
        v1_public_key: the ECDSA P-256 key embedded in the bootloader for ``signed_app_v1``
            (64 raw bytes X||Y, or PEM).
        efuse_blk_rev: the chip's eFuse block revision (major*100+minor) that non-ESP32 chips
            check against the app description; None: not checked.
    """

    chip: ChipSpec
    chip_rev: int | None = 0
    rollback: bool = False
    anti_rollback: bool = False
    secure_boot_v2: bool = False
    signed_app_v1: bool = False
    factory_reset: bool = False
    app_test: bool = False
    partition_table_offset: int = 0x8000
    flash_size: int | None = None
    data_factory_reset: str = "nvs"
    ota_data_erase: bool = True
    v1_public_key: bytes | None = None
    efuse_blk_rev: int | None = None

    @property
    def checks_signature(self) -> bool:
        """``SECURE_BOOT_CHECK_SIGNATURE`` of a bootloader build (signatures checked on boot)."""
        return self.secure_boot_v2 or self.signed_app_v1


@dataclass(frozen=True)
class EfuseState:
    """The eFuses the bootloader reads.

    Attributes:
        secure_version: current anti-rollback value (number of bits set in SECURE_VERSION).
        secure_version_bits: ``CONFIG_BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD``.
        key_digests: Secure Boot v2 public key digests burned in eFuse (index = key slot).
        revoked: revoked key slots (``SECURE_BOOT_KEY_REVOKEn``).
    """

    secure_version: int = 0
    secure_version_bits: int = 32
    key_digests: tuple[bytes, ...] = ()
    revoked: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        """Refuse what no eFuse block holds: a digest is 32 bytes (16 on ESP32-C2), at most 3.

        An empty digest is an unburned key slot.
        """
        if len(self.key_digests) > 3:
            raise InputError(f"{len(self.key_digests)} key digests; eFuse holds at most 3")
        for slot, digest in enumerate(self.key_digests):
            if digest and len(digest) not in (16, 32):
                raise InputError(f"key digest {slot} is {len(digest)} bytes: a Secure Boot v2 "
                                 "key digest is 32 bytes (16 on ESP32-C2), as made by "
                                 "'espsecure digest-sbv2-public-key'")


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
                     efuse: EfuseState) -> str | None:
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
                      efuse: EfuseState) -> None:
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
