"""otadata: esp_ota_select_entry_t layout, CRC, entry predicates and the active-entry choice.

Expected values come from ESP-IDF (bootloader_common_loader.c, esp_ota_ops.c, otatool.py) as
summarised in ../shared/reference/esp-idf-formats.md §2.1–2.2.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otaforge.errors import FormatError, TruncatedError
from otaforge.formats.otadata import (
    OTADATA_ENTRY_SIZE,
    OtaImgState,
    OtaSelectEntry,
    active_otadata,
    ota_crc,
    otadata_bytes,
    read_otadata,
    select_otadata,
    slot_for_seq,
    state_name,
)
from otaforge.formats.sector import SECTOR_SIZE

U32 = st.integers(min_value=0, max_value=0xFFFFFFFF)


@pytest.mark.parametrize(("seq", "crc"), [
    (1, 0x4743989A), (2, 0x55F63774), (3, 0xED4A5011), (4, 0x709D68A8),
    (0xFFFFFFFF, 0x2144DF1C),
])
def test_crc_matches_esp_rom_crc32_le_test_vectors(seq: int, crc: int) -> None:
    assert ota_crc(seq) == crc
    # otatool.py computes exactly binascii.crc32(seq_bytes, 0xFFFFFFFF)
    assert ota_crc(seq) == zlib.crc32(struct.pack("<I", seq), 0xFFFFFFFF)


def test_entry_bytes_as_esp_ota_ops_writes_them() -> None:
    entry = OtaSelectEntry.make(1, OtaImgState.NEW)
    assert entry.to_bytes() == bytes.fromhex("01000000" + "ff" * 20 + "00000000" + "9a984347")
    assert len(entry.to_bytes()) == OTADATA_ENTRY_SIZE
    assert entry.crc_ok and entry.is_valid()


def test_img_states_are_esp_ota_img_states_t() -> None:
    assert {s.name: s.value for s in OtaImgState} == {
        "NEW": 0, "PENDING_VERIFY": 1, "VALID": 2, "INVALID": 3, "ABORTED": 4,
        "UNDEFINED": 0xFFFFFFFF,
    }
    assert state_name(2) == "ESP_OTA_IMG_VALID"
    assert state_name(7) == "0x00000007"


@dataclass(frozen=True)
class EntryCase:
    name: str
    entry: OtaSelectEntry
    valid: bool


ENTRY_CASES = [
    EntryCase("erased sector (seq 0xFFFFFFFF)", OtaSelectEntry.erased(), False),
    EntryCase("new image", OtaSelectEntry.make(1, OtaImgState.NEW), True),
    EntryCase("pending verify", OtaSelectEntry.make(2, OtaImgState.PENDING_VERIFY), True),
    EntryCase("valid", OtaSelectEntry.make(3, OtaImgState.VALID), True),
    EntryCase("rollback disabled (UNDEFINED)", OtaSelectEntry.make(4), True),
    EntryCase("marked invalid", OtaSelectEntry.make(5, OtaImgState.INVALID), False),
    EntryCase("aborted (boot attempt failed)", OtaSelectEntry.make(6, OtaImgState.ABORTED), False),
    EntryCase("crc corrupted by a torn write", OtaSelectEntry(7, b"\xff" * 20, 2, 0x1234), False),
    EntryCase("unknown state value with good crc", OtaSelectEntry.make(8, 9), True),
    EntryCase("seq 0 with its crc", OtaSelectEntry.make(0, OtaImgState.VALID), True),
]


@pytest.mark.parametrize("case", ENTRY_CASES, ids=lambda c: c.name)
def test_bootloader_common_ota_select_valid(case: EntryCase) -> None:
    assert case.entry.is_valid() is case.valid
    assert OtaSelectEntry.from_bytes(case.entry.to_bytes()) == case.entry


def test_bad_crc_is_kept_not_raised() -> None:
    raw = OtaSelectEntry.make(3, OtaImgState.VALID).to_bytes()
    torn = raw[:28] + b"\x00\x00\x00\x00"
    entry = OtaSelectEntry.from_bytes(torn)
    assert not entry.crc_ok and not entry.is_valid()
    assert entry.to_bytes() == torn


def _two(e0: OtaSelectEntry, e1: OtaSelectEntry) -> tuple[OtaSelectEntry, OtaSelectEntry]:
    return read_otadata(otadata_bytes([e0, e1]))


@dataclass(frozen=True)
class ActiveCase:
    name: str
    entries: tuple[OtaSelectEntry, OtaSelectEntry]
    active: int | None


E = OtaSelectEntry
ACTIVE_CASES = [
    ActiveCase("both sectors erased: factory boots", (E.erased(), E.erased()), None),
    ActiveCase("only sector 0 written", (E.make(1, 2), E.erased()), 0),
    ActiveCase("only sector 1 written", (E.erased(), E.make(2, 2)), 1),
    ActiveCase("higher seq wins", (E.make(3, 2), E.make(4, 0)), 1),
    ActiveCase("higher seq in sector 0", (E.make(5, 2), E.make(4, 2)), 0),
    ActiveCase("equal seq ties to sector 0", (E.make(3, 2), E.make(3, 1)), 0),
    ActiveCase("higher seq marked invalid falls back", (E.make(1, 2), E.make(2, 3)), 0),
    ActiveCase("higher seq aborted falls back", (E.make(1, 2), E.make(2, 4)), 0),
    ActiveCase("higher seq with torn crc falls back",
               (E.make(1, 2), E(2, b"\xff" * 20, 2, 0)), 0),
    ActiveCase("both invalid", (E.make(1, 3), E.make(2, 4)), None),
    ActiveCase("large seq compares unsigned", (E.make(0x7FFFFFFF, 2), E.make(0x80000000, 2)), 1),
]


@pytest.mark.parametrize("case", ACTIVE_CASES, ids=lambda c: c.name)
def test_active_otadata_as_bootloader_decides(case: ActiveCase) -> None:
    assert active_otadata(_two(*case.entries)) == case.active


def test_select_otadata_min_mode_ties_to_zero() -> None:
    entries = (E.make(4, 2), E.make(3, 2))
    assert select_otadata(entries, True, True, use_max=False) == 1
    assert select_otadata((E.make(3, 2), E.make(3, 2)), True, True, use_max=False) == 0
    assert select_otadata(entries, False, False) is None


@pytest.mark.parametrize(("seq", "count", "slot"), [(1, 2, 0), (2, 2, 1), (3, 2, 0), (8, 8, 7),
                                                    (9, 8, 0), (5, 3, 1)])
def test_slot_for_seq(seq: int, count: int, slot: int) -> None:
    assert slot_for_seq(seq, count) == slot


def test_slot_for_seq_without_ota_partitions() -> None:
    with pytest.raises(FormatError, match="no OTA app partitions"):
        slot_for_seq(1, 0)


def test_partition_layout_entry_per_sector_rest_erased() -> None:
    data = otadata_bytes([E.make(1, 0), None])
    assert len(data) == 2 * SECTOR_SIZE
    assert data[OTADATA_ENTRY_SIZE:] == b"\xff" * (len(data) - OTADATA_ENTRY_SIZE)
    assert read_otadata(data)[1] == E.erased()


@pytest.mark.parametrize("length", [0, 31, 0x1000, 0x101F])
def test_truncated_partition_raises_truncated_error(length: int) -> None:
    with pytest.raises(TruncatedError, match="otadata"):
        read_otadata(b"\xff" * length)


def test_wrong_entry_count_is_format_error() -> None:
    with pytest.raises(FormatError):
        active_otadata([E.erased()])
    with pytest.raises(FormatError):
        otadata_bytes([None, None, None])


def test_bad_seq_label_length_is_format_error() -> None:
    with pytest.raises(FormatError, match="seq_label"):
        E(1, b"x", 0, ota_crc(1)).to_bytes()


@settings(max_examples=60, deadline=None)
@given(seq=U32, state=U32, label=st.binary(min_size=20, max_size=20))
def test_round_trip_property(seq: int, state: int, label: bytes) -> None:
    entry = OtaSelectEntry(seq, label, state, ota_crc(seq))
    again = OtaSelectEntry.from_bytes(entry.to_bytes())
    assert again == entry and again.crc_ok
    assert again.with_seq(seq ^ 1).crc_ok
    assert again.with_state(2).crc == again.crc


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=0x2100))
def test_random_bytes_never_raise_anything_but_format_error(data: bytes) -> None:
    try:
        entries = read_otadata(data)
    except FormatError:
        return
    assert active_otadata(entries) in (0, 1, None)
