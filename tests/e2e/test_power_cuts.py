"""Power cuts anywhere in an agent-driven update (matrix rows 1-3, 9 and 48 at the agent level):
during the download, the agent's own state writes, esp_ota_end, set_boot_partition, the
reboot and the confirmation. After every cut the device must boot an app (old or new, never
bricked). Running the agent again must then end with the new app confirmed -- except when the
cut hit the new app after the bootloader had marked it PENDING_VERIFY and before it confirmed:
ESP-IDF then rolls back at the next boot, so the agent must report ``rolled_back`` and refuse
that version from then on (no reflash loop)."""

from __future__ import annotations

import contextlib
from typing import Any

from otaforge.agent.results import BootOutcome, Outcome
from otaforge.agent.updater import run_cycle
from otaforge.device.emulator import Device, DeviceConfig
from otaforge.device.powercut import CUT_MODES, PowerCutPlan
from otaforge.errors import PowerCut
from otaforge.formats.otadata import OtaImgState
from tests.e2e.conftest import image


def _fresh(rig: Any, base: Any, n: int) -> Device:
    """A device with a copy of ``base`` as its flash, registered on the server as new."""
    device = Device(base.fork(), "esp32", DeviceConfig(rollback=True), apps=rig.device.apps)
    assert device.power_on().status == "running"
    rig.device = device
    rig.device_id = f"{rig.fleet}-cut{n}"
    rig.token = rig.admin.create_device(rig.fleet, rig.device_id)["token"]
    return device


def test_power_cut_anywhere_in_an_update_never_bricks_and_recovers(rig_factory: Any) -> None:
    rig = rig_factory(factory=image("1.0.0"))
    rig.publish(image("1.1.0", seed=1, size=0x20000))
    base = rig.device.flash.fork()
    device = _fresh(rig, base, 0)
    device.flash.reset_counters()
    assert run_cycle(rig.agent()).after_reboot == BootOutcome.CONFIRMED
    total = device.flash.op_count
    points = list(range(total))  # every flash operation of the update, modes rotating
    recovered: list[int] = []
    reverted: list[int] = []
    for n, op in enumerate(points):
        mode = CUT_MODES[n % len(CUT_MODES)]
        device = _fresh(rig, base, n + 1)
        device.flash.arm(PowerCutPlan(op, mode, seed=n))
        with contextlib.suppress(PowerCut):
            run_cycle(rig.agent())
        device.flash.arm(None)
        boot = device.power_on()
        where = f"cut {mode} op {op}/{total}"
        assert boot.status == "running", f"{where}: {boot.status} {boot.reason}"
        assert rig.running()[0] in ("1.0.0", "1.1.0"), where
        final = None
        for _ in range(3):
            final = run_cycle(rig.agent())
            if rig.running()[0] == "1.1.0" and _state(device) == OtaImgState.VALID:
                break
        if rig.running() == ("1.1.0", "ota_0") and _state(device) == OtaImgState.VALID:
            recovered.append(op)
            continue
        assert final is not None, where
        assert rig.running() == ("1.0.0", "factory"), f"{where}: {rig.kinds()[-6:]}"
        assert final.update.outcome in (Outcome.SKIPPED, Outcome.NO_UPDATE), f"{where}: {final}"
        assert "rolled_back" in [e["state"] for e in rig.server_events()], where
        reverted.append(op)
    # every cut before the new app ran recovers; only the verification window reverts
    assert min(reverted, default=total) > max(o for o in points if o < total * 0.8)
    assert len(recovered) >= len(points) - 4, (recovered, reverted)

def _state(device: Device) -> int | None:
    part = device.running_partition
    if part is None or not part.is_ota_slot:
        return None
    return int(device.ota.esp_ota_get_state_partition(part))
