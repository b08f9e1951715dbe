"""ESP-IDF's second-stage bootloader decision as a pure function: which app boots, and why.

Mirrors, in ESP-IDF v6.0+ (master) behaviour:

* ``bootloader_start.c``: ``select_partition_number`` -> ``selected_boot_partition`` (factory
  reset pin, test app pin) -> ``bootloader_utility_load_boot_image``;
* ``bootloader_utility.c``: ``bootloader_utility_load_partition_table``,
  ``bootloader_utility_get_selected_boot_partition``, ``try_load_partition``,
  ``check_anti_rollback``, ``update_anti_rollback``, ``set_actual_ota_seq``, ``write_otadata``;
* ``bootloader_common_loader.c``: ``bootloader_common_ota_select_valid``/``_invalid``,
  ``bootloader_common_select_otadata`` (ties go to otadata[0]);
* ``flash_partitions.c``: ``esp_partition_table_verify`` (missing MD5 accepted);
* ``esp_image_format.c`` via :func:`otaforge.formats.app_image.verify_image`.

Older releases: the decision logic has been stable since v4.x; the differences that show are
(a) in some v5.x releases and earlier the last-resort test-app fallback ran without the
anti-rollback check (master checks it; otaforge follows master), (b) older factory-reset code only
knew an active-low pin (a pin level is not modelled here: the caller says "held"), (c) pre-v5.0
logs lack "Failed to get partition description". Not modelled: ``CONFIG_BOOTLOADER_SKIP_VALIDATE_*``
(fast boot without verification), deep-sleep wake (which skips the GPIO checks), flash encryption,
the ESP32 3/4 eFuse coding scheme (which refuses secure-version burns), the load-address checks of
``ESP_IMAGE_LOAD`` against the bootloader's own RAM, and the recovery bootloader / TEE paths.

:func:`select_boot` never writes: the otadata writes the bootloader makes are returned as
:class:`FlashOp` s (erase a 4 KiB sector, then program the 32-byte entry), in order.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from otaforge.errors import (
    FlashError,
    FormatError,
    OtaforgeError,
    PartitionTableError,
    SignatureInvalid,
    TruncatedError,
)
from otaforge.formats._binary import align_up
from otaforge.formats.chips import ChipSpec
from otaforge.formats.otadata import (
    OTADATA_SECTOR_SIZE,
    SEQ_UNUSED,
    OtaImgState,
    OtaSelectEntry,
    ota_crc,
    select_otadata,
)
from otaforge.formats.partition_table import PartitionEntry

PARTITION_TABLE_MAX_LEN = 0xC00
PARTITION_MAGIC = 0x50AA
PARTITION_MAGIC_MD5 = 0xEBEB
SIXTEEN_MB = 0x1000000
FACTORY_INDEX = -1
TEST_APP_INDEX = -2
INVALID_INDEX = -99
SECTOR_SIZE = 0x1000

Reader = Callable[[int, int], bytes]


@dataclass(frozen=True)
class BootConfig:
    """The bootloader's build configuration (fixed at manufacturing; OTA never changes it).

    Attributes:
        chip: the target chip (``CONFIG_IDF_TARGET``): image chip id must match.
        chip_rev: the chip's full revision (major*100+minor) for min/max revision checks;
            None: unknown, revisions not checked (the chip id still is).
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


@dataclass(frozen=True)
class FlashOp:
    """One flash write the bootloader makes. ``erase``: the 4 KiB sector at ``addr``."""

    kind: Literal["erase", "program"]
    addr: int
    data: bytes = b""


@dataclass(frozen=True)
class BootDecision:
    """What the bootloader does on this power-on.

    Attributes:
        partition: the app partition it jumps to; None: nothing bootable (reset loop, bricked).
        reason: why, in the words of the bootloader's log.
        otadata_ops: flash writes made before jumping, in order (apply them all).
        burn_secure_version: the new eFuse secure version it burned, or None.
        ota_state_after: the booted OTA slot's otadata state after the writes (None: factory,
            test app, or no entry points at the slot).
        log: the bootloader's log lines ("I boot: ...", "E esp_image: ...").
    """

    partition: PartitionEntry | None
    reason: str
    otadata_ops: tuple[FlashOp, ...]
    burn_secure_version: int | None
    ota_state_after: int | None
    log: tuple[str, ...]


class _Flash:
    """The flash as the bootloader sees it: ``read`` plus the writes it made so far."""

    def __init__(self, read: Reader) -> None:
        self._read = read
        self._sectors: dict[int, bytearray] = {}
        self.ops: list[FlashOp] = []

    def _raw(self, addr: int, n: int) -> bytes:
        try:
            data = bytes(self._read(addr, n))[:n]
        except FlashError:  # runs past the chip: keep what is readable, the rest reads 0xFF
            data = self._readable_prefix(addr, n)
        return data + b"\xff" * (n - len(data))

    def _readable_prefix(self, addr: int, n: int) -> bytes:
        out = bytearray()
        pos, end = addr, addr + n
        while pos < end:
            step = min(SECTOR_SIZE - pos % SECTOR_SIZE, end - pos)
            try:
                out += bytes(self._read(pos, step))[:step]
            except FlashError:
                break
            pos += step
        return bytes(out)

    def read(self, addr: int, n: int) -> bytes:
        out = self._raw(addr, n)
        if not self._sectors:
            return out
        buf = bytearray(out)
        for base, sector in self._sectors.items():
            lo, hi = max(base, addr), min(base + SECTOR_SIZE, addr + n)
            if lo < hi:
                buf[lo - addr : hi - addr] = sector[lo - base : hi - base]
        return bytes(buf)

    def erase(self, addr: int) -> None:
        base = addr - addr % SECTOR_SIZE
        self._sectors[base] = bytearray(b"\xff" * SECTOR_SIZE)
        self.ops.append(FlashOp("erase", base))

    def program(self, addr: int, data: bytes) -> None:
        base = addr - addr % SECTOR_SIZE
        if base not in self._sectors:
            self._sectors[base] = bytearray(self._raw(base, SECTOR_SIZE))
        sector = self._sectors[base]
        for i, byte in enumerate(data):
            sector[addr - base + i] &= byte
        self.ops.append(FlashOp("program", addr, bytes(data)))


@dataclass
class _Run:
    """Mutable state of one boot: flash view, eFuse value, log."""

    flash: _Flash
    config: BootConfig
    efuse: EfuseState
    secure_version: int
    burned: int | None = None
    initial_contents: bool = False
    log: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def info(self, tag: str, msg: str, note: bool = True) -> None:
        self.log.append(f"I {tag}: {msg}")
        if note:
            self.notes.append(msg)

    def error(self, tag: str, msg: str, note: bool = True) -> None:
        self.log.append(f"E {tag}: {msg}")
        if note:
            self.notes.append(msg)


_RECORD = struct.Struct("<HBBII16sI")


def _entry(record: bytes) -> PartitionEntry:
    _magic, ptype, subtype, offset, size, label, flags = _RECORD.unpack(record)
    return PartitionEntry(
        name=label.split(b"\x00", 1)[0].decode("utf-8", errors="replace"), type=ptype,
        subtype=subtype, offset=offset, size=size, encrypted=bool(flags & 1),
        readonly=bool(flags & 2),
    )


def read_partition_table(read: Reader, offset: int = 0x8000,
                         flash_size: int | None = None) -> tuple[PartitionEntry, ...]:
    """The partition records as the bootloader takes them (``esp_partition_table_verify``).

    Up to 96 records from ``offset``: 0x50AA entries (within ``flash_size`` when given), at most
    one 0xEBEB MD5 record whose digest covers the records before it (a missing MD5 is fine),
    ending at a record starting ``FF FF FF FF``. The first ``n - has_md5`` records are returned,
    as the bootloader iterates them.

    Raises:
        PartitionTableError: the bootloader's reason ("partition 3 invalid magic number 0x...").
    """
    raw = bytes(read(offset, PARTITION_TABLE_MAX_LEN))[:PARTITION_TABLE_MAX_LEN]
    raw = raw.ljust(PARTITION_TABLE_MAX_LEN, b"\xff")
    md5_found = 0
    for num in range(PARTITION_TABLE_MAX_LEN // 32):
        record = raw[num * 32 : num * 32 + 32]
        magic, ptype, subtype, p_off, p_size, _label, _flags = _RECORD.unpack(record)
        if magic == PARTITION_MAGIC:
            end = (p_off + p_size) & 0xFFFFFFFF
            if flash_size is not None and (p_off > flash_size or end > flash_size):
                raise PartitionTableError(
                    f"partition {num} invalid - offset 0x{p_off:x} size 0x{p_size:x} exceeds "
                    f"flash chip size 0x{flash_size:x}")
        elif magic == PARTITION_MAGIC_MD5:
            if md5_found:
                raise PartitionTableError("Only one MD5 checksum is allowed")
            if hashlib.md5(raw[: num * 32]).digest() != record[16:32]:
                raise PartitionTableError("Incorrect MD5 checksum")
            md5_found = 1
        elif magic == 0xFFFF and ptype == 0xFF and subtype == 0xFF:
            return tuple(_entry(raw[i * 32 : i * 32 + 32]) for i in range(num - md5_found))
        else:
            raise PartitionTableError(f"partition {num} invalid magic number 0x{magic:x}")
    raise PartitionTableError("partition table has no terminating entry, not valid")


@dataclass(frozen=True)
class BootState:
    """``bootloader_state_t``: where factory, test, ota[N] and otadata are (last entry wins).

    ``app_count`` counts every app ota_N entry; ``ota`` is indexed by ``subtype & 0x0F``, so a
    table with a gap (ota_0, ota_2) has a missing slot 1 and an unreachable ota_2, as on a chip.
    """

    entries: tuple[PartitionEntry, ...]
    factory: PartitionEntry | None
    test: PartitionEntry | None
    ota: Mapping[int, PartitionEntry]
    app_count: int
    ota_info: PartitionEntry | None

    @classmethod
    def from_entries(cls, entries: tuple[PartitionEntry, ...]) -> BootState:
        """Classify records as ``bootloader_utility_load_partition_table`` does."""
        factory = test = ota_info = None
        ota: dict[int, PartitionEntry] = {}
        app_count = 0
        for part in entries:
            if part.type == 0x00 and part.subtype == 0x00:
                factory = part
            elif part.type == 0x00 and part.subtype == 0x20:
                test = part
            elif part.type == 0x00 and part.subtype & 0xF0 == 0x10:
                ota[part.subtype & 0x0F] = part
                app_count += 1
            elif part.type == 0x01 and part.subtype == 0x00:
                ota_info = part
        return cls(entries, factory, test, ota, app_count, ota_info)


def image_load_error(read: Reader, part: PartitionEntry, config: BootConfig,
                efuse: EfuseState) -> str | None:
    """``bootloader_load_image`` (full verification): None when the image loads, else why.

    Partition size <= 16 MiB, then :func:`~otaforge.formats.app_image.verify_image` (magic,
    chip id and revision, segments, checksum, fit with the signature, SHA-256); with
    ``secure_boot_v2`` the signature sector against the eFuse key digests (revoked slots
    refused), with ``signed_app_v1`` the 68-byte ECDSA trailer against the embedded key.
    """
    from otaforge.formats.app_image import verify_image

    if part.size > SIXTEEN_MB:
        return f"partition size 0x{part.size:x} invalid, larger than 16MB"
    data = read(part.offset, part.size)
    chip: ChipSpec | None = config.chip
    rev, addr, blk = config.chip_rev or 0, part.offset, config.efuse_blk_rev
    try:
        if config.chip_rev is None:  # unknown revision: check only the chip id here
            found = int.from_bytes(data[12:14], "little")
            if data[:1] == b"\xe9" and found != config.chip.chip_id:
                return f"mismatch chip ID, expected {config.chip.chip_id}, found {found}"
            chip = None
        if not (config.secure_boot_v2 or config.signed_app_v1):
            try:
                verify_image(data, chip=chip, chip_rev=rev, partition_size=part.size, addr=addr,
                             efuse_blk_rev=blk)
            except TruncatedError:
                # segments run past the partition end: the bootloader reads on through flash
                # and then refuses the length ("doesn't fit in partition length")
                verify_image(read(part.offset, SIXTEEN_MB), chip=chip, chip_rev=rev,
                             partition_size=part.size, addr=addr, efuse_blk_rev=blk)
            return None
        image_len = verify_image(data, chip=chip, chip_rev=rev, addr=addr,
                                 efuse_blk_rev=blk).image_len
        if config.secure_boot_v2:
            sig_len = align_up(image_len, SECTOR_SIZE) - image_len + SECTOR_SIZE
        else:
            sig_len = 68
        verify_image(data, chip=chip, chip_rev=rev, partition_size=part.size, sig_len=sig_len,
                     addr=addr, efuse_blk_rev=blk)
        _verify_signature(data[: image_len + sig_len], image_len, config, efuse)
    except OtaforgeError as err:
        return str(err)
    return None


def _verify_signature(signed: bytes, image_len: int, config: BootConfig,
                      efuse: EfuseState) -> None:
    """Secure Boot v2 against eFuse key digests, or the v1 ECDSA trailer (raises on failure)."""
    if config.secure_boot_v2:
        from otaforge.crypto.sbv2 import verify_v2

        # ESP32 (ECO3) checks signature block 0 only (SECURE_BOOT_NUM_BLOCKS 1); others 3.
        verify_v2(signed, digests=list(efuse.key_digests), revoked=set(efuse.revoked),
                  image_len=image_len, strict=False,
                  max_blocks=1 if config.chip.name == "esp32" else 3)
        return
    from otaforge.crypto.keys import load_public_key, load_v1_public_key
    from otaforge.crypto.sbv1 import verify_v1

    raw = config.v1_public_key
    if raw is None:
        raise SignatureInvalid("the bootloader has no signature verification key")
    key = load_public_key(raw) if raw.lstrip().startswith(b"-----") else load_v1_public_key(raw)
    verify_v1(signed, keys=[key], image_len=image_len)


def _state_text(state: int) -> str:
    try:
        return OtaImgState(state).name
    except ValueError:
        return f"0x{state:08x}"


def _initial(entry: OtaSelectEntry) -> bool:
    """Blank or corrupt: ``ota_seq == UINT32_MAX || crc != crc32(ota_seq)``."""
    return entry.ota_seq == SEQ_UNUSED or entry.crc != ota_crc(entry.ota_seq)


def _slot(seq: int, app_count: int) -> int:
    """``(ota_seq - 1) % app_count`` in uint32 arithmetic (seq 0 wraps to 0xFFFFFFFF)."""
    return ((seq - 1) & 0xFFFFFFFF) % app_count


def _read_entries(run: _Run, bs: BootState) -> tuple[OtaSelectEntry, OtaSelectEntry]:
    assert bs.ota_info is not None
    base = bs.ota_info.offset
    raw0 = run.flash.read(base, 32)
    raw1 = run.flash.read(base + OTADATA_SECTOR_SIZE, 32)
    return OtaSelectEntry.from_bytes(raw0), OtaSelectEntry.from_bytes(raw1)


def _write_otadata(run: _Run, bs: BootState, entry: OtaSelectEntry, index: int) -> None:
    assert bs.ota_info is not None
    addr = bs.ota_info.offset + OTADATA_SECTOR_SIZE * index
    run.flash.erase(addr)
    run.flash.program(addr, entry.to_bytes())


def _secure_version_of(run: _Run, part: PartitionEntry | None) -> int | None:
    """``bootloader_common_get_partition_description`` -> secure_version, None on failure."""
    if part is None or part.offset == 0:
        return None
    raw = run.flash.read(part.offset + 0x20, 8)
    magic, secure_version = struct.unpack("<II", raw)
    return int(secure_version) if magic == 0xABCD5432 else None


def _check_anti_rollback(run: _Run, part: PartitionEntry | None) -> str | None:
    """``check_anti_rollback``: None when the partition may boot, else why not."""
    if not run.config.anti_rollback:
        return None
    version = _secure_version_of(run, part)
    if version is None:
        run.error("boot", "Failed to get partition description", note=False)
        return "no app description (secure_version unreadable)"
    if version < run.secure_version:
        return f"secure_version {version} < eFuse secure version {run.secure_version}"
    return None


def _update_anti_rollback(run: _Run, part: PartitionEntry | None) -> None:
    """``update_anti_rollback`` -> ``esp_efuse_update_secure_version``."""
    version = _secure_version_of(run, part)
    if version is None:
        run.error("boot", "Failed to get partition description", note=False)
        return
    if version > run.efuse.secure_version_bits:
        run.error("efuse", f"Max secure version is {run.efuse.secure_version_bits}. "
                  f"Given {version} version can not be written.")
        return
    if version > run.secure_version:
        run.secure_version = version
        run.burned = version
        run.info("efuse", f"Anti-rollback: secure version in eFuse raised to {version}")


def _get_selected(run: _Run, bs: BootState) -> int:
    """``bootloader_utility_get_selected_boot_partition``."""
    if bs.ota_info is None or bs.ota_info.offset == 0:
        run.notes.append("no otadata partition: trying the factory app")
        return FACTORY_INDEX
    if bs.ota_info.size < 2 * SECTOR_SIZE:
        run.error("boot", f"ota_info partition size {bs.ota_info.size} is too small "
                  f"(minimum {2 * SECTOR_SIZE} bytes)")
        return INVALID_INDEX
    run.initial_contents = False
    entries = list(_read_entries(run, bs))
    if run.config.rollback:
        for i in range(2):
            if entries[i].ota_state == OtaImgState.PENDING_VERIFY:
                entries[i] = entries[i].with_state(OtaImgState.ABORTED)
                _write_otadata(run, bs, entries[i], i)
                run.notes.append(f"otadata[{i}] PENDING_VERIFY -> ABORTED (app never confirmed)")
    boot_index = FACTORY_INDEX
    active: int | None
    if not run.config.anti_rollback:
        if (entries[0].is_invalid() and entries[1].is_invalid()) or bs.app_count == 0:
            if bs.factory is not None and bs.factory.offset != 0:
                run.info("boot", "Defaulting to factory image")
                return FACTORY_INDEX
            run.info("boot", "No factory image, trying OTA 0")
            run.initial_contents = _initial(entries[0]) and _initial(entries[1])
            return 0
        active = select_otadata(entries, entries[0].is_valid(), entries[1].is_valid())
    else:
        run.info("boot", f"Secure version (from eFuse) = {run.secure_version}", note=False)
        if _initial(entries[0]) and _initial(entries[1]):
            run.info("boot", "otadata[0..1] in initial state")
            run.initial_contents = True
            return FACTORY_INDEX
        active = _active_with_anti_rollback(run, bs, entries)
    if active is not None:
        entry = entries[active]
        boot_index = _slot(entry.ota_seq, bs.app_count)
        run.notes.append(f"otadata[{active}] active: seq {entry.ota_seq} -> OTA slot "
                         f"{boot_index} (state {_state_text(entry.ota_state)})")
        if run.config.rollback and entry.ota_state == OtaImgState.NEW:
            entries[active] = entry.with_state(OtaImgState.PENDING_VERIFY)
            _write_otadata(run, bs, entries[active], active)
            run.notes.append(f"otadata[{active}] NEW -> PENDING_VERIFY")
        if run.config.anti_rollback and entry.ota_state == OtaImgState.VALID:
            _update_anti_rollback(run, bs.ota.get(boot_index))
    elif bs.factory is not None and bs.factory.offset != 0:
        run.error("boot", "ota data partition invalid, falling back to factory")
    else:
        run.error("boot", "ota data partition invalid and no factory, will try all partitions")
    return boot_index


def _active_with_anti_rollback(run: _Run, bs: BootState,
                               entries: list[OtaSelectEntry]) -> int | None:
    """``get_active_otadata_with_check_anti_rollback``."""
    usable = [False, False]
    for i, entry in enumerate(entries):
        if not entry.is_valid():
            continue
        if bs.app_count == 0:
            # C divides by app_count here (undefined); treat the entry as unusable.
            continue
        slot = _slot(entry.ota_seq, bs.app_count)
        why = _check_anti_rollback(run, bs.ota.get(slot))
        if why is None:
            usable[i] = True
        else:
            run.notes.append(f"otadata[{i}] ignored: OTA slot {slot} {why}")
    return select_otadata(entries, usable[0], usable[1])


def _index_to_partition(bs: BootState, index: int) -> PartitionEntry | None:
    if index == FACTORY_INDEX:
        return bs.factory
    if index == TEST_APP_INDEX:
        return bs.test
    if 0 <= index < 16 and index < bs.app_count:
        return bs.ota.get(index)
    return None


def _index_name(index: int) -> str:
    if index == FACTORY_INDEX:
        return "Factory app partition"
    if index == TEST_APP_INDEX:
        return "Factory test app partition"
    return f"OTA app partition slot {index}"


def _try(run: _Run, part: PartitionEntry | None) -> str | None:
    """``check_anti_rollback(part) && try_load_partition(part)``: None on success."""
    why = _check_anti_rollback(run, part)
    if why is not None:
        return why
    if part is None or part.size == 0:
        return "zero-length or missing partition"
    why = image_load_error(run.flash.read, part, run.config, run.efuse)
    if why is not None:
        run.error("esp_image", why, note=False)
        return why
    run.info("boot", f"Loaded app from partition at offset 0x{part.offset:x}", note=False)
    return None


def _set_actual_ota_seq(run: _Run, bs: BootState, index: int) -> None:
    if index > FACTORY_INDEX and run.initial_contents:
        entry = OtaSelectEntry.make(index + 1, OtaImgState.VALID)
        _write_otadata(run, bs, entry, 0)
        run.info("boot", f"Set actual ota_seq={index + 1} in otadata[0]")
        if run.config.anti_rollback:
            _update_anti_rollback(run, bs.ota.get(index))


def _load_boot_image(run: _Run, bs: BootState, start: int) -> PartitionEntry | None:
    """``bootloader_utility_load_boot_image``: the first candidate that loads, or None."""
    if start == TEST_APP_INDEX:
        why = _try(run, bs.test)
        if why is None:
            return bs.test
        run.error("boot", f"No bootable test partition in the partition table ({why})")
        return None
    order = [*range(start, FACTORY_INDEX - 1, -1), *range(start + 1, bs.app_count)]
    for index in order:
        part = _index_to_partition(bs, index)
        if part is None or part.size == 0:
            continue
        why = _try(run, part)
        if why is None:
            _set_actual_ota_seq(run, bs, index)
            return part
        run.error("boot", f"{_index_name(index)} is not bootable", note=False)
        run.notes.append(f"{_index_name(index)} ({part.name}) is not bootable: {why}")
    if _try(run, bs.test) is None:
        run.log.append("W boot: Falling back to test app as only bootable partition")
        run.notes.append("Falling back to test app as only bootable partition")
        return bs.test
    run.error("boot", "No bootable app partitions in the partition table")
    return None


def _label_in(list_erase: str, label: str) -> bool:
    """``bootloader_common_label_search``: whole names separated by commas or spaces."""
    return label in list_erase.replace(",", " ").split()


def _factory_reset(run: _Run, bs: BootState) -> None:
    """``bootloader_common_erase_part_type_data``: erase listed data partitions (+ otadata)."""
    run.info("boot", "Detect a condition of the factory reset")
    for part in bs.entries:
        if part.type != 0x01:
            continue
        if (run.config.ota_data_erase and part.subtype == 0x00) or _label_in(
            run.config.data_factory_reset, part.name
        ):
            if part.offset % SECTOR_SIZE or part.size % SECTOR_SIZE:
                run.error("boot", f"Not all partitions were erased ({part.name} is not "
                          "sector aligned)")
                continue
            for addr in range(part.offset, part.offset + part.size, SECTOR_SIZE):
                run.flash.erase(addr)
            run.notes.append(f"factory reset erased {part.name}")


def _selected_boot_partition(run: _Run, bs: BootState, factory_reset_requested: bool,
                             test_requested: bool) -> int:
    """``selected_boot_partition`` of bootloader_start.c (GPIO overrides after selection)."""
    index = _get_selected(run, bs)
    if index == INVALID_INDEX:
        return index
    if run.config.factory_reset and factory_reset_requested:
        _factory_reset(run, bs)
        return _get_selected(run, bs)
    if run.config.app_test and test_requested:
        run.info("boot", "Detect a boot condition of the test firmware")
        if bs.test is not None and bs.test.offset != 0:
            return TEST_APP_INDEX
        run.error("boot", "Test firmware is not found in partition table")
        return INVALID_INDEX
    return index


def _state_after(run: _Run, bs: BootState, booted: PartitionEntry | None) -> int | None:
    """The booted OTA slot's state as ``esp_ota_get_state_partition`` reads it afterwards."""
    if booted is None or bs.ota_info is None or bs.app_count == 0:
        return None
    slot = next((i for i, p in bs.ota.items() if p is booted), None)
    if slot is None or bs.ota_info.size < 2 * SECTOR_SIZE:
        return None
    for entry in _read_entries(run, bs):
        if entry.ota_seq != SEQ_UNUSED and entry.crc_ok and _slot(entry.ota_seq,
                                                                   bs.app_count) == slot:
            return entry.ota_state
    return None


def select_boot(read: Reader, config: BootConfig, efuse: EfuseState, *,
                factory_reset_requested: bool = False,
                test_requested: bool = False) -> BootDecision:
    """Decide what the bootloader boots, reading flash through ``read(addr, n)`` only.

    Args:
        read: flash reader; short reads (past the end of a dump) count as erased 0xFF.
        config: the bootloader's Kconfig.
        efuse: the eFuses at power-on.
        factory_reset_requested: the factory reset pin is held (``config.factory_reset``).
        test_requested: the test app pin is held (``config.app_test``).

    Returns:
        The decision; ``partition`` None means the device is bricked (reset loop).
    """
    run = _Run(_Flash(read), config, efuse, efuse.secure_version)
    try:
        entries = read_partition_table(run.flash.read, config.partition_table_offset,
                                       config.flash_size)
    except FormatError as err:
        run.error("flash_parts", str(err), note=False)
        run.error("boot", "load partition table error!", note=False)
        return _decision(run, None, f"load partition table error! ({err})", None)
    bs = BootState.from_entries(entries)
    if not entries:
        run.notes.append("partition table is empty (erased flash?)")
    index = _selected_boot_partition(run, bs, factory_reset_requested, test_requested)
    if index == INVALID_INDEX:
        return _decision(run, None, "; ".join(run.notes) or "no boot index", None)
    booted = _load_boot_image(run, bs, index)
    if booted is not None:
        run.notes.append(f"booting {booted.name} at 0x{booted.offset:x}")
    return _decision(run, booted, "; ".join(run.notes), _state_after(run, bs, booted))


def _decision(run: _Run, part: PartitionEntry | None, reason: str,
              state: int | None) -> BootDecision:
    return BootDecision(part, reason, tuple(run.flash.ops), run.burned, state, tuple(run.log))
