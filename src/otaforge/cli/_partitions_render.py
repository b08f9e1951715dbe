"""The ``partitions`` commands' core: options, conversion, the table and findings rendering.

:mod:`otaforge.cli.partitions` calls :func:`run_convert` and :func:`run_check`; they take
their streams as arguments so tests can run them in process.
"""

from __future__ import annotations

import os
import stat
import sys
from itertools import pairwise

from otaforge.cli._common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, exit_code_for, read_input
from otaforge.errors import FormatError, InputError, OtaforgeError
from otaforge.formats.partition_csv import format_size
from otaforge.formats.partition_table import (
    DEFAULT_TABLE_OFFSET,
    PartitionEntry,
    PartitionTable,
    convert_table,
    load_partition_table,
    parse_flash_size,
    table_warnings,
)
from otaforge.fsutil import atomic_write, ensure_dir

TYPE_CHECKING = False  # no typing import at run time (start-up)
if TYPE_CHECKING:
    from typing import TextIO

    from otaforge.formats.ota_layout import Finding

SECURE_CHOICES = ("v1", "v2")


class TableOptions:
    """Command-line settings shared by ``convert`` and ``check`` (as typed by the user)."""

    __slots__ = ("flash_size", "md5", "offset", "primary_bootloader_offset",
                 "recovery_bootloader_offset", "secure")

    def __init__(self, flash_size: str | None = None, offset: str = "0x8000",
                 primary_bootloader_offset: str | None = None,
                 recovery_bootloader_offset: str | None = None,
                 secure: str | None = None, md5: bool = True) -> None:
        self.flash_size = flash_size
        self.md5 = md5
        self.offset = offset
        self.primary_bootloader_offset = primary_bootloader_offset
        self.recovery_bootloader_offset = recovery_bootloader_offset
        self.secure = secure


def _address(text: str | None, option: str) -> int | None:
    if text is None:
        return None
    try:
        value = int(text.strip(), 0)
    except ValueError:
        raise InputError(f"{option} {text!r} is not a number (use e.g. 0x8000)") from None
    if value < 0:
        raise InputError(f"{option} {text!r} must not be negative")
    return value


def _report(err: OtaforgeError, path: str, stderr: TextIO) -> int:
    where = "" if isinstance(err, InputError) else f"{path}: "
    stderr.write(f"error: {where}{err}\n")
    return exit_code_for(err)


class _Resolved:
    """:class:`TableOptions` parsed and checked."""

    def __init__(self, opts: TableOptions) -> None:
        if opts.secure is not None and opts.secure not in SECURE_CHOICES:
            raise InputError(f"--secure {opts.secure!r}: expected v1 or v2")
        offset = _address(opts.offset, "--offset")
        self.flash_size = parse_flash_size(opts.flash_size) if opts.flash_size else None
        self.offset = DEFAULT_TABLE_OFFSET if offset is None else offset
        self.primary_bootloader_offset = _address(opts.primary_bootloader_offset,
                                                  "--primary-bootloader-offset")
        self.recovery_bootloader_offset = _address(opts.recovery_bootloader_offset,
                                                   "--recovery-bootloader-offset")
        self.secure = opts.secure


def run_convert(input_path: str, output_path: str, opts: TableOptions, *,
                stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """``partitions convert``: CSV -> binary or binary -> CSV; returns the exit code.

    The output is written atomically, and only when the whole input is valid.
    """
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        o = _Resolved(opts)
        result = convert_table(
            read_input(input_path, "partition table"), flash_size=o.flash_size, offset=o.offset,
            primary_bootloader_offset=o.primary_bootloader_offset,
            recovery_bootloader_offset=o.recovery_bootloader_offset, secure=o.secure,
            md5=opts.md5)
        for warning in result.warnings:  # gen_esp32part prints its warnings while verifying
            err.write(f"warning: {input_path}: {warning}\n")
        if output_path == "-":
            out.flush()
            sys.stdout.buffer.write(result.output)
            sys.stdout.buffer.flush()
            return EXIT_OK
        _write_output(output_path, result.output)
    except OtaforgeError as exc:
        return _report(exc, input_path, err)
    count = len(result.table.entries)
    out.write(f"{input_path} -> {output_path}: {result.output_kind} partition table, "
              f"{count} partition{'s' if count != 1 else ''}, {len(result.output)} bytes\n")
    return EXIT_OK


def _write_output(path: str, data: bytes) -> None:
    parent = os.path.dirname(path)
    if parent:
        ensure_dir(parent)  # gen_esp32part creates the output folder too
    atomic_write(path, data, output_mode(path))


def output_mode(path: str) -> int | None:
    """Permission bits for an output file: an existing file keeps its own, else None.

    None lets :func:`~otaforge.fsutil.atomic_write` give a new file ``0o666`` less the umask;
    replacing a file through a temporary one must not reset a mode the user chose (``0o640``).
    """
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None


def run_check(input_path: str, opts: TableOptions, image_path: str | None = None, *,
              stdout: TextIO | None = None, stderr: TextIO | None = None,
              as_json: bool = False) -> int:
    """``partitions check``: print the table, free space and OTA findings; returns exit code.

    Exit 2 when the table breaks a gen_esp32part rule, 1 when an OTA check is critical.
    """
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        o = _Resolved(opts)
        table = load_partition_table(
            read_input(input_path, "partition table"), o.offset,
            primary_bootloader_offset=o.primary_bootloader_offset,
            recovery_bootloader_offset=o.recovery_bootloader_offset)
        table.verify(o.flash_size, table_offset=o.offset, secure=o.secure)
        image_size = _image_size(image_path) if image_path else None
    except OtaforgeError as exc:
        return _report(exc, input_path, err)
    from otaforge.formats.ota_layout import check_ota_layout  # only for check: lean convert

    findings = check_ota_layout(table, image_size)
    if as_json:
        import json

        out.write(json.dumps(check_report(table, o.flash_size, findings, image_path,
                                          image_size), indent=2) + "\n")
    else:
        out.write(render_table(table, o.flash_size))
        out.write("".join(f"Warning: {w}\n" for w in table_warnings(table)))
        out.write(render_findings(findings, image_path, image_size))
    return EXIT_FAILED if any(f.critical for f in findings) else EXIT_OK


def _gaps(table: PartitionTable) -> list[tuple[PartitionEntry, PartitionEntry]]:
    ordered = sorted(table.entries, key=lambda p: p.offset)
    return [(a, b) for a, b in pairwise(ordered) if b.offset > a.end]


def check_report(table: PartitionTable, flash_size: int | None, findings: list[Finding],
                 image_path: str | None, image_size: int | None) -> dict[str, object]:
    """The ``partitions check --json`` report: what the text form shows, as data."""
    end = table.flash_end()
    return {
        "partitions": [{"name": p.name, "type": p.type_name, "subtype": p.subtype_name,
                        "offset": p.offset, "size": p.size, "end": p.end,
                        "flags": list(p.flag_names)} for p in table.entries],
        "unused": [{"offset": a.end, "size": b.offset - a.end, "after": a.name,
                    "before": b.name} for a, b in _gaps(table)],
        "end": end,
        "flash_size": flash_size,
        "free": flash_size - end if flash_size is not None else None,
        "warnings": list(table_warnings(table)),
        "image": {"path": image_path, "size": image_size} if image_path else None,
        "findings": [{"severity": f.severity, "code": f.code, "message": f.message}
                     for f in findings],
        "ok": not any(f.critical for f in findings),
    }


def _image_size(path: str) -> int:
    """Size of the ``--image`` file, once it is known to be a sound app image."""
    from otaforge.formats.image_verify import require_app_image  # only with --image: lean start

    data = read_input(path, "app image")
    try:
        require_app_image(data, f"{path} (--image)")
    except FormatError as err:  # the option's value is wrong, not the table: no table prefix
        raise InputError(str(err)) from None
    return len(data)


def _size_text(size: int) -> str:
    human = format_size(size)
    return f"0x{size:x}" if human.startswith("0x") else f"0x{size:x} ({human})"


def render_table(table: PartitionTable, flash_size: int | None) -> str:
    """The table as aligned text columns, with gaps and free space to the flash end."""
    header = ("Name", "Type", "SubType", "Offset", "Size", "End", "Flags")
    rows = [header] + [
        (p.name, p.type_name, p.subtype_name, f"0x{p.offset:x}", _size_text(p.size),
         f"0x{p.end:x}", ":".join(p.flag_names)) for p in table.entries]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    for before, after in _gaps(table):
        lines.append(f"unused: 0x{before.end:x}-0x{after.offset:x}, "
                     f"{_size_text(after.offset - before.end)}, between {before.name!r} "
                     f"and {after.name!r}")
    end = table.flash_end()
    if flash_size is not None:
        free = flash_size - end
        lines.append(f"flash: {format_size(flash_size)}B; partitions end at 0x{end:x}; "
                     f"free to flash end: {_size_text(free)}")
    else:
        lines.append(f"partitions end at 0x{end:x} (give --flash-size to see free space)")
    return "\n".join(lines) + "\n"


def render_findings(findings: list[Finding], image_path: str | None,
                    image_size: int | None) -> str:
    """The OTA findings, one per line (``Critical: ...``, ``Warning: ...``, ``OK: ...``)."""
    lines = ["", "OTA checks:"]
    if image_path is not None:
        lines.append(f"image: {image_path} ({image_size} bytes)")
    for f in findings:
        label = {"critical": "Critical", "warning": "Warning"}.get(f.severity, "OK")
        lines.append(f"  {label}: {f.message}")
    return "\n".join(lines) + "\n"


__all__ = ["EXIT_BAD_INPUT", "TableOptions", "check_report", "output_mode", "render_findings",
           "render_table", "run_check", "run_convert"]
