"""Health-gated rollouts on the real server (virtual clock), each test named after the fault
it catches: failures in the canary wave, devices that confirm and go silent, devices stuck
mid-update, two ticks racing, waves that must only grow. SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from otaforge.server.gates import Action
from otaforge.server.settings import Settings
from tests.server.rollout_env import Env, env

GATE_KEYS = {"wave", "wave_name", "current", "failures", "planned", "needed_soaked",
             "rolled_back", "failed", "silent", "stuck", "confirm_percent", "soak_s"}


@pytest.fixture
def e(settings: Settings, image_v1: bytes, image_v2: bytes) -> Iterator[Env]:
    yield from env(settings, image_v1, image_v2)


def test_canary_wave_with_failures_pauses_and_stops_offering(e: Env) -> None:
    ro = e.create(waves="10%,100%", max_failures_percent=20)
    assert (ro["state"], ro["sizes"], ro["wave_name"]) == ("running", [4], "10%")
    offers = e.offered()
    assert len(offers) == 4  # exactly the first wave, chosen by the stable hash
    first, second, *rest = offers
    e.install({first: offers[first]}, "rolled_back")
    e.install({second: offers[second]}, "failed")
    # a failure report makes the gates due at once: the next check-in evaluates them
    e.check_in(e.devices[0])
    shown = e.show(ro["id"])
    assert shown["state"] == "paused", shown
    assert "2 failures (1 rolled back, 1 failed, 0 silent, 0 stuck)" in shown["reason"]
    assert shown["paused_reason"] == shown["reason"]
    assert "50.0% of 4 devices, above the limit of 20%" in shown["reason"]
    wave0 = shown["waves"][0]
    assert (wave0["rolled_back"], wave0["failed"], wave0["offered"]) == (1, 1, 2)
    assert not shown["waves"][1]["opened"]
    # paused: the wave's devices that have not started yet get nothing, nor does anyone else
    assert e.offered() == {}
    pause = [d for d in shown["decisions"] if d["action"] == "pause"]
    assert len(pause) == 1 and set(pause[0]["data"]) >= GATE_KEYS
    assert (pause[0]["data"]["failures"], pause[0]["data"]["planned"]) == (2, 4)
    assert set(rest) <= set(offers)


def test_soak_gate_catches_devices_that_confirm_then_go_silent(e: Env) -> None:
    ro = e.create(waves="10%,100%", max_failures_percent=20, soak_s=3600, silent_after_s=900)
    offers = e.offered()
    e.install(offers)  # every canary device confirms the release...
    loud, quiet = list(offers)[:2], list(offers)[2:]
    e.keep_checking_in(loud, 600)  # ...but two of them never check in again
    held = e.evaluate(ro["id"])
    assert held["action"] == "hold", held
    assert held["data"]["current"]["confirmed"] == 4 and held["data"]["failures"] == 0
    e.keep_checking_in(loud, 600)  # 1200 s: past silent_after for the quiet two
    shown = e.show(ro["id"])
    assert shown["state"] == "paused", shown
    assert "2 silent" in shown["reason"]
    assert (shown["waves"][0]["silent"], shown["waves"][0]["confirmed"]) == (2, 2)
    assert not any(d["action"] == "advance" for d in shown["decisions"])
    assert all(e.check_in(d) is None for d in quiet)  # nothing new for anyone
    assert e.offered() == {}


def test_device_stuck_mid_update_counts_as_a_failure(e: Env) -> None:
    ro = e.create(waves="10%,100%", max_failures=1, max_failures_percent=None,
                  stuck_timeout_s=1800, max_in_flight=4)
    offers = e.offered()
    stuck, fine = list(offers)[:2], list(offers)[2:]
    for device in stuck:
        e.report(device, offers[device], "downloading")  # and never another word
    e.install({d: offers[d] for d in fine})
    e.keep_checking_in(fine, 1500)
    assert e.evaluate(ro["id"])["action"] == "hold"
    assert e.show(ro["id"])["in_flight"] == 2  # the stuck ones still hold their slots
    e.keep_checking_in(fine, 600)  # 2100 s > stuck_timeout
    shown = e.show(ro["id"])
    assert shown["state"] == "paused", shown
    assert "2 stuck" in shown["reason"] and "exceed the limit of 1 devices" in shown["reason"]
    assert shown["waves"][0]["stuck"] == 2
    assert shown["in_flight"] == 0  # stuck past the timeout: the slots are free again


def test_good_release_soaks_through_every_wave_and_moves_the_channel(e: Env) -> None:
    ro = e.create(waves="10%,50%,100%", soak_s=600)
    reached: list[str] = []
    for wave in range(3):
        offers = e.offered()
        assert offers, f"wave {wave} offered nothing"
        assert not set(offers) & set(reached)  # a device is offered in one wave only
        reached += offers
        e.install(offers)
        e.keep_checking_in(reached, 1200)  # soaked; the check-ins evaluate the gates
        shown = e.show(ro["id"])
        assert shown["wave"] == min(wave + 1, 2) or shown["state"] == "completed", shown
    assert sorted(reached) == sorted(e.devices)
    shown = e.show(ro["id"])
    assert shown["state"] == "completed"
    assert [w["size"] for w in shown["waves"]] == shown["sizes"] == [4, 16, 20]
    fleet = e.api.get("/api/v1/fleets/f1").json()
    assert fleet["channels"]["stable"] == e.new["id"]
    # a device that enrolls after the rollout completed gets the release from its channel
    late = e.check_in("latecomer")
    assert late is not None and late["release_id"] == e.new["id"]
    actions = [d["action"] for d in e.decisions(ro["id"])]
    assert actions[0] == "create" and actions[-1] == "complete"
    assert actions.count("advance") == 2 and "pause" not in actions


def test_every_decision_is_in_the_event_log_with_its_numbers(e: Env) -> None:
    ro = e.create(waves="10%,100%", soak_s=600)
    offers = e.offered()
    e.install(offers)
    e.keep_checking_in(list(offers), 900)
    decisions = e.decisions(ro["id"])
    gate = [d for d in decisions if d["action"] in ("hold", "advance", "pause", "complete")]
    assert gate, decisions
    for decision in gate:
        assert set(decision["data"]) >= GATE_KEYS, decision
        assert decision["reason"]
    advance = next(d for d in gate if d["action"] == "advance")
    numbers = advance["data"]
    assert numbers["current"]["soaked"] >= numbers["needed_soaked"] == 4
    assert numbers["opened"] == {"wave": 1, "size": 36}
    assert f"{numbers['current']['soaked']} of 4 devices confirmed and soaked" in \
        advance["reason"]
    # a hold that changes nothing is not logged twice
    holds = [d["data"]["current"] for d in gate if d["action"] == "hold"]
    assert all(a != b for a, b in itertools.pairwise(holds))
    assert [d["seq"] for d in decisions] == list(range(1, len(decisions) + 1))
    create = decisions[0]
    assert create["action"] == "create" and create["data"]["size"] == 4


def test_two_concurrent_ticks_advance_the_wave_exactly_once(e: Env) -> None:
    ro = e.create(waves="10%,100%", soak_s=600, eval_interval_s=86_400,
                  silent_after_s=200_000)
    offers = e.offered()
    e.install(offers)
    e.keep_checking_in(list(offers), 900)
    assert e.show(ro["id"])["wave"] == 0  # not due yet: nobody evaluated
    e.clock.advance(86_400)
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def tick() -> None:
        barrier.wait()
        results.append(e.store.rollouts.evaluate(ro["id"]))

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    made = [r for r in results if r is not None]
    assert len(results) == 2 and len(made) == 1, results
    assert made[0].action is Action.ADVANCE
    shown = e.show(ro["id"])
    assert (shown["wave"], shown["sizes"]) == (1, [4, 36])
    assert [d["action"] for d in e.decisions(ro["id"])].count("advance") == 1


def test_waves_only_grow_and_late_devices_join_by_their_hash(e: Env) -> None:
    ro = e.create(waves="25%,50%,100%", soak_s=600)
    first = e.offered()
    e.install(first)
    e.keep_checking_in(list(first), 900)
    assert e.show(ro["id"])["wave"] == 1
    rid = ro["id"]
    for device in first:  # still members of wave 0 after the cutoff moved
        choice = e.store.rollouts.choose(device, 1, "stable", "2.0.0", e.new["sha256"])
        assert choice is not None and choice.wave == 0
    late = [f"late{i}" for i in range(12)]
    for device in late:
        e.check_in(device)  # enrolls; some fall into the opened waves at once
    active = e.store.rollouts.active(1, "stable")
    assert active is not None and active.id == rid
    second = e.offered()
    assert not set(second) & set(first)
    choices = {d: e.store.rollouts.choose(d, 1, "stable", "1.0.0", None) for d in late}
    members = {d for d, c in choices.items() if c is not None and c.wave is not None}
    e.devices += late
    assert members <= set(second) | set(e.offered())
    cutoffs = list(active.cutoffs)
    assert cutoffs == sorted(cutoffs) and len(cutoffs) == 2


def test_revert_sends_devices_on_the_bad_release_back_to_the_previous_one(e: Env) -> None:
    ro = e.create(waves="10%,100%", max_failures_percent=20, revert=True)
    offers = e.offered()
    good, bad = list(offers)[:2], list(offers)[2:]
    e.install({d: offers[d] for d in good})  # these now run the bad release
    e.install({d: offers[d] for d in bad}, "rolled_back")
    e.check_in(good[0], e.new)
    shown = e.show(ro["id"])
    assert (shown["state"], shown["reverting"]) == ("paused", True)
    pause = next(d for d in shown["decisions"] if d["action"] == "pause")
    assert pause["data"]["revert"] is True
    for device in good:
        back = e.check_in(device, e.new)
        assert back is not None and back["release_id"] == e.old["id"], back
        assert back["sha256"] == e.old["sha256"]
    for device in bad:  # rolled back: already on the previous release
        assert e.check_in(device) is None


def test_manual_pause_resume_and_abort_with_revert(e: Env) -> None:
    ro = e.create(waves="10%,100%")
    offers = e.offered()
    e.install(offers)
    r = e.api.post(f"/api/v1/rollouts/{ro['id']}/pause", json={"reason": "field report"})
    assert (r.status_code, r.json()["state"], r.json()["reason"]) == (200, "paused",
                                                                        "field report")
    device = next(iter(offers))
    assert e.check_in(device, e.new) is None  # paused: keeps the release, nothing new
    r = e.api.post(f"/api/v1/rollouts/{ro['id']}/resume")
    assert r.json()["state"] == "running" and r.json()["paused_reason"] is None
    r = e.api.post(f"/api/v1/rollouts/{ro['id']}/abort", json={"revert": True})
    assert (r.json()["state"], r.json()["reverting"]) == ("aborted", True)
    back = e.check_in(device, e.new)
    assert back is not None and back["release_id"] == e.old["id"]
    assert e.api.post(f"/api/v1/rollouts/{ro['id']}/resume").status_code == 409
    actions = [d["action"] for d in e.decisions(ro["id"])]
    assert actions == ["create", "pause", "resume", "abort"]
    by_admin = e.decisions(ro["id"])[1]["data"]
    assert by_admin["by"] == "admin" and by_admin["waves"][0]["confirmed"] == 4


def test_background_tick_evaluates_only_rollouts_that_are_due(e: Env) -> None:
    ro = e.create(waves="10%,100%", soak_s=600, eval_interval_s=3600,
                  silent_after_s=200_000)
    offers = e.offered()
    e.install(offers)
    e.keep_checking_in(list(offers), 900)
    assert e.store.rollouts.tick() == []  # soaked, but not due for another 2700 s
    e.clock.advance(2700)
    made = e.store.rollouts.tick()
    assert [(rid, d.action) for rid, d in made] == [(ro["id"], Action.ADVANCE)]
    assert e.store.rollouts.tick() == []  # next one due an hour later
    assert e.show(ro["id"])["wave"] == 1


def test_without_check_in_evaluation_only_the_tick_decides(
        settings: Settings, image_v1: bytes, image_v2: bytes) -> None:
    for e in env(settings, image_v1, image_v2, rollout_eval_on_check_in=False):
        ro = e.create(waves="10%,100%", max_failures_percent=20)
        offers = e.offered()
        e.install(offers, "rolled_back")
        e.keep_checking_in(e.devices, 300)
        assert e.show(ro["id"])["state"] == "running"  # no check-in evaluated the gates
        made = e.store.rollouts.tick()  # the failure reports made it due
        assert [d.action for _, d in made] == [Action.PAUSE]
        assert e.show(ro["id"])["state"] == "paused"
