"""``otaforge image info`` and ``otaforge image build`` (``image sign``/``verify``:
``cli/image_sign.py``).

``image info`` is benchmarked against ``esptool image-info`` as a whole process
(``bench/bench_cli.py``): it imports only the app-image format and its report renderer.
"""

from __future__ import annotations

import argparse
import sys

from otaforge.cli._common import EXIT_FAILED, EXIT_OK
from otaforge.errors import InputError


def run_info(path: str, as_json: bool) -> tuple[str, int]:
    """Read ``path`` and return (report text, exit code: 0 valid, 1 checksum/hash invalid).

    Raises:
        InputError: the file cannot be read.
        FormatError: the file is not an app image.
    """
    from otaforge.cli._image_render import image_report, is_valid, render_json, render_text
    from otaforge.formats.app_image import AppImage, check_esp32_family
    from otaforge.fsutil import read_file

    data = read_file(path, "app image")
    image = AppImage.from_bytes(data, check=False)
    check_esp32_family(image.header, known_chip=True)  # esptool: an unknown chip id is ESP8266
    report = image_report(data, image, file_hash=as_json)
    text = render_json(report) if as_json else render_text(report, image, image.chip)
    return text, EXIT_OK if is_valid(report) else EXIT_FAILED


def info(args: argparse.Namespace) -> int:
    """``image info FILE [--json]``."""
    from otaforge.errors import InputError, OtaforgeError

    try:
        text, code = run_info(args.file, args.json)
    except InputError:
        raise  # names the file itself
    except OtaforgeError as err:  # not an app image: name the file, exit 2
        raise InputError(f"{args.file}: {err}") from None
    sys.stdout.write(text)
    if code != EXIT_OK:
        sys.stderr.write(f"error: {args.file}: checksum or image hash is invalid\n")
    return code


def build(args: argparse.Namespace) -> int:
    """``image build -o FILE --version TEXT ...``."""
    import os

    from otaforge.cli._partitions_render import output_mode
    from otaforge.formats.app_image import AppImage, image_sha256
    from otaforge.formats.image_builder import build_image
    from otaforge.fsutil import atomic_write

    out: str = args.output
    data = build_image(version=args.version, project=args.project,
                       secure_version=args.secure_version, chip=args.chip, size=args.size,
                       seed=args.seed, idf_ver=args.idf_ver,
                       min_chip_rev_full=args.min_chip_rev_full,
                       max_chip_rev_full=args.max_chip_rev_full)
    image = AppImage.from_bytes(data)
    if os.path.isdir(out):
        raise InputError(f"{out}: is a directory; give the image file name with -o")
    if not os.path.isdir(os.path.dirname(os.path.abspath(out))):
        raise InputError(f"{os.path.dirname(out)}: no such directory for -o")
    atomic_write(out, data, output_mode(out))
    spec = image.chip
    sys.stdout.write(f"wrote {out}: {len(data)} bytes, {spec.name if spec else '?'}, "
                     f"{len(image.segments)} segments, version {args.version!r}, "
                     f"secure_version {args.secure_version}, file sha256 "
                     f"{image_sha256(data)}\n")
    return EXIT_OK
