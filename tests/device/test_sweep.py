"""The power-cut sweep on the seed partition table (small images; the 600 KB run is in bench/):
every flash operation x before/after/torn, plus cuts during mark-valid and during rollbacks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from otaforge.device.config import DeviceConfig
from otaforge.device.emulator import BootResult, Device
from otaforge.device.powercut import CUT_MODES
from otaforge.device.sweep import SweepConfig, Sweeper
from otaforge.device.verify_cache import VerifyCache
from otaforge.errors import FlashError
from otaforge.formats.partition_table import PartitionTable
from tests.conftest import run_cli
from tests.device._emu_helpers import NO_FACTORY_CSV, image, seed_table

MB = 1024 * 1024


def _sweeper(shared: Path, **kw: object) -> Sweeper:
    table = seed_table(shared)
    params: dict[str, object] = {"old": image("1.0", 40 * 1024), "new": image("2.0", 40 * 1024)}
    params.update(kw)
    params["device"] = DeviceConfig(rollback=bool(params.pop("rollback", False)),
                                    anti_rollback=bool(params.pop("anti_rollback", False)))
    return Sweeper(SweepConfig(table=table, flash_size=8 * MB, **params))  # type: ignore[arg-type]


@pytest.mark.parametrize(("rollback", "start"), [(True, "factory"), (False, "factory"),
                                                 (True, "ota"), (False, "ota")])
def test_seed_table_sweep_never_bricks(shared_fixtures: Path, rollback: bool,
                                       start: str) -> None:
    report = _sweeper(shared_fixtures, rollback=rollback, start=start).run()
    assert report.failures == []
    assert report.cases == sum(report.ops_per_flow.values()) * len(CUT_MODES)
    outcomes = set(report.outcomes)
    assert "update: booted old" in outcomes
    assert any(o.startswith("update: booted new") for o in outcomes)
    if rollback:
        assert "update: booted new (pending verify, then confirmed)" in outcomes
        assert set(report.ops_per_flow) == {"update", "rollback", "panic"}
        assert "rollback: booted old (new failed its self-test, rolled back)" in outcomes
        assert "panic: booted old (new reset before confirming, rolled back)" in outcomes


@pytest.mark.parametrize("anti_rollback", [False, True])
def test_sweep_without_factory_partition(shared_fixtures: Path, anti_rollback: bool) -> None:
    """The layout ESP-IDF recommends with anti-rollback: ota_0 + ota_1, no factory (the first
    boot writes seq 1 VALID itself, and that write is swept too)."""
    table = PartitionTable.from_csv(NO_FACTORY_CSV)
    sweeper = Sweeper(SweepConfig(table=table, flash_size=4 * MB,
                                  old=image("1.0", secure_version=1),
                                  new=image("2.0", secure_version=2), bulk_erase=True,
                                  device=DeviceConfig(rollback=True,
                                                      anti_rollback=anti_rollback)))
    report = sweeper.run()
    assert report.failures == [] and report.cases > 100
    assert any(o.startswith("update: booted new") for o in report.outcomes)


def test_snapshot_cases_equal_replays_from_scratch(shared_fixtures: Path) -> None:
    """Forking the snapshot before op N == running the flow with a real PowerCutPlan at N."""
    sweeper = _sweeper(shared_fixtures, rollback=True, seed=7)
    snaps = sweeper.record("update")
    picks = [0, 1, len(snaps) // 2, *range(len(snaps) - 6, len(snaps))]
    for snap in (snaps[i] for i in picks):
        for mode in CUT_MODES:
            fast = sweeper.run_case("update", snap, mode)
            slow = sweeper.replay_case("update", snap.index, mode)
            assert (fast.outcome, fast.ok) == (slow.outcome, slow.ok), (snap.index, mode)


def test_the_checker_reports_a_bricked_device(shared_fixtures: Path) -> None:
    sweeper = _sweeper(shared_fixtures, rollback=True)
    snap = sweeper.record("update")[-1]
    flash = snap.flash.fork()
    for name in ("factory", "ota_0", "ota_1"):
        part = sweeper.config.table.find(name)
        assert part is not None
        flash.erase_sector(part.offset)
    dev = sweeper._device(flash, snap.efuses)
    result = sweeper.check(dev, "update", snap.index, "after", snap.phase)
    assert not result.ok and result.outcome == "bricked"


def test_the_checker_reports_a_bootloader_fallback_as_inconsistent(shared_fixtures: Path) -> None:
    sweeper = _sweeper(shared_fixtures, rollback=True)
    snap = sweeper.record("update")[-1]  # before the VALID entry is programmed
    flash = snap.flash.fork()
    flash.strict = False  # the fault injected below writes over programmed bytes on purpose
    flash.program(snap.addr, snap.data)  # new image in ota_0, otadata points at it
    ota_0 = sweeper.config.table.find("ota_0")
    assert ota_0 is not None
    flash.program(ota_0.offset + 0x4000, bytes(8))  # random segment data
    result = sweeper.check(sweeper._device(flash, snap.efuses), "update", 0, "after", "x")
    assert not result.ok and "otadata inconsistent" in result.outcome


# --- CLI -----------------------------------------------------------------------------------


@pytest.fixture
def images(tmp_path: Path) -> tuple[Path, Path]:
    old, new = tmp_path / "old.bin", tmp_path / "new.bin"
    old.write_bytes(image("1.0", 24 * 1024))
    new.write_bytes(image("2.0", 24 * 1024))
    return old, new


def test_cli_sweep_reports_zero_bricked(shared_fixtures: Path, images: tuple[Path, Path]) -> None:
    csv = shared_fixtures / "partitions" / "seed.csv"
    proc = run_cli("device", "sweep", "--partitions", str(csv), "--from", str(images[0]),
                   "--to", str(images[1]), "--flash-size", "8MB", "--rollback",
                   "--modes", "before,after,torn")
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    cases = int(last.split()[0])
    assert last == f"{cases} cases, 0 bricked" and cases > 50
    assert "update: booted new (pending verify, then confirmed)" in proc.stdout


def test_cli_replay_of_one_case(shared_fixtures: Path, images: tuple[Path, Path]) -> None:
    csv = shared_fixtures / "partitions" / "seed.csv"
    proc = run_cli("device", "sweep", "--partitions", str(csv), "--from", str(images[0]),
                   "--to", str(images[1]), "--rollback", "--replay", "3", "--modes", "torn")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok update op 3 [write] torn: booted old")


@pytest.mark.parametrize("args", [["--modes", "sideways"], ["--flash-size", "huge"],
                                  ["--start", "middle"], ["--replay", "1"]])
def test_cli_bad_input_exits_2(shared_fixtures: Path, images: tuple[Path, Path],
                               args: list[str]) -> None:
    csv = shared_fixtures / "partitions" / "seed.csv"
    proc = run_cli("device", "sweep", "--partitions", str(csv), "--from", str(images[0]),
                   "--to", str(images[1]), *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("error: ")


def test_cli_rejects_a_non_image(shared_fixtures: Path, tmp_path: Path,
                                 images: tuple[Path, Path]) -> None:
    junk = tmp_path / "page.html"
    junk.write_text("<html>not firmware</html>")
    csv = shared_fixtures / "partitions" / "seed.csv"
    proc = run_cli("device", "sweep", "--partitions", str(csv), "--from", str(images[0]),
                   "--to", str(junk))
    assert proc.returncode == 2 and "--to" in proc.stderr


@pytest.mark.parametrize("start", ["factory", "ota"])
def test_anti_rollback_sweep_never_bricks(shared_fixtures: Path, start: str) -> None:
    """Rows 30/32 under power cuts: eFuse burns between otadata writes heal on the next boot."""
    sweeper = _sweeper(shared_fixtures, rollback=True, anti_rollback=True, start=start,
                       old=image("1.0", 40 * 1024, secure_version=1),
                       new=image("2.0", 40 * 1024, secure_version=2))
    report = sweeper.run()
    assert report.failures == []
    assert any("booted new" in o for o in report.outcomes)


# reliability-matrix §6 rows 5-9, each at its exact flash operation:
# (flow, phase, nth op of that phase, mode, expected outcome)
OTADATA_WINDOWS = [
    ("row 5: cut after erasing the otadata sector in set_boot_partition",
     "update", "set_boot_partition", 0, "after", "booted old"),
    ("row 6: torn otadata entry write in set_boot_partition",
     "update", "set_boot_partition", 1, "torn", "booted old"),
    ("set_boot_partition completed, cut before the reboot",
     "update", "set_boot_partition", 1, "after",
     "booted new (pending verify, then confirmed)"),
    ("row 7: cut after the bootloader erased the NEW entry (NEW -> PENDING_VERIFY)",
     "update", "boot / mark valid", 0, "after", "booted old"),
    ("row 7: torn PENDING_VERIFY write", "update", "boot / mark valid", 1, "torn", "booted old"),
    ("PENDING_VERIFY written, cut before the app confirmed",
     "update", "boot / mark valid", 1, "after", "booted old"),
    ("row 9: cut after mark-valid erased the active sector (revert)",
     "update", "boot / mark valid", 2, "after", "booted old"),
    ("row 9: torn VALID write", "update", "boot / mark valid", 3, "torn", "booted old"),
    ("VALID written", "update", "boot / mark valid", 3, "after", "booted new (valid)"),
    ("row 8: cut after the bootloader erased the PENDING entry (-> ABORTED)",
     "panic", "boot / panic", 2, "after", "booted old"),
    ("row 8: torn ABORTED write", "panic", "boot / panic", 3, "torn", "booted old"),
    ("cut after the self-test failure marked the entry INVALID",
     "rollback", "boot / rollback", 3, "after", "booted old"),
]


@pytest.mark.parametrize(("name", "flow", "phase", "nth", "mode", "outcome"), OTADATA_WINDOWS,
                         ids=[w[0] for w in OTADATA_WINDOWS])
def test_otadata_write_windows(shared_fixtures: Path, name: str, flow: str, phase: str,
                               nth: int, mode: str, outcome: str) -> None:
    sweeper = _sweeper(shared_fixtures, rollback=True)
    snaps = [s for s in sweeper.record(flow) if s.phase == phase]
    assert len(snaps) == 4 if phase.startswith("boot") else 2
    result = sweeper.run_case(flow, snaps[nth], mode)  # type: ignore[arg-type]
    assert result.ok, result
    assert result.outcome == outcome


# --- the checker can fail: deliberately broken update flows ---------------------------------


def _in_place_update(self: Sweeper, dev: Device, img: bytes,
                     phase: Callable[[str], None] | None = None) -> BootResult:
    """The classic bricking mistake: overwrite the running app in place (no A/B, no otadata)."""
    mark = phase or (lambda _name: None)
    part = dev.running_partition
    assert part is not None
    mark("write")
    dev.flash.erase_range(part.offset, (len(img) + 0xFFF) // 0x1000 * 0x1000)
    for pos in range(0, len(img), 4096):
        dev.flash.program(part.offset + pos, img[pos : pos + 4096])
    mark("boot")
    return dev.reboot()


class InPlaceSweeper(Sweeper):
    update = _in_place_update  # type: ignore[assignment]


def test_sweep_of_an_in_place_update_reports_bricks(shared_fixtures: Path) -> None:
    """The sweep is not a tautology: a flow that can brick is caught at every torn write."""
    sweeper = InPlaceSweeper(SweepConfig(table=seed_table(shared_fixtures), flash_size=8 * MB,
                                         old=image("1.0", 16 * 1024),
                                         new=image("2.0", 16 * 1024)))
    report = sweeper.run()
    assert report.bricked > 0 and report.failures
    assert report.outcomes["update: bricked"] > 0
    assert all(f.phase == "write" for f in report.failures)
    replay = sweeper.replay_case("update", report.failures[0].op_index,
                                 report.failures[0].mode)
    assert not replay.ok and replay.outcome == "bricked"


def test_cli_sweep_exits_1_and_lists_bricked_cases(shared_fixtures: Path,
                                                  images: tuple[Path, Path],
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from otaforge.cli.main import main

    monkeypatch.setattr(Sweeper, "update", _in_place_update)
    csv = shared_fixtures / "partitions" / "seed.csv"
    code = main([
        "device", "sweep", "--partitions", str(csv), "--from", str(images[0]),
        "--to", str(images[1]), "--modes", "before,after,torn"])
    out, err = capsys.readouterr()
    assert code == 1, out + err
    last = out.strip().splitlines()[-1]
    cases, _, bricked, _ = last.split()
    assert last == f"{cases} cases, {bricked} bricked" and int(bricked) > 0
    assert "update: bricked" in out
    assert "FAIL update op" in err and "--replay" in err


def _update_without_erase(self: Sweeper, dev: Device, img: bytes,
                          phase: Callable[[str], None] | None = None) -> BootResult:
    """A flow that programs the slot twice without erasing it in between."""
    ota = dev.ota
    part = ota.esp_ota_get_next_update_partition()
    assert part is not None
    handle = ota.esp_ota_begin(part, len(img))
    ota.esp_ota_write_with_offset(handle, img, 0)
    ota.esp_ota_write_with_offset(handle, img, 0)  # NOR: a second program needs an erase
    ota.esp_ota_end(handle)
    ota.esp_ota_set_boot_partition(part)
    return dev.reboot()


def test_sweep_runs_on_strict_flash_and_catches_a_double_program(shared_fixtures: Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 ) -> None:
    """Matrix row 19: the sweep's devices use strict NOR flash, so no esp_ota path of a clean
    sweep ever reprograms unerased bytes; a flow that does is refused."""
    sweeper = _sweeper(shared_fixtures, rollback=True)
    assert sweeper.config.strict_flash and sweeper._fresh().flash.strict  # type: ignore[attr-defined]
    monkeypatch.setattr(Sweeper, "update", _update_without_erase)
    with pytest.raises(FlashError, match="strict flash"):
        _sweeper(shared_fixtures, rollback=True).record("update")


def test_cli_rejects_an_image_for_another_chip_as_bad_input(shared_fixtures: Path,
                                                           tmp_path: Path,
                                                           images: tuple[Path, Path]) -> None:
    """An update the device would refuse (esp_ota_end: mismatch chip ID) is the user's input
    error, named as such, not a device failure halfway through the sweep."""
    foreign = tmp_path / "c3.bin"
    foreign.write_bytes(image("2.0", 24 * 1024, chip="esp32c3"))
    csv = shared_fixtures / "partitions" / "seed.csv"
    proc = run_cli("device", "sweep", "--partitions", str(csv), "--from", str(images[0]),
                   "--to", str(foreign))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("error: --to:") and "mismatch chip ID" in proc.stderr


@pytest.mark.parametrize(("anti_rollback", "start"), [(False, "factory"), (True, "ota")])
def test_remembered_image_checks_change_no_case(shared_fixtures: Path, anti_rollback: bool,
                                                start: str) -> None:
    """Every case ends the same with the sweep's shared memo of image checks as with none
    (per_region=0 remembers nothing, so every check runs): the memo only skips repeats."""
    params: dict[str, object] = {"rollback": True, "anti_rollback": anti_rollback,
                                 "start": start}
    if anti_rollback:
        params.update(old=image("1.0", 40 * 1024, secure_version=1),
                      new=image("2.0", 40 * 1024, secure_version=2))
    remembered = _sweeper(shared_fixtures, **params)
    checked = _sweeper(shared_fixtures, **params)
    checked.cache = VerifyCache(per_region=0)
    with_memo, without = list(remembered.iter_cases()), list(checked.iter_cases())
    assert with_memo == without and len(with_memo) > 100
    assert remembered.cache.hits > 0 and checked.cache.hits == 0
