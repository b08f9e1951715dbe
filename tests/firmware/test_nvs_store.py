"""NVS of firmware on the emulator: kept in flash, compacted, and safe against power cuts."""

from __future__ import annotations

import pytest

from otaforge.device.flash import MemoryFlash
from otaforge.device.powercut import CUT_MODES, PowerCutPlan
from otaforge.errors import EspError, PowerCut
from otaforge.firmware.nvs_store import NvsPartition
from otaforge.formats.partition_table import PartitionEntry

NVS = PartitionEntry("nvs", 1, 2, 0x9000, 0x6000)
U32 = 0x04


def _store(flash: MemoryFlash) -> NvsPartition:
    store = NvsPartition(flash, NVS)
    store.init()
    return store


def test_values_survive_a_reboot_and_types_are_checked() -> None:
    flash = MemoryFlash(0x20000)
    store = _store(flash)
    store.open("app", 1)
    store.set("app", "runs", U32, (5).to_bytes(4, "little"))
    store.set("app", "name", 0x21, b"board\x00")
    again = _store(flash)
    assert again.get("app", "runs", U32) == (U32, (5).to_bytes(4, "little"))
    with pytest.raises(EspError) as err:
        again.get("app", "runs", 0x21)
    assert err.value.name == "ESP_ERR_NVS_NOT_FOUND"
    again.erase_key("app", "runs")
    assert ("app", "runs") not in _store(flash).values


def test_read_only_open_of_a_new_namespace_and_long_keys_are_refused() -> None:
    store = _store(MemoryFlash(0x20000))
    with pytest.raises(EspError) as err:
        store.open("fresh", 0)
    assert err.value.name == "ESP_ERR_NVS_NOT_FOUND"
    with pytest.raises(EspError) as err:
        store.set("app", "a_key_that_is_too_long", U32, b"\0\0\0\0")
    assert err.value.name == "ESP_ERR_NVS_KEY_TOO_LONG"


def test_foreign_data_needs_an_erase_as_on_esp_idf() -> None:
    flash = MemoryFlash(0x20000)
    flash.program(NVS.offset + 100, b"\x00not ours")
    with pytest.raises(EspError) as err:
        _store(flash)
    assert err.value.name == "ESP_ERR_NVS_NO_FREE_PAGES"
    store = NvsPartition(flash, NVS)
    store.erase()
    store.init()


def test_compaction_keeps_the_live_state() -> None:
    flash = MemoryFlash(0x20000)
    store = _store(flash)
    for i in range(2000):  # many times the half size: compacts again and again
        store.set("app", f"k{i % 7}", U32, i.to_bytes(4, "little"))
    again = _store(flash)
    assert {k: int.from_bytes(v[1], "little") for (_, k), v in again.values.items()} == \
        {f"k{i}": 1999 - ((1999 - i) % 7) for i in range(7)}


@pytest.mark.parametrize("mode", CUT_MODES)
def test_a_power_cut_at_any_flash_operation_leaves_old_or_new(mode: str) -> None:
    base = MemoryFlash(0x20000)
    store = _store(base)
    for i in range(400):  # near a compaction
        store.set("app", "counter", U32, i.to_bytes(4, "little"))
    probe = base.fork()
    probe_store = _store(probe)
    probe.reset_counters()
    for i in range(400, 500):
        probe_store.set("app", "counter", U32, i.to_bytes(4, "little"))
    ops = probe.op_count
    assert ops > 100  # at least one compaction's erase and copy
    for cut in range(ops):
        flash = base.fork()
        writer = _store(flash)
        flash.arm(PowerCutPlan(op_index=cut, mode=mode))  # type: ignore[arg-type]
        last_done = 399
        with pytest.raises(PowerCut):
            for i in range(400, 500):
                writer.set("app", "counter", U32, i.to_bytes(4, "little"))
                last_done = i
        flash.power_restore()
        value = int.from_bytes(_store(flash).get("app", "counter", U32)[1], "little")
        assert value in (last_done, last_done + 1), (cut, value, last_done)
