"""``otaforge device sweep``: cut power at every flash operation of an update and check.

Prints one line per kind of outcome and ends with ``N cases, 0 bricked``; exit status 1 when any
case bricks the device or fails a check (each failure is listed with the command that replays
it), 2 for bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING

from otaforge.cli._common import EXIT_FAILED, read_input
from otaforge.errors import InputError

if TYPE_CHECKING:
    from otaforge.device.sweep_results import CaseResult, SweepReport

MAX_LISTED_FAILURES = 20


def sweep(args: argparse.Namespace) -> int:
    """``device sweep``: power-cut sweep of a complete OTA update on an emulated device."""
    from otaforge.device.config import DeviceConfig
    from otaforge.device.powercut import parse_modes
    from otaforge.device.sweep import FLOWS, SweepConfig, Sweeper
    from otaforge.formats.partition_table import load_partition_table, parse_flash_size

    table = load_partition_table(read_input(args.partitions, "partition table"))
    size = parse_flash_size(args.flash_size)
    table.verify(size)
    cut_modes = parse_modes(args.modes)
    if args.flow not in FLOWS:
        raise InputError(f"--flow {args.flow!r}: choose one of {', '.join(FLOWS)}")
    config = SweepConfig(table=table, flash_size=size, old=read_input(args.from_, "app image"),
                         new=read_input(args.to, "app image"), chip=args.chip,
                         device=DeviceConfig(rollback=args.rollback,
                                             anti_rollback=args.anti_rollback),
                         modes=cut_modes, chunk_size=args.chunk_size, bulk_erase=args.bulk_erase,
                         start=args.start, seed=args.seed, delta=args.delta)
    sweeper = Sweeper(config)
    if args.replay is not None:
        if len(cut_modes) != 1:
            raise InputError("--replay needs exactly one mode in --modes")
        case = sweeper.replay_case(args.flow, args.replay, cut_modes[0])
        if args.json:
            print(json.dumps(_case_json(case)))
        else:
            _print_case(case)
        return 0 if case.ok else EXIT_FAILED
    began = time.perf_counter()
    report = sweeper.run(on_case=_print_case if args.verbose and not args.json else None)
    elapsed = time.perf_counter() - began
    if args.json:
        print(json.dumps(_report_json(report, elapsed), indent=2))
    else:
        _print_report(report, elapsed, args.seed)
    return EXIT_FAILED if report.bricked else 0


def _case_json(case: CaseResult) -> dict[str, object]:
    return {"flow": case.flow, "op_index": case.op_index, "mode": str(case.mode),
            "phase": case.phase, "outcome": case.outcome, "ok": case.ok,
            "detail": case.detail}


def _report_json(report: SweepReport, elapsed: float) -> dict[str, object]:
    return {"cases": report.cases, "bricked": report.bricked,
            "ops_per_flow": dict(report.ops_per_flow), "outcomes": dict(report.outcomes),
            "failures": [_case_json(c) for c in report.failures],
            "elapsed_s": round(elapsed, 3)}


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
