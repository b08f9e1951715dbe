"""``otaforge device sweep``: cut power at every flash operation of an update and check.

Prints one line per kind of outcome and ends with ``N cases, 0 bricked``; exit status 1 when any
case bricks the device or fails a check (each failure is listed with the command that replays
it), 2 for bad input.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from otaforge.cli._common import EXIT_FAILED, handle_errors, read_input
from otaforge.errors import InputError

if TYPE_CHECKING:
    from otaforge.device.sweep_results import CaseResult, SweepReport

MAX_LISTED_FAILURES = 20


def sweep(
    partitions: Annotated[Path, typer.Option(
        "--partitions", help="Partition table (CSV or binary).")],
    old: Annotated[Path, typer.Option("--from", help="App image the device runs first.")],
    new: Annotated[Path, typer.Option("--to", help="The update's app image.")],
    flash_size: Annotated[str, typer.Option("--flash-size", help="Flash size.")] = "8MB",
    rollback: Annotated[bool, typer.Option(
        "--rollback", help="CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE; also sweeps rollbacks "
        "(new app fails its self-test / panics before confirming).")] = False,
    anti_rollback: Annotated[bool, typer.Option(
        "--anti-rollback", help="CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK (needs --rollback); "
        "images carry their secure_version.")] = False,
    modes: Annotated[str, typer.Option(
        "--modes", help="Power-cut modes, comma separated: before, after, torn.")
    ] = "before,after,torn",
    chip_name: Annotated[str, typer.Option("--chip", help="Target chip.")] = "esp32",
    chunk: Annotated[int, typer.Option(
        "--chunk-size", min=1, help="Bytes per esp_ota_write call.")] = 4096,
    bulk_erase: Annotated[bool, typer.Option(
        "--bulk-erase", help="Erase the whole slot in esp_ota_begin (OTA_SIZE_UNKNOWN) instead "
        "of sector by sector while writing.")] = False,
    start: Annotated[str, typer.Option(
        "--start", help="Device state before the update: 'factory' (old image in factory, "
        "otadata blank) or 'ota' (old image installed by OTA, both otadata sectors used).")
    ] = "factory",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the torn-operation lengths.")] = 0,
    replay: Annotated[int | None, typer.Option(
        "--replay", min=0, help="Replay one case from scratch: cut at this op index (needs "
        "--flow and a single --modes).")] = None,
    flow: Annotated[str, typer.Option(
        "--flow", help="Flow for --replay: update, rollback or panic.")] = "update",
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Print every case.")] = False,
    delta: Annotated[bool, typer.Option(
        "--delta", help="Update with an esp_delta_ota patch from --from to --to (resumable; "
        "after a cut the device resumes it and must boot the new image).")] = False,
) -> None:
    """Power-cut sweep of a complete OTA update on an emulated device: never bricked."""
    from otaforge.device.config import DeviceConfig
    from otaforge.device.powercut import parse_modes
    from otaforge.device.sweep import FLOWS, SweepConfig, Sweeper
    from otaforge.formats.partition_table import load_partition_table, parse_flash_size

    with handle_errors():
        table = load_partition_table(read_input(partitions, "partition table"))
        size = parse_flash_size(flash_size)
        table.verify(size)
        cut_modes = parse_modes(modes)
        if flow not in FLOWS:
            raise InputError(f"--flow {flow!r}: choose one of {', '.join(FLOWS)}")
        config = SweepConfig(table=table, flash_size=size, old=read_input(old, "app image"),
                             new=read_input(new, "app image"), chip=chip_name,
                             device=DeviceConfig(rollback=rollback, anti_rollback=anti_rollback),
                             modes=cut_modes, chunk_size=chunk, bulk_erase=bulk_erase,
                             start=start, seed=seed, delta=delta)
        sweeper = Sweeper(config)
        if replay is not None:
            if len(cut_modes) != 1:
                raise InputError("--replay needs exactly one mode in --modes")
            case = sweeper.replay_case(flow, replay, cut_modes[0])
            _print_case(case)
            if not case.ok:
                raise SystemExit(EXIT_FAILED)
            return
        began = time.perf_counter()
        report = sweeper.run(on_case=_print_case if verbose else None)
        elapsed = time.perf_counter() - began
    _print_report(report, elapsed, seed)
    if report.bricked:
        raise SystemExit(EXIT_FAILED)


def _print_case(case: CaseResult) -> None:
    status = "ok" if case.ok else "FAIL"
    detail = f" ({case.detail})" if case.detail else ""
    print(f"{status} {case.flow} op {case.op_index} [{case.phase}] {case.mode}: "
          f"{case.outcome}{detail}")


def _print_report(report: SweepReport, elapsed: float, seed: int) -> None:
    ops = ", ".join(f"{flow} {n}" for flow, n in report.ops_per_flow.items())
    print(f"flash operations swept: {ops}")
    for outcome, count in sorted(report.outcomes.items()):
        print(f"{count:6d}  {outcome}")
    for case in report.failures[:MAX_LISTED_FAILURES]:
        sys.stderr.write(
            f"FAIL {case.flow} op {case.op_index} [{case.phase}] {case.mode}: {case.outcome}"
            f"{' (' + case.detail + ')' if case.detail else ''}\n"
            f"     replay: otaforge device sweep ... --flow {case.flow} --replay "
            f"{case.op_index} --modes {case.mode} --seed {seed}\n")
    rate = report.cases / elapsed if elapsed > 0 else 0.0
    print(f"{report.cases} cases in {elapsed:.1f} s ({rate:.0f} cases/s)")
    print(f"{report.cases} cases, {report.bricked} bricked")


def register(app: typer.Typer) -> None:
    """Add ``sweep`` to the ``device`` group."""
    app.command("sweep")(sweep)
