"""The rollout gate as a pure function: each row is named after the failure it catches."""

from __future__ import annotations

import datetime as dt

import pytest

from otaforge.server.gates import (
    Action,
    DeviceRecord,
    GateInput,
    GatePolicy,
    Health,
    WaveCounts,
    classify,
    evaluate,
    tally,
)

T0 = dt.datetime(2031, 1, 1, tzinfo=dt.UTC)
POLICY = GatePolicy(confirm_percent=90, soak_s=600, silent_after_s=300, stuck_timeout_s=1800,
                    max_failures=None, max_failures_percent=5)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


# (name, state, updated_at s, last check-in s or None, now s, expected health)
CLASSIFY = [
    ("confirmed_then_went_silent", "confirmed", 100, 150, 500, Health.SILENT),
    ("confirmed_and_never_checked_in_again", "confirmed", 100, None, 401, Health.SILENT),
    ("confirmed_still_quiet_within_interval", "confirmed", 100, None, 399, Health.CONFIRMED),
    ("confirmed_but_not_soaked_yet", "confirmed", 100, 650, 800, Health.CONFIRMED),
    ("confirmed_and_soaked", "confirmed", 100, 700, 800, Health.SOAKED),
    ("soaked_device_that_later_went_silent", "confirmed", 100, 700, 1001, Health.SILENT),
    ("rebooted_into_release_and_vanished", "rebooting", 100, 90, 401, Health.SILENT),
    ("pending_verify_never_confirms_but_checks_in", "pending_verify", 100, 1950, 2000,
     Health.STUCK),
    ("download_stalled_past_timeout", "downloading", 100, 1950, 1901, Health.STUCK),
    ("download_still_moving", "downloading", 100, 50, 1899, Health.IN_FLIGHT),
    ("self_test_failed_rolled_back", "rolled_back", 100, 150, 200, Health.ROLLED_BACK),
    ("refused_image_failed", "failed", 100, 150, 200, Health.FAILED),
    ("offered_device_went_offline_is_not_a_failure", "offered", 100, 90, 99_999,
     Health.OFFERED),
    ("admin_aborted_is_not_a_failure", "aborted", 100, 90, 99_999, Health.ABORTED),
]


@pytest.mark.parametrize(("name", "state", "updated", "seen", "now", "expected"), CLASSIFY,
                         ids=[row[0] for row in CLASSIFY])
def test_classify(name: str, state: str, updated: float, seen: float | None, now: float,
                  expected: Health) -> None:
    rec = DeviceRecord(0, state, at(updated), at(seen) if seen is not None else None)
    assert classify(rec, at(now), POLICY) is expected


def wave(size: int, **counts: int) -> WaveCounts:
    return WaveCounts(size=size, **counts)


# (name, policy overrides, waves, current wave, last?, baseline, expected action, in reason)
EVALUATE = [
    ("bad_release_fails_self_test_in_canary",
     {}, [wave(100, rolled_back=6, soaked=10)], 0, False, 0, Action.PAUSE, "6 failures"),
    ("failures_at_the_percent_limit_do_not_pause_yet",
     {}, [wave(100, rolled_back=5, in_flight=20)], 0, False, 0, Action.HOLD, "need 90"),
    ("release_that_confirms_then_goes_silent_caught_by_soak",
     {}, [wave(100, silent=6, soaked=90)], 0, False, 0, Action.PAUSE, "6 silent"),
    ("updates_stuck_mid_download_count_as_failures",
     {}, [wave(100, stuck=6, soaked=94)], 0, False, 0, Action.PAUSE, "6 stuck"),
    ("absolute_limit_catches_what_percent_tolerates",
     {"max_failures": 2, "max_failures_percent": None},
     [wave(1000, failed=3, soaked=10)], 0, False, 0, Action.PAUSE, "limit of 2 devices"),
    ("failures_in_earlier_wave_still_pause_later_wave",
     {}, [wave(10, soaked=10), wave(90, silent=6, in_flight=50)], 1, False, 0, Action.PAUSE,
     "6 silent"),
    ("confirmed_without_soak_does_not_advance",
     {}, [wave(100, confirmed=100)], 0, False, 0, Action.HOLD, "0 of 100"),
    ("too_few_soaked_does_not_advance",
     {}, [wave(100, soaked=89, in_flight=11)], 0, False, 0, Action.HOLD, "need 90"),
    ("enough_soaked_advances",
     {}, [wave(100, soaked=90, in_flight=10)], 0, False, 0, Action.ADVANCE, "needed 90"),
    ("last_wave_soaked_completes",
     {}, [wave(10, soaked=10), wave(90, soaked=81)], 1, True, 0, Action.COMPLETE, "81 of 90"),
    ("empty_wave_advances_at_once",
     {}, [wave(5, soaked=5), wave(0)], 1, False, 0, Action.ADVANCE, "0 of 0"),
    ("resume_forgives_failures_counted_before_it",
     {}, [wave(100, rolled_back=6, in_flight=10)], 0, False, 6, Action.HOLD, "6 rolled back"),
    ("new_failures_after_resume_pause_again",
     {}, [wave(100, rolled_back=12, in_flight=10)], 0, False, 6, Action.PAUSE, "6 failures"),
    ("percent_limit_uses_planned_size_not_first_reporter",
     {}, [wave(100, failed=1)], 0, False, 0, Action.HOLD, "1 failed"),
    ("tiny_wave_single_failure_over_percent_pauses",
     {}, [wave(3, failed=1, soaked=1)], 0, False, 0, Action.PAUSE, "33.3% of 3"),
]


@pytest.mark.parametrize(("name", "overrides", "waves", "current", "last", "baseline",
                          "action", "text"), EVALUATE, ids=[row[0] for row in EVALUATE])
def test_evaluate(name: str, overrides: dict[str, object], waves: list[WaveCounts],
                  current: int, last: bool, baseline: int, action: Action, text: str) -> None:
    policy = GatePolicy(**{**POLICY.__dict__, **overrides})  # type: ignore[arg-type]
    decision = evaluate(GateInput(current, last, waves, 1000.0, baseline, "w"), policy)
    assert decision.action is action, decision.reason
    assert text in decision.reason
    assert decision.numbers["wave"] == current
    assert decision.numbers["current"]["size"] == waves[current].size


def test_tally_counts_each_device_once_per_wave() -> None:
    records = [DeviceRecord(0, "confirmed", at(0), at(700)),
               DeviceRecord(0, "rolled_back", at(0), at(10)),
               DeviceRecord(1, "downloading", at(900), None),
               DeviceRecord(2, "confirmed", at(100), None)]  # a wave not in sizes yet
    counts = tally(records, [2, 5], at(1000), POLICY)
    assert counts[0] == WaveCounts(size=2, soaked=1, rolled_back=1)
    assert counts[1] == WaveCounts(size=5, in_flight=1)
    assert counts[2] == WaveCounts(size=0, silent=1)
    assert [c.failures for c in counts] == [1, 0, 1]
    assert counts[0].to_json()["reached"] == 2
