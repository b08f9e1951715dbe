"""``otaforge demo``: the seed's update flow end to end (what ``make demo`` runs).

All logic is in :mod:`otaforge.demo.run`; this module only renders its timeline: what the
device did, what the server recorded, and one verdict per step. Exit status 0 only when every
step behaved as the seed says.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from otaforge.cli._agent_render import DownloadBar, make_console
from otaforge.cli._common import EXIT_BAD_INPUT, fail, handle_errors

STEP_TITLES = {
    "server": "Start an update server on loopback HTTPS",
    "build": "Build and sign the sample images",
    "fleet": "Create a fleet with the seed's partition table and publish v1.1.0",
    "factory-boot": "Boot an emulated ESP32 from factory",
    "update": "Update to v1.1.0: download, reboot, self-test, mark valid",
    "rollback": "Publish v1.2.0 that fails its self-test",
    "anti-rollback": "Publish a downgrade below the burned secure_version",
    "power-cut": "Cut the power mid-download, then resume",
    "stock-304": "Stock esp_https_ota fetch of /ota/{fleet}/{device}.bin",
    "erase-otadata": "erase-otadata",
    "server-view": "What the server learned",
}
ACTOR_STYLE = {"device": "[green]device[/]", "server": "[blue]server[/]", "demo": "[dim]demo[/]"}


def demo(
    keep: Annotated[Path | None, typer.Option(
        "--keep", help="Keep the server data and signing key in this directory "
        "(default: a temporary directory, removed at the end).")] = None,
) -> None:
    """Run the seed's OTA flow end to end: server, signed images, an emulated ESP32."""
    from otaforge.server.extras import require_server

    with handle_errors():
        require_server("otaforge demo")
    from otaforge.demo.run import TimelineEvent, run_demo

    if keep is not None and keep.exists() and (not keep.is_dir() or any(keep.iterdir())):
        fail(f"--keep {keep}: must be a new or empty directory", EXIT_BAD_INPUT)
    console = make_console()
    bar = DownloadBar(console)
    current = {"step": ""}
    started = time.monotonic()

    def show(event: TimelineEvent) -> None:
        bar.close()
        if event.step != current["step"]:
            current["step"] = event.step
            console.print(f"\n[bold]== {STEP_TITLES.get(event.step, event.step)}[/]")
        if event.ok is not None:
            mark = "[bold green]PASS[/]" if event.ok else "[bold red]FAIL[/]"
            console.print(f"  {mark} {event.message}")
            return
        console.print(f"  {ACTOR_STYLE.get(event.actor, event.actor):>6}  {event.message}")

    console.print("[bold]otaforge demo[/]: an emulated ESP32 updates itself from an update "
                  "server over HTTPS")
    with handle_errors():
        result = run_demo(keep, on_event=show, on_progress=bar.update)
    bar.close()
    failed = [step for step, ok in result.verdicts.items() if not ok]
    took = time.monotonic() - started
    if failed:
        console.print(f"\n[bold red]demo FAILED[/] in {took:.1f} s: {', '.join(failed)}")
        raise typer.Exit(1)
    console.print(f"\n[bold green]demo passed[/]: {len(result.verdicts)} steps behaved as the "
                  f"seed says ({took:.1f} s)")


def register_root(app: typer.Typer) -> None:
    """Add the ``demo`` command to the root app."""
    app.command("demo")(demo)
