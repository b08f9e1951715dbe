"""``esp_app_desc_t``: the 256-byte application description at image offset 0x20.

Sources: components/esp_app_format/include/esp_app_desc.h, esp_app_desc.c; esptool
``cmds._parse_app_info`` (same layout). ESP-IDF reads it without parsing segments
(``esp_ota_get_partition_description``, ``esp_https_ota_get_img_desc``): the first segment of
an app is the DROM segment that starts with this struct, so it sits right after the 24-byte
image header and the 8-byte segment header.
"""

from __future__ import annotations

import struct

from otaforge.errors import BadMagicError, FormatError, TruncatedError
from otaforge.formats._binary import cstring, encode_cstring, unpack_from
from otaforge.formats.record import record, replace

APP_DESC_MAGIC = 0xABCD5432
APP_DESC_SIZE = 256
APP_DESC_OFFSET = 0x20  # 24-byte image header + 8-byte header of segment 0

# magic_word, secure_version, reserv1[2], version[32], project_name[32], time[16], date[16],
# idf_ver[32], app_elf_sha256[32], min_efuse_blk_rev_full, max_efuse_blk_rev_full,
# mmu_page_size (log2), reserv3[3], reserv2[18] (uint32)
_DESC = struct.Struct("<II8s32s32s16s16s32s32sHHB3s72s")
_HEAD = struct.Struct("<II")  # magic_word, secure_version
_BLK_REVS = struct.Struct("<HH")  # min/max_efuse_blk_rev_full
_BLK_REVS_OFFSET = struct.calcsize("<II8s32s32s16s16s32s32s")  # 0xB0: image offset 0xD0
_MMU_PAGE_OFFSET = _BLK_REVS_OFFSET + _BLK_REVS.size  # 0xB4: image offset 0xD4
assert _DESC.size == APP_DESC_SIZE


@record
class AppDesc:
    """One ``esp_app_desc_t``; string fields decoded, raw reserved bytes kept for round-trips.

    Attributes:
        magic_word: 0xABCD5432 for a real description.
        secure_version: anti-rollback version (``CONFIG_BOOTLOADER_APP_SECURE_VERSION``).
        version: ``PROJECT_VER`` (at most 31 characters).
        project_name: the CMake project name.
        time: ``__TIME__`` ("hh:mm:ss"), may be empty.
        date: ``__DATE__`` ("Mmm dd yyyy"), may be empty.
        idf_ver: ESP-IDF version string, e.g. "v5.4.1".
        app_elf_sha256: 32-byte SHA-256 of the ELF (esptool writes it at build time).
        min_efuse_blk_rev_full: major*100+minor; 0 = unset.
        max_efuse_blk_rev_full: major*100+minor; 0 or 0xFFFF = unset.
        mmu_page_size: log2 of the flash MMU page size (16 = 64 KiB); 0 = not recorded.
        reserv1: 8 reserved bytes after secure_version.
        reserv3: 3 bytes after mmu_page_size (byte 0 is spi_flash_mode on ESP-IDF v6.1+).
        reserv2: 72 reserved bytes at the end.
    """

    magic_word: int = APP_DESC_MAGIC
    secure_version: int = 0
    version: str = ""
    project_name: str = ""
    time: str = ""
    date: str = ""
    idf_ver: str = ""
    app_elf_sha256: bytes = b"\x00" * 32
    min_efuse_blk_rev_full: int = 0
    max_efuse_blk_rev_full: int = 0
    mmu_page_size: int = 0
    reserv1: bytes = b"\x00" * 8
    reserv3: bytes = b"\x00" * 3
    reserv2: bytes = b"\x00" * 72

    @classmethod
    def from_bytes(cls, data: bytes, *, check_magic: bool = True) -> AppDesc:
        """Parse the first 256 bytes of ``data``.

        Args:
            data: at least 256 bytes starting at the description.
            check_magic: raise when ``magic_word`` is not 0xABCD5432.

        Raises:
            TruncatedError: fewer than 256 bytes.
            BadMagicError: wrong ``magic_word`` (and ``check_magic``).
        """
        (magic, secure_version, reserv1, version, project_name, time, date, idf_ver, elf_sha,
         min_blk, max_blk, mmu, reserv3, reserv2) = unpack_from(
            _DESC, bytes(data), 0, "esp_app_desc_t")
        if check_magic and magic != APP_DESC_MAGIC:
            raise BadMagicError(
                f"esp_app_desc_t: magic_word is 0x{magic:08x}, expected 0x{APP_DESC_MAGIC:08x} "
                "(not an ESP-IDF app image, or the app description is not in segment 0)"
            )
        return cls(
            magic_word=magic,
            secure_version=secure_version,
            version=cstring(version, "version"),
            project_name=cstring(project_name, "project_name"),
            time=cstring(time, "time"),
            date=cstring(date, "date"),
            idf_ver=cstring(idf_ver, "idf_ver"),
            app_elf_sha256=elf_sha,
            min_efuse_blk_rev_full=min_blk,
            max_efuse_blk_rev_full=max_blk,
            mmu_page_size=mmu,
            reserv1=reserv1,
            reserv3=reserv3,
            reserv2=reserv2,
        )

    def to_bytes(self) -> bytes:
        """The 256-byte struct.

        Raises:
            FormatError: a string does not fit its field or a number is out of range.
        """
        if not 0 <= self.secure_version <= 0xFFFFFFFF:
            raise FormatError(f"secure_version {self.secure_version} is not a uint32")
        if len(self.app_elf_sha256) != 32:
            raise FormatError("app_elf_sha256 must be 32 bytes")
        try:
            return _DESC.pack(
                self.magic_word, self.secure_version, self.reserv1,
                encode_cstring(self.version, 32, "version"),
                encode_cstring(self.project_name, 32, "project_name"),
                encode_cstring(self.time, 16, "time"),
                encode_cstring(self.date, 16, "date"),
                encode_cstring(self.idf_ver, 32, "idf_ver"),
                self.app_elf_sha256, self.min_efuse_blk_rev_full, self.max_efuse_blk_rev_full,
                self.mmu_page_size, self.reserv3, self.reserv2,
            )
        except struct.error as err:
            raise FormatError(f"esp_app_desc_t field out of range: {err}") from None

    def replace(self, **changes: object) -> AppDesc:
        """A copy with fields changed (e.g. ``version=``, ``secure_version=``)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def elf_sha256_hex(self) -> str:
        """``app_elf_sha256`` as lowercase hex (as esptool prints it)."""
        return self.app_elf_sha256.hex()

    def to_json(self) -> dict[str, object]:
        """ESP-IDF field names -> values, for ``--json`` reports and the server API."""
        return {
            "magic_word": self.magic_word,
            "secure_version": self.secure_version,
            "version": self.version,
            "project_name": self.project_name,
            "time": self.time,
            "date": self.date,
            "idf_ver": self.idf_ver,
            "app_elf_sha256": self.elf_sha256_hex,
            "min_efuse_blk_rev_full": self.min_efuse_blk_rev_full,
            "max_efuse_blk_rev_full": self.max_efuse_blk_rev_full,
            "mmu_page_size": self.mmu_page_size,
        }


def read_app_desc(image_prefix: bytes) -> AppDesc:
    """The app description of an image, read at offset 0x20 as ESP-IDF does.

    Args:
        image_prefix: the first ``0x20 + 256`` bytes (or more) of an app image.

    Raises:
        TruncatedError: fewer than 0x120 bytes.
        BadMagicError: no image magic 0xE9, or no app description magic.
    """
    if image_prefix[:1] != b"\xe9":
        got = f"0x{image_prefix[0]:02x}" if image_prefix else "no data"
        raise BadMagicError(
            f"app image: first byte is {got}, expected 0xE9 (nothing flashed here?)"
        )
    end = APP_DESC_OFFSET + APP_DESC_SIZE
    if len(image_prefix) < end:
        raise TruncatedError(
            f"app image: {len(image_prefix)} bytes; the app description needs 0x{end:x} "
            "bytes (image header, segment header and esp_app_desc_t)"
        )
    return AppDesc.from_bytes(bytes(image_prefix[APP_DESC_OFFSET:end]))


def efuse_blk_rev_range(image: bytes) -> tuple[int, int]:
    """``(min, max)_efuse_blk_rev_full`` as the bootloader's ``process_segment_data`` reads them.

    Taken at their ``esp_app_desc_t`` offsets in the image (0xD0, 0xD2) *without* checking the
    description's magic; bytes past the end of ``image`` read as erased flash (0xFF).
    """
    start = APP_DESC_OFFSET + _BLK_REVS_OFFSET
    raw = bytes(image[start : start + _BLK_REVS.size]).ljust(_BLK_REVS.size, b"\xff")
    lo, hi = _BLK_REVS.unpack(raw)
    return int(lo), int(hi)


def mmu_page_size_log2(image: bytes) -> int:
    """The app description's ``mmu_page_size`` (log2) of ``image``; 0 without a description."""
    offset = APP_DESC_OFFSET + _MMU_PAGE_OFFSET
    if len(image) <= offset or app_desc_magic(image) != APP_DESC_MAGIC:
        return 0
    return image[offset]


def app_desc_magic(image: bytes) -> int | None:
    """The ``magic_word`` at image offset 0x20 (None when the image is shorter than that)."""
    head = _head(image)
    return head[0] if head else None


def app_secure_version(image: bytes) -> int | None:
    """``secure_version`` of the app description at image offset 0x20, None without its magic.

    What ``bootloader_common_get_partition_description`` gives ``check_anti_rollback``: only the
    description's magic is checked (not the image's).
    """
    head = _head(image)
    return head[1] if head and head[0] == APP_DESC_MAGIC else None


def _head(image: bytes) -> tuple[int, int] | None:
    """``(magic_word, secure_version)`` at image offset 0x20, None when the image is shorter."""
    raw = bytes(image[APP_DESC_OFFSET : APP_DESC_OFFSET + _HEAD.size])
    if len(raw) < _HEAD.size:
        return None
    magic, secure_version = _HEAD.unpack(raw)
    return int(magic), int(secure_version)
