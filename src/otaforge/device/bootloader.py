"""ESP-IDF's second-stage bootloader decision as a pure function: which app boots, and why.

Mirrors, in ESP-IDF v6.0+ (master) behaviour:

* ``bootloader_start.c``: ``select_partition_number`` -> ``selected_boot_partition`` (factory
  reset pin, test app pin) -> ``bootloader_utility_load_boot_image``;
* ``bootloader_utility.c``: ``bootloader_utility_get_selected_boot_partition``,
  ``get_active_otadata_with_check_anti_rollback``, ``bootloader_utility_load_boot_image``,
  ``try_load_partition``, ``check_anti_rollback``, ``update_anti_rollback``,
  ``set_actual_ota_seq``, ``write_otadata``;
* ``bootloader_common_loader.c``: ``bootloader_common_ota_select_valid``/``_invalid``,
  ``bootloader_common_select_otadata`` (uint32 compare, ties go to otadata[0]),
  ``bootloader_common_erase_part_type_data``;
* the partition table (``esp_partition_table_verify``) in :mod:`otaforge.device.boot_table`,
  per-image checks (``bootloader_load_image``) in :mod:`otaforge.device.boot_image`.

Older releases: the decision logic has been stable since v4.x; the differences that show are
(a) in some v5.x releases and earlier the last-resort test-app fallback ran without the
anti-rollback check (master checks it; otaforge follows master), (b) older factory-reset code only
knew an active-low pin (a pin level is not modelled here: the caller says "held"), (c) pre-v5.0
logs lack "Failed to get partition description". Not modelled: ``CONFIG_BOOTLOADER_SKIP_VALIDATE_*``
(fast boot without verification), deep-sleep wake (which skips the GPIO checks), flash encryption,
the ESP32 3/4 eFuse coding scheme (which refuses secure-version burns), the load-address checks of
``ESP_IMAGE_LOAD`` against the bootloader's own RAM, ``bootloader_mmap``'s size limit (an otadata
partition over 3.2 MB on ESP32 is a reset loop), and the recovery bootloader / TEE paths.

:func:`select_boot` never writes: the otadata writes the bootloader makes are returned as
:class:`FlashOp` s (erase a 4 KiB sector, then program the 32-byte entry), in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from otaforge.device.boot_flash import BootFlash, FlashOp
from otaforge.device.boot_image import (
    BootConfig,
    EfuseState,
    app_secure_version,
    image_load_error,
)
from otaforge.device.boot_table import (
    FACTORY_INDEX,
    INVALID_INDEX,
    TEST_APP_INDEX,
    BootState,
    Reader,
    index_name,
    read_partition_table,
)
from otaforge.errors import FormatError
from otaforge.formats.otadata import (
    SEQ_UNUSED,
    OtaImgState,
    OtaSelectEntry,
    ota_crc,
    select_otadata,
    slot_for_seq,
)
from otaforge.formats.partition_table import PartitionEntry
from otaforge.formats.sector import SECTOR_SIZE

__all__ = [
    "FACTORY_INDEX", "INVALID_INDEX", "TEST_APP_INDEX", "BootConfig", "BootDecision",
    "BootState", "EfuseState", "FlashOp", "Reader", "image_load_error", "read_partition_table",
    "select_boot",
]


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


@dataclass
class _Run:
    """Mutable state of one boot: flash view, eFuse value, log."""

    flash: BootFlash
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


def _state_text(state: int) -> str:
    try:
        return OtaImgState(state).name
    except ValueError:
        return f"0x{state:08x}"


def _initial(entry: OtaSelectEntry) -> bool:
    """Blank or corrupt: ``ota_seq == UINT32_MAX || crc != crc32(ota_seq)``."""
    return entry.ota_seq == SEQ_UNUSED or entry.crc != ota_crc(entry.ota_seq)


_slot = slot_for_seq  # ``(ota_seq - 1) % app_count`` in uint32 arithmetic


def _read_entries(run: _Run, bs: BootState) -> tuple[OtaSelectEntry, OtaSelectEntry]:
    assert bs.ota_info is not None
    base = bs.ota_info.offset
    raw0 = run.flash.read(base, 32)
    raw1 = run.flash.read(base + SECTOR_SIZE, 32)
    return OtaSelectEntry.from_bytes(raw0), OtaSelectEntry.from_bytes(raw1)


def _write_otadata(run: _Run, bs: BootState, entry: OtaSelectEntry, index: int) -> None:
    """``write_otadata``: erase the sector holding the entry, then program its 32 bytes."""
    assert bs.ota_info is not None
    addr = bs.ota_info.offset + SECTOR_SIZE * index
    run.flash.erase(addr)
    run.flash.program(addr, entry.to_bytes())


def _check_anti_rollback(run: _Run, part: PartitionEntry | None) -> str | None:
    """``check_anti_rollback``: None when the partition may boot, else why not."""
    if not run.config.anti_rollback:
        return None
    version = app_secure_version(run.flash.read, part)
    if version is None:
        run.error("boot", "Failed to get partition description", note=False)
        return "no app description (secure_version unreadable)"
    if version < run.secure_version:
        return f"secure_version {version} < eFuse secure version {run.secure_version}"
    return None


def _update_anti_rollback(run: _Run, part: PartitionEntry | None) -> None:
    """``update_anti_rollback`` -> ``esp_efuse_update_secure_version``."""
    version = app_secure_version(run.flash.read, part)
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
    active: int | None
    if not run.config.anti_rollback:
        if (entries[0].is_invalid() and entries[1].is_invalid()) or bs.app_count == 0:
            if bs.has_factory:
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
    if active is None:
        if bs.has_factory:
            run.error("boot", "ota data partition invalid, falling back to factory")
        else:
            run.error("boot", "ota data partition invalid and no factory, will try all "
                      "partitions")
        return FACTORY_INDEX
    return _use_active(run, bs, entries, active)


def _use_active(run: _Run, bs: BootState, entries: list[OtaSelectEntry], active: int) -> int:
    """The active entry's slot; NEW -> PENDING_VERIFY (rollback), eFuse burn if VALID."""
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
    """``set_actual_ota_seq``: after blank otadata, record the slot that booted (seq, VALID)."""
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
    # down from start to the factory app, then up through the OTA slots after start
    order = [*range(start, FACTORY_INDEX - 1, -1), *range(start + 1, bs.app_count)]
    for index in order:
        part = bs.partition_at(index)
        if part is None or part.size == 0:
            continue
        why = _try(run, part)
        if why is None:
            _set_actual_ota_seq(run, bs, index)
            return part
        run.error("boot", f"{index_name(index)} is not bootable", note=False)
        run.notes.append(f"{index_name(index)} ({part.name}) is not bootable: {why}")
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
    slot = bs.slot_of(booted)
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
    run = _Run(BootFlash(read), config, efuse, efuse.secure_version)
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
