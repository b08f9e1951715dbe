"""Delta updates end to end over loopback HTTPS: the server makes the patch when the release
is published, the agent applies it (resuming after a power cut), falls back to the full
image when the delta cannot be used, and the server records the bytes saved."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from otaforge.agent.results import BootOutcome, Outcome
from otaforge.agent.updater import run_cycle
from otaforge.delta import variants
from otaforge.device.powercut import PowerCutPlan
from otaforge.errors import PowerCut


@pytest.fixture(scope="module")
def base(shared_fixtures: Path) -> bytes:
    return (shared_fixtures / "esp-idf" / "hello_world_esp32.bin").read_bytes()


def _ready_rig(rig_factory: Any, base: bytes, new: bytes) -> Any:
    rig = rig_factory(factory=base)
    rig.publish(base)
    first = run_cycle(rig.agent())  # checks in: the server learns what runs
    assert first.update.outcome == Outcome.NO_UPDATE
    rig.publish(new)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        states = [d["state"] for d in rig.admin.deltas(rig.fleet)["deltas"]]
        if states and all(s not in ("pending", "running") for s in states):
            break
        time.sleep(0.05)
    assert states == ["ready"]
    return rig


def test_device_updates_by_delta_and_server_counts_the_bytes_saved(rig_factory: Any,
                                                                    base: bytes) -> None:
    new = variants.code_change(base)
    rig = _ready_rig(rig_factory, base, new)
    result = run_cycle(rig.agent())
    assert result.update.outcome == Outcome.INSTALLED
    assert result.after_reboot == BootOutcome.CONFIRMED
    part = rig.device.running_partition
    assert rig.device.flash.read(part.offset, len(new)) == new
    assert "delta" in rig.kinds() and "download" not in rig.kinds()
    stats = rig.admin.deltas(rig.fleet)
    patch_size = stats["deltas"][0]["size"]
    assert stats["saved_bytes"] == len(new) - patch_size > 0.9 * len(new)
    assert stats["per_device"] == {rig.device_id: len(new) - patch_size}
    assert rig.deployments()[0]["state"] == "confirmed"


def test_delta_resumes_after_a_power_cut(rig_factory: Any, base: bytes) -> None:
    new = variants.larger_release(base)
    rig = _ready_rig(rig_factory, base, new)
    flash = rig.device.flash
    flash.arm(PowerCutPlan(20, "torn", seed=3))  # in the middle of writing the new image
    with pytest.raises(PowerCut):
        run_cycle(rig.agent())
    flash.plan = None
    assert rig.device.power_on().status == "running"
    rig.events.clear()
    result = run_cycle(rig.agent())
    assert result.update.outcome == Outcome.INSTALLED
    assert result.after_reboot == BootOutcome.CONFIRMED
    delta = next(e for e in rig.events if e.kind == "delta")
    assert delta.data["resumed_from"] > 0
    assert delta.data["fetched"] < rig.admin.deltas(rig.fleet)["deltas"][0]["size"]
    part = rig.device.running_partition
    assert rig.device.flash.read(part.offset, len(new)) == new


def test_unusable_delta_falls_back_to_the_full_image(rig_factory: Any, base: bytes) -> None:
    new = variants.version_change(base)
    rig = _ready_rig(rig_factory, base, new)
    agent = rig.agent()
    offer, _facts = agent.check_in()
    assert offer is not None and offer.delta is not None
    broken = replace(offer, delta=replace(offer.delta, url=offer.delta.url.replace(
        offer.delta.sha256, "0" * 64)))  # a patch the server does not have: 404
    result = agent.install(broken)
    assert result.outcome == Outcome.INSTALLED
    assert "delta_failed" in rig.kinds() and "download" in rig.kinds()
    assert agent.reboot() == BootOutcome.CONFIRMED
    stats = rig.admin.deltas(rig.fleet)
    assert stats["saved_bytes"] == 0
    assert stats["per_release"][str(rig.deployments()[0]["release_id"])]["full_updates"] == 1
