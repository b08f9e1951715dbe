"""HTTP Range, If-Range and If-None-Match decisions for firmware downloads (RFC 9110), pure.

esp_https_ota uses Range in three ways (formats reference §6): ``bytes=<offset>-`` to resume
(and ``bytes=0-`` to probe Range support, expecting 206), ``bytes=<start>-<end>`` chunks in
partial-download mode where the last ``end`` may be one past the image (the server must clamp),
and ``bytes=0-0`` to learn the total size from Content-Range. A start at or past the end is
416 with ``Content-Range: bytes */<len>``, which makes esp_https_ota restart from 0.

Rules kept from RFC 9110 §14: an unparseable Range is ignored (200 with the whole body);
several ranges that touch or overlap are coalesced into one; several disjoint ranges are
answered with the whole body (a server may ignore Range; no ESP-IDF client sends them);
an If-Range that is not our strong ETag means "send everything".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_RANGES = 16
# ASCII digits only (str.isdigit() also accepts "²" and "١", which int() rejects or misreads);
# longer numbers are capped instead of parsed (int() refuses more than 4300 digits)
_SPEC = re.compile(r"([0-9]*)-([0-9]*)", re.ASCII)
_MAX_DIGITS = 19
_HUGE = 10**_MAX_DIGITS


@dataclass(frozen=True)
class ByteRange:
    """An inclusive byte range ``start..end`` of a representation of ``size`` bytes."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    @property
    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end}/{self.size}"


class RangeNotSatisfiable(Exception):
    """Every requested range starts at or past the end: answer 416 ``bytes */size``."""

    def __init__(self, size: int) -> None:
        super().__init__(f"range not satisfiable for {size} bytes")
        self.size = size

    @property
    def content_range(self) -> str:
        return f"bytes */{self.size}"


def _parse_spec(spec: str, size: int) -> tuple[int, int] | bool | None:
    """One ``a-b`` / ``a-`` / ``-n``: (start, end), False if unsatisfiable, None if invalid."""
    match = _SPEC.fullmatch(spec.strip(" \t"))
    if match is None:
        return None
    first, last = match.groups()
    if first == "":
        if last == "":
            return None
        suffix = _number(last)
        if suffix == 0 or size == 0:
            return False
        return max(0, size - suffix), size - 1
    start = _number(first)
    if last and _number(last) < start:
        return None
    if start >= size:
        return False
    end = min(_number(last), size - 1) if last else size - 1
    return start, end


def _number(digits: str) -> int:
    """A decimal of ASCII digits; absurdly long ones count as "past any image"."""
    stripped = digits.lstrip("0") or "0"
    return _HUGE if len(stripped) > _MAX_DIGITS else int(stripped)


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """Decide what a Range header asks of a ``size``-byte body.

    Returns:
        the single range to send with 206, or ``None`` to send the whole body with 200.

    Raises:
        RangeNotSatisfiable: no requested range overlaps the body (answer 416).
    """
    if not header:
        return None
    unit, sep, specs = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    parts = specs.split(",")
    if len(parts) > MAX_RANGES:
        return None
    spans: list[tuple[int, int]] = []
    for part in parts:
        parsed = _parse_spec(part, size)
        if parsed is None:
            return None
        if parsed is not False and not isinstance(parsed, bool):
            spans.append(parsed)
    if not spans:
        raise RangeNotSatisfiable(size)
    spans.sort()
    start, end = spans[0]
    for s, e in spans[1:]:
        if s > end + 1:
            return None  # disjoint ranges: send the whole body
        end = max(end, e)
    return ByteRange(start, end, size)


def _tags(header: str) -> list[str]:
    return [t.strip() for t in header.split(",") if t.strip()]


def if_range_allows(if_range: str | None, etag: str) -> bool:
    """True when Range may be honoured: no If-Range, or If-Range equals our strong ETag."""
    if if_range is None:
        return True
    return if_range.strip() == etag


def none_match(if_none_match: str | None, etag: str) -> bool:
    """True when If-None-Match matches ``etag`` (weak comparison, ``*`` matches anything)."""
    if not if_none_match:
        return False
    bare = etag.strip('"')
    for tag in _tags(if_none_match):
        if tag == "*":
            return True
        tag = tag.removeprefix("W/").strip('"')
        if tag == bare:
            return True
    return False
