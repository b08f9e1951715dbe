"""Whole-flash images: compose one, inspect one as the bootloader would, erase its otadata.

A flash image is what ``esptool read-flash 0 SIZE`` gives (or ``merge-bin`` makes): bootloader,
partition table at ``CONFIG_PARTITION_TABLE_OFFSET``, then the partitions. A file shorter than the
flash (a partial dump) is fine: everything past its end reads as erased 0xFF.

* :func:`compose` builds one from a partition table and app binaries (otadata left erased, as
  ``idf.py flash`` writes ``ota_data_initial.bin``).
* :func:`inspect` runs :func:`~otaforge.device.bootloader.select_boot` over it and reports the
  partitions, both otadata entries, each app slot, and what boots next.
* :func:`erase_otadata` is ``idf.py erase-otadata`` / ``otatool.py erase_otadata``: 0xFF over the
  whole otadata partition.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass

from otaforge.device.boot_table import require_partition_table
from otaforge.device.bootloader import (
    BootConfig,
    BootDecision,
    BootEfuses,
    BootState,
    Reader,
    image_load_error,
    read_partition_table,
    select_boot,
)
from otaforge.errors import FormatError, InputError, OtaforgeError
from otaforge.formats.app_image import (
    ESP_IMAGE_MAGIC,
    FLASH_SIZE_BYTES,
    HASH_LEN,
    IMAGE_HEADER_SIZE,
    ImageHeader,
)
from otaforge.formats.chips import CHIPS, ChipSpec, chip_by_id
from otaforge.formats.image_verify import require_app_image
from otaforge.formats.otadata import (
    OtaImgState,
    OtaSelectEntry,
    otadata_bytes,
    slot_for_seq,
)
from otaforge.formats.partition_table import MAX_TABLE_LENGTH, PartitionEntry, PartitionTable
from otaforge.formats.record import replace
from otaforge.formats.sector import SECTOR_SIZE
from otaforge.fsutil import atomic_write, read_file


def bootloader_offset(chip: ChipSpec) -> int:
    """Flash offset of the second-stage bootloader (``CONFIG_BOOTLOADER_OFFSET_IN_FLASH``)."""
    return chip.bootloader_offset


def file_reader(data: bytes) -> Reader:
    """A flash reader over an image held in memory (reads past its end come back short)."""
    view = memoryview(data)

    def read(addr: int, n: int) -> bytes:
        return bytes(view[addr : addr + n]) if addr < len(view) else b""

    return read


def detect_chip(read: Reader) -> ChipSpec | None:
    """The chip whose bootloader header sits at that chip's bootloader offset, if any."""
    for offset in sorted({spec.bootloader_offset for spec in CHIPS.values()}):
        header = _image_header(read(offset, IMAGE_HEADER_SIZE))
        spec = chip_by_id(header.chip_id) if header is not None else None
        if spec is not None and bootloader_offset(spec) == offset:
            return spec
    return None


def _image_header(data: bytes) -> ImageHeader | None:
    """The image header ``data`` starts with, or None when it is not one (no 0xE9, short)."""
    try:
        header = ImageHeader.from_bytes(data)
    except FormatError:
        return None
    return header if header.magic == ESP_IMAGE_MAGIC else None


def detect_flash_size(read: Reader, chip: ChipSpec) -> int | None:
    """Flash size the bootloader header declares (what the ROM sets as the chip size)."""
    header = _image_header(read(bootloader_offset(chip), IMAGE_HEADER_SIZE))
    if header is None or header.chip_id != chip.chip_id:
        return None
    return FLASH_SIZE_BYTES[header.spi_size] if header.spi_size < len(FLASH_SIZE_BYTES) else None


# --- compose --------------------------------------------------------------------------------


def patch_flash_size(bootloader: bytes, flash_size: int) -> bytes:
    """The bootloader with the header's ``spi_size`` set (esptool ``--flash-size``).

    The bootloader takes the flash size from this nibble, and partitions beyond it fail the
    partition table check. Not an image, or not a standard size (1MB..128MB): unchanged. An
    appended SHA-256 is recomputed, as esptool does.
    """
    from otaforge.formats.app_image import AppImage

    header = _image_header(bootloader)
    if flash_size not in FLASH_SIZE_BYTES or header is None:
        return bootloader
    out = bytearray(bootloader)
    patched = replace(header, spi_size=FLASH_SIZE_BYTES.index(flash_size))
    out[:IMAGE_HEADER_SIZE] = patched.to_bytes()
    if header.hash_appended == 1:
        try:
            end = AppImage.from_bytes(bytes(out), check=False).image_len
        except OtaforgeError:
            return bootloader
        out[end - HASH_LEN : end] = hashlib.sha256(bytes(out[: end - HASH_LEN])).digest()
    return bytes(out)



def _flash_size_for(table: PartitionTable, flash_size: int | None) -> int:
    end = max((p.offset + p.size for p in table.entries), default=0)
    if flash_size is not None:
        return flash_size
    for size in FLASH_SIZE_BYTES:
        if size >= end:
            return size
    raise InputError(f"the partition table ends at 0x{end:x}, beyond 128MB of flash")


def require_bootable_inputs(apps: Mapping[str, bytes], bootloader: bytes | None,
                            chip: ChipSpec, sources: Mapping[str, str] | None = None) -> None:
    """Refuse ``flash compose`` inputs that nothing could boot: call before :func:`compose`.

    Every app (and the bootloader) must be a sound image for ``chip`` (:func:`compose` itself
    places any bytes, so tests can build broken devices on purpose).

    Args:
        apps: partition name -> image bytes.
        bootloader: the bootloader image, if any.
        chip: the target chip.
        sources: partition name -> what to call that input in messages (e.g. ``--factory F``).

    Raises:
        FormatError: an empty file, not an image, a corrupt image, or one for another chip.
    """
    named = dict(sources or {})
    for name, data in apps.items():
        require_app_image(data, named.get(name, f"app for {name}"), chip)
    if bootloader is not None:
        require_app_image(bootloader, named.get("bootloader", "bootloader"), chip)


def compose(table: PartitionTable, apps: Mapping[str, bytes], *,
            flash_size: int | None = None, bootloader: bytes | None = None,
            chip: ChipSpec = CHIPS["esp32"], table_offset: int = 0x8000,
            otadata: tuple[OtaSelectEntry | None, OtaSelectEntry | None] | None = None) -> bytes:
    """A full flash image: 0xFF everywhere, the binary table, the apps, optional otadata.

    Args:
        table: the partition table (verified with gen_esp32part's rules against the flash size).
        apps: partition name -> binary written at the partition's start (any bytes: a corrupt
            image is composed as given, so tests can build broken devices).
        flash_size: bytes; default the smallest standard size (1MB..128MB) the table fits.
        bootloader: second-stage bootloader written at the chip's bootloader offset; with an
            explicit ``flash_size`` its header's flash size is set to it (and its SHA-256
            recomputed), as ``esptool merge-bin --flash-size`` does.
        chip: the target chip (for the bootloader offset).
        table_offset: ``CONFIG_PARTITION_TABLE_OFFSET``.
        otadata: the two otadata entries to write (None: erased, as ``ota_data_initial.bin``).

    Raises:
        PartitionTableError: the table breaks a gen_esp32part rule or does not fit the flash.
        InputError: an unknown partition, a binary larger than its partition, a bootloader that
            runs into the partition table, or otadata without an otadata partition.
    """
    size = _flash_size_for(table, flash_size)
    table.verify(size, table_offset=table_offset)
    image = bytearray(b"\xff" * size)
    image[table_offset : table_offset + MAX_TABLE_LENGTH] = table.to_bytes()
    if bootloader is not None:
        if flash_size is not None:
            bootloader = patch_flash_size(bootloader, flash_size)
        start = bootloader_offset(chip)
        if start + len(bootloader) > table_offset:
            raise InputError(
                f"bootloader is {len(bootloader)} bytes at 0x{start:x}: it runs into the "
                f"partition table at 0x{table_offset:x}")
        image[start : start + len(bootloader)] = bootloader
    for name, data in apps.items():
        part = table.find(name)
        if part is None:
            raise InputError(f"no partition named {name!r} in the partition table")
        if len(data) > part.size:
            raise InputError(
                f"binary for {name} is {len(data)} bytes; partition {name} holds {part.size} "
                f"(0x{part.size:x}) bytes")
        image[part.offset : part.offset + len(data)] = data
    if otadata is not None:
        part = table.otadata()
        if part is None:
            raise InputError("otadata given, but the partition table has no data/ota partition")
        image[part.offset : part.offset + 2 * SECTOR_SIZE] = otadata_bytes(otadata)
    return bytes(image)


# --- erase-otadata --------------------------------------------------------------------------


def erase_otadata(data: bytes, table_offset: int = 0x8000) -> bytes:
    """``otatool.py erase_otadata``: the image with its otadata partition all 0xFF.

    Raises:
        PartitionTableError: no valid partition table at ``table_offset``.
        InputError: the table has no otadata partition.
    """
    entries = read_partition_table(file_reader(data), table_offset)
    part = next((p for p in entries if p.type == 0x01 and p.subtype == 0x00), None)
    if part is None:
        raise InputError("No otadata partition found in the partition table")
    out = bytearray(data)
    end = min(part.offset + part.size, len(out))
    if part.offset < end:
        out[part.offset : end] = b"\xff" * (end - part.offset)
    return bytes(out)


def erase_otadata_file(path: str | os.PathLike[str], table_offset: int = 0x8000) -> PartitionEntry:
    """Erase the otadata of a flash image file in place, atomically; returns the partition."""
    data = read_file(path, "flash image")
    entries = require_partition_table(file_reader(data), os.fspath(path), table_offset)
    try:
        new = erase_otadata(data, table_offset)
    except InputError as err:
        raise InputError(f"{os.fspath(path)}: {err} (nothing to erase)") from None
    atomic_write(path, new)
    return next(p for p in entries if p.type == 0x01 and p.subtype == 0x00)


# --- inspect --------------------------------------------------------------------------------


def _state_name(state: int) -> str:
    try:
        return OtaImgState(state).name
    except ValueError:
        return f"0x{state:08x}"


@dataclass(frozen=True)
class OtadataReport:
    """One otadata entry as the bootloader judges it."""

    sector: int
    seq: int
    state: int
    crc_ok: bool
    valid: bool
    partition: str | None

    def to_json(self) -> dict[str, object]:
        """``{"sector", "seq", "state" (name), "crc_ok", "valid", "partition"}``."""
        return {"sector": self.sector, "seq": self.seq, "state": _state_name(self.state),
                "crc_ok": self.crc_ok, "valid": self.valid, "partition": self.partition}


@dataclass(frozen=True)
class AppReport:
    """One app partition: its image, and whether the bootloader would load it."""

    partition: PartitionEntry
    valid: bool
    error: str | None
    version: str | None
    project: str | None
    secure_version: int | None
    sha256: str | None

    def to_json(self) -> dict[str, object]:
        """JSON-ready dict."""
        return {"partition": self.partition.name, "offset": self.partition.offset,
                "size": self.partition.size, "valid": self.valid, "error": self.error,
                "version": self.version, "project": self.project,
                "secure_version": self.secure_version, "sha256": self.sha256}


@dataclass(frozen=True)
class InspectReport:
    """What ``otaforge flash inspect`` shows."""

    chip: ChipSpec
    chip_rev: int | None
    flash_size: int | None
    partitions: tuple[PartitionEntry, ...]
    table_error: str | None
    otadata: tuple[OtadataReport, ...]
    apps: tuple[AppReport, ...]
    boot: BootDecision

    def to_json(self) -> dict[str, object]:
        """``{"chip", "partitions", "otadata", "apps", "boot": {"partition", "reason", ...}}``."""
        part = self.boot.partition
        return {
            "chip": self.chip.name,
            "chip_rev": self.chip_rev,
            "flash_size": self.flash_size,
            "partition_table_error": self.table_error,
            "partitions": [_partition_json(p) for p in self.partitions],
            "otadata": [o.to_json() for o in self.otadata],
            "apps": [a.to_json() for a in self.apps],
            "boot": {
                "partition": part.name if part is not None else None,
                "offset": part.offset if part is not None else None,
                "bricked": part is None,
                "reason": self.boot.reason,
                "otadata_writes": [
                    {"kind": op.kind, "addr": op.addr, "data": op.data.hex()}
                    for op in self.boot.otadata_ops
                ],
                "burn_secure_version": self.boot.burn_secure_version,
                "ota_state_after": (_state_name(self.boot.ota_state_after)
                                    if self.boot.ota_state_after is not None else None),
                "log": list(self.boot.log),
            },
        }


def _partition_json(p: PartitionEntry) -> dict[str, object]:
    return {"name": p.name, "type": p.type_name, "subtype": p.subtype_name, "offset": p.offset,
            "size": p.size, "encrypted": p.encrypted, "readonly": p.readonly}


def _otadata_reports(read: Reader, bs: BootState) -> tuple[OtadataReport, ...]:
    if bs.ota_info is None:
        return ()
    reports = []
    for sector in range(2):
        raw = read(bs.ota_info.offset + sector * SECTOR_SIZE, 32).ljust(32, b"\xff")
        entry = OtaSelectEntry.from_bytes(raw)
        target = None
        if entry.ota_seq != 0xFFFFFFFF and entry.crc_ok and bs.app_count:
            slot = slot_for_seq(entry.ota_seq, bs.app_count)
            part = bs.ota.get(slot)
            target = part.name if part is not None else f"ota slot {slot} (missing)"
        reports.append(OtadataReport(sector, entry.ota_seq, entry.ota_state, entry.crc_ok,
                                     entry.is_valid(), target))
    return tuple(reports)


def _app_report(read: Reader, part: PartitionEntry, config: BootConfig,
                efuse: BootEfuses) -> AppReport:
    from otaforge.formats.app_desc import read_app_desc
    from otaforge.formats.app_image import AppImage

    error = image_load_error(read, part, config, efuse)
    version = project = sha = None
    secure_version = None
    head = read(part.offset, 0x120).ljust(0x120, b"\xff")
    try:
        desc = read_app_desc(head)
        version, project, secure_version = desc.version, desc.project_name, desc.secure_version
    except OtaforgeError:
        pass
    if error is None:
        try:
            length = AppImage.from_bytes(read(part.offset, part.size), check=False).image_len
            sha = hashlib.sha256(read(part.offset, length)).hexdigest()
        except OtaforgeError:
            sha = None
    if error is None and config.anti_rollback and secure_version is not None \
            and secure_version < efuse.secure_version:
        error = (f"secure_version {secure_version} < eFuse secure version "
                 f"{efuse.secure_version} (anti-rollback refuses it)")
    return AppReport(part, error is None, error, version, project, secure_version, sha)


def inspect(read: Reader, config: BootConfig, efuse: BootEfuses | None = None, *,
            factory_reset_requested: bool = False, test_requested: bool = False) -> InspectReport:
    """Report on a flash image and decide, as the bootloader would, what boots next.

    Args:
        read: flash reader (see :func:`file_reader`); nothing is written.
        config: the bootloader's configuration.
        efuse: eFuse state (default: secure version 0, the chip's field width).
        factory_reset_requested: the factory reset pin is held (needs ``config.factory_reset``).
        test_requested: the test app pin is held (needs ``config.app_test``).

    Returns:
        The report; ``report.boot.partition`` None means the device is bricked.
    """
    efuse = efuse or BootEfuses(secure_version_bits=config.chip.secure_version_bits)
    decision = select_boot(read, config, efuse, factory_reset_requested=factory_reset_requested,
                           test_requested=test_requested)
    try:
        entries = read_partition_table(read, config.partition_table_offset, config.flash_size)
        table_error = None
    except FormatError as err:
        entries, table_error = (), str(err)
    bs = BootState.from_entries(entries)
    apps = tuple(_app_report(read, p, config, efuse) for p in entries
                 if p is bs.factory or p is bs.test or p in bs.ota.values())
    return InspectReport(config.chip, config.chip_rev, config.flash_size, entries, table_error,
                         _otadata_reports(read, bs), apps, decision)
