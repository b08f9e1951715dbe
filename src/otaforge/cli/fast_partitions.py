"""Fast path for ``otaforge partitions convert``: argparse only, no typer/rich import.

:data:`otaforge.cli.main.FAST_PATHS` routes ``partitions convert`` here; the typer command in
:mod:`otaforge.cli.partitions` takes the same options and calls the same
:func:`~otaforge.cli._partitions_render.run_convert`.
"""

from __future__ import annotations

import argparse

from otaforge.cli._partitions_render import SECURE_CHOICES, TableOptions, run_convert


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otaforge partitions convert",
        description="Convert an ESP-IDF partition table CSV to binary, or binary to CSV "
                    "(decided by content, as gen_esp32part.py).")
    parser.add_argument("input", metavar="INPUT", help="CSV or binary partition table ('-': stdin)")
    parser.add_argument("output", metavar="OUTPUT", help="file to write ('-': stdout)")
    parser.add_argument("--flash-size", default=None,
                        help="check the table fits this flash (1MB..128MB, or e.g. 0x400000)")
    parser.add_argument("--offset", "-o", default="0x8000", help="partition table offset")
    parser.add_argument("--primary-bootloader-offset", default=None)
    parser.add_argument("--recovery-bootloader-offset", default=None)
    parser.add_argument("--secure", default=None, choices=SECURE_CHOICES,
                        help="app partition sizes suitable for secure boot v1/v2")
    parser.add_argument("--disable-md5sum", action="store_true",
                        help="no MD5 record (tables for ESP-IDF older than v3.1)")
    return parser


def fast_main(argv: list[str]) -> int:
    """Run ``partitions convert`` with ``argv`` (the arguments after ``convert``).

    Returns:
        The process exit code (0 ok, 2 invalid input).
    """
    args = _parser().parse_args(argv)
    opts = TableOptions(args.flash_size, args.offset, args.primary_bootloader_offset,
                        args.recovery_bootloader_offset, args.secure,
                        md5=not args.disable_md5sum)
    return run_convert(args.input, args.output, opts)
