"""The agent's persisted state in flash: torn records, full sector, power cuts."""

from __future__ import annotations

import pytest

from otaforge.agent.state import AgentState, FlashStateStore, Partial, Pending
from otaforge.device.flash import SECTOR_SIZE, MemoryFlash
from otaforge.device.powercut import PowerCutPlan
from otaforge.errors import PowerCut
from otaforge.formats.agent_record import RECORD_SIZE

ADDR = 0xE000


def _state(n: int) -> AgentState:
    return AgentState(partial=Partial("ab" * 32, f'"{n}"', 0x30000, n * 4096, "ota_0"),
                      pending=Pending("cd" * 32, "1.1.0", "7", "ota_1", "1.0.0"))


def test_round_trip_and_fresh_default() -> None:
    store = FlashStateStore(MemoryFlash(0x10000, strict=True), ADDR)
    assert store.load() == AgentState()
    store.save(_state(3))
    assert store.load() == _state(3)


def test_full_sector_is_erased_and_log_restarts() -> None:
    flash = MemoryFlash(0x10000, strict=True)
    store = FlashStateStore(flash, ADDR)
    for n in range(SECTOR_SIZE // RECORD_SIZE * 2 + 3):
        store.save(_state(n))
        assert store.load() == _state(n)


@pytest.mark.parametrize("mode", ["before", "after", "torn"])
def test_power_cut_while_saving_keeps_old_or_new_record(mode: str) -> None:
    flash = MemoryFlash(0x10000, strict=True)
    store = FlashStateStore(flash, ADDR)
    store.save(_state(1))
    flash.arm(PowerCutPlan(0, mode, torn_fraction=0.5))  # type: ignore[arg-type]
    with pytest.raises(PowerCut):
        store.save(_state(2))
    flash.power_restore()
    flash.arm(None)
    assert FlashStateStore(flash, ADDR).load() in (_state(1), _state(2))


def test_garbage_sector_reads_as_fresh_state() -> None:
    flash = MemoryFlash(0x10000, strict=False)
    flash.program(ADDR, b"OTFA" + b"\x10\x00" + b"\x00" * 4 + b"{not json" + b"\x00" * 7)
    assert FlashStateStore(flash, ADDR).load() == AgentState()


def test_unaligned_sector_is_rejected() -> None:
    with pytest.raises(ValueError, match="aligned"):
        FlashStateStore(MemoryFlash(0x10000), ADDR + 1)
