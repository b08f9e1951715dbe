"""The agent's 512-byte state record: round trip, and every torn or foreign slot is skipped."""

from __future__ import annotations

import pytest

from otaforge.formats.agent_record import (
    FREE_SLOT,
    MAX_PAYLOAD,
    RECORD_SIZE,
    decode_record,
    encode_record,
)

PAYLOAD = b'{"partial":null,"pending":null}'


def test_round_trip_fills_the_slot_with_erased_bytes() -> None:
    slot = encode_record(PAYLOAD)
    assert len(slot) == RECORD_SIZE and slot.endswith(b"\xff" * 100)
    assert decode_record(slot) == PAYLOAD


@pytest.mark.parametrize("at", [0, 4, 6, 10, 10 + len(PAYLOAD) - 1],
                         ids=["magic", "length", "crc", "payload start", "payload end"])
def test_torn_record_is_skipped(at: int) -> None:
    slot = bytearray(encode_record(PAYLOAD))
    slot[at] ^= 0x01
    assert decode_record(bytes(slot)) is None


@pytest.mark.parametrize("slot", [FREE_SLOT, b"", b"OTFA", bytes(RECORD_SIZE)],
                         ids=["erased", "empty", "short", "zeroes"])
def test_free_short_or_foreign_slot_is_skipped(slot: bytes) -> None:
    assert decode_record(slot) is None


def test_payload_that_does_not_fit_is_refused() -> None:
    assert decode_record(encode_record(b"x" * MAX_PAYLOAD)) == b"x" * MAX_PAYLOAD
    with pytest.raises(ValueError, match="exceeds 512"):
        encode_record(b"x" * (MAX_PAYLOAD + 1))
