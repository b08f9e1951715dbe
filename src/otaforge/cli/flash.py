"""``otaforge flash inspect | compose | erase-otadata``: whole-flash images.

``inspect`` answers "what does the ESP-IDF bootloader boot next on this flash, and why"; exit code
0 when an app boots, 1 when nothing boots (reported, ``"partition": null``; ``--report-only``
makes that 0 too), 2 when the file cannot be read or an option is bad.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from otaforge.cli._common import EXIT_FAILED, fail, read_input
from otaforge.errors import InputError

if TYPE_CHECKING:
    from otaforge.device.flash_image import InspectReport
    from otaforge.formats.partition_table import PartitionEntry, PartitionTable


def _int(text: str, what: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise InputError(f"{what} {text!r} is not a number (use e.g. 0x8000)") from None


def _size(text: str | None) -> int | None:
    from otaforge.formats.partition_table import parse_flash_size

    return parse_flash_size(text) if text is not None else None


def inspect(args: argparse.Namespace) -> int:
    """``flash inspect FILE``: partitions, otadata, app slots, and which app the bootloader
    boots next (and why). Exit 1 when nothing boots, unless --report-only.
    """
    from otaforge.cli.image_sign import _read_digests
    from otaforge.device.bootloader import BootConfig, BootEfuses
    from otaforge.device.flash_image import (
        detect_chip,
        detect_flash_size,
        file_reader,
    )
    from otaforge.device.flash_image import inspect as run_inspect
    from otaforge.formats.chips import CHIPS, chip

    file = args.file
    data = read_input(file, "flash image")
    if not data:
        raise InputError(f"{file}: empty file, not a flash image (an esptool read-flash dump, "
                         "or make one with 'otaforge flash compose')")
    read = file_reader(data)
    spec = chip(args.chip) if args.chip else (detect_chip(read) or CHIPS["esp32"])
    size = _size(args.flash_size)
    source = "--flash-size"
    if size is None:
        size = detect_flash_size(read, spec)
        source = "from the bootloader header" if size else "no bootloader: not checked"
    digests = tuple(_read_digests(args.key_digest))  # 32 bytes each (16 on ESP32-C2)
    config = BootConfig(chip=spec, chip_rev=args.chip_rev,
                        rollback=args.rollback or args.anti_rollback,
                        anti_rollback=args.anti_rollback, secure_boot_v2=args.secure_boot_v2,
                        partition_table_offset=_int(args.partition_table_offset,
                                                    "--partition-table-offset"),
                        flash_size=size, efuse_blk_rev=args.efuse_blk_rev,
                        factory_reset=args.factory_reset, app_test=args.app_test)
    efuse = BootEfuses(args.efuse_secure_version,
                       args.secure_version_bits or spec.secure_version_bits,
                       digests, frozenset(args.revoke))
    report = run_inspect(read, config, efuse, factory_reset_requested=args.factory_reset,
                         test_requested=args.app_test)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(_render(file, len(data), report, source))
    if report.boot.partition is None and not args.report_only:
        fail(f"{file}: nothing boots from this flash (--report-only: exit 0)", EXIT_FAILED)
    return 0


def _render(file: str, length: int, report: InspectReport, source: str) -> str:
    size = f"0x{report.flash_size:x} " if report.flash_size else ""
    lines = [f"{file}: {length} bytes, chip {report.chip.name}, flash size {size}({source})",
             "Partitions:"]
    if report.table_error:
        lines.append(f"  (no valid partition table: {report.table_error})")
    lines += [f"  {p.name:<16} {p.type_name:<6} {p.subtype_name:<9} 0x{p.offset:08x} "
              f"0x{p.size:08x}" for p in report.partitions]
    if report.otadata:
        lines.append("otadata:")
    for o in report.otadata:
        js = o.to_json()
        target = f" -> {o.partition}" if o.partition else ""
        if o.seq == o.state == 0xFFFFFFFF:
            lines.append(f"  [{o.sector}] erased (0xFF)")
            continue
        lines.append(f"  [{o.sector}] seq 0x{o.seq:08x} state {js['state']} crc "
                     f"{'ok' if o.crc_ok else 'BAD'} {'valid' if o.valid else 'invalid'}{target}")
    if report.apps:
        lines.append("Apps:")
    for a in report.apps:
        what = "valid" if a.valid else f"NOT BOOTABLE: {a.error}"
        desc = (f" version {a.version!r} secure_version {a.secure_version}"
                if a.version is not None else "")
        lines.append(f"  {a.partition.name:<16} 0x{a.partition.offset:08x}{desc}: {what}")
    boot = report.boot
    if boot.partition is None:
        lines.append("Boot: NOTHING BOOTS (bricked: the bootloader resets in a loop)")
    else:
        lines.append(f"Boot: {boot.partition.name} at 0x{boot.partition.offset:x}")
    lines.append(f"  why: {boot.reason}")
    for op in boot.otadata_ops:
        lines.append(f"  bootloader writes: {op.kind} 0x{op.addr:x}"
                     + (f" ({len(op.data)} bytes)" if op.data else ""))
    if boot.burn_secure_version is not None:
        lines.append(f"  bootloader burns eFuse secure version {boot.burn_secure_version}")
    return "\n".join(lines)


def _target(table: PartitionTable, option: str, subtype: int) -> PartitionEntry:
    found = [p for p in table.entries if p.type == 0x00 and p.subtype == subtype]
    if not found:
        raise InputError(f"{option} given, but the partition table has no such app partition")
    return found[0]


def compose(args: argparse.Namespace) -> int:
    """Build a flash image: partition table, apps, erased otadata (as `idf.py flash`)."""
    import os

    from otaforge.device.flash_image import compose as build
    from otaforge.device.flash_image import require_bootable_inputs
    from otaforge.formats.chips import chip
    from otaforge.formats.partition_table import load_partition_table
    from otaforge.fsutil import atomic_write

    out: str = args.output
    table_offset = _int(args.partition_table_offset, "--partition-table-offset")
    table = load_partition_table(read_input(args.partitions, "partition table"), table_offset)
    slots = [("--factory", 0x00, args.factory), ("--test", 0x20, args.test)]
    slots += [(f"--ota-{n}", 0x10 + n, getattr(args, f"ota_{n}")) for n in range(16)]
    wanted = [(opt, sub, path) for opt, sub, path in slots if path is not None]
    apps = {_target(table, opt, sub).name: read_input(path, "app image")
            for opt, sub, path in wanted}
    sources = {_target(table, opt, sub).name: f"{opt} {path}" for opt, sub, path in wanted}
    boot = read_input(args.bootloader, "bootloader image") if args.bootloader else None
    spec = chip(args.chip)
    require_bootable_inputs(apps, boot, spec, {**sources,
                                               "bootloader": f"--bootloader {args.bootloader}"})
    image = build(table, apps, flash_size=_size(args.flash_size), bootloader=boot, chip=spec,
                  table_offset=table_offset)
    if os.path.isdir(out) or not os.path.isdir(os.path.dirname(os.path.abspath(out))):
        raise InputError(f"{out}: give a file in an existing folder with -o")
    atomic_write(out, image)
    print(f"wrote {out}: {len(image)} bytes (0x{len(image):x}), "
          f"{len(table.entries)} partitions, apps in {', '.join(apps) or 'none'}")
    return 0


def erase_otadata(args: argparse.Namespace) -> int:
    """Erase the otadata partition (0xFF), as `idf.py erase-otadata`: factory / ota_0 boots."""
    import os

    from otaforge.device.flash_image import erase_otadata_file

    file: str = args.file
    if not os.path.isfile(file):
        raise FileNotFoundError(2, "no such file", file)
    part = erase_otadata_file(file, _int(args.partition_table_offset, "--partition-table-offset"))
    print(f"erased otadata '{part.name}' at 0x{part.offset:x} (0x{part.size:x} bytes) in "
          f"{file}: the next boot picks factory, or ota_0 without factory")
    return 0
