"""Wave plans and stable-hash membership (pure), named after the mistake each row catches."""

from __future__ import annotations

import pytest

from otaforge.errors import InputError
from otaforge.server.waves import (
    FULL,
    DeviceAttrs,
    Plan,
    Route,
    WaveSpec,
    open_wave,
    parse_waves,
    rate_step,
    route,
    wave_of,
)

FLEET = [DeviceAttrs(f"dev{i:04d}", tags=("lab",) if i % 4 == 0 else (),
                     hw_revision="rev3" if i % 2 else "rev1", running_version="1.0")
         for i in range(1000)]


@pytest.mark.parametrize(("text", "expected"), [
    ("1%,10%,50%,100%", ["1%", "10%", "50%", "100%"]),
    ("10,100", ["10", "100", "100%"]),  # the final 100 % wave is implied
    ("5, 25% ,100%", ["5", "25%", "100%"]),
    ("0.5%", ["0.5%", "100%"]),
])
def test_parse_waves(text: str, expected: list[str]) -> None:
    assert [w.text() for w in parse_waves(text)] == expected


@pytest.mark.parametrize(("text", "message"), [
    ("ten%", "expected a percentage"),
    ("50%,10%", "must not shrink"),
    ("100,10", "must not shrink"),
    ("0%", "in (0, 100]"),
    ("101%", "in (0, 100]"),
    ("0", "at least 1"),
    ("10%,,50%", "expected a percentage"),
])
def test_parse_waves_refuses(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace("]", r"\]")):
        parse_waves(text)


def _members(plan: Plan, rollout_id: int, cutoffs: list[int]) -> set[str]:
    return {d.device_id for d in FLEET if wave_of(plan, rollout_id, cutoffs, d) is not None}


def _open_all(plan: Plan, rollout_id: int) -> tuple[list[int], list[int]]:
    cutoffs: list[int] = []
    sizes: list[int] = []
    for index in range(plan.stages):
        opened = open_wave(plan, rollout_id, index, cutoffs, FLEET)
        cutoffs.append(opened.cutoff)
        sizes.append(opened.size)
    return cutoffs, sizes


def test_waves_only_grow_and_sizes_add_up() -> None:
    plan = Plan(waves=parse_waves("1%,10%,50%,100%"))
    cutoffs, sizes = _open_all(plan, 7)
    assert sizes == [10, 90, 400, 500]
    assert cutoffs[-1] == FULL
    seen: set[str] = set()
    for k in range(len(cutoffs)):
        now = _members(plan, 7, cutoffs[:k + 1])
        assert seen <= now and len(now) == sum(sizes[:k + 1])
        seen = now


def test_absolute_counts_pick_exactly_that_many() -> None:
    plan = Plan(waves=parse_waves("3,30"))
    cutoffs, sizes = _open_all(plan, 1)
    assert sizes == [3, 27, 970]
    assert len(_members(plan, 1, cutoffs[:1])) == 3


def test_membership_differs_between_rollouts_but_is_stable_within_one() -> None:
    plan = Plan(waves=parse_waves("5%"))
    first = _members(plan, 1, _open_all(plan, 1)[0][:1])
    assert first == _members(plan, 1, _open_all(plan, 1)[0][:1])
    assert first != _members(plan, 2, _open_all(plan, 2)[0][:1])


def test_canary_list_is_wave_zero_whatever_the_filters() -> None:
    plan = Plan(waves=parse_waves("10%"), canary=("dev0001", "dev0003", "nope"),
                tags=("lab",))
    cutoffs, sizes = _open_all(plan, 3)
    assert sizes[0] == 2  # only canaries that exist in the target channel
    assert _members(plan, 3, cutoffs[:1]) == {"dev0001", "dev0003"}
    assert sum(sizes) == 2 + 250  # the 250 'lab' devices, none of the canaries twice


def test_filters_by_tag_hw_revision_and_running_version() -> None:
    plan = Plan(waves=parse_waves("100%"), hw_revisions=("rev3",), from_versions=("1.0",))
    cutoffs, sizes = _open_all(plan, 4)
    assert sizes == [500]
    members = _members(plan, 4, cutoffs)
    assert all(int(d[3:]) % 2 for d in members)
    moved = DeviceAttrs("dev0001", hw_revision="rev3", running_version="2.0")
    assert wave_of(plan, 4, cutoffs, moved) is None  # runs another version
    updated = DeviceAttrs("dev0001", hw_revision="rev3", running_version="2.0",
                          runs_release=True)
    assert wave_of(plan, 4, cutoffs, updated) == 0  # a member keeps its wave after updating


def test_one_percent_of_a_small_fleet_is_not_empty() -> None:
    assert WaveSpec(percent=1).devices(50) == 1
    assert WaveSpec(percent=1).devices(0) == 0
    assert WaveSpec(count=500).devices(50) == 50


# (name, state, reverting, member, runs_release, expected)
ROUTES = [
    ("non_member_keeps_channel_release", "running", False, False, False, Route.CHANNEL),
    ("member_of_running_rollout_gets_release", "running", False, True, False, Route.ROLLOUT),
    ("paused_rollout_offers_nothing_new", "paused", False, True, False, Route.HOLD),
    ("paused_without_revert_keeps_updated_devices", "paused", False, True, True, Route.HOLD),
    ("revert_retargets_devices_that_got_the_bad_one", "paused", True, True, True,
     Route.CHANNEL),
    ("revert_leaves_devices_that_never_installed_it", "paused", True, True, False,
     Route.HOLD),
    ("aborted_without_revert_does_not_downgrade", "aborted", False, True, True, Route.HOLD),
    ("aborted_rollout_returns_others_to_channel", "aborted", False, True, False,
     Route.CHANNEL),
]


@pytest.mark.parametrize(("name", "state", "reverting", "member", "runs", "expected"), ROUTES,
                         ids=[row[0] for row in ROUTES])
def test_route(name: str, state: str, reverting: bool, member: bool, runs: bool,
               expected: Route) -> None:
    assert route(state, reverting, member, runs) is expected


def test_rate_ramp_grows_by_factor_each_minute_up_to_max() -> None:
    plan = Plan(waves=parse_waves("100%"), rate_per_min=2, rate_factor=3, rate_max=10)
    start, offers, rate = None, 0, None
    allowed = []
    for now in (0, 1, 2, 3):
        start, offers, rate, ok = rate_step(plan, start, offers, rate, now)
        allowed.append(ok)
    assert allowed == [True, True, False, False] and rate == 2
    start, offers, rate, ok = rate_step(plan, start, offers, rate, 61)
    assert (ok, rate, offers) == (True, 6, 1)
    start, offers, rate, ok = rate_step(plan, start, offers, rate, 200)
    assert (ok, rate) == (True, 10)  # capped
    unlimited = Plan(waves=parse_waves("100%"))
    assert rate_step(unlimited, None, 10**6, None, 5)[3]
