"""The C side and the Python side agree: operation numbers, frame layout, error names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from otaforge.device.esp_err import CODES
from otaforge.errors import FormatError
from otaforge.firmware.build import HOST_DIR
from otaforge.formats.fw_frame import (
    FRAME_HEADER,
    FwOp,
    decode_fields,
    decode_reply,
    decode_request,
    encode_reply,
    encode_request,
    frame_length,
)


def _c_ops() -> dict[str, int]:
    text = (HOST_DIR / "src" / "otaforge_rpc.h").read_text()
    return {name: int(value) for name, value in re.findall(r"FW_OP_(\w+) = (\d+),", text)}


def test_operation_numbers_are_the_c_enum() -> None:
    assert _c_ops() == {op.name: op.value for op in FwOp}


def test_request_and_reply_round_trip() -> None:
    frame = encode_request(FwOp.FLASH_WRITE, 0x1E0000, b"\xe9" * 5, -1)
    assert frame_length(frame[:4]) == len(frame) - FRAME_HEADER.size
    request = decode_request(frame[4:])
    assert (request.op, request.fields) == (FwOp.FLASH_WRITE, (0x1E0000, b"\xe9" * 5, -1))
    reply = encode_reply(0x1503, 300_000, (b"desc", 7))
    assert decode_reply(reply[4:]) == (0x1503, 300_000, (b"desc", 7))


@pytest.mark.parametrize("garbage", [b"x", b"b\x05\x00\x00\x00ab", b"i\x01\x02"],
                         ids=["unknown tag", "short bytes", "short int"])
def test_malformed_fields_are_format_errors(garbage: bytes) -> None:
    with pytest.raises(FormatError):
        decode_fields(garbage, 0)


def test_request_field_type_mismatch_is_a_format_error() -> None:
    request = decode_request(encode_request(FwOp.DELAY, b"not an int")[4:])
    with pytest.raises(FormatError):
        request.int_at(0)
    with pytest.raises(FormatError):
        request.int_at(3)


def _c_error_codes() -> dict[str, int]:
    """Every ESP_ERR_* define of the host headers, evaluated (BASE + n forms included)."""
    values: dict[str, int] = {}
    pattern = re.compile(r"#define (ESP_(?:ERR|OK)_\w+)\s+\(?\s*(\w+)\s*(?:\+\s*(\w+))?\s*\)?")
    for header in sorted((HOST_DIR / "include").rglob("*.h")):
        for name, first, second in pattern.findall(header.read_text()):
            base = values[first] if first in values else int(first, 0)
            values[name] = base + (int(second, 0) if second else 0)
    return values


def test_c_error_codes_equal_the_python_table() -> None:
    c_codes = _c_error_codes()
    shared = set(c_codes) & set(CODES)
    assert len(shared) > 60
    assert {n: c_codes[n] for n in shared} == {n: CODES[n] for n in shared}


def test_every_c_error_code_has_a_name_in_esp_err_c() -> None:
    names = set(re.findall(r"ERR_NAME\((\w+)\)", (HOST_DIR / "src" / "esp_err.c").read_text()))
    defined = {n for n in _c_error_codes() if not n.endswith("_BASE") or n in names}
    assert defined - names == set()


def test_host_sources_are_package_data() -> None:
    root = Path(__file__).resolve().parents[2]
    pyproject = (root / "pyproject.toml").read_text()
    assert "firmware/host/include/*.h" in pyproject and "firmware/host/src/*" in pyproject
