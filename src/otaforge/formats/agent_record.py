"""The update agent's state record: one 512-byte slot of its append-only log in flash.

Layout (little-endian), the rest of the slot left erased (0xFF)::

    0   4s  magic "OTFA"
    4   H   payload length
    6   I   CRC-32 (zlib) of the payload
    10  ... payload (the agent's state as compact JSON)

A slot that is all 0xFF is free. A record whose magic, length or CRC does not check out was
torn by a power cut (or never written) and is skipped by :func:`decode_record`.
"""

from __future__ import annotations

import struct
import zlib

RECORD_SIZE = 512
RECORD_MAGIC = b"OTFA"
_HEAD = struct.Struct("<4sHI")  # magic, payload length, crc32 of payload
MAX_PAYLOAD = RECORD_SIZE - _HEAD.size
FREE_SLOT = b"\xff" * RECORD_SIZE


def encode_record(payload: bytes) -> bytes:
    """One whole slot holding ``payload``, padded with 0xFF.

    Raises:
        ValueError: the payload does not fit in one slot (a programming error).
    """
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"agent state record of {_HEAD.size + len(payload)} bytes exceeds "
                         f"{RECORD_SIZE}")
    record = _HEAD.pack(RECORD_MAGIC, len(payload), zlib.crc32(payload)) + payload
    return record.ljust(RECORD_SIZE, b"\xff")


def decode_record(slot: bytes) -> bytes | None:
    """The payload of an intact record, None for a torn, foreign or short one."""
    if len(slot) < _HEAD.size:
        return None
    magic, length, crc = _HEAD.unpack_from(slot, 0)
    payload = slot[_HEAD.size:_HEAD.size + length]
    if magic != RECORD_MAGIC or len(payload) != length or zlib.crc32(payload) != crc:
        return None
    return payload
