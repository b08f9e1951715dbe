"""``otaforge firmware build`` / ``run``: ESP-IDF app code on the emulated ESP32 (thin CLI).

The logic is :mod:`otaforge.firmware.commands`; this module parses options and prints.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from otaforge.cli._common import EXIT_FAILED, handle_errors


def build(
    project: Annotated[Path, typer.Argument(help="ESP-IDF project directory.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="App image to write.")],
    version: Annotated[str | None, typer.Option(
        "--version", help="App version (default PROJECT_VER / version.txt).")] = None,
    secure_version: Annotated[int | None, typer.Option(
        "--secure-version", min=0, help="Anti-rollback secure_version (default "
        "CONFIG_BOOTLOADER_APP_SECURE_VERSION).")] = None,
    chip: Annotated[str, typer.Option("--chip", help="Target chip.")] = "esp32",
    define: Annotated[list[str] | None, typer.Option(
        "-D", help="sdkconfig override NAME=VALUE (repeatable), e.g. -D "
        "CONFIG_OTA_APP_SELF_TEST_FAIL=y.")] = None,
    sign: Annotated[Path | None, typer.Option(
        "--sign", help="Sign with this Secure Boot v2 key (PEM).")] = None,
) -> None:
    """Build an ESP-IDF project for the emulated ESP32 and write its app image."""
    from otaforge.firmware.commands import build_firmware

    with handle_errors():
        result = build_firmware(project, output, version=version,
                                secure_version=secure_version, chip=chip,
                                defines=define or [], sign=sign)
    print(f"{output}: {result.project.name} {result.project.version}, {len(result.image)} "
          f"bytes (host build {result.program_sha256.hex()[:16]})")


def run(
    flash: Annotated[Path, typer.Option("--flash", help="The device's flash image file "
                                        "(written back after the run).")],
    boots: Annotated[int, typer.Option("--boots", min=1, help="Stop after N boots.")] = 8,
    host: Annotated[list[str] | None, typer.Option(
        "--host", help="NAME=IP: the device resolves NAME to IP (repeatable).")] = None,
    wdt_timeout: Annotated[float, typer.Option(
        "--wdt-timeout", help="Seconds (wall clock) a firmware may run without any system "
        "call before the watchdog resets it.")] = 10.0,
    chip: Annotated[str, typer.Option("--chip", help="The device's chip.")] = "esp32",
    rollback: Annotated[bool | None, typer.Option(
        "--rollback/--no-rollback", help="Override CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE.")
    ] = None,
    anti_rollback: Annotated[bool | None, typer.Option(
        "--anti-rollback/--no-anti-rollback", help="Override "
        "CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Report each boot as JSON.")] = False,
) -> None:
    """Power the emulated ESP32 on: its firmware runs until idle or N boots."""
    from otaforge.firmware.commands import run_firmware

    def console(line: str) -> None:
        if not as_json:
            print(line)

    with handle_errors():
        report = run_firmware(flash, boots=boots, hosts=host or [], wdt_timeout_s=wdt_timeout,
                              chip=chip, rollback=rollback, anti_rollback=anti_rollback,
                              console=console)
    if as_json:
        json.dump(report.to_json(), sys.stdout, indent=1)
        print()
    else:
        for boot in report.boots:
            print(f"boot {boot.number}: {boot.partition} {boot.version} -> {boot.ended}")
        print(f"{report.status}: {report.reason}")
    if report.status == "bricked":
        raise typer.Exit(EXIT_FAILED)


def register(app: typer.Typer) -> None:
    """Add ``build`` and ``run`` to the ``firmware`` group."""
    app.command("build")(build)
    app.command("run")(run)
