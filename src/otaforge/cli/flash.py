"""``otaforge flash inspect | compose | erase-otadata``: whole-flash images (typer).

``inspect`` answers "what does the ESP-IDF bootloader boot next on this flash, and why"; exit code
0 when an app boots, 1 when nothing boots (reported, ``"partition": null``; ``--report-only``
makes that 0 too), 2 when the file cannot be read or an option is bad.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from otaforge.cli._common import EXIT_BAD_INPUT, EXIT_FAILED, fail, handle_errors, read_input
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


def inspect(
    file: Annotated[Path, typer.Argument(help="Flash image (esptool read-flash dump or merged).")],
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON report.")] = False,
    chip_name: Annotated[str | None, typer.Option(
        "--chip", help="Target chip (default: from the bootloader header, else esp32).")] = None,
    chip_rev: Annotated[int | None, typer.Option(
        "--chip-rev", min=0, max=0xFFFF,
        help="Chip revision, major*100+minor (default: unknown; the image's minimum is "
        "taken as met, its own min <= max still checked).")
    ] = None,
    efuse_blk_rev: Annotated[int | None, typer.Option(
        "--efuse-blk-rev", min=0, max=0xFFFF,
        help="eFuse block revision, major*100+minor (non-ESP32; default: not checked).")
    ] = None,
    rollback: Annotated[bool, typer.Option(
        "--rollback", help="CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE.")] = False,
    anti_rollback: Annotated[bool, typer.Option(
        "--anti-rollback", help="CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK.")] = False,
    efuse_secure_version: Annotated[int, typer.Option(
        "--efuse-secure-version", min=0, help="Secure version burned in eFuse.")] = 0,
    secure_version_bits: Annotated[int | None, typer.Option(
        "--secure-version-bits", min=1, max=32,
        help="CONFIG_BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD (default: the chip's).")] = None,
    flash_size: Annotated[str | None, typer.Option(
        "--flash-size", help="Flash size (default: from the bootloader header).")] = None,
    offset: Annotated[str, typer.Option(
        "--partition-table-offset", help="CONFIG_PARTITION_TABLE_OFFSET.")] = "0x8000",
    factory_reset: Annotated[bool, typer.Option(
        "--factory-reset", help="CONFIG_BOOTLOADER_FACTORY_RESET with the pin held: erase "
        "nvs and otadata first (CONFIG_BOOTLOADER_OTA_DATA_ERASE).")] = False,
    app_test: Annotated[bool, typer.Option(
        "--app-test", help="CONFIG_BOOTLOADER_APP_TEST with the pin held: boot the test app."
    )] = False,
    secure_boot_v2: Annotated[bool, typer.Option(
        "--secure-boot-v2", help="Secure Boot v2: apps must be signed by an eFuse key.")] = False,
    key_digests: Annotated[list[Path] | None, typer.Option(
        "--key-digest", help="eFuse key digest file (32 bytes, espsecure "
        "digest-sbv2-public-key); repeat for key slots 0..2.")] = None,
    revoked: Annotated[list[int] | None, typer.Option(
        "--revoke", help="Revoked key slot (SECURE_BOOT_KEY_REVOKEn); repeatable.")] = None,
    report_only: Annotated[bool, typer.Option(
        "--report-only", help="Exit 0 even when nothing boots (just report).")] = False,
) -> None:
    """Partitions, otadata, app slots, and which app the bootloader boots next (and why).

    Exit 1 when nothing boots, unless --report-only.
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

    with handle_errors():
        data = read_input(file, "flash image")
        if not data:
            fail(f"{file}: empty file, not a flash image (an esptool read-flash dump, or "
                 "make one with 'otaforge flash compose')", EXIT_BAD_INPUT)
        read = file_reader(data)
        spec = chip(chip_name) if chip_name else (detect_chip(read) or CHIPS["esp32"])
        size = _size(flash_size)
        source = "--flash-size"
        if size is None:
            size = detect_flash_size(read, spec)
            source = "from the bootloader header" if size else "no bootloader: not checked"
        digests = tuple(_read_digests(key_digests or []))  # 32 bytes each (16 on ESP32-C2)
        config = BootConfig(chip=spec, chip_rev=chip_rev, rollback=rollback or anti_rollback,
                            anti_rollback=anti_rollback, secure_boot_v2=secure_boot_v2,
                            partition_table_offset=_int(offset, "--partition-table-offset"),
                            flash_size=size, efuse_blk_rev=efuse_blk_rev,
                            factory_reset=factory_reset, app_test=app_test)
        efuse = BootEfuses(efuse_secure_version, secure_version_bits or spec.secure_version_bits,
                           digests, frozenset(revoked or []))
        report = run_inspect(read, config, efuse, factory_reset_requested=factory_reset,
                             test_requested=app_test)
    if json_out:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        typer.echo(_render(file, len(data), report, source))
    if report.boot.partition is None and not report_only:
        fail(f"{file}: nothing boots from this flash (--report-only: exit 0)", EXIT_FAILED)


def _render(file: Path, length: int, report: InspectReport, source: str) -> str:
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


def _slot_args(extra: list[str]) -> dict[int, Path]:
    """``--ota-N FILE`` / ``--ota-N=FILE`` pairs beyond the declared --ota-0/--ota-1."""
    slots: dict[int, Path] = {}
    items = iter(extra)
    for item in items:
        name, _, value = item.partition("=")
        index = name[len("--ota-"):] if name.startswith("--ota-") else ""
        if not index.isdigit() or int(index) > 15:
            raise InputError(f"unknown option {item!r} (app slots are --ota-0 .. --ota-15)")
        if not value:
            value = next(items, "")
            if not value:
                raise InputError(f"{name} needs a file")
        slots[int(index)] = Path(value)
    return slots


def _target(table: PartitionTable, option: str, subtype: int) -> PartitionEntry:
    found = [p for p in table.entries if p.type == 0x00 and p.subtype == subtype]
    if not found:
        raise InputError(f"{option} given, but the partition table has no such app partition")
    return found[0]


def compose(
    ctx: typer.Context,
    partitions: Annotated[Path, typer.Option(
        "--partitions", help="Partition table: CSV (gen_esp32part syntax) or binary.")],
    out: Annotated[Path, typer.Option("--output", "-o", help="Flash image to write.")],
    factory: Annotated[Path | None, typer.Option("--factory", help="Factory app.")] = None,
    ota_0: Annotated[Path | None, typer.Option(
        "--ota-0", help="App for ota_0 (likewise --ota-2 .. --ota-15).")] = None,
    ota_1: Annotated[Path | None, typer.Option("--ota-1", help="App for ota_1.")] = None,
    test: Annotated[Path | None, typer.Option("--test", help="Test app.")] = None,
    bootloader: Annotated[Path | None, typer.Option(
        "--bootloader", help="Bootloader image (at the chip's bootloader offset).")] = None,
    chip_name: Annotated[str, typer.Option("--chip", help="Target chip.")] = "esp32",
    flash_size: Annotated[str | None, typer.Option(
        "--flash-size", help="Flash size, e.g. 4MB (default: smallest that holds the table).")
    ] = None,
    offset: Annotated[str, typer.Option(
        "--partition-table-offset", help="CONFIG_PARTITION_TABLE_OFFSET.")] = "0x8000",
) -> None:
    """Build a flash image: partition table, apps, erased otadata (as `idf.py flash`)."""
    from otaforge.device.flash_image import compose as build
    from otaforge.device.flash_image import require_bootable_inputs
    from otaforge.formats.chips import chip
    from otaforge.formats.partition_table import load_partition_table

    with handle_errors():
        table_offset = _int(offset, "--partition-table-offset")
        table = load_partition_table(read_input(partitions, "partition table"), table_offset)
        wanted: list[tuple[str, int, Path]] = [
            (opt, sub, path) for opt, sub, path in (
                ("--factory", 0x00, factory), ("--test", 0x20, test),
                ("--ota-0", 0x10, ota_0), ("--ota-1", 0x11, ota_1)) if path is not None]
        wanted += [(f"--ota-{n}", 0x10 + n, p) for n, p in _slot_args(list(ctx.args)).items()]
        apps = {_target(table, opt, sub).name: read_input(path, "app image")
                for opt, sub, path in wanted}
        sources = {_target(table, opt, sub).name: f"{opt} {path}" for opt, sub, path in wanted}
        boot = read_input(bootloader, "bootloader image") if bootloader else None
        spec = chip(chip_name)
        require_bootable_inputs(apps, boot, spec, {**sources, "bootloader": f"--bootloader "
                                                   f"{bootloader}"})
        image = build(table, apps, flash_size=_size(flash_size), bootloader=boot, chip=spec,
                      table_offset=table_offset)
        if out.is_dir() or not out.parent.is_dir():
            fail(f"{out}: give a file in an existing folder with -o", EXIT_BAD_INPUT)
        from otaforge.fsutil import atomic_write

        atomic_write(out, image)
    typer.echo(f"wrote {out}: {len(image)} bytes (0x{len(image):x}), "
               f"{len(table.entries)} partitions, apps in {', '.join(apps) or 'none'}")


def erase_otadata(
    file: Annotated[Path, typer.Argument(help="Flash image to change in place.")],
    offset: Annotated[str, typer.Option(
        "--partition-table-offset", help="CONFIG_PARTITION_TABLE_OFFSET.")] = "0x8000",
) -> None:
    """Erase the otadata partition (0xFF), as `idf.py erase-otadata`: factory / ota_0 boots."""
    from otaforge.device.flash_image import erase_otadata_file

    with handle_errors():
        if not file.is_file():
            raise FileNotFoundError(2, "no such file", str(file))
        part = erase_otadata_file(file, _int(offset, "--partition-table-offset"))
    typer.echo(f"erased otadata '{part.name}' at 0x{part.offset:x} (0x{part.size:x} bytes) in "
               f"{file}: the next boot picks factory, or ota_0 without factory")


def register(app: typer.Typer) -> None:
    """Add ``inspect``, ``compose`` and ``erase-otadata`` to the ``flash`` group."""
    app.command("inspect")(inspect)
    app.command("compose", context_settings={"allow_extra_args": True,
                                             "ignore_unknown_options": True})(compose)
    app.command("erase-otadata")(erase_otadata)
