"""Hypothesis round trips at the byte level for the formats whose other tests go through a
container: one partition record, the image header, a whole otadata partition.

(Tables, CSV, app descriptions, images and built images have theirs next to their other tests.)
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from otaforge.formats.app_image import ImageHeader
from otaforge.formats.otadata import OtaSelectEntry, otadata_bytes, read_otadata
from otaforge.formats.partition_entry import ENTRY_MAGIC, PartitionEntry

U8, U16, U32 = st.integers(0, 0xFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF)
# a label as gen_esp32part writes it: UTF-8, NUL-padded (a 16-byte label has no NUL)
_LABELS = st.text(st.characters(exclude_characters="\x00", codec="utf-8"), max_size=8).filter(
    lambda s: len(s.encode()) <= 16)


@settings(max_examples=150, deadline=None)
@given(ptype=U8, subtype=U8, offset=U32, size=U32, label=_LABELS, flags=st.integers(0, 3))
def test_partition_record_bytes_round_trip(ptype: int, subtype: int, offset: int, size: int,
                                           label: str, flags: int) -> None:
    record = (ENTRY_MAGIC + bytes([ptype, subtype]) + offset.to_bytes(4, "little")
              + size.to_bytes(4, "little") + label.encode().ljust(16, b"\x00")
              + flags.to_bytes(4, "little"))
    entry = PartitionEntry.from_bytes(record)
    assert (entry.type, entry.subtype, entry.offset, entry.size, entry.name) == (
        ptype, subtype, offset, size, label)
    assert (entry.encrypted, entry.readonly) == (bool(flags & 1), bool(flags & 2))
    assert entry.to_bytes() == record


@settings(max_examples=150, deadline=None)
@given(raw=st.binary(min_size=24, max_size=24))
def test_image_header_bytes_round_trip(raw: bytes) -> None:
    # every 24-byte header, whatever its magic or flash settings, parses and re-encodes exactly
    header = ImageHeader.from_bytes(raw)
    assert header.to_bytes() == raw
    assert ImageHeader.from_bytes(header.to_bytes()) == header
    assert (header.spi_speed, header.spi_size) == (raw[3] & 0x0F, raw[3] >> 4)
    assert header.chip_id == int.from_bytes(raw[12:14], "little")
    assert header.hash_appended == raw[23]


_ENTRIES = st.builds(OtaSelectEntry, U32, st.binary(min_size=20, max_size=20), U32, U32)


@settings(max_examples=100, deadline=None)
@given(first=st.none() | _ENTRIES, second=st.none() | _ENTRIES)
def test_otadata_partition_round_trip(first: OtaSelectEntry | None,
                                      second: OtaSelectEntry | None) -> None:
    data = otadata_bytes([first, second])
    assert len(data) == 0x2000
    erased = OtaSelectEntry.erased()
    assert read_otadata(data) == (first or erased, second or erased)
    assert data[32:0x1000] == data[0x1020:] == b"\xff" * (0x1000 - 32)
