"""``otaforge fleet simulate``: rehearse a rollout on N emulated ESP32s (thin: the logic is in
:mod:`otaforge.fleet`; this module only maps flags, draws the progress bar and prints).

Exit 0 when no device bricked and a bad release was stopped where it should have been; 1
otherwise; 2 for bad input; 3 when a ``--server`` cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from otaforge.cli._common import EXIT_FAILED
from otaforge.errors import InputError

if TYPE_CHECKING:
    from otaforge.fleet.engine import Progress
    from otaforge.fleet.result import SimResult

BAR_WIDTH = 30


def _progress_line(progress: Progress) -> None:
    done = progress.confirmed / max(progress.devices, 1)
    filled = round(done * BAR_WIDTH)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {progress.confirmed}/"
                     f"{progress.devices} confirmed, {progress.installed} installed, "
                     f"t={progress.t_s / 3600:.1f} h, rollout {progress.state}   ")
    sys.stderr.flush()


def _summary(result: SimResult) -> list[str]:
    rollout = result.rollout
    final = ", ".join(f"{k} {v}" for k, v in result.final.items())
    lines = [f"{result.devices} devices, {result.versions[0]} -> {result.versions[1]}: {final}",
             f"rollout {rollout['state']}" + (f" ({rollout['paused_reason']})"
                                              if rollout["paused_reason"] else ""),
             f"blast radius {result.blast_radius}, {result.bytes_served} firmware bytes served,"
             f" {result.sim_s / 3600:.1f} h simulated in {result.wall_s:.1f} s "
             f"(peak RSS {result.peak_rss_mib:.0f} MiB)"]
    for wave in rollout["waves"]:
        lines.append(f"  wave {wave['index'] + 1} ({wave['amount']}, {wave['devices']} devices):"
                     f" confirmed {wave['confirmed']}, failed {wave['failed']}, silent "
                     f"{wave['silent']}, stuck {wave['stuck']}")
    if result.spread is not None:
        held = "spread past it" if result.spread.spread else "held"
        lines.append(f"bad release: should stop in wave {result.spread.stop_wave} (at most "
                     f"{result.spread.bound} installs): {held}")
    if result.final["bricked"]:
        lines.append(f"{result.final['bricked']} devices BRICKED")
    return lines


def simulate(args: argparse.Namespace) -> int:
    """``fleet simulate``: N emulated ESP32s with the real agent against a real server."""
    from pathlib import Path

    from otaforge.fleet.options import SimOptions, spec_from_options
    from otaforge.fleet.report import render
    from otaforge.fleet.run import simulate as run_simulation
    from otaforge.fsutil import atomic_write

    def path(value: str | None) -> Path | None:
        return Path(value) if value is not None else None

    opts = SimOptions(args.devices, Path(args.partitions), Path(args.from_), Path(args.release),
                      path(args.plan), args.faults, args.seed, args.waves, args.soak,
                      args.max_failures, args.release_fails, args.concurrency, args.check_in,
                      args.revert, args.server, args.token, path(args.ca),
                      args.controller)
    report = path(args.report)
    if report is not None and not report.parent.is_dir():
        raise InputError(f"--report {report}: no directory {report.parent} to write it in")
    spec = spec_from_options(opts)
    result = run_simulation(spec, _progress_line if sys.stderr.isatty() else None)
    if report is not None:
        atomic_write(report, render(result).encode())
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        for line in _summary(result):
            print(line)
    return EXIT_FAILED if not result.ok else 0
