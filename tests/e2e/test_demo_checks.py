"""``otaforge demo`` must fail (exit 1, FAIL in the timeline) when a step misbehaves: each case
injects one misbehaviour in-process and checks that the demo's own verdicts catch it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from otaforge.cli.main import main
from otaforge.demo import run as demo
from otaforge.demo import steps as demo_steps


def _set_release(version: str, secure_version: int, behaviour: str) -> Callable[..., None]:
    def apply(monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(demo.RELEASES, version, (secure_version, behaviour))
    return apply


def _no_power_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo_steps, "POWER_CUT_AT_OP", 10**9)
    # 1.3.0 is then installed but never booted, so no patch from it can be made for the
    # delta step: do not wait a minute for it (twice)
    monkeypatch.setattr(demo_steps, "DELTA_WAIT_S", 3.0)


def _seed_self_test_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo_steps, "SEED_SELF_TEST_FAILS", True)


def _no_compiler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")


# fmt: off
MISBEHAVIOURS = {
    # v1.2.0 passes its self-test: no rollback, so the rollback step and the summary fail
    "1.2.0 does not fail its self-test": (_set_release("1.2.0", 1, "healthy"),
                                          ("rollback", "anti-rollback", "server-view")),
    # the "downgrade" carries the burned secure_version: it installs instead of being refused
    "downgrade not below the eFuse":     (_set_release("1.0.1", 1, "healthy"),
                                          ("anti-rollback",)),
    # the power never fails during the download: nothing to resume
    "power cut never happens":           (_no_power_cut, ("power-cut",)),
    # the seed's C code: its 2.0.0 fails run_self_test(), so it rolls back to factory
    "seed update fails its self-test":   (_seed_self_test_fails, ("seed-firmware",)),
    # no gcc: the seed's C code cannot be compiled; the step fails saying so
    "no C compiler":                     (_no_compiler, ("seed-firmware",)),
}
# fmt: on


@pytest.mark.parametrize("inject,failing", MISBEHAVIOURS.values(), ids=MISBEHAVIOURS.keys())
def test_demo_exits_1_when_a_step_misbehaves(monkeypatch: pytest.MonkeyPatch,
                                              inject: Callable[[pytest.MonkeyPatch], None],
                                              failing: tuple[str, ...],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    inject(monkeypatch)
    seen: list[demo.TimelineEvent] = []
    result = demo.run_demo(on_event=seen.append)
    assert not result.ok
    bad = {step for step, ok in result.verdicts.items() if not ok}
    assert set(failing) <= bad, result.verdicts
    assert "erase-otadata" in result.verdicts  # later steps still ran and were judged
    capsys.readouterr()
    code = main(["demo"])
    output = capsys.readouterr().out
    assert code == 1, output
    assert "demo FAILED" in output and "FAIL" in output
    if inject is _no_compiler:
        assert "no C compiler found: install gcc" in output
