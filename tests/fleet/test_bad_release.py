"""A bad release is stopped where it should be: one that fails on 20 % of the devices (its
self-test, a watchdog hang, a panic at boot) pauses within the canary wave; one that
confirms and then goes silent is caught by the soak gate (and gets through without a soak:
exit 1); ``revert`` sends the devices that got it back to the previous release."""

from __future__ import annotations

import pytest

from otaforge.fleet.spec import Amount
from tests.fleet.conftest import Rehearse

DEVICES = 40
CANARY = "25%,50%,100%"  # a 10-device canary wave, then half the fleet, then all of it
ONE = Amount(count=1)  # more than one failed, silent or stuck device pauses


@pytest.mark.parametrize("mode", ["self_test", "hang", "panic"])
def test_release_failing_on_a_fifth_pauses_in_the_canary_wave(rehearse: Rehearse,
                                                                mode: str) -> None:
    result = rehearse(DEVICES, waves=CANARY, max_failures=ONE,
                      release_fails=f"20%:{mode}", seed=1)
    canary = result.rollout["waves"][0]
    # the scenario: enough bad devices in the canary to exceed its allowance
    assert result.spread is not None and result.spread.stop_wave == 1
    assert result.rollout["state"] == "paused"
    assert result.rollout["paused_reason"]
    assert result.blast_radius <= canary["devices"] + result.rollout["max_in_flight"]
    assert result.spread.spread is False and result.ok
    # the bad ones rolled back on their own (the real bootloader), nothing bricked, and the
    # rest of the fleet never got the release
    assert result.final["rolled_back"] >= 2
    assert result.final["bricked"] == 0
    assert result.final["on_old"] >= DEVICES - canary["devices"] - \
        result.rollout["max_in_flight"]
    assert [w["started_s"] is None for w in result.rollout["waves"]] == [False, True, True]


def test_confirm_then_silent_release_is_caught_by_the_soak_gate(rehearse: Rehearse) -> None:
    result = rehearse(DEVICES, waves=CANARY, max_failures=ONE, soak_s=1800.0,
                      release_fails="30%:silent", seed=2)
    assert result.spread is not None
    assert result.rollout["state"] == "paused"
    assert "silent" in result.rollout["paused_reason"]
    # the soak gate counted them (per wave: the devices each wave added)
    opened = result.rollout["waves"][: result.spread.stop_wave]
    assert sum(w["silent"] for w in opened) >= 2
    assert result.blast_radius <= result.spread.bound and result.ok
    assert result.final["silent"] >= 2 and result.final["bricked"] == 0


def test_confirm_then_silent_release_spreads_past_a_client_gate_without_soak(
        rehearse: Rehearse) -> None:
    """A weak controller (the client-side channel controller, no soak): every wave passes
    as soon as its devices confirm, before anyone can notice they went silent; the release
    reaches devices past the wave that should have stopped it, and the verdict (exit 1 on
    the command line) says so."""
    result = rehearse(DEVICES, waves=CANARY, max_failures=ONE, soak_s=0.0,
                      release_fails="30%:silent", seed=2, driver="channel")
    assert result.spread is not None and result.spread.spread is True
    assert result.blast_radius > result.spread.bound
    assert not result.ok


def test_revert_brings_the_bad_wave_back_to_the_previous_release(rehearse: Rehearse) -> None:
    kept = rehearse(DEVICES, waves=CANARY, max_failures=ONE,
                    release_fails="20%:self_test", seed=1)
    reverted = rehearse(DEVICES, waves=CANARY, max_failures=ONE,
                        release_fails="20%:self_test", seed=1, revert=True)
    # without revert the canary's good devices keep the bad release; with it, every device
    # that installed it runs the previous release again
    assert kept.final["confirmed"] > 0
    assert reverted.rollout["state"] == "paused" and reverted.rollout["reverted"]
    assert reverted.decisions[-1]["action"] == "pause"
    assert reverted.blast_radius == kept.blast_radius > 0
    assert reverted.final["confirmed"] == 0 and reverted.final["silent"] == 0
    assert reverted.final["on_old"] + reverted.final["rolled_back"] == DEVICES
    assert reverted.final["bricked"] == 0
