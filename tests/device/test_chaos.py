"""Random sequences of updates, reboots and power cuts (several per device, any mode): the
device always boots a whole image that was completely written, never bricks, and an update
after recovery always succeeds. The exhaustive single-cut sweep is in test_sweep.py."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otaforge.device.config import DeviceConfig
from otaforge.device.emulator import Device
from otaforge.device.powercut import CUT_MODES, PowerCutPlan
from otaforge.errors import PowerCut
from tests.device._emu_helpers import image, install, make_device

step = st.tuples(st.sampled_from(["update", "reboot"]), st.integers(0, 14),
                 st.sampled_from(CUT_MODES), st.booleans(), st.integers(0, 1000))


def _running_image(dev: Device, written: list[bytes]) -> bytes | None:
    part = dev.running_partition
    assert part is not None
    return next((img for img in written if dev.flash.read(part.offset, len(img)) == img), None)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, min_size=1, max_size=8), st.booleans())
def test_random_updates_and_power_cuts_never_brick(steps: list[tuple[str, int, str, bool, int]],
                                                   rollback: bool) -> None:
    dev = make_device(factory=image("v0", 16 * 1024), config=DeviceConfig(rollback=rollback))
    written = [image("v0", 16 * 1024)]
    assert dev.power_on().status == "running"
    for number, (action, op, mode, cut, seed) in enumerate(steps, start=1):
        if cut:
            dev.flash.arm(PowerCutPlan(op, mode, seed=seed))  # type: ignore[attr-defined, arg-type]
        try:
            if action == "update":
                img = image(f"v{number}", 16 * 1024)
                written.append(img)  # whole-image equality: a torn copy never matches
                install(dev, img)
            dev.reboot()
        except PowerCut:
            pass
        dev.flash.arm(None)  # type: ignore[attr-defined]
        result = dev.power_on()
        assert result.status == "running", result
        assert _running_image(dev, written) is not None
    final = image("final", 16 * 1024)
    install(dev, final)
    result = dev.reboot()
    assert result.status == "running" and _running_image(dev, [final]) == final
