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

import argparse
import json
import sys
from typing import Any

from otaforge.cli._agent_render import DownloadBar, Timeline
from otaforge.cli._common import (
    EXIT_FAILED,
    EXIT_TRANSPORT,
    fail,
)
from otaforge.errors import InputError


def _token(value: str) -> str:
    if not value.startswith("@"):
        return value
    try:
        with open(value[1:], encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError as err:
        raise InputError(f"--token {value}: cannot read ({err.strerror})") from None


def _digests(keys: list[str]) -> list[bytes]:
    from otaforge.crypto import keys as k

    out = []
    for path in keys:
        try:
            with open(path, "rb") as handle:
                out.append(k.public_key_digest(k.load_public_key(handle.read())))
        except OSError as err:
            raise InputError(f"--secure-boot-key {path}: cannot read ({err.strerror})") from None
    return out


def run(args: argparse.Namespace) -> int:
    """``device run``: one emulated device against an update server (one check-in)."""
    from pathlib import Path

    from otaforge.agent.config import AgentConfig
    from otaforge.agent.device_files import load_device, parse_behaviours, save_device
    from otaforge.agent.httpx_fetcher import HttpxFetcher
    from otaforge.agent.results import AgentEvent
    from otaforge.agent.server_api import ServerClient
    from otaforge.agent.updater import Updater, run_cycle
    from otaforge.device.config import DeviceConfig
    from otaforge.errors import PowerCut, ServerError
    from otaforge.formats.chips import chip

    as_json: bool = args.json
    events: list[dict[str, str]] = []
    console = Timeline(quiet=as_json)
    bar = DownloadBar(console)

    def show(event: AgentEvent) -> None:
        bar.close()
        events.append({"kind": event.kind, "message": event.message})
        if event.kind in ("report", "report_failed", "report_refused"):
            console.line("server", event.message)
        else:
            console.line("device", event.message)

    server: str = args.server
    flash = Path(args.flash)
    if not server.lower().startswith("https://"):
        raise InputError(f"--server {server!r}: expected an https:// URL (the device only "
                         "talks TLS, pinned to --ca)")
    key_digests = _digests(args.secure_boot_key)
    config = DeviceConfig(rollback=args.rollback, anti_rollback=args.anti_rollback,
                          secure_boot_v2=bool(key_digests))
    device = load_device(flash, chip(args.chip), config, parse_behaviours(args.app),
                         key_digests)
    ident = args.device_id or flash.stem
    the_token = _token(args.token)
    fetcher = HttpxFetcher.from_file(args.ca)  # bad --ca: exit 2 before the device powers on
    try:
        boot = device.power_on()
        console.line("device", f"power on: bootloader: {boot.reason}")
        if boot.status != "running":
            fail(f"device does not run an app ({boot.status}): {boot.reason}")
        with fetcher:
            client = ServerClient(fetcher, server, ident, the_token)
            partial = args.partial_download
            agent_config = AgentConfig(server, args.fleet, ident, the_token,
                                       partial_http_download=partial is not None,
                                       max_http_request_size=partial or 64 * 1024)
            agent = Updater(device, client, fetcher, agent_config, on_event=show,
                            on_progress=lambda d, t: bar.update("download", d, t))
            result = run_cycle(agent)
    except PowerCut as cut:
        bar.close()
        console.line("device", f"power cut: {cut}; run again to resume", error=True)
        if as_json:
            _print_json(ident, device, "power_cut", None, str(cut), events)
        return EXIT_FAILED
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
    if as_json:
        _print_json(ident, device, str(result.update.outcome), result.update.version,
                    result.update.reason, events,
                    after_reboot=str(result.after_reboot) if result.after_reboot else None,
                    ok=result.ok)
    else:
        console.plain(f"running {running} from {where}: {outcome}"
                      + (f" ({result.update.reason})" if result.update.reason else ""))
    if result.update.outcome == "interrupted":
        return EXIT_TRANSPORT  # partial download kept: run again to resume
    return 0 if result.ok else EXIT_FAILED


def _print_json(ident: str, device: Any, outcome: str, version: str | None, reason: str,
                events: list[dict[str, str]], after_reboot: str | None = None,
                ok: bool = False) -> None:
    desc = device.running_desc
    part = device.running_partition
    sys.stdout.write(json.dumps({
        "device_id": ident, "running_version": desc.version if desc else None,
        "running_partition": part.name if part else None, "outcome": outcome,
        "version": version, "reason": reason, "after_reboot": after_reboot, "ok": ok,
        "events": events}, indent=2) + "\n")
