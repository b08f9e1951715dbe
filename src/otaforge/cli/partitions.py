"""``otaforge partitions convert|check``: ESP-IDF partition tables (core in
``cli/_partitions_render.py``).

``partitions convert`` is benchmarked against ESP-IDF's gen_esp32part.py as a whole process.
"""

from __future__ import annotations

import argparse

from otaforge.cli._partitions_render import TableOptions, run_check, run_convert


def _options(args: argparse.Namespace, md5: bool = True) -> TableOptions:
    return TableOptions(args.flash_size, args.offset, args.primary_bootloader_offset,
                        args.recovery_bootloader_offset, args.secure, md5=md5)


def convert(args: argparse.Namespace) -> int:
    """``partitions convert INPUT OUTPUT``: CSV <-> binary, as gen_esp32part.py."""
    return run_convert(args.input, args.output, _options(args, md5=not args.disable_md5sum))


def check(args: argparse.Namespace) -> int:
    """``partitions check INPUT [--image APP] [--json]``."""
    return run_check(args.input, _options(args), args.image, as_json=args.json)
