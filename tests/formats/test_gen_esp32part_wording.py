"""Each gen_esp32part.py error and warning, one row per class, against the real tool.

For every row the real ``gen_esp32part.py`` (``../shared/fixtures/esp-idf``) runs on the same
CSV or binary: it must fail (errors) or warn (warnings), and its own message text must appear in
otaforge's message, which says more (partition names, lines, what to do). gen_esp32part's
location prefix ("Error at line 3: ", "CSV Error at line 3: ") is dropped before comparing:
otaforge names the line its own way ("line 3: ...").
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from otaforge.errors import OtaforgeError
from otaforge.formats.partition_table import convert_table

NVS = b"nvs, data, nvs, , 0x4000\n"
_STATUS = ("Parsing CSV input...", "Parsing binary partition input...", "Verifying table...",
           "Please check extra_partition_subtypes.inc file in build/config directory")
_LOCATION = re.compile(r"^(CSV )?Error at line \d+: ")


def _binary(csv: bytes) -> bytearray:
    return bytearray(convert_table(csv).output)


def _record(ptype: int, subtype: int, offset: int, size: int, name: bytes) -> bytes:
    return (b"\xaa\x50" + bytes([ptype, subtype]) + offset.to_bytes(4, "little")
            + size.to_bytes(4, "little") + name.ljust(16, b"\x00") + b"\x00" * 4)


def _with_md5(records: bytes) -> bytes:
    body = records + b"\xeb\xeb" + b"\xff" * 14 + hashlib.md5(records).digest()
    return body + b"\xff" * (0xC00 - len(body))


def _md5_wrong() -> bytes:
    data = _binary(NVS)
    data[32 + 20] ^= 0xFF
    return bytes(data)


def _bad_magic_second() -> bytes:
    data = _binary(NVS + b"f, data, fat, , 4K\n")
    data[32:34] = b"\x12\x34"
    return bytes(data)


def _unknown_flags() -> bytes:
    data = _binary(b"f, data, fat, , 4K\n")
    data[28] |= 0x40
    data[32 + 16:64] = hashlib.md5(bytes(data[:32])).digest()
    return bytes(data)


Input = bytes | Callable[[], bytes]

# (class, input, gen_esp32part options): gen_esp32part refuses each, with its own message
ERRORS: list[tuple[str, Input, tuple[str, ...]]] = [
    ("type-empty", b"a, , nvs, , 4K\n", ()),
    ("type-unknown-keyword", b"a, dta, nvs, , 4K\n", ()),
    ("type-keyword-with-k-m-suffix", b"a, datum, fat, , 4K\n", ()),
    ("subtype-unknown-keyword", b"a, data, nvz, , 4K\n", ()),
    ("subtype-name-on-custom-type", b"a, 0x40, fat, , 4K\n", ()),
    ("app-subtype-empty", b"a, app, , , 1M\n", ()),
    ("size-empty", b"a, data, fat, 0x10000, \n", ()),
    ("offset-not-a-number", b"a, data, fat, 0x1000g, 4K\n", ()),
    ("size-not-a-number", b"a, data, fat, , 1.5M\n", ()),
    ("unknown-flag", b"a, data, fat, , 4K, secret\n", ()),
    ("unknown-variable", b"$NO_SUCH_VAR_X, data, fat, , 4K\n", ()),
    ("primary-bootloader-offset-missing", b"bl, bootloader, primary, , \n", ()),
    ("recovery-bootloader-offset-missing", b"bl, bootloader, recovery, , \n",
     ("--primary-bootloader-offset", "0x1000")),
    ("primary-bootloader-not-below-table", NVS, ("--primary-bootloader-offset", "0x8000")),
    ("first-offset-in-table-sector", b"a, data, fat, 0x8000, 4K\n", ()),
    ("offset-overlaps-previous", NVS + b"b, data, fat, 0xc000, 4K\n", ()),
    ("offset-not-aligned", b"a, data, fat, 0x9800, 4K\n", ()),
    ("app-offset-not-64k-aligned", NVS + b"f, app, factory, 0x11000, 1M\n", ()),
    ("app-size-not-aligned", b"f, app, factory, , 0x100800\n", ()),
    ("app-size-not-aligned-secure-v1", b"f, app, factory, , 0x101000\n", ("--secure", "v1")),
    ("otadata-readonly", b"o, data, ota, , 8K, readonly\n", ()),
    ("coredump-readonly", b"c, data, coredump, , 64K, readonly\n", ()),
    ("nvs-small-read-write", b"n, data, nvs, , 8K\n", ()),
    ("names-not-unique", NVS + b"nvs, data, fat, , 4K\n", ()),
    ("offset-below-table-binary", lambda: _with_md5(_record(1, 0x81, 0x1000, 0x1000, b"a")), ()),
    ("overlap-binary", lambda: _with_md5(_record(1, 0x81, 0x9000, 0x2000, b"a")
                                         + _record(1, 0x81, 0xA000, 0x1000, b"b")), ()),
    ("multiple-otadata", b"o1, data, ota, , 8K\no2, data, ota, , 8K\n", ()),
    ("otadata-size", b"o, data, ota, , 12K\n", ()),
    ("multiple-tee-otadata", b"t1, data, tee_ota, , 8K\nt2, data, tee_ota, , 8K\n", ()),
    ("tee-otadata-size", b"t, data, tee_ota, , 4K\n", ()),
    ("does-not-fit-flash", b"a, data, fat, , 0x3F8000\n", ("--flash-size", "4MB")),
    ("too-many-partitions", b"".join(b"p%d, data, fat, , 4K\n" % i for i in range(95)), ()),
    ("binary-md5-mismatch", _md5_wrong, ()),
    ("binary-no-end-marker", lambda: bytes(_binary(NVS)[:32]) + b"\x00" * 32, ()),
    ("binary-length-not-multiple-of-32", lambda: bytes(_binary(NVS)[:40]), ()),
    ("binary-bad-magic", _bad_magic_second, ()),
]

# (class, input, options): gen_esp32part accepts each but prints a WARNING
WARNINGS: list[tuple[str, Input, tuple[str, ...]]] = [
    ("name-is-another-subtype", b"ota_0, app, ota_1, , 1M\nota_1, app, ota_0, , 1M\n", ()),
    ("name-is-another-type", b"app, data, fat, , 4K\n", ()),
    ("binary-unknown-flags", _unknown_flags, ()),
]


def _bytes(source: Input) -> bytes:
    return bytes(source() if callable(source) else source)


def _gen(tool: Path, data: bytes, options: tuple[str, ...], work: Path) -> tuple[int, list[str]]:
    source = work / "in.bin"
    source.write_bytes(data)
    proc = subprocess.run([sys.executable, str(tool), *options, str(source), str(work / "out")],
                          capture_output=True, text=True, timeout=120, check=False)
    lines = [line for line in proc.stderr.splitlines() if line.strip() and line not in _STATUS]
    return proc.returncode, lines


def _options(options: tuple[str, ...]) -> dict[str, object]:
    pairs = dict(zip(options[::2], options[1::2], strict=True))
    from otaforge.formats.partition_table import parse_flash_size

    return {k: v for k, v in {
        "secure": pairs.get("--secure"),
        "flash_size": parse_flash_size(pairs["--flash-size"]) if "--flash-size" in pairs else None,
        "primary_bootloader_offset": int(pairs["--primary-bootloader-offset"], 0)
        if "--primary-bootloader-offset" in pairs else None,
    }.items() if v is not None}


@pytest.mark.parametrize(("source", "options"), [pytest.param(s, o, id=n) for n, s, o in ERRORS])
def test_gen_esp32part_error_wording_is_in_ours(gen_esp32part: Path, tmp_path: Path,
                                                source: Input, options: tuple[str, ...]) -> None:
    data = _bytes(source)
    code, lines = _gen(gen_esp32part, data, options, tmp_path)
    assert code != 0 and lines, "gen_esp32part accepted it: the row is not an error class"
    theirs = _LOCATION.sub("", lines[-1])
    with pytest.raises(OtaforgeError) as refused:
        convert_table(data, **_options(options))  # type: ignore[arg-type]
    assert theirs in str(refused.value)


@pytest.mark.parametrize(("source", "options"),
                         [pytest.param(s, o, id=n) for n, s, o in WARNINGS])
def test_gen_esp32part_warning_wording_is_in_ours(gen_esp32part: Path, tmp_path: Path,
                                                  source: Input, options: tuple[str, ...]) -> None:
    data = _bytes(source)
    code, lines = _gen(gen_esp32part, data, options, tmp_path)
    theirs = [line.removeprefix("WARNING: ") for line in lines if line.startswith("WARNING: ")]
    assert code == 0 and theirs, lines
    ours = convert_table(data, **_options(options)).warnings  # type: ignore[arg-type]
    for text in theirs:
        assert any(text in warning for warning in ours), (text, ours)
