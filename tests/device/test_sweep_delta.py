"""``device sweep --delta``: a power cut at every flash operation of a delta update, every
mode; the device resumes the delta (from its checkpoint when one was saved) and never bricks."""

from __future__ import annotations

from pathlib import Path

import pytest

from otaforge.delta import variants
from otaforge.device.config import DeviceConfig
from otaforge.device.powercut import CUT_MODES
from otaforge.device.sweep import SweepConfig, Sweeper
from otaforge.errors import InputError
from otaforge.formats.partition_table import PartitionTable
from tests.conftest import run_cli


def _sweeper(shared: Path, *, rollback: bool, start: str = "factory") -> Sweeper:
    table = PartitionTable.from_csv((shared / "partitions" / "seed.csv").read_text())
    base = (shared / "esp-idf" / "hello_world_esp32.bin").read_bytes()
    return Sweeper(SweepConfig(table=table, flash_size=8 << 20, old=base,
                               new=variants.code_change(base), start=start, delta=True,
                               device=DeviceConfig(rollback=rollback)))


@pytest.mark.parametrize(("rollback", "start"), [(False, "factory"), (True, "ota")])
def test_delta_sweep_resumes_and_never_bricks(shared_fixtures: Path, rollback: bool,
                                              start: str) -> None:
    report = _sweeper(shared_fixtures, rollback=rollback, start=start).run()
    assert report.failures == [] and report.cases > 250
    resumed = sum(n for o, n in report.outcomes.items() if "delta resumed from a checkpoint" in o)
    over = sum(n for o, n in report.outcomes.items() if "delta started over" in o)
    # most cuts fall after the first checkpoint: the device goes on from there
    assert resumed > 3 * over > 0


def test_delta_snapshot_cases_equal_replays(shared_fixtures: Path) -> None:
    sweeper = _sweeper(shared_fixtures, rollback=True)
    snaps = sweeper.record("update")
    for snap in (snaps[i] for i in (0, 5, len(snaps) // 2, len(snaps) - 2)):
        for mode in CUT_MODES:
            fast = sweeper.run_case("update", snap, mode)
            slow = sweeper.replay_case("update", snap.index, mode)
            assert (fast.outcome, fast.ok) == (slow.outcome, slow.ok), (snap.index, mode)


def test_delta_sweep_needs_an_nvs_partition(shared_fixtures: Path) -> None:
    table = PartitionTable.from_csv("otadata, data, ota, 0xd000, 0x2000,\n"
                                    "ota_0, app, ota_0, 0x10000, 0x100000,\n"
                                    "ota_1, app, ota_1, 0x110000, 0x100000,\n")
    base = (shared_fixtures / "esp-idf" / "hello_world_esp32.bin").read_bytes()
    with pytest.raises(InputError, match="nvs"):
        Sweeper(SweepConfig(table=table, flash_size=4 << 20, old=base,
                            new=variants.version_change(base), delta=True))


def test_cli_delta_sweep(shared_fixtures: Path, tmp_path: Path) -> None:
    base = shared_fixtures / "esp-idf" / "hello_world_esp32.bin"
    (tmp_path / "new.bin").write_bytes(variants.version_change(base.read_bytes()))
    proc = run_cli("device", "sweep", "--partitions",
                   str(shared_fixtures / "partitions" / "seed.csv"), "--from", str(base),
                   "--to", str(tmp_path / "new.bin"), "--delta", "--modes", "torn")
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.endswith(" cases, 0 bricked")
    assert "delta resumed from a checkpoint, then booted new" in proc.stdout
