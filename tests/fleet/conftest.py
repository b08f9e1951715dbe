"""Fleet rehearsals at test size: a few dozen emulated ESP32s with the real agent, against the
real otaforge server (in-process, HTTPS on loopback, virtual clock), on 64 KiB images.

``rehearse(devices, ...)`` runs :func:`otaforge.fleet.run.simulate` and returns its
:class:`~otaforge.fleet.result.SimResult`; the plan defaults keep a run to seconds (5-minute
check-ins, a 15-minute soak, waves ``10%,50%,100%``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from otaforge.fleet.result import SimResult
from otaforge.fleet.run import SimSpec, simulate
from otaforge.fleet.spec import (
    Faults,
    Plan,
    Scenario,
    parse_release_fails,
    parse_waves,
)
from otaforge.formats.image_builder import build_image

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS_CSV = ROOT / "examples" / "partitions.csv"
IMAGE_SIZE = 64 * 1024

TEST_PLAN = Plan(waves=parse_waves("10%,50%,100%"), soak_s=900.0, check_in_s=300.0,
                 max_duration_s=2 * 86400.0)

Rehearse = Callable[..., SimResult]


@lru_cache(maxsize=1)
def images() -> tuple[bytes, bytes]:
    """(running image 1.0.0, release 1.1.0), 64 KiB each, different contents."""
    return (build_image(version="1.0.0", size=IMAGE_SIZE, seed=0),
            build_image(version="1.1.0", size=IMAGE_SIZE, seed=1))


def spec(devices: int, *, seed: int = 0, faults: Faults | None = None,
         release_fails: str | None = None, driver: str = "rollout", **plan: Any) -> SimSpec:
    """A :class:`SimSpec` over :data:`TEST_PLAN` with ``plan`` fields replaced."""
    if isinstance(plan.get("waves"), str):
        plan["waves"] = parse_waves(plan["waves"])
    scenario = Scenario(plan=replace(TEST_PLAN, **plan), faults=faults or Faults(),
                        release_fails=parse_release_fails(release_fails)
                        if release_fails else None)
    old, new = images()
    return SimSpec(devices=devices, partitions_csv=PARTITIONS_CSV.read_text(), old=old,
                   new=new, scenario=scenario, seed=seed,
                   driver="channel" if driver == "channel" else "rollout")


@pytest.fixture
def rehearse() -> Rehearse:
    """``rehearse(devices, seed=, faults=, release_fails=, **plan)`` -> :class:`SimResult`."""

    def run(devices: int, **kwargs: Any) -> SimResult:
        return simulate(spec(devices, **kwargs))

    return run


@pytest.fixture
def image_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(partitions.csv, old.bin, new.bin) on disk, for the command line."""
    old, new = images()
    (tmp_path / "old.bin").write_bytes(old)
    (tmp_path / "new.bin").write_bytes(new)
    (tmp_path / "partitions.csv").write_text(PARTITIONS_CSV.read_text())
    return tmp_path / "partitions.csv", tmp_path / "old.bin", tmp_path / "new.bin"
