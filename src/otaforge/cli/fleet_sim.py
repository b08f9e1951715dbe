"""``otaforge fleet simulate``: rehearse a rollout on N emulated ESP32s (thin: the logic is in
:mod:`otaforge.fleet`; this module only maps flags, draws the progress bar and prints).

Exit 0 when no device bricked and a bad release was stopped where it should have been; 1
otherwise; 2 for bad input; 3 when a ``--server`` cannot be reached.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from otaforge.cli._common import EXIT_BAD_INPUT, EXIT_FAILED, fail, handle_errors

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


def simulate(
    devices: Annotated[int, typer.Option("--devices", help="How many emulated ESP32s.")],
    partitions: Annotated[Path, typer.Option("--partitions", help="Partition table CSV.")],
    old: Annotated[Path, typer.Option("--from", help="The app image the fleet runs now.")],
    release: Annotated[Path, typer.Option("--release", help="The release to roll out.")],
    plan: Annotated[Path | None, typer.Option("--plan", help="PLAN.toml (flags override "
                                              "it).")] = None,
    faults: Annotated[str | None, typer.Option(
        "--faults", help="FAULTS.toml or power_cut=0.05,drop=0.1,offline=0.02.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same run.")] = 0,
    waves: Annotated[str | None, typer.Option(
        "--waves", help="Cumulative waves, e.g. 1%,10%,50%,100% or device counts.")] = None,
    soak: Annotated[str | None, typer.Option(
        "--soak", help="How long a device must keep checking in after confirming (1h).")] = None,
    max_failures: Annotated[str | None, typer.Option(
        "--max-failures", help="Failures of a wave that pause it: 5% or a count.")] = None,
    release_fails: Annotated[str | None, typer.Option(
        "--release-fails", help="SHARE:MODE, MODE one of self_test, hang, panic, silent "
        "(e.g. 20%:self_test); hw=REV:MODE for one hardware revision.")] = None,
    concurrency: Annotated[int | None, typer.Option(
        "--concurrency", help="Devices mid-update at once (default 1% of the fleet).")] = None,
    check_in: Annotated[str | None, typer.Option(
        "--check-in", help="The devices' poll interval (default 5m).")] = None,
    revert: Annotated[bool, typer.Option(
        "--revert", help="After a pause, send the bad wave back to the old release.")] = False,
    server: Annotated[str | None, typer.Option(
        "--server", help="Rehearse against this server in real time instead.")] = None,
    token: Annotated[str | None, typer.Option("--token", help="Admin token or @FILE.")] = None,
    ca: Annotated[Path | None, typer.Option("--ca", help="The server's CA certificate.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    report: Annotated[Path | None, typer.Option(
        "--report", help="Write a self-contained HTML report here.")] = None,
) -> None:
    """Rehearse a rollout: N emulated ESP32s with the real agent against a real server."""
    from otaforge.fleet.options import SimOptions, spec_from_options
    from otaforge.fleet.report import render
    from otaforge.fleet.run import simulate as run_simulation
    from otaforge.fsutil import atomic_write

    opts = SimOptions(devices, partitions, old, release, plan, faults, seed, waves, soak,
                      max_failures, release_fails, concurrency, check_in, revert, server, token,
                      ca)
    if report is not None and not report.parent.is_dir():
        fail(f"--report {report}: no directory {report.parent} to write it in", EXIT_BAD_INPUT)
    with handle_errors():
        spec = spec_from_options(opts)
        result = run_simulation(spec, _progress_line if sys.stderr.isatty() else None)
        if report is not None:
            atomic_write(report, render(result).encode())
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
    else:
        for line in _summary(result):
            typer.echo(line)
    if not result.ok:
        raise typer.Exit(EXIT_FAILED)


def register_fleet(app: typer.Typer) -> None:
    """Add ``simulate`` to the ``fleet`` group."""
    app.command("simulate")(simulate)
