"""``otaforge partitions``: convert ESP-IDF partition tables and check their OTA layout."""

from __future__ import annotations

from typing import Annotated

import typer

from otaforge.cli._partitions_render import TableOptions, run_check, run_convert

FlashSize = Annotated[str | None, typer.Option(
    "--flash-size", help="Flash size (1MB..128MB, or e.g. 0x400000): check the table fits.")]
Offset = Annotated[str, typer.Option("--offset", "-o", help="Partition table offset.")]
PrimaryBoot = Annotated[str | None, typer.Option(
    "--primary-bootloader-offset", help="Offset of the primary bootloader (bootloader entries).")]
RecoveryBoot = Annotated[str | None, typer.Option(
    "--recovery-bootloader-offset", help="Offset of the recovery bootloader.")]
Secure = Annotated[str | None, typer.Option(
    "--secure", help="v1 or v2: app partition sizes suitable for secure boot.")]


def convert(
    input: Annotated[str, typer.Argument(help="CSV or binary partition table ('-': stdin).")],
    output: Annotated[str, typer.Argument(help="File to write ('-': stdout).")],
    flash_size: FlashSize = None,
    offset: Offset = "0x8000",
    primary_bootloader_offset: PrimaryBoot = None,
    recovery_bootloader_offset: RecoveryBoot = None,
    secure: Secure = None,
    disable_md5sum: Annotated[bool, typer.Option(
        "--disable-md5sum", help="No MD5 record (tables for ESP-IDF older than v3.1).")] = False,
) -> None:
    """Convert CSV to binary or binary to CSV, byte-identical to ESP-IDF's gen_esp32part.py."""
    code = run_convert(input, output, TableOptions(
        flash_size, offset, primary_bootloader_offset, recovery_bootloader_offset, secure,
        md5=not disable_md5sum))
    if code:
        raise typer.Exit(code)


def check(
    input: Annotated[str, typer.Argument(help="CSV or binary partition table.")],
    flash_size: FlashSize = None,
    image: Annotated[str | None, typer.Option(
        "--image", help="Firmware image that must fit every OTA and factory slot.")] = None,
    offset: Offset = "0x8000",
    primary_bootloader_offset: PrimaryBoot = None,
    recovery_bootloader_offset: RecoveryBoot = None,
    secure: Secure = None,
) -> None:
    """Print the table (offsets, sizes, free space) and the OTA checks (exit 1 if critical)."""
    code = run_check(input, TableOptions(
        flash_size, offset, primary_bootloader_offset, recovery_bootloader_offset, secure), image)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add ``convert`` and ``check`` to the ``partitions`` group."""
    app.command("convert")(convert)
    app.command("check")(check)
