"""Bounds-checked reading of untrusted bytes: every failure is a ``FormatError``.

Parsers go through :class:`Reader` (or :func:`unpack_from`) instead of ``struct.unpack_from`` on
raw slices, so truncated or hostile input raises :class:`~otaforge.errors.TruncatedError` with
the offset and what was being read, never ``struct.error`` or ``IndexError``.
"""

from __future__ import annotations

import struct

from otaforge.errors import FormatError, TruncatedError

TYPE_CHECKING = False  # no typing import at run time (start-up)
if TYPE_CHECKING:
    from typing import Any


def align_up(value: int, alignment: int) -> int:
    """Round ``value`` up to a multiple of ``alignment``."""
    return (value + alignment - 1) // alignment * alignment


def unpack_from(layout: struct.Struct, data: bytes, offset: int, what: str) -> tuple[Any, ...]:
    """``layout.unpack_from`` that raises ``TruncatedError`` naming ``what`` and the offset."""
    if offset < 0 or offset + layout.size > len(data):
        raise TruncatedError(
            f"{what}: needs {layout.size} bytes at offset 0x{offset:x}, "
            f"but the data is only {len(data)} bytes long"
        )
    return layout.unpack_from(data, offset)


def cstring(raw: bytes, what: str) -> str:
    """Decode a NUL-padded C string field; bytes after the first NUL are ignored.

    Non-UTF-8 bytes are decoded with replacement (ESP-IDF fields are ASCII by convention,
    and a report must never fail on them).
    """
    return raw.split(b"\x00", 1)[0].decode("utf-8", errors="replace")


def encode_cstring(text: str, size: int, what: str) -> bytes:
    """Encode ``text`` into a NUL-padded field of ``size`` bytes (at least one NUL kept).

    Raises:
        FormatError: the text does not fit.
    """
    raw = text.encode("utf-8")
    if len(raw) >= size:
        raise FormatError(f"{what} {text!r} is {len(raw)} bytes; the field holds {size - 1}")
    return raw.ljust(size, b"\x00")


class Reader:
    """A cursor over untrusted bytes whose reads are bounds-checked."""

    def __init__(self, data: bytes, what: str, offset: int = 0) -> None:
        self.data = data
        self.what = what
        self.offset = offset

    @property
    def remaining(self) -> int:
        return len(self.data) - self.offset

    def read(self, n: int, field: str) -> bytes:
        if n < 0 or self.offset + n > len(self.data):
            raise TruncatedError(
                f"{self.what}: {field} needs {n} bytes at offset 0x{self.offset:x}, "
                f"only {max(self.remaining, 0)} left"
            )
        out = self.data[self.offset : self.offset + n]
        self.offset += n
        return out

    def skip(self, n: int, field: str) -> None:
        """Move past ``n`` bytes (bounds-checked like :meth:`read`, without copying them)."""
        if n < 0 or self.offset + n > len(self.data):
            self.read(n, field)  # raises TruncatedError with the message
        self.offset += n

    def unpack(self, layout: struct.Struct, field: str) -> tuple[Any, ...]:
        values = unpack_from(layout, self.data, self.offset, f"{self.what}: {field}")
        self.offset += layout.size
        return values
