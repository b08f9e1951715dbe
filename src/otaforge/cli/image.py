"""``otaforge image info`` and ``otaforge image build`` (typer).

``image info`` normally runs through the argparse fast path (``cli/fast_image.py``); this typer
command is the same code for ``--help`` and for callers that build the full app. ``image sign``
and ``image verify`` live in ``cli/image_sign.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from otaforge.cli._common import EXIT_BAD_INPUT, fail, handle_errors
from otaforge.cli._partitions_render import output_mode
from otaforge.fsutil import atomic_write


def info(
    file: Annotated[Path, typer.Argument(help="App image (.bin); trailing 0xFF/signature ok.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON report.")] = False,
) -> None:
    """Show header, segments, checksum/hash validity and app description (as esptool).

    Exit code 1 when the checksum or appended SHA-256 is invalid (the report is still
    printed), 2 when the file is not an app image.
    """
    from otaforge.cli.fast_image import run_info

    with handle_errors():
        text, code = run_info(str(file), json_out)
    typer.echo(text, nl=False)
    if code:
        fail(f"{file}: checksum or appended SHA-256 is invalid", code)


def build(
    out: Annotated[Path, typer.Option("--output", "-o", help="Image file to write.")],
    version: Annotated[str, typer.Option("--version", help="esp_app_desc_t.version.")],
    project: Annotated[str, typer.Option("--project", help="project_name.")] = "otaforge-demo",
    secure_version: Annotated[int, typer.Option(
        "--secure-version", min=0, help="Anti-rollback secure_version.")] = 0,
    chip: Annotated[str, typer.Option("--chip", help="Target chip (esptool name).")] = "esp32",
    size: Annotated[int | None, typer.Option(
        "--size", help="Approximate image size in bytes (default 196608).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Content seed (same seed, same bytes).")] = 0,
    idf_ver: Annotated[str, typer.Option("--idf-ver", help="idf_ver string.")] = "v5.4.1",
    min_chip_rev: Annotated[int, typer.Option(
        "--min-chip-rev-full", min=0, max=0xFFFF, help="Header min_chip_rev_full.")] = 0,
    max_chip_rev: Annotated[int, typer.Option(
        "--max-chip-rev-full", min=0, max=0xFFFF, help="Header max_chip_rev_full (0 unset).")] = 0,
) -> None:
    """Build a valid synthetic app image (deterministic for a seed; esptool calls it valid)."""
    from otaforge.formats.app_image import AppImage, image_sha256
    from otaforge.formats.image_builder import build_image

    if secure_version > 0xFFFFFFFF:
        fail(f"--secure-version {secure_version}: must fit in 32 bits", EXIT_BAD_INPUT)
    with handle_errors():
        data = build_image(version=version, project=project, secure_version=secure_version,
                           chip=chip, size=size, seed=seed, idf_ver=idf_ver,
                           min_chip_rev_full=min_chip_rev, max_chip_rev_full=max_chip_rev)
        image = AppImage.from_bytes(data)
        if out.is_dir():
            fail(f"{out}: is a directory; give the image file name with -o", EXIT_BAD_INPUT)
        if not out.parent.is_dir():
            fail(f"{out.parent}: no such directory for -o", EXIT_BAD_INPUT)
        atomic_write(out, data, output_mode(str(out)))
    spec = image.chip
    typer.echo(f"wrote {out}: {len(data)} bytes, {spec.name if spec else '?'}, "
               f"{len(image.segments)} segments, version {version!r}, secure_version "
               f"{secure_version}, sha256 {image_sha256(data)}")


def register(app: typer.Typer) -> None:
    """Add ``info`` and ``build`` to the ``image`` group."""
    app.command("info")(info)
    app.command("build")(build)
