"""Power cuts anywhere in an agent-driven update (matrix rows 1-3 and 48 at the agent level):
during the download, the agent's own state writes, esp_ota_end, set_boot_partition, the
reboot and the confirmation. After every cut the device must boot an app (old or new, never
bricked), and running the agent again must end with the new app confirmed."""

from __future__ import annotations

from typing import Any

from otaforge.agent.session import run_cycle
from otaforge.agent.updater import BootOutcome
from otaforge.device.emulator import Device, DeviceConfig
from otaforge.device.powercut import CUT_MODES, PowerCutPlan
from otaforge.errors import PowerCut
from otaforge.formats.otadata import OtaImgState
from tests.e2e.conftest import image

CASES = 24  # cut points spread over the whole update (keeps the sweep to a few seconds)


def _fresh(rig: Any, base: Any) -> Device:
    device = Device(base.fork(), "esp32", DeviceConfig(rollback=True), apps=rig.device.apps)
    assert device.power_on().status == "running"
    rig.device = device
    return device


def test_power_cut_anywhere_in_an_update_never_bricks_and_recovers(rig_factory: Any) -> None:
    rig = rig_factory(factory=image("1.0.0"))
    rig.publish(image("1.1.0", seed=1, size=0x20000))
    base = rig.device.flash.fork()
    device = _fresh(rig, base)
    device.flash.reset_counters()
    assert run_cycle(rig.agent()).after_reboot == BootOutcome.CONFIRMED
    total = device.flash.op_count
    assert total > CASES
    points = sorted({round(i * (total - 1) / (CASES - 1)) for i in range(CASES)})
    for n, op in enumerate(points):
        mode = CUT_MODES[n % len(CUT_MODES)]
        device = _fresh(rig, base)
        device.flash.arm(PowerCutPlan(op, mode, seed=n))
        try:
            run_cycle(rig.agent())
        except PowerCut:
            pass
        device.flash.arm(None)
        boot = device.power_on()
        where = f"cut {mode} op {op}/{total}"
        assert boot.status == "running", f"{where}: {boot.status} {boot.reason}"
        assert rig.running()[0] in ("1.0.0", "1.1.0"), where
        for _ in range(3):
            result = run_cycle(rig.agent())
            if rig.running()[0] == "1.1.0" and _state(device) == OtaImgState.VALID:
                break
        assert rig.running() == ("1.1.0", "ota_0"), f"{where}: {rig.kinds()[-6:]}"
        assert _state(device) == OtaImgState.VALID, where
        assert result.boot != BootOutcome.ROLLED_BACK or mode, where


def _state(device: Device) -> int | None:
    part = device.running_partition
    if part is None or not part.is_ota_slot:
        return None
    return int(device.ota.esp_ota_get_state_partition(part))
