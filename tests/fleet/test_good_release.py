"""A good release reaches the whole fleet, confirmed, with no device bricked, under every
fault profile: power cuts at random flash operations mid-update, connections dropped
mid-download, devices offline for a while, slow and high-latency links."""

from __future__ import annotations

import pytest

from otaforge.fleet.result import SimResult
from otaforge.fleet.spec import Faults
from tests.fleet.conftest import Rehearse

DEVICES = 30

FAULT_PROFILES = {
    "no_faults": (Faults(), None),
    "power_cut_mid_update": (Faults(power_cut=0.4), "power_cuts"),
    "connection_drop_mid_download": (Faults(drop=0.4), "drops"),
    # away for less than the silent threshold (two check-in intervals): longer, a device
    # that already confirmed counts as silent, and silent devices are failures by design
    "devices_offline_for_ten_minutes": (Faults(offline=0.4, offline_s=600.0),
                                        "offline_waits"),
    "slow_high_latency_links": (Faults(latency_ms=900.0, latency_sigma=1.0,
                                       bandwidth_kib_s=4.0, bandwidth_sigma=1.0), None),
}


@pytest.mark.parametrize("profile", FAULT_PROFILES)
def test_good_release_reaches_every_device_under_faults(rehearse: Rehearse,
                                                        profile: str) -> None:
    faults, fired = FAULT_PROFILES[profile]
    result = rehearse(DEVICES, faults=faults, seed=3)
    assert result.final == {"confirmed": DEVICES, "rolled_back": 0, "failed": 0, "silent": 0,
                            "on_old": 0, "bricked": 0}, result.decisions
    assert result.rollout["state"] == "complete"
    assert result.blast_radius == DEVICES
    assert result.ok
    if fired is not None:  # the fault really happened during the rollout
        assert getattr(result.counters, fired) > 0
    # every wave passed its gate: all of it confirmed and soaked
    waves = result.rollout["waves"]
    assert [w["completed_s"] is not None for w in waves] == [True] * len(waves)
    assert sum(w["confirmed"] for w in waves) == DEVICES


def test_slow_links_take_longer_in_virtual_time(rehearse: Rehearse) -> None:
    """Bandwidth and latency are simulated: the same rollout over 200-byte/s links (a
    download takes longer than a check-in interval) serves the same bytes but passes its
    gate later in virtual time than over the default links."""
    fast = rehearse(10, seed=5, waves="100%")
    slow = rehearse(10, seed=5, waves="100%",
                    faults=Faults(bandwidth_kib_s=0.2, bandwidth_sigma=0.1))
    assert fast.final["confirmed"] == slow.final["confirmed"] == 10
    assert slow.bytes_served == fast.bytes_served
    assert _passed(slow) > _passed(fast)


def _passed(result: SimResult) -> float:
    """When the first gate passed (the server's ``advance`` or ``complete``)."""
    return float(next(d["t_s"] for d in result.decisions
                      if d["action"] in ("advance", "complete")))
