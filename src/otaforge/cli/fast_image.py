"""Fast path of ``otaforge image info``: argparse only, no typer/rich/cryptography imports.

``cli/main.py`` calls :func:`fast_main` for ``otaforge image info ...`` (without ``--help``),
so the command starts about as fast as Python itself; its start-up time is benchmarked
against ``esptool image-info`` in ``bench/bench_image_info.py``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    import argparse

    parser = argparse.ArgumentParser(
        prog="otaforge image info",
        description="Show an ESP-IDF app image's header, segments, checksum, hash and app "
                    "description (as esptool image-info). Exit 1 when checksum or hash is "
                    "invalid, 2 when the file is not an app image.",
    )
    parser.add_argument("file", help="app image (.bin); trailing 0xFF or a signature is fine")
    parser.add_argument("--json", action="store_true", help="print a JSON report")
    return parser


def run_info(path: str, as_json: bool) -> tuple[str, int]:
    """Read ``path`` and return (report text, exit code).

    Raises:
        OtaforgeError: the file is not an app image (FormatError) -> exit 2 in the callers.
        OSError: the file cannot be read.
    """
    from otaforge.cli._image_render import image_report, is_valid, render_json, render_text
    from otaforge.formats.app_image import AppImage, check_esp32_family
    from otaforge.fsutil import read_file

    data = read_file(path, "app image")
    image = AppImage.from_bytes(data, check=False)
    check_esp32_family(image.header, known_chip=True)  # esptool: an unknown chip id is ESP8266
    report = image_report(data, image)
    text = render_json(report) if as_json else render_text(report, image, image.chip)
    return text, EXIT_OK if is_valid(report) else EXIT_INVALID


def _simple_args(argv: list[str]) -> tuple[str, bool] | None:
    """(file, json) for the common ``FILE [--json]`` forms; None means let argparse decide."""
    positional = [a for a in argv if a != "--json"]
    if len(positional) == 1 and not positional[0].startswith("-"):
        return positional[0], "--json" in argv
    return None


def fast_main(argv: list[str]) -> int:
    """``otaforge image info FILE [--json]`` without typer; returns the exit code.

    The two common argument forms are recognised directly (argparse and its imports cost
    several ms of a ~30 ms run); anything else (``-h``, unknown options, a missing FILE) goes
    through argparse for its usual messages and exit code 2.
    """
    simple = _simple_args(argv)
    if simple is None:
        args = _parser().parse_args(argv)
        simple = (args.file, args.json)
    path, as_json = simple
    from otaforge.errors import InputError, OtaforgeError

    try:
        text, code = run_info(path, as_json)
    except InputError as err:  # names the file itself
        sys.stderr.write(f"error: {err}\n")
        return EXIT_BAD_INPUT
    except OtaforgeError as err:
        sys.stderr.write(f"error: {path}: {err}\n")
        return EXIT_BAD_INPUT
    sys.stdout.write(text)
    if code != EXIT_OK:
        sys.stderr.write(f"error: {path}: checksum or appended SHA-256 is invalid\n")
    return code
