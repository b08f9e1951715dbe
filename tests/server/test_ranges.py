"""Range / If-Range / If-None-Match decisions (pure), as esp_https_ota and RFC 9110 use them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otaforge.server.ranges import (
    ByteRange,
    RangeNotSatisfiable,
    if_range_allows,
    none_match,
    parse_range,
)

SIZE = 1000


@pytest.mark.parametrize(("name", "header", "expected"), [
    ("no header", None, None),
    ("esp_https_ota probe", "bytes=0-", ByteRange(0, 999, SIZE)),
    ("resume", "bytes=512-", ByteRange(512, 999, SIZE)),
    ("partial chunk", "bytes=0-99", ByteRange(0, 99, SIZE)),
    ("end one past the image (clamped)", "bytes=900-1000", ByteRange(900, 999, SIZE)),
    ("end far past the image (clamped)", "bytes=900-99999", ByteRange(900, 999, SIZE)),
    ("size probe", "bytes=0-0", ByteRange(0, 0, SIZE)),
    ("suffix", "bytes=-100", ByteRange(900, 999, SIZE)),
    ("suffix longer than the image", "bytes=-5000", ByteRange(0, 999, SIZE)),
    ("whitespace and unit case tolerated", " Bytes = 10-19 ", ByteRange(10, 19, SIZE)),
    ("adjacent ranges coalesce", "bytes=0-9,10-19", ByteRange(0, 19, SIZE)),
    ("overlapping ranges coalesce", "bytes=0-15,10-19", ByteRange(0, 19, SIZE)),
    ("disjoint ranges: whole body", "bytes=0-9,20-29", None),
    ("unsatisfiable part dropped", "bytes=0-9,5000-", ByteRange(0, 9, SIZE)),
    ("other unit ignored", "items=0-9", None),
    ("reversed range ignored", "bytes=9-0", None),
    ("garbage ignored", "bytes=abc", None),
    ("empty spec ignored", "bytes=-", None),
    ("negative start ignored", "bytes=--5", None),
])
def test_parse_range(name: str, header: str | None, expected: ByteRange | None) -> None:
    assert parse_range(header, SIZE) == expected, name


@pytest.mark.parametrize(("name", "header"), [
    ("start at the end", "bytes=1000-"),
    ("start past the end", "bytes=2000-3000"),
    ("zero suffix", "bytes=-0"),
])
def test_unsatisfiable(name: str, header: str) -> None:
    with pytest.raises(RangeNotSatisfiable) as info:
        parse_range(header, SIZE)
    assert info.value.content_range == "bytes */1000", name


def test_content_range_text() -> None:
    assert ByteRange(0, 0, 5).content_range == "bytes 0-0/5"


@settings(max_examples=300, deadline=None)
@given(size=st.integers(1, 5000), start=st.integers(0, 6000), length=st.integers(1, 6000))
def test_range_matches_slicing(size: int, start: int, length: int) -> None:
    data = bytes(range(256)) * (size // 256 + 1)
    data = data[:size]
    header = f"bytes={start}-{start + length - 1}"
    if start >= size:
        with pytest.raises(RangeNotSatisfiable):
            parse_range(header, size)
        return
    rng = parse_range(header, size)
    assert rng is not None
    assert data[rng.start:rng.end + 1] == data[start:start + length]
    assert rng.length == len(data[start:start + length])


@given(st.text(max_size=40))
def test_any_header_text_is_total(text: str) -> None:
    try:
        rng = parse_range(text, SIZE)
    except RangeNotSatisfiable:
        return
    assert rng is None or 0 <= rng.start <= rng.end < SIZE


@pytest.mark.parametrize(("header", "matches"), [
    ('"abc"', True), ('W/"abc"', True), ('"x", "abc"', True), ("*", True),
    ('"abd"', False), ("", False), (None, False), ("abc", True),
])
def test_if_none_match(header: str | None, matches: bool) -> None:
    assert none_match(header, '"abc"') is matches


def test_if_range_needs_exact_strong_etag() -> None:
    assert if_range_allows(None, '"abc"')
    assert if_range_allows('"abc"', '"abc"')
    assert not if_range_allows('W/"abc"', '"abc"')
    assert not if_range_allows("Tue, 24 Nov 2026 06:00:00 GMT", '"abc"')


@pytest.mark.parametrize(("name", "header", "expected"), [
    # str.isdigit() accepts these, int() then raised (a 500 over HTTP)
    ("superscript two (latin-1 byte 0xB2) as start", "bytes=\u00b2-", None),
    ("superscript two as end", "bytes=0-\u00b2", None),
    ("arabic-indic digit", "bytes=\u0661-", None),
    ("fullwidth digit in a suffix", "bytes=-\uff15", None),
    ("5000-digit end is clamped", "bytes=10-" + "9" * 5000, ByteRange(10, 999, SIZE)),
    ("5000-digit suffix is the whole image", "bytes=-" + "9" * 5000, ByteRange(0, 999, SIZE)),
    ("leading zeros", "bytes=" + "0" * 30 + "5-" + "0" * 30 + "9", ByteRange(5, 9, SIZE)),
])
def test_malformed_or_absurd_numbers(name: str, header: str,
                                     expected: ByteRange | None) -> None:
    assert parse_range(header, SIZE) == expected, name


def test_5000_digit_start_is_unsatisfiable() -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=" + "1" * 5000 + "-", SIZE)


@given(st.text(alphabet=st.characters(codec="latin-1"), max_size=60))
def test_any_latin1_header_is_total(text: str) -> None:
    """Servers hand headers over as latin-1: every byte string must parse or be ignored."""
    try:
        rng = parse_range("bytes=" + text, SIZE)
    except RangeNotSatisfiable:
        return
    assert rng is None or 0 <= rng.start <= rng.end < SIZE
