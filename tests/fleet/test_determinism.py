"""The same simulation twice with one seed gives the same JSON (wall time and peak memory
aside), faults and a bad release included; another seed gives another run."""

from __future__ import annotations

from typing import Any

from otaforge.fleet.spec import Faults
from tests.fleet.conftest import Rehearse

FAULTS = Faults(power_cut=0.2, drop=0.2, offline=0.1, offline_s=600.0)


def _stable(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in ("wall_s", "peak_rss_mib")}


def test_same_seed_gives_the_same_json(rehearse: Rehearse) -> None:
    runs = [rehearse(30, seed=7, faults=FAULTS, release_fails="10%:self_test")
            for _ in range(2)]
    first, second = (_stable(r.to_json()) for r in runs)
    assert first == second
    assert runs[0].decisions == runs[1].decisions
    assert runs[0].counters.power_cuts == runs[1].counters.power_cuts > 0
    other = rehearse(30, seed=8, faults=FAULTS, release_fails="10%:self_test")
    assert _stable(other.to_json()) != first
