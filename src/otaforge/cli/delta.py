"""``otaforge delta create|apply|info``: esp_delta_ota patches (logic in :mod:`otaforge.delta`).

Exit status: 0 ok, 1 the patch does not match the base (or did not rebuild the image), 2 bad
input (a file that is not an app image or not a patch); nothing is written on failure.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from otaforge.cli._common import handle_errors, read_input
from otaforge.fsutil import atomic_write


def create(
    base: Annotated[Path, typer.Argument(help="Base app image (what the device runs).")],
    new: Annotated[Path, typer.Argument(help="New app image.")],
    out: Annotated[Path, typer.Option("--output", "-o", help="Patch file to write.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON report.")] = False,
) -> None:
    """Make an esp_delta_ota patch (Espressif's format), checked by applying it."""
    from otaforge.delta.create import create_patch

    with handle_errors():
        made = create_patch(read_input(base, "base app image"),
                            read_input(new, "new app image"))
        atomic_write(out, made.patch)
    report = made.to_json()
    if json_out:
        print(json.dumps(report, indent=2))
        return
    print(f"{out}: {report['patch_size']} bytes, {100 * made.ratio:.2f}% of the new image "
          f"({report['new_size']} bytes, {report['saved_bytes']} saved)")
    print(f"base validation hash {report['base_sha256']}")


def apply(
    base: Annotated[Path, typer.Argument(help="Base app image the patch was made from.")],
    patch: Annotated[Path, typer.Argument(help="esp_delta_ota patch file.")],
    out: Annotated[Path, typer.Option("--output", "-o", help="New image file to write.")],
) -> None:
    """Rebuild the new image; refuses a patch made for another base."""
    from otaforge.delta.create import apply_checked

    with handle_errors():
        image = apply_checked(read_input(base, "base app image"),
                              read_input(patch, "delta patch"))
        atomic_write(out, image)
    print(f"{out}: {len(image)} bytes")


def info(
    patch: Annotated[Path, typer.Argument(help="esp_delta_ota patch file.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON report.")] = False,
) -> None:
    """Show a patch's headers: base hash, detools type, compression, new image size."""
    from otaforge.delta.create import patch_info

    with handle_errors():
        report = patch_info(read_input(patch, "delta patch")).to_json()
    if json_out:
        print(json.dumps(report, indent=2))
        return
    stock = "yes" if report["stock_esp_delta_ota"] else "no"
    print(f"esp_delta_ota patch, {report['size']} bytes")
    print(f"base validation hash: {report['base_sha256']}")
    print(f"detools: {report['patch_type']}, {report['compression']} "
          f"(window {report['heatshrink_window_sz2']}, lookahead "
          f"{report['heatshrink_lookahead_sz2']})")
    print(f"new image size: {report['new_size']} bytes")
    print(f"applicable by stock esp_delta_ota: {stock}")


def register(app: typer.Typer) -> None:
    """Add ``create``, ``apply`` and ``info`` to the ``delta`` group."""
    app.command("create")(create)
    app.command("apply")(apply)
    app.command("info")(info)
