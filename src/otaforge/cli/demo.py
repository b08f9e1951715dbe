"""``otaforge demo``: the whole update flow end to end (what ``make demo`` runs).

All logic is in :mod:`otaforge.demo.run`; this module only renders its timeline: what the
device did, what the server recorded, and one verdict per step. Exit status 0 only when every
step behaved as expected.
"""

from __future__ import annotations

import argparse
import time

from otaforge.cli._agent_render import DownloadBar, Timeline
from otaforge.errors import InputError

STEP_TITLES = {
    "server": "Start an update server on loopback HTTPS",
    "build": "Build and sign the sample images",
    "fleet": "Create a fleet with the A/B partition table and publish v1.1.0",
    "factory-boot": "Boot an emulated ESP32 from factory",
    "update": "Update to v1.1.0: download, reboot, self-test, mark valid",
    "rollback": "Publish v1.2.0 that fails its self-test",
    "anti-rollback": "Publish a downgrade below the burned secure_version",
    "power-cut": "Cut the power mid-download, then resume",
    "stock-304": "Stock esp_https_ota fetch of /ota/{fleet}/{device}.bin",
    "erase-otadata": "erase-otadata",
    "server-view": "What the server learned",
    "seed-firmware": "The seed's own C code, compiled with gcc, updates an emulated ESP32",
}


def demo(args: argparse.Namespace) -> int:
    """``demo [--keep DIR]``: server, signed images, an emulated ESP32, end to end."""
    from pathlib import Path

    from otaforge.server.extras import require_server

    require_server("otaforge demo")  # one line naming otaforge[server] when it is missing
    from otaforge.demo.run import TimelineEvent, run_demo

    keep = Path(args.keep) if args.keep is not None else None
    if keep is not None and keep.exists() and (not keep.is_dir() or any(keep.iterdir())):
        raise InputError(f"--keep {keep}: must be a new or empty directory")
    timeline = Timeline()
    bar = DownloadBar(timeline)
    current = {"step": ""}
    started = time.monotonic()

    def show(event: TimelineEvent) -> None:
        bar.close()
        if event.step != current["step"]:
            current["step"] = event.step
            timeline.print(f"\n[bold]== {STEP_TITLES.get(event.step, event.step)}[/]")
        if event.ok is not None:
            mark = "[bold green]PASS[/]" if event.ok else "[bold red]FAIL[/]"
            timeline.print(f"  {mark} {_escape(event.message)}")
            return
        timeline.line(event.actor, event.message)

    timeline.print("[bold]otaforge demo[/]: an emulated ESP32 updates itself from an update "
                   "server over HTTPS")
    result = run_demo(keep, on_event=show, on_progress=bar.update)
    bar.close()
    failed = [step for step, ok in result.verdicts.items() if not ok]
    took = time.monotonic() - started
    if failed:
        timeline.print(f"\n[bold red]demo FAILED[/] in {took:.1f} s: {', '.join(failed)}")
        return 1
    timeline.print(f"\n[bold green]demo passed[/]: {len(result.verdicts)} steps behaved as "
                   f"expected ({took:.1f} s)")
    return 0


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


__all__ = ["STEP_TITLES", "demo"]
