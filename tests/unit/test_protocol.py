"""The protocol module: what the agent sends is what the server accepts, and one HTTP mapping."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest
from pydantic import ValidationError

from otaforge.errors import (
    Conflict,
    HTTPStatusError,
    NotFound,
    RefusalCode,
    ServerError,
    TransportError,
    Unauthorized,
)
from otaforge.formats.otadata import OtaImgState
from otaforge.protocol.http_errors import error_for_status
from otaforge.protocol.problem import parse_problem, problem_body
from otaforge.protocol.reports import (
    CheckIn,
    Manifest,
    OtadataState,
    Report,
    ReportState,
    recorded_reason,
)
from otaforge.server import schemas


@pytest.mark.parametrize("code", list(RefusalCode), ids=str)
def test_server_accepts_every_code_the_agent_can_send(code: RefusalCode) -> None:
    sent = Report(ReportState.FAILED, 7, "the image was refused", code=code).to_json()
    received = schemas.Report.model_validate_json(json.dumps(sent))
    assert received.code == code
    assert recorded_reason(received.code, received.reason) == f"{code}: the image was refused"


@pytest.mark.parametrize("state", list(ReportState), ids=str)
def test_server_accepts_every_report_state(state: ReportState) -> None:
    sent = Report(state, None, None, 4096, nonce="n").to_json()
    assert schemas.Report.model_validate(sent).state == state


@pytest.mark.parametrize("code", ["chip_id", "WRONG_CHIP", "", "wrong chip"])
def test_server_refuses_a_code_outside_the_vocabulary(code: str) -> None:
    with pytest.raises(ValidationError):
        schemas.Report.model_validate({"event_id": "e1", "state": "failed", "code": code})


def test_wire_bodies_have_the_server_schema_fields() -> None:
    """The agent's bodies and the server's schemas name the same fields (no drift)."""
    assert {f.name for f in fields(CheckIn)} == set(schemas.CheckIn.model_fields)
    report = Report(ReportState.FAILED, 1, "r", 1, code=RefusalCode.CORRUPT,
                    method="delta").to_json()
    assert set(report) == set(schemas.Report.model_fields)
    assert schemas.Report.model_validate(report).method == "delta"


def test_agent_reads_the_delta_the_server_offers() -> None:
    delta = schemas.DeltaManifest(url="https://h/deltas/p.bin", size=2000, sha256="cd" * 32,
                                  base_sha256="01" * 32, target_sha256="ab" * 32)
    sent = schemas.Manifest(deployment_id=4, release_id=2, version="1.1.0", secure_version=3,
                            size=65536, sha256="ab" * 32, url="https://h/firmware/x.bin",
                            signature=None, next_check_in_s=300, delta=delta)
    manifest = Manifest.from_json(json.loads(sent.model_dump_json()))
    assert manifest.delta is not None
    assert (manifest.delta.size, manifest.delta.base_sha256) == (2000, "01" * 32)
    assert manifest.delta.url == "https://h/deltas/p.bin"
    body = json.loads(sent.model_dump_json())
    del body["delta"]["base_sha256"]
    with pytest.raises(ValueError, match="malformed"):
        Manifest.from_json(body)


def test_agent_reads_the_manifest_the_server_sends() -> None:
    sent = schemas.Manifest(deployment_id=4, release_id=2, version="1.1.0", secure_version=3,
                            size=65536, sha256="ab" * 32, url="https://h/firmware/x.bin",
                            signature=None, next_check_in_s=300)
    manifest = Manifest.from_json(json.loads(sent.model_dump_json()))
    assert {f.name for f in fields(Manifest)} <= set(schemas.Manifest.model_fields)
    assert (manifest.deployment_id, manifest.version, manifest.size) == (4, "1.1.0", 65536)


@pytest.mark.parametrize("body", [None, [], {}, {"deployment_id": "x", "version": "1"},
                                  {"deployment_id": 1, "version": "1", "secure_version": None,
                                   "size": 1, "sha256": "a", "url": "u"}])
def test_malformed_manifest_is_a_value_error(body: object) -> None:
    with pytest.raises(ValueError, match="manifest"):
        Manifest.from_json(body)


def test_every_otadata_state_the_agent_reads_is_a_wire_state() -> None:
    assert {OtadataState(s.name.lower()) for s in OtaImgState} == set(OtadataState)
    body = CheckIn("f", "esp32", "1.0", None, "ota_0", OtadataState.PENDING_VERIFY, 2).to_json()
    assert schemas.CheckIn.model_validate(body).otadata_state == "pending_verify"


def test_replayed_report_has_the_same_event_id_and_another_code_does_not() -> None:
    def report(code: RefusalCode) -> Report:
        return Report(ReportState.FAILED, 3, "x", code=code)

    assert report(RefusalCode.WRONG_CHIP).event_id == report(RefusalCode.WRONG_CHIP).event_id
    assert report(RefusalCode.WRONG_CHIP).event_id != report(RefusalCode.CORRUPT).event_id


# --- the one HTTP mapping -------------------------------------------------------------------

PROBLEM = json.dumps(problem_body(409, "deployment already ended", "conflict")).encode()


@pytest.mark.parametrize("status,error,retryable", [
    (400, ServerError, False), (401, Unauthorized, False), (403, ServerError, False),
    (404, NotFound, False), (409, Conflict, False), (413, ServerError, False),
    (422, ServerError, False), (429, ServerError, False),
    (500, HTTPStatusError, True), (502, HTTPStatusError, True), (503, HTTPStatusError, True),
    (302, HTTPStatusError, True),
])
def test_status_maps_to_one_error_type(status: int, error: type[Exception],
                                       retryable: bool) -> None:
    err = error_for_status(status, b"<html>oops</html>", "GET https://h/x")
    assert type(err) is error and err.status_code == status
    assert isinstance(err, TransportError) == retryable  # exit 3 and retried; else exit 1
    assert "oops" in str(err) and "GET https://h/x" in str(err)


def test_problem_reason_is_kept_on_the_error() -> None:
    err = error_for_status(409, PROBLEM, "POST https://h/api/v1/devices/d/events")
    assert isinstance(err, Conflict) and err.reason == "conflict"
    assert "deployment already ended" in str(err)


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b'{"detail": 5}', b"\xff\xfe"])
def test_any_error_body_parses_to_a_problem(raw: bytes) -> None:
    problem = parse_problem(500, raw)
    assert problem.status == 500 and isinstance(problem.detail, str)
