"""``otaforge firmware build`` / ``run`` / ``sweep``: ESP-IDF app code on the emulated ESP32.

The logic is :mod:`otaforge.firmware.commands`; this module reads the parsed options and prints.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from otaforge.cli._common import EXIT_FAILED


def build(args: argparse.Namespace) -> int:
    """Build an ESP-IDF project for the emulated ESP32 and write its app image."""
    from otaforge.firmware.commands import build_firmware

    output = Path(args.output)
    result = build_firmware(Path(args.project), output, version=args.version,
                            secure_version=args.secure_version, chip=args.chip,
                            defines=args.define or [],
                            sign=Path(args.sign) if args.sign else None)
    print(f"{output}: {result.project.name} {result.project.version}, {len(result.image)} "
          f"bytes (host build {result.program_sha256.hex()[:16]})")
    return 0


def run(args: argparse.Namespace) -> int:
    """Power the emulated ESP32 on: its firmware runs until idle or N boots."""
    from otaforge.firmware.commands import run_firmware

    def console(line: str) -> None:
        if not args.json:
            print(line)

    report = run_firmware(Path(args.flash), boots=args.boots, hosts=args.host or [],
                          wdt_timeout_s=args.wdt_timeout, chip=args.chip,
                          rollback=args.rollback, anti_rollback=args.anti_rollback,
                          console=console)
    if args.json:
        json.dump(report.to_json(), sys.stdout, indent=1)
        print()
    else:
        for boot in report.boots:
            print(f"boot {boot.number}: {boot.partition} {boot.version} -> {boot.ended}")
        print(f"{report.status}: {report.reason}")
    return EXIT_FAILED if report.status == "bricked" else 0


def sweep(args: argparse.Namespace) -> int:
    """Cut power at every flash operation of the firmware's run; exit 1 when a case fails."""
    from otaforge.firmware.commands import sweep_firmware

    report = sweep_firmware(Path(args.flash), modes=args.modes, boots=args.boots,
                            hosts=args.host or [], wdt_timeout_s=args.wdt_timeout,
                            chip=args.chip, rollback=args.rollback,
                            anti_rollback=args.anti_rollback, ops=args.ops, jobs=args.jobs,
                            seed=args.seed)
    summary = f"{len(report.cases)} cases, {report.bricked} bricked"
    if args.json:
        json.dump(report.to_json(), sys.stdout, indent=1)
        print()
    else:
        boots = "; ".join(f"{p} {v} -> {e}" for p, v, e in report.recording.boots)
        print(f"recorded run: {len(report.recording.ops)} flash operations over "
              f"{len(report.recording.boots)} boot(s): {boots}")
        for outcome, count in sorted(report.outcomes().items()):
            print(f"  {count:6d}  {outcome}")
        for case in [c for c in report.cases if not c.ok][:20]:
            print(f"FAILED op #{case.op_index} ({case.kind}, boot {case.boot}) {case.mode}: "
                  f"{case.outcome}: {case.detail}")
        print(f"{summary} ({report.distinct} run, the others in the same device state as "
              f"one of them; {report.known} ended at a boot state an earlier case went on "
              "from)")
    return EXIT_FAILED if report.bricked else 0
