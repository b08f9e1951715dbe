"""The frames between an emulated firmware process and the emulator that serves it.

A host build of ESP-IDF application code (``otaforge firmware build``) runs as its own process;
every flash, otadata, eFuse, NVS, watchdog or HTTP call it makes is one request frame on a pipe,
answered by one reply frame from the emulator (``otaforge.firmware``). The C side is
``firmware/host/src/rpc.c``; the operation numbers are its ``fw_op_t``.

Frame: ``u32`` little-endian payload length, then the payload.

* request payload: ``u16`` operation, then fields;
* reply payload: ``i32`` esp_err_t, ``i64`` virtual microseconds since boot, then fields.

A field is ``b"i"`` + ``i64`` (an integer) or ``b"b"`` + ``u32`` length + bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from otaforge.errors import FormatError, TruncatedError
from otaforge.formats._binary import unpack_from

FRAME_HEADER = struct.Struct("<I")
_OP = struct.Struct("<H")
_REPLY_HEAD = struct.Struct("<iq")
_INT = struct.Struct("<q")
_LEN = struct.Struct("<I")
MAX_FRAME = 64 * 1024 * 1024  # a firmware never sends more in one call (a 16 MB flash read)

Field = int | bytes


class FwOp(IntEnum):
    """Operations a firmware process asks the emulator for (``fw_op_t`` in otaforge_rpc.h)."""

    HELLO = 1
    EXIT = 2
    RESTART = 3
    PANIC = 4
    DELAY = 5
    TIME = 6
    FLASH_READ = 10
    FLASH_WRITE = 11
    FLASH_ERASE = 12
    OTA_BEGIN = 20
    OTA_RESUME = 21
    OTA_WRITE = 22
    OTA_WRITE_OFFSET = 23
    OTA_END = 24
    OTA_ABORT = 25
    OTA_SET_BOOT = 26
    OTA_GET_BOOT = 27
    OTA_NEXT_UPDATE = 28
    OTA_GET_STATE = 29
    OTA_GET_DESC = 30
    OTA_MARK_VALID = 31
    OTA_MARK_INVALID = 32
    OTA_MARK_INVALID_REBOOT = 33
    OTA_ROLLBACK_POSSIBLE = 34
    OTA_LAST_INVALID = 35
    OTA_ERASE_LAST_BOOT = 36
    OTA_INVALIDATE_INACTIVE = 37
    OTA_APP_COUNT = 38
    OTA_REVOKE_KEY = 39
    EFUSE_SECURE_VERSION = 40
    EFUSE_CHECK_SECURE_VERSION = 41
    EFUSE_UPDATE_SECURE_VERSION = 42
    NVS_INIT = 50
    NVS_ERASE_PARTITION = 51
    NVS_SET = 52
    NVS_GET = 53
    NVS_ERASE_KEY = 54
    NVS_ERASE_NAMESPACE = 55
    NVS_OPEN = 56
    HTTP_REQUEST = 60
    HTTP_READ = 61
    HTTP_CLOSE = 62
    WDT_INIT = 70
    WDT_RECONFIGURE = 71
    WDT_DEINIT = 72
    WDT_ADD = 73
    WDT_RESET = 74
    WDT_DELETE = 75
    WDT_STATUS = 76


# operations after which the firmware process sends nothing more (no reply expected)
ONE_WAY = frozenset({FwOp.EXIT, FwOp.RESTART, FwOp.PANIC})


@dataclass(frozen=True)
class Request:
    """One call from the firmware: the operation and its fields."""

    op: int
    fields: tuple[Field, ...]

    def int_at(self, index: int) -> int:
        """Field ``index`` as an integer.

        Raises:
            FormatError: missing, or not an integer field.
        """
        value = self._at(index)
        if not isinstance(value, int):
            raise FormatError(f"firmware request {self.op}: field {index} is not an integer")
        return value

    def bytes_at(self, index: int) -> bytes:
        """Field ``index`` as bytes.

        Raises:
            FormatError: missing, or not a bytes field.
        """
        value = self._at(index)
        if not isinstance(value, bytes):
            raise FormatError(f"firmware request {self.op}: field {index} is not bytes")
        return value

    def str_at(self, index: int) -> str:
        """Field ``index`` as UTF-8 text."""
        return self.bytes_at(index).decode("utf-8", errors="replace")

    def _at(self, index: int) -> Field:
        if index >= len(self.fields):
            raise FormatError(f"firmware request {self.op}: field {index} missing "
                              f"({len(self.fields)} sent)")
        return self.fields[index]


def encode_fields(fields: Sequence[Field]) -> bytes:
    """The field encoding of ``fields`` (ints as i64, bytes with a u32 length)."""
    out = bytearray()
    for value in fields:
        if isinstance(value, bool | int):
            out += b"i" + _INT.pack(int(value))
        else:
            out += b"b" + _LEN.pack(len(value)) + value
    return bytes(out)


def decode_fields(data: bytes, offset: int) -> tuple[Field, ...]:
    """The fields of ``data`` from ``offset`` to its end.

    Raises:
        FormatError: an unknown tag or a truncated field.
    """
    fields: list[Field] = []
    while offset < len(data):
        tag = data[offset : offset + 1]
        if tag == b"i":
            (value,) = unpack_from(_INT, data, offset + 1, "integer field")
            fields.append(int(value))
            offset += 1 + _INT.size
        elif tag == b"b":
            (length,) = unpack_from(_LEN, data, offset + 1, "bytes field length")
            start = offset + 1 + _LEN.size
            if start + length > len(data):
                raise TruncatedError(f"bytes field at 0x{offset:x}: {length} bytes announced, "
                                     f"{len(data) - start} present")
            fields.append(bytes(data[start : start + length]))
            offset = start + length
        else:
            raise FormatError(f"firmware frame: unknown field tag {tag!r} at 0x{offset:x}")
    return tuple(fields)


def decode_request(payload: bytes) -> Request:
    """A request payload (without the length header).

    Raises:
        FormatError: too short or malformed fields.
    """
    (op,) = unpack_from(_OP, payload, 0, "firmware request operation")
    return Request(int(op), decode_fields(payload, _OP.size))


def encode_request(op: int, *fields: Field) -> bytes:
    """A whole request frame (length header included), as the C side builds it."""
    payload = _OP.pack(op) + encode_fields(fields)
    return FRAME_HEADER.pack(len(payload)) + payload


def encode_reply(err: int, time_us: int, fields: Sequence[Field] = ()) -> bytes:
    """A whole reply frame (length header included)."""
    payload = _REPLY_HEAD.pack(err, time_us) + encode_fields(fields)
    return FRAME_HEADER.pack(len(payload)) + payload


def decode_reply(payload: bytes) -> tuple[int, int, tuple[Field, ...]]:
    """A reply payload: (esp_err_t, virtual microseconds, fields).

    Raises:
        FormatError: too short or malformed fields.
    """
    err, time_us = unpack_from(_REPLY_HEAD, payload, 0, "firmware reply header")
    return int(err), int(time_us), decode_fields(payload, _REPLY_HEAD.size)


def frame_length(header: bytes) -> int:
    """The payload length a 4-byte frame header announces.

    Raises:
        FormatError: not 4 bytes, or longer than any firmware call can be.
    """
    (length,) = unpack_from(FRAME_HEADER, header, 0, "firmware frame header")
    if length > MAX_FRAME:
        raise FormatError(f"firmware frame of {length} bytes is larger than {MAX_FRAME}")
    return int(length)


def pack_int_le(value: int, size: int, signed: bool = False) -> bytes:
    """``value`` as ``size`` little-endian bytes (NVS integer values as C stores them)."""
    return value.to_bytes(size, "little", signed=signed)
