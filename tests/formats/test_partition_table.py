"""Partition table binary/CSV codec against tables made by ESP-IDF's gen_esp32part.py."""

from __future__ import annotations

import contextlib
import hashlib
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otaforge.errors import (
    BadMagicError,
    ChecksumMismatch,
    FormatError,
    PartitionTableError,
    TruncatedError,
)
from otaforge.formats.ota_layout import check_ota_layout
from otaforge.formats.partition_table import (
    APP_TYPE,
    DATA_TYPE,
    OTA_0,
    PartitionEntry,
    PartitionTable,
    convert_table,
    load_partition_table,
    parse_flash_size,
)

FIXTURES = ("seed", "partitions_two_ota", "partitions_singleapp")


def _fixture(shared: Path, name: str, ext: str) -> bytes:
    return (shared / "partitions" / f"{name}.{ext}").read_bytes()


@pytest.mark.parametrize("name", FIXTURES)
def test_csv_converts_to_the_gen_esp32part_binary(shared_fixtures: Path, name: str) -> None:
    assert convert_table(_fixture(shared_fixtures, name, "csv")).output == _fixture(
        shared_fixtures, name, "bin")


@pytest.mark.parametrize("name", FIXTURES)
def test_binary_to_csv_and_back_is_identical(shared_fixtures: Path, name: str) -> None:
    binary = _fixture(shared_fixtures, name, "bin")
    csv = convert_table(binary)
    assert csv.output_kind == "csv"
    assert csv.output.startswith(b"# ESP-IDF Partition Table\n# Name, Type, SubType, Offset, Size")
    assert convert_table(csv.output).output == binary


def test_table_without_end_marker_is_rejected_like_gen_esp32part(shared_fixtures: Path) -> None:
    # esptool's test copy is cut right after the last entry: gen_esp32part refuses it, and
    # so do we; on flash the erased 0xFF after it is the end marker.
    data = (shared_fixtures / "esptool" / "partitions_singleapp.bin").read_bytes()
    with pytest.raises(TruncatedError, match="end-of-table marker"):
        PartitionTable.from_bytes(data)
    table = PartitionTable.from_bytes(data + b"\xff" * (0xC00 - len(data)))
    assert table.factory() is not None


def test_two_ota_test_vector(shared_fixtures: Path) -> None:
    binary = _fixture(shared_fixtures, "partitions_two_ota", "bin")
    assert binary[:16].hex() == "aa50010200900000004000006e767300"
    assert binary[0xC0:0xC2] == b"\xeb\xeb"
    assert binary[0xD0:0xE0].hex() == "bf25822c0fa6d8641bd930251e06b4c4"
    assert binary[0xE0:] == b"\xff" * (0xC00 - 0xE0)


def test_binary_to_csv_text_format(shared_fixtures: Path) -> None:
    assert convert_table(_fixture(shared_fixtures, "partitions_two_ota", "bin")).output == (
        b"# ESP-IDF Partition Table\n# Name, Type, SubType, Offset, Size, Flags\n"
        b"nvs,data,nvs,0x9000,16K,\notadata,data,ota,0xd000,8K,\nphy_init,data,phy,0xf000,4K,\n"
        b"factory,app,factory,0x10000,1M,\nota_0,app,ota_0,0x110000,1M,\n"
        b"ota_1,app,ota_1,0x210000,1M,\n")


def test_to_csv_names_sizes_and_flags() -> None:
    table = PartitionTable((
        PartitionEntry("a", DATA_TYPE, 0x82, 0x9000, 0x1800, encrypted=True, readonly=True),
        PartitionEntry("b", 0x40, 0x07, 0xB000, 0x123),
        PartitionEntry("c", DATA_TYPE, 0x99, 0xC000, 0),
    ))
    assert table.to_csv().splitlines()[2:] == [
        "a,data,spiffs,0x9000,6K,encrypted:readonly", "b,64,7,0xb000,0x123,",
        "c,data,153,0xc000,0M,"]


def test_seed_table_queries(shared_fixtures: Path) -> None:
    table = load_partition_table(_fixture(shared_fixtures, "seed", "csv"))
    assert [p.name for p in table.ota_slots()] == ["ota_0", "ota_1"]
    assert table.ota_slots()[1].ota_index == 1
    assert table.factory() == table.find("factory")
    otadata = table.otadata()
    assert otadata is not None and otadata.offset == 0xF000
    assert table.test_app() is None
    assert [p.name for p in table.app_partitions()] == ["factory", "ota_0", "ota_1"]
    assert table.find("nope") is None
    assert table == load_partition_table(_fixture(shared_fixtures, "seed", "bin"))


def test_seed_needs_8mb(shared_fixtures: Path) -> None:
    with pytest.raises(PartitionTableError, match="does not fit in a 4MB flash"):
        convert_table(_fixture(shared_fixtures, "seed", "csv"), flash_size=parse_flash_size("4MB"))
    assert convert_table(_fixture(shared_fixtures, "seed", "csv"), flash_size=8 << 20).output


def test_bom_encodings_are_detected(shared_fixtures: Path) -> None:
    text = _fixture(shared_fixtures, "partitions_two_ota", "csv").decode()
    expected = _fixture(shared_fixtures, "partitions_two_ota", "bin")
    for encoding in ("utf-8-sig", "utf-16", "utf-16-be", "utf-32-be"):
        data = text.encode(encoding)
        if encoding.endswith("-be"):
            data = ("\ufeff".encode(encoding)) + data
        assert convert_table(data).output == expected, encoding


def test_utf32_le_bom_is_read_as_utf16_like_gen_esp32part(shared_fixtures: Path) -> None:
    # gen_esp32part tests the UTF-16-LE BOM (FF FE) before the UTF-32-LE one (FF FE 00 00)
    data = _fixture(shared_fixtures, "partitions_two_ota", "csv").decode().encode("utf-32-le")
    with pytest.raises(PartitionTableError):
        convert_table(b"\xff\xfe\x00\x00" + data)


def test_binary_without_md5_is_accepted(shared_fixtures: Path) -> None:
    table = PartitionTable.from_bytes(_fixture(shared_fixtures, "seed", "bin"))
    no_md5 = table.to_bytes(md5=False)
    assert no_md5[7 * 32:7 * 32 + 2] == b"\xff\xff"
    assert PartitionTable.from_bytes(no_md5) == table


# --- corrupt binaries: only FormatError subclasses ---------------------------------------

def _seed_bin(shared: Path) -> bytes:
    return _fixture(shared, "seed", "bin")


def test_corrupt_md5(shared_fixtures: Path) -> None:
    data = bytearray(_seed_bin(shared_fixtures))
    data[0x9] ^= 0x01  # nvs size
    with pytest.raises(ChecksumMismatch, match="MD5 mismatch"):
        PartitionTable.from_bytes(bytes(data))


def test_bad_magic_record(shared_fixtures: Path) -> None:
    data = bytearray(_seed_bin(shared_fixtures))
    data[0x20] = 0x00
    with pytest.raises(BadMagicError, match="record at 0x20"):
        PartitionTable.from_bytes(bytes(data))


@pytest.mark.parametrize("length", [0, 2, 31, 33, 7 * 32, 8 * 32])
def test_truncated_binary(shared_fixtures: Path, length: int) -> None:
    with pytest.raises(TruncatedError):
        PartitionTable.from_bytes(_seed_bin(shared_fixtures)[:length])


def test_trailing_bytes_after_end_marker_ignored(shared_fixtures: Path) -> None:
    data = _seed_bin(shared_fixtures)
    assert PartitionTable.from_bytes(data + b"\x00" * 0x401) == PartitionTable.from_bytes(data)


def test_non_utf8_label_is_a_format_error() -> None:
    entry = PartitionEntry("x", DATA_TYPE, 0x81, 0x9000, 0x1000).to_bytes()
    bad = entry[:12] + b"\xff\xfe" + entry[14:]
    with pytest.raises(PartitionTableError, match="not valid UTF-8"):
        PartitionTable.from_bytes(bad + b"\xff" * 32)


def test_random_bytes_raise_only_format_errors() -> None:
    rng = random.Random(1234)
    for _ in range(2000):
        data = b"\xaa\x50" + rng.randbytes(rng.randrange(0, 200))
        with contextlib.suppress(FormatError):
            convert_table(data)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_input_never_crashes(data: bytes) -> None:
    for candidate in (data, b"\xaa\x50" + data):
        with contextlib.suppress(FormatError):
            convert_table(candidate)


# --- round trips --------------------------------------------------------------------------

_names = st.text(st.characters(codec="ascii", exclude_characters=",\x00\r\n"),
                 max_size=16).map(str.strip).filter(lambda s: s and not s.startswith("#"))
_entries = st.builds(
    PartitionEntry, name=_names, type=st.integers(0, 254), subtype=st.integers(0, 255),
    offset=st.integers(0, 0xFFFFFFFF), size=st.integers(0, 0xFFFFFFFF),
    encrypted=st.booleans(), readonly=st.booleans())


@settings(max_examples=200, deadline=None)
@given(st.lists(_entries, max_size=94))
def test_binary_round_trip(entries: list[PartitionEntry]) -> None:
    table = PartitionTable(tuple(entries))
    data = table.to_bytes()
    assert len(data) == 0xC00
    assert PartitionTable.from_bytes(data) == table
    body = b"".join(e.to_bytes() for e in entries)
    assert data[len(body) + 16:len(body) + 32] == hashlib.md5(body).digest()


# printable only: str.splitlines also breaks lines at \v, \f and \x1c-\x1e
_csv_names = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E,
                                   exclude_characters=",$#"), min_size=1, max_size=16)


@st.composite
def _csv_tables(draw: st.DrawFn) -> PartitionTable:
    """Tables gen_esp32part can read back from CSV: in offset order, after the table sector."""
    entries = []
    cursor = 0x9000
    for _ in range(draw(st.integers(0, 20))):
        ptype = draw(st.sampled_from([APP_TYPE, DATA_TYPE, 0x40, 0xFE, 0x3F]))
        cursor = (cursor + 0xFFFF) // 0x10000 * 0x10000 if ptype == APP_TYPE else cursor
        offset = cursor + draw(st.integers(0, 16)) * (0x10000 if ptype == APP_TYPE else 0x1000)
        size = draw(st.integers(0, 0x400000))
        entries.append(PartitionEntry(
            draw(_csv_names), ptype, draw(st.integers(0, 255)), offset, size,
            draw(st.booleans()), draw(st.booleans())))
        cursor = offset + size
    return PartitionTable(tuple(entries))


@settings(max_examples=200, deadline=None)
@given(_csv_tables())
def test_csv_round_trip(table: PartitionTable) -> None:
    assert PartitionTable.from_csv(table.to_csv()) == table


def test_long_name_is_cut_to_16_bytes() -> None:
    table = PartitionTable.from_csv("averyveryverylongname1, data, fat, , 4K\n")
    assert PartitionTable.from_bytes(table.to_bytes()).entries[0].name == "averyveryverylon"


def test_entry_properties() -> None:
    ota = PartitionEntry("ota_3", APP_TYPE, OTA_0 + 3, 0x10000, 0x10000)
    assert (ota.is_app, ota.is_ota_slot, ota.ota_index, ota.end) == (True, True, 3, 0x20000)
    data = PartitionEntry("d", DATA_TYPE, OTA_0 + 3, 0x10000, 0x1000)
    assert (data.is_app, data.is_ota_slot, data.ota_index) == (False, False, None)


# --- OTA layout checks (beyond gen_esp32part) ----------------------------------------------

def _codes(csv: str, image_size: int | None = None) -> dict[str, str]:
    table = PartitionTable.from_csv(csv)
    table.verify()
    return {f.code: f.severity for f in check_ota_layout(table, image_size)}


OTA_BASE = "nvs, data, nvs, , 16K\notadata, data, ota, , 8K\n"


def test_seed_layout_is_ok(shared_fixtures: Path) -> None:
    table = load_partition_table(_fixture(shared_fixtures, "seed", "csv"))
    assert [f.severity for f in check_ota_layout(table, image_size=0x100000)] == ["ok", "ok"]
    findings = check_ota_layout(table, image_size=0x1C0000)  # exactly full: <5% free
    assert [f.severity for f in findings] == ["ok", "warning", "warning", "warning"]


@pytest.mark.parametrize(("name", "csv", "image", "code", "severity"), [
    ("slots-of-different-size", OTA_BASE + "ota_0, app, ota_0, , 1M\nota_1, app, ota_1, , 1536K\n",
     None, "slot-size", "critical"),
    ("slots-without-otadata", "nvs, data, nvs, , 16K\nota_0, app, ota_0, , 1M\n"
     "ota_1, app, ota_1, , 1M\n", None, "otadata-missing", "critical"),
    ("image-larger-than-one-slot", OTA_BASE + "factory, app, factory, , 2M\n"
     "ota_0, app, ota_0, , 1M\nota_1, app, ota_1, , 1M\n", 0x100001, "image-too-large", "critical"),
    ("image-nearly-fills-slot", OTA_BASE + "ota_0, app, ota_0, , 1M\nota_1, app, ota_1, , 1M\n",
     0xF8000, "image-tight", "warning"),
    ("gap-in-slot-numbers", OTA_BASE + "ota_0, app, ota_0, , 1M\nota_2, app, ota_2, , 1M\n",
     None, "slot-gap", "critical"),
    ("slot-subtype-twice", OTA_BASE + "a, app, ota_0, , 1M\nb, app, ota_0, , 1M\n", None,
     "slot-duplicate", "critical"),
    ("single-slot-no-factory", OTA_BASE + "ota_0, app, ota_0, , 1M\n", None, "single-slot",
     "warning"),
    ("no-app-at-all", "nvs, data, nvs, , 16K\n", None, "no-app", "critical"),
    ("otadata-but-no-slots", OTA_BASE + "factory, app, factory, , 1M\n", None,
     "otadata-without-slots", "warning"),
])
def test_ota_layout_findings(name: str, csv: str, image: int | None, code: str,
                             severity: str) -> None:
    assert _codes(csv, image).get(code) == severity


def test_identical_slots_with_otadata_have_no_critical() -> None:
    codes = _codes(OTA_BASE + "ota_0, app, ota_0, , 1M\nota_1, app, ota_1, , 1M\n", 0x80000)
    assert "critical" not in codes.values()


def test_slot_size_message_is_the_seed_wording() -> None:
    table = PartitionTable.from_csv(OTA_BASE + "ota_0, app, ota_0, , 1M\nota_1, app, ota_1, , 2M\n")
    (finding,) = [f for f in check_ota_layout(table) if f.code == "slot-size"]
    assert str(finding).startswith(
        "Critical: ota_0 and ota_1 must be identical size and large enough for your firmware")


@pytest.mark.parametrize(("text", "value"), [
    ("4MB", 4 << 20), ("128MB", 128 << 20), ("4M", 4 << 20), ("512KB", 512 << 10),
    ("0x400000", 4 << 20), ("16mb", 16 << 20)])
def test_parse_flash_size(text: str, value: int) -> None:
    assert parse_flash_size(text) == value


def test_warnings_as_gen_esp32part_prints_them() -> None:
    # accepted tables, but gen_esp32part warns: a label naming another type/subtype, and
    # (binary input) flag bits it does not know; otaforge also warns about an empty table
    swapped = convert_table(b"ota_0, app, ota_1, , 1M\nota_1, app, ota_0, , 1M\n")
    assert swapped.warnings == [
        "line 1: partition 'ota_0' is named like the subtype 'ota_0' but is app/ota_1: mistake "
        "in the partition table? (gen_esp32part: Partition has name 'ota_0' which is a partition "
        "subtype, but this partition has non-matching type 0x0 and subtype 0x11. Mistake in "
        "partition table?)",
        "line 2: partition 'ota_1' is named like the subtype 'ota_1' but is app/ota_0: mistake "
        "in the partition table? (gen_esp32part: Partition has name 'ota_1' which is a partition "
        "subtype, but this partition has non-matching type 0x0 and subtype 0x10. Mistake in "
        "partition table?)"]
    assert "partition type 'app'" in convert_table(b"app, data, fat, , 4K\n").warnings[0]
    assert convert_table(b"nvs, data, nvs, , 16K\nota, data, ota, , 8K\n").warnings == []
    assert convert_table(b"").warnings == [
        "the table has no partitions (an empty CSV, or the wrong file?)"]
    binary = bytearray(convert_table(b"f, data, fat, , 4K\n").output)
    binary[28] |= 0x40  # flags word of record 0, then the MD5 record over it
    binary[32 + 16:64] = hashlib.md5(bytes(binary[:32])).digest()
    assert convert_table(bytes(binary)).warnings == [
        "partition table record at 0x0 has unknown flag bit(s) 0x00000040 (a newer binary "
        "format?); they are dropped (gen_esp32part: Partition definition had unknown flag(s) "
        "0x00000040. Newer binary format?)"]
