"""``otaforge device run``: one emulated ESP32 runs the update agent against a server.

The device's flash is a file (``otaforge flash compose`` makes one) and stays in it between
runs, with its eFuses beside it (``FLASH.bin.efuse.json``). One run = power on, boot-time
check, check in, download with a progress bar, reboot into the update, self-test, confirm or
roll back. A power cut or a dropped connection leaves the partial download in the flash; the
next run resumes it.

Exit status: 0 up to date / updated and confirmed / offer skipped; 1 refused, failed or rolled
back (or a power cut); 2 bad input; 3 server unreachable or download interrupted (run again to
resume).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from otaforge.cli._agent_render import DownloadBar, make_console
from otaforge.cli._common import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_TRANSPORT,
    fail,
    handle_errors,
)

Server = Annotated[str, typer.Option("--server", envvar="OTAFORGE_SERVER",
                                     help="Server URL, e.g. https://localhost:8443.")]
Ca = Annotated[Path, typer.Option("--ca", envvar="OTAFORGE_CA",
                                  help="CA certificate the device pins (DATA/server_cert.pem).")]
Token = Annotated[str, typer.Option("--token", envvar="OTAFORGE_TOKEN",
                                    help="Device or fleet enrollment token, or @FILE.")]


def _token(value: str) -> str:
    if not value.startswith("@"):
        return value
    try:
        return Path(value[1:]).read_text(encoding="utf-8").strip()
    except OSError as err:
        fail(f"--token {value}: cannot read ({err.strerror})", EXIT_BAD_INPUT)


def _digests(keys: list[Path]) -> list[bytes]:
    from otaforge.crypto import keys as k

    out = []
    for path in keys:
        try:
            out.append(k.public_key_digest(k.load_public_key(path.read_bytes())))
        except OSError as err:
            fail(f"--secure-boot-key {path}: cannot read ({err.strerror})", EXIT_BAD_INPUT)
    return out


def run(
    flash: Annotated[Path, typer.Option("--flash", help="The device's flash image file "
                                        "(read, and written back after the run).")],
    fleet: Annotated[str, typer.Option("--fleet", help="The device's fleet.")],
    server: Server, ca: Ca, token: Token,
    device_id: Annotated[str | None, typer.Option(
        "--device-id", help="Device id on the server (default: the flash file's name).")] = None,
    chip_name: Annotated[str, typer.Option("--chip", help="The device's chip.")] = "esp32",
    rollback: Annotated[bool, typer.Option(
        "--rollback/--no-rollback", help="CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE.")] = True,
    anti_rollback: Annotated[bool, typer.Option(
        "--anti-rollback", help="CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK (secure_version "
        "eFuse).")] = False,
    secure_boot_key: Annotated[list[Path] | None, typer.Option(
        "--secure-boot-key", help="Enable Secure Boot v2 and burn this key's digest into the "
        "device's eFuses (first run; repeatable).")] = None,
    partial: Annotated[int | None, typer.Option(
        "--partial-download", min=4096, help="esp_https_ota partial-download mode: fetch the "
        "image in Range requests of this many bytes (CONFIG_ESP_HTTPS_OTA_ENABLE_PARTIAL_"
        "DOWNLOAD, max_http_request_size).")] = None,
    app: Annotated[list[str] | None, typer.Option(
        "--app", help="VERSION=BEHAVIOUR of an app on this device: healthy, fails_self_test, "
        "never_confirms, hangs, panics (repeatable; default healthy).")] = None,
) -> None:
    """Run one emulated device against an update server (one check-in and update)."""
    from otaforge.agent.config import AgentConfig
    from otaforge.agent.device_files import load_device, parse_behaviours, save_device
    from otaforge.agent.httpx_fetcher import HttpxFetcher
    from otaforge.agent.results import AgentEvent
    from otaforge.agent.server_api import ServerClient
    from otaforge.agent.updater import Updater, run_cycle
    from otaforge.device.emulator import DeviceConfig
    from otaforge.errors import PowerCut, ServerError
    from otaforge.formats.chips import chip

    console = make_console()
    bar = DownloadBar(console)

    def show(event: AgentEvent) -> None:
        bar.close()
        if event.kind in ("report", "report_failed", "report_refused"):
            console.print(f"  [blue]server[/]  {event.message}")
        else:
            console.print(f"  [green]device[/]  {event.message}")

    if not server.lower().startswith("https://"):
        fail(f"--server {server!r}: expected an https:// URL (the device only talks TLS, "
             "pinned to --ca)", EXIT_BAD_INPUT)
    with handle_errors():
        key_digests = _digests(secure_boot_key or [])
        config = DeviceConfig(rollback=rollback, anti_rollback=anti_rollback,
                              secure_boot_v2=bool(key_digests))
        device = load_device(flash, chip(chip_name), config, parse_behaviours(app or []),
                             key_digests)
        ident = device_id or flash.stem
        the_token = _token(token)
        fetcher = HttpxFetcher.from_file(ca)  # bad --ca: exit 2 before the device powers on
        try:
            boot = device.power_on()
            console.print(f"  [green]device[/]  power on: bootloader: {boot.reason}")
            if boot.status != "running":
                fail(f"device does not run an app ({boot.status}): {boot.reason}")
            with fetcher:
                client = ServerClient(fetcher, server, ident, the_token)
                agent_config = AgentConfig(server, fleet, ident, the_token,
                                           partial_http_download=partial is not None,
                                           max_http_request_size=partial or 64 * 1024)
                agent = Updater(device, client, fetcher, agent_config,
                                on_event=show,
                                on_progress=lambda d, t: bar.update("download", d, t))
                result = run_cycle(agent)
        except PowerCut as cut:
            bar.close()
            console.print(f"  [red]device[/]  power cut: {cut}; run again to resume")
            raise typer.Exit(EXIT_FAILED) from None
        except ServerError as err:
            hint = (" (check --token / OTAFORGE_TOKEN: a device token or the fleet's "
                    "enrollment token, and --fleet)" if err.status_code in (401, 403) else "")
            fail(f"{err}{hint}", EXIT_FAILED)
        finally:
            bar.close()
            save_device(device, flash)
    running = device.running_desc.version if device.running_desc else "?"
    where = device.running_partition.name if device.running_partition else "?"
    outcome = str(result.update.outcome)
    if result.after_reboot is not None:
        outcome = f"{result.update.version} {result.after_reboot}"
    console.print(f"running {running} from {where}: {outcome}"
                  + (f" ({result.update.reason})" if result.update.reason else ""))
    if result.update.outcome == "interrupted":
        raise typer.Exit(EXIT_TRANSPORT)  # partial download kept: run again to resume
    if not result.ok:
        raise typer.Exit(EXIT_FAILED)


def register(app: typer.Typer) -> None:
    """Add ``run`` to the ``device`` group."""
    app.command("run")(run)
