"""esp_ota_resume (ESP-IDF v5.5+, esp_ota_ops.c) on the emulated device.

A download cut by a power failure goes on from the bytes already on flash: nothing below the
resume offset is erased or programmed again (the flash is strict: a second program of a byte
without an erase fails), ``esp_ota_end`` still verifies the whole image, and the argument checks
and error codes follow the C function.
"""

from __future__ import annotations

import pytest

from otaforge.device.emulator import AppRegistry, Device
from otaforge.device.esp_err import CODES, OTA_WITH_SEQUENTIAL_WRITES
from otaforge.device.flash import SECTOR_SIZE, MemoryFlash
from otaforge.device.powercut import CUT_MODES, CutMode, PowerCutPlan
from otaforge.errors import EspError, PowerCut
from otaforge.formats import record
from otaforge.formats.partition_table import PartitionEntry
from tests.device._emu_helpers import image, make_device

IMG = image("2.0", size=40 * 1024 + 123)  # not a whole number of sectors


def esp_err(name: str) -> pytest.RaisesExc[EspError]:
    return pytest.raises(EspError, match=name)


@pytest.fixture
def dev() -> Device:
    d = make_device(factory=image("1.0"), strict=True)
    assert d.power_on().partition.name == "factory"  # type: ignore[union-attr]
    return d


def flash_of(dev: Device) -> MemoryFlash:
    assert isinstance(dev.flash, MemoryFlash)
    return dev.flash


class OpLog:
    """Every counted flash operation while attached: (kind, addr, length)."""

    def __init__(self, flash: MemoryFlash) -> None:
        self.ops: list[tuple[str, int, int]] = []
        flash.observer = self.record

    def record(self, _index: int, kind: str, addr: int, data: bytes) -> None:
        self.ops.append((kind, addr, len(data) if kind == "program" else SECTOR_SIZE))

    def erased(self) -> list[int]:
        return [addr for kind, addr, _ in self.ops if kind != "program"]

    def programmed(self) -> list[tuple[int, int]]:
        return [(addr, n) for kind, addr, n in self.ops if kind == "program"]


def write_until_cut(dev: Device, plan: PowerCutPlan, chunk: int) -> int:
    """Begin (sequential erase) on ota_0 and write IMG in ``chunk`` pieces until power fails.

    Returns:
        The bytes written by calls that returned (what an app would have persisted).
    """
    ota_0 = dev.partition("ota_0")
    handle = dev.ota.esp_ota_begin(ota_0, OTA_WITH_SEQUENTIAL_WRITES)
    flash_of(dev).arm(plan)
    done = 0
    with pytest.raises(PowerCut):
        for pos in range(0, len(IMG), chunk):
            dev.ota.esp_ota_write(handle, IMG[pos : pos + chunk])
            done = pos + len(IMG[pos : pos + chunk])
    flash_of(dev).arm(None)
    return done


def resume_and_finish(dev: Device, offset: int, erase_size: int, chunk: int) -> OpLog:
    """esp_ota_resume on ota_0 at ``offset``, write the rest, end, set boot; the op log."""
    ota_0 = dev.partition("ota_0")
    log = OpLog(flash_of(dev))
    handle = dev.ota.esp_ota_resume(ota_0, erase_size, offset)
    for pos in range(offset, len(IMG), chunk):
        dev.ota.esp_ota_write(handle, IMG[pos : pos + chunk])
    dev.ota.esp_ota_end(handle)
    flash_of(dev).observer = None
    dev.ota.esp_ota_set_boot_partition(ota_0)
    return log


# power cut at flash op N of the download (1000-byte writes, sequential erase), in each mode
POWER_CUT_MID_DOWNLOAD = [(op, mode) for op in (7, 19, 37) for mode in CUT_MODES]


@pytest.mark.parametrize(("op", "mode"), POWER_CUT_MID_DOWNLOAD)
def test_power_cut_mid_download_resume_writes_only_the_rest(dev: Device, op: int,
                                                            mode: CutMode) -> None:
    """Resume at the last persisted sector boundary: sectors below it are never erased or
    programmed again; the rest is erased once, sector by sector, and programmed once."""
    done = write_until_cut(dev, PowerCutPlan(op, mode, seed=op), chunk=1000)
    dev.power_on()
    offset = done - done % SECTOR_SIZE  # the agent's checkpoint rule
    assert offset > 0
    ota_0 = dev.partition("ota_0")
    log = resume_and_finish(dev, offset, OTA_WITH_SEQUENTIAL_WRITES, chunk=1500)
    remaining_sectors = -(-(len(IMG) - offset) // SECTOR_SIZE)
    first = ota_0.offset + offset
    assert log.erased() == [first + i * SECTOR_SIZE for i in range(remaining_sectors)]
    assert all(addr >= first for addr, _ in log.programmed())
    assert sum(n for _, n in log.programmed()) == len(IMG) - offset
    assert dev.flash.read(ota_0.offset, len(IMG)) == IMG
    result = dev.reboot()
    assert result.partition == ota_0
    assert dev.running_desc.version == "2.0"  # type: ignore[union-attr]


def test_resume_at_unaligned_offset_keeps_the_partly_written_sector(dev: Device) -> None:
    """The sector holding an unaligned offset was erased before the cut: esp_ota_write erases
    only the sectors after it (first_sector != last_sector branch of esp_ota_write)."""
    ota_0 = dev.partition("ota_0")
    handle = dev.ota.esp_ota_begin(ota_0, OTA_WITH_SEQUENTIAL_WRITES)
    dev.ota.esp_ota_write(handle, IMG[:5000])
    dev.power_off()
    dev.power_on()  # the handle died with the app
    with esp_err("ESP_ERR_INVALID_ARG"):
        dev.ota.esp_ota_write(handle, IMG[5000:6000])
    log = resume_and_finish(dev, 5000, OTA_WITH_SEQUENTIAL_WRITES, chunk=4096)
    assert ota_0.offset + SECTOR_SIZE not in log.erased()
    assert min(log.erased()) == ota_0.offset + 2 * SECTOR_SIZE
    assert log.programmed()[0] == (ota_0.offset + 5000, 4096)
    assert dev.reboot().partition == ota_0


def test_resume_after_bulk_erase_begin_erases_nothing(dev: Device) -> None:
    """Any erase_size other than OTA_WITH_SEQUENTIAL_WRITES: no erase at all (the interrupted
    esp_ota_begin erased the slot up front)."""
    ota_0 = dev.partition("ota_0")
    handle = dev.ota.esp_ota_begin(ota_0, len(IMG))
    dev.ota.esp_ota_write(handle, IMG[: 3 * SECTOR_SIZE])
    dev.power_off()
    dev.power_on()
    log = resume_and_finish(dev, 3 * SECTOR_SIZE, len(IMG), chunk=4096)
    assert log.erased() == []
    assert sum(n for _, n in log.programmed()) == len(IMG) - 3 * SECTOR_SIZE


def test_resume_itself_touches_no_flash_not_even_otadata(dev: Device) -> None:
    """Unlike esp_ota_begin (rollback build), resume neither erases the slot nor invalidates
    the inactive otadata sector."""
    flash = flash_of(dev)
    flash.reset_counters()
    handle = dev.ota.esp_ota_resume(dev.partition("ota_0"), OTA_WITH_SEQUENTIAL_WRITES, 0x3000)
    assert flash.op_count == 0
    dev.ota.esp_ota_abort(handle)


def test_end_after_resume_validates_the_whole_image(dev: Device) -> None:
    """Bytes skipped or corrupted around the resume point are caught by esp_ota_end."""
    ota_0 = dev.partition("ota_0")
    offset = write_until_cut(dev, PowerCutPlan(9, "before"), chunk=SECTOR_SIZE)
    dev.power_on()
    # resumed one sector too far: that sector stays 0xFF (the server resent the wrong range)
    handle = dev.ota.esp_ota_resume(ota_0, OTA_WITH_SEQUENTIAL_WRITES, offset + SECTOR_SIZE)
    dev.ota.esp_ota_write(handle, IMG[offset + SECTOR_SIZE :])
    with esp_err("ESP_ERR_OTA_VALIDATE_FAILED"):
        dev.ota.esp_ota_end(handle)
    with esp_err("ESP_ERR_OTA_VALIDATE_FAILED"):
        dev.ota.esp_ota_set_boot_partition(ota_0)
    with esp_err("ESP_ERR_NOT_FOUND"):
        dev.ota.esp_ota_end(handle)  # end frees the handle even on failure


def test_end_right_after_resume_at_full_length_verifies_what_is_on_flash(dev: Device) -> None:
    """wrote_size is the offset, so end does not refuse an empty handle: it verifies flash."""
    ota_0 = dev.partition("ota_0")
    handle = dev.ota.esp_ota_begin(ota_0, OTA_WITH_SEQUENTIAL_WRITES)
    dev.ota.esp_ota_write(handle, IMG)
    dev.power_off()
    dev.power_on()
    dev.ota.esp_ota_end(dev.ota.esp_ota_resume(ota_0, OTA_WITH_SEQUENTIAL_WRITES, len(IMG)))
    with esp_err("ESP_ERR_OTA_VALIDATE_FAILED"):  # half an image on flash
        dev.ota.esp_ota_end(dev.ota.esp_ota_resume(dev.partition("ota_1"),
                                                   OTA_WITH_SEQUENTIAL_WRITES, len(IMG)))


def test_resume_at_zero_is_a_fresh_sequential_write(dev: Device) -> None:
    """Offset 0: the first write is checked for the 0xE9 magic, as after esp_ota_begin."""
    handle = dev.ota.esp_ota_resume(dev.partition("ota_0"), OTA_WITH_SEQUENTIAL_WRITES, 0)
    with esp_err("ESP_ERR_OTA_VALIDATE_FAILED"):
        dev.ota.esp_ota_write(handle, b"\x00" + IMG[1:4096])
    with esp_err("ESP_ERR_INVALID_ARG"):  # nothing written
        dev.ota.esp_ota_end(handle)


def _target(dev: Device, name: str | None) -> PartitionEntry | None:
    if name is None:
        return None
    if name == "ghost":  # an OTA slot entry that is not in the table
        return record.replace(dev.partition("ota_0"), offset=0x700000, size=0x10000)
    if name == "running":
        return dev.running_partition
    return dev.partition(name)


# (fault, partition name or None/"ghost", offset, expected error)
RESUME_REFUSALS = [
    ("null_partition", None, 0, "ESP_ERR_INVALID_ARG"),
    ("negative_offset", "ota_0", -1, "ESP_ERR_INVALID_ARG"),
    ("offset_past_partition_end", "ota_0", 0x1C0001, "ESP_ERR_INVALID_ARG"),
    ("partition_not_in_table", "ghost", 0x1000, "ESP_ERR_NOT_FOUND"),
    ("factory_is_not_an_ota_slot", "factory", 0x1000, "ESP_ERR_INVALID_ARG"),
    ("running_partition", "running", 0x1000, "ESP_ERR_OTA_PARTITION_CONFLICT"),
]


@pytest.mark.parametrize(("fault", "name", "offset", "error"), RESUME_REFUSALS,
                         ids=[row[0] for row in RESUME_REFUSALS])
def test_resume_refusals(fault: str, name: str | None, offset: int, error: str) -> None:
    """Each refusal returns the C error code, touches no flash and leaves no handle."""
    dev = make_device(factory=image("1.0"), strict=True)
    dev.power_on()
    if name == "running":
        part = dev.ota.esp_ota_get_next_update_partition()
        handle = dev.ota.esp_ota_begin(part, OTA_WITH_SEQUENTIAL_WRITES)
        dev.ota.esp_ota_write(handle, IMG)
        dev.ota.esp_ota_end(handle)
        dev.ota.esp_ota_set_boot_partition(part)
        assert dev.reboot().partition == part
    target = _target(dev, name)
    flash = flash_of(dev)
    flash.reset_counters()
    with esp_err(error) as err:
        dev.ota.esp_ota_resume(target, OTA_WITH_SEQUENTIAL_WRITES, offset)
    assert err.value.code == CODES[error], fault
    assert flash.op_count == 0
    assert dev.ota.writer.handles == {}


def test_offset_equal_to_partition_size_is_accepted(dev: Device) -> None:
    """``image_offset > partition->size`` is the refusal; the size itself is allowed."""
    ota_1 = dev.partition("ota_1")
    handle = dev.ota.esp_ota_resume(ota_1, OTA_WITH_SEQUENTIAL_WRITES, ota_1.size)
    with esp_err("ESP_ERR_INVALID_SIZE"):
        dev.ota.esp_ota_write(handle, b"\xe9")
    dev.ota.esp_ota_abort(handle)


def test_second_handle_on_the_partition_is_already_in_progress(dev: Device) -> None:
    """The emulator's v6.1 rule of esp_ota_begin holds for resume too, both ways round."""
    ota_0 = dev.partition("ota_0")
    handle = dev.ota.esp_ota_begin(ota_0, OTA_WITH_SEQUENTIAL_WRITES)
    with esp_err("ESP_ERR_OTA_ALREADY_IN_PROGRESS") as err:
        dev.ota.esp_ota_resume(ota_0, OTA_WITH_SEQUENTIAL_WRITES, 0x1000)
    assert err.value.code == 0x1507
    dev.ota.esp_ota_abort(handle)
    resumed = dev.ota.esp_ota_resume(ota_0, OTA_WITH_SEQUENTIAL_WRITES, 0x1000)
    with esp_err("ESP_ERR_OTA_ALREADY_IN_PROGRESS"):
        dev.ota.esp_ota_begin(ota_0, OTA_WITH_SEQUENTIAL_WRITES)
    other = dev.ota.esp_ota_resume(dev.partition("ota_1"), OTA_WITH_SEQUENTIAL_WRITES, 0)
    assert other != resumed
    dev.ota.esp_ota_abort(resumed)
    dev.ota.esp_ota_abort(other)


def test_resume_while_running_app_pending_verify_is_not_refused() -> None:
    """esp_ota_resume has no ROLLBACK_INVALID_STATE check (only esp_ota_begin has one)."""
    dev = make_device(factory=image("1.0"), apps=AppRegistry({"2.0": "never_confirms"}))
    dev.power_on()
    part = dev.ota.esp_ota_get_next_update_partition()
    handle = dev.ota.esp_ota_begin(part, OTA_WITH_SEQUENTIAL_WRITES)
    dev.ota.esp_ota_write(handle, IMG)
    dev.ota.esp_ota_end(handle)
    dev.ota.esp_ota_set_boot_partition(part)
    dev.reboot()
    nxt = dev.ota.esp_ota_get_next_update_partition()
    with esp_err("ESP_ERR_OTA_ROLLBACK_INVALID_STATE"):
        dev.ota.esp_ota_begin(nxt, OTA_WITH_SEQUENTIAL_WRITES)
    dev.ota.esp_ota_abort(dev.ota.esp_ota_resume(nxt, OTA_WITH_SEQUENTIAL_WRITES, 0x1000))
