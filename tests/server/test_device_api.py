"""Device API logic, in-process, on SQLite and PostgreSQL: check-in decisions, reports,
firmware access, the stock esp_https_ota URL and its 304, authentication, load shedding."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from otaforge.server.settings import Settings
from tests.server.conftest import PARTITIONS_CSV, STORES, auth, publish


def check_in(api: TestClient, token: str, device: str = "dev1", **facts: object) -> object:
    body = {"fleet": "f1", "chip": "esp32", **facts}
    return api.post(f"/api/v1/devices/{device}/check-in", json=body, headers=auth(token))


def report(api: TestClient, token: str, event_id: str, state: str, deployment: int | None,
           device: str = "dev1", **extra: object) -> object:
    body = {"event_id": event_id, "state": state, "deployment_id": deployment, **extra}
    return api.post(f"/api/v1/devices/{device}/events", json=body, headers=auth(token))


def test_check_in_without_release_is_204_with_hint(api: TestClient, fleet: str) -> None:
    r = check_in(api, fleet, version="0.1")
    assert r.status_code == 204
    assert 240 <= int(r.headers["x-next-check-in-s"]) <= 360


@pytest.mark.parametrize("blob_store", STORES, indirect=True)
def test_update_offered_downloaded_and_confirmed(api: TestClient, fleet: str,
                                                 image_v1: bytes) -> None:
    rel = publish(api, image_v1)
    r = check_in(api, fleet, version="0.1", otadata_state="valid", secure_version=0)
    assert r.status_code == 200, r.text
    m = r.json()
    assert (m["release_id"], m["version"], m["size"]) == (rel["id"], "1.0.0", len(image_v1))
    assert m["sha256"] == hashlib.sha256(image_v1).hexdigest()
    assert m["url"].endswith(f"/firmware/{m['sha256']}.bin")
    body = api.get(m["url"], headers=auth(fleet)).content
    assert body == image_v1
    assert report(api, fleet, "e1", "downloading", m["deployment_id"], bytes=1024
                  ).status_code == 201
    assert report(api, fleet, "e2", "confirmed", m["deployment_id"]).status_code == 201
    # now running it: nothing more to do
    assert check_in(api, fleet, version="1.0.0", image_sha256=m["sha256"]).status_code == 204
    detail = api.get("/api/v1/devices/dev1").json()
    assert detail["state"] == "confirmed"
    assert detail["running_sha256"] == m["sha256"]
    assert [e["event_id"] for e in detail["events"]] == ["e2", "e1"]


def test_repeated_check_in_reuses_the_open_deployment(api: TestClient, fleet: str,
                                                      image_v1: bytes) -> None:
    publish(api, image_v1)
    first = check_in(api, fleet, version="0.1").json()["deployment_id"]
    assert check_in(api, fleet, version="0.1").json()["deployment_id"] == first


@pytest.mark.parametrize(("name", "facts"), [
    ("same image by hash", {"image_sha256": "HASH"}),
    ("same version without hash", {"version": "1.0.0"}),
    ("running image pending verify", {"version": "0.1", "otadata_state": "pending_verify"}),
    ("release below eFuse secure_version", {"version": "0.1", "secure_version": 5}),
])
def test_no_offer(api: TestClient, fleet: str, image_v1: bytes, name: str,
                  facts: dict[str, object]) -> None:
    publish(api, image_v1)
    if facts.get("image_sha256") == "HASH":
        facts = {**facts, "image_sha256": hashlib.sha256(image_v1).hexdigest()}
    assert check_in(api, fleet, **facts).status_code == 204, name


def test_penalty_box_after_three_failures(api: TestClient, fleet: str, image_v1: bytes) -> None:
    publish(api, image_v1)
    for attempt in range(3):
        dep = check_in(api, fleet, version="0.1").json()["deployment_id"]
        assert report(api, fleet, f"fail{attempt}", "rolled_back", dep,
                      reason="self-test failed").status_code == 201
    assert check_in(api, fleet, version="0.1").status_code == 204


def test_duplicate_report_is_idempotent(api: TestClient, fleet: str, image_v1: bytes) -> None:
    publish(api, image_v1)
    dep = check_in(api, fleet, version="0.1").json()["deployment_id"]
    first = report(api, fleet, "evt-1", "confirmed", dep)
    again = report(api, fleet, "evt-1", "confirmed", dep)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["duplicate"] is True
    assert len(api.get("/api/v1/devices/dev1").json()["events"]) == 1


def test_late_contradicting_report_is_conflict(api: TestClient, fleet: str,
                                               image_v1: bytes) -> None:
    publish(api, image_v1)
    dep = check_in(api, fleet, version="0.1").json()["deployment_id"]
    assert report(api, fleet, "a", "failed", dep).status_code == 201
    late = report(api, fleet, "b", "confirmed", dep)
    assert late.status_code == 409
    assert late.headers["content-type"] == "application/problem+json"
    assert report(api, fleet, "c", "failed", dep).status_code == 201  # same outcome: harmless


def test_report_for_another_devices_deployment_is_404(api: TestClient, fleet: str,
                                                      image_v1: bytes) -> None:
    publish(api, image_v1)
    dep = check_in(api, fleet, "devA", version="0.1").json()["deployment_id"]
    check_in(api, fleet, "devB", version="0.1")
    assert report(api, fleet, "x", "confirmed", dep, device="devB").status_code == 404


def test_device_token_binds_device_and_fleet(api: TestClient, fleet: str,
                                             image_v1: bytes) -> None:
    rel = publish(api, image_v1)
    token = api.post("/api/v1/fleets/f1/devices", json={"id": "tok-dev"}).json()["token"]
    assert check_in(api, token, "tok-dev", version="0.1").status_code == 200
    assert check_in(api, token, "someone-else", version="0.1").status_code == 403
    # a device of another fleet cannot read f1's firmware
    r = api.post("/api/v1/fleets", json={"name": "f2", "chip": "esp32",
                                         "partition_csv": PARTITIONS_CSV})
    other = r.json()["enrollment_token"]
    check_in_f2 = api.post("/api/v1/devices/d2/check-in", headers=auth(other),
                           json={"fleet": "f2", "chip": "esp32"})
    assert check_in_f2.status_code == 204
    assert api.get(f"/firmware/{rel['sha256']}.bin", headers=auth(other)).status_code == 404
    assert api.get(f"/firmware/{rel['sha256']}.bin", headers=auth(token)).status_code == 200


@pytest.mark.parametrize(("name", "headers", "status"), [
    ("no token", {}, 401),
    ("unknown token", auth("otfd_nope"), 401),
    ("not a bearer", {"authorization": "Basic Zm9vOmJhcg=="}, 401),
])
def test_authentication_refused(api: TestClient, fleet: str, name: str,
                                headers: dict[str, str], status: int) -> None:
    api.headers.pop("authorization")
    r = api.post("/api/v1/devices/dev1/check-in", json={"fleet": "f1", "chip": "esp32"},
                 headers=headers)
    assert r.status_code == status, name
    assert r.json()["reason"] == "unauthorized"


@pytest.mark.parametrize(("name", "method", "path", "body"), [
    ("check-in", "POST", "/api/v1/devices/dev1/check-in", {"fleet": "f1", "chip": "esp32"}),
    ("check-in of an unknown device", "POST", "/api/v1/devices/nobody/check-in",
     {"fleet": "f1", "chip": "esp32"}),
    ("report", "POST", "/api/v1/devices/dev1/events", {"event_id": "e1", "state": "failed"}),
    ("firmware", "GET", "/firmware/SHA.bin", None),
    ("firmware head", "HEAD", "/firmware/SHA.bin", None),
    ("stock url", "GET", "/ota/f1/dev1.bin", None),
])
def test_admin_token_refused_on_device_routes(api: TestClient, fleet: str, image_v1: bytes,
                                              name: str, method: str, path: str,
                                              body: object) -> None:
    """The admin manages; only a device or enrollment principal acts for a device."""
    rel = publish(api, image_v1)
    assert check_in(api, fleet, "dev1", version="0.1").status_code == 200
    r = api.request(method, path.replace("SHA", str(rel["sha256"])), json=body)
    assert r.status_code == 403, name
    assert r.headers["content-type"] == "application/problem+json", name
    if method != "HEAD":
        assert r.json()["reason"] == "forbidden", name
    assert api.get("/api/v1/devices/nobody").status_code == 404  # nothing was registered


def test_device_token_cannot_manage(api: TestClient, fleet: str) -> None:
    r = api.get("/api/v1/fleets", headers=auth(fleet))
    assert r.status_code == 403
    assert r.json()["reason"] == "forbidden"


def test_wrong_fleet_or_chip_in_check_in(api: TestClient, fleet: str) -> None:
    r = api.post("/api/v1/devices/dev1/check-in", headers=auth(fleet),
                 json={"fleet": "f1", "chip": "esp32s3"})
    assert r.status_code == 409
    r = api.post("/api/v1/devices/dev1/check-in", headers=auth(fleet),
                 json={"fleet": "f9", "chip": "esp32"})
    assert r.status_code == 403


@pytest.mark.parametrize(("name", "body"), [
    ("not json", b"{"),
    ("missing fleet", b'{"chip": "esp32"}'),
    ("negative secure_version", b'{"fleet":"f1","chip":"esp32","secure_version":-1}'),
    ("bad hash", b'{"fleet":"f1","chip":"esp32","image_sha256":"zz"}'),
    ("unknown otadata state", b'{"fleet":"f1","chip":"esp32","otadata_state":"weird"}'),
    ("huge number", b'{"fleet":"f1","chip":"esp32","secure_version":1e400}'),
])
def test_bad_check_in_body_is_422_problem(api: TestClient, fleet: str, name: str,
                                          body: bytes) -> None:
    r = api.post("/api/v1/devices/dev1/check-in", content=body,
                 headers={**auth(fleet), "content-type": "application/json"})
    assert r.status_code == 422, name
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["reason"] == "invalid_request"


def test_stock_ota_serves_then_304(api: TestClient, fleet: str, image_v1: bytes) -> None:
    rel = publish(api, image_v1)
    url = "/ota/f1/stock1.bin"
    head = api.head(url, headers=auth(fleet))
    assert head.status_code == 200 and head.headers["content-length"] == str(len(image_v1))
    inm = api.get(url, headers={**auth(fleet), "if-none-match": f'"{rel["sha256"]}"'})
    assert inm.status_code == 304
    assert api.get(url + "?version=1.0.0", headers=auth(fleet)).status_code == 304
    r = api.get(url + "?version=0.9", headers=auth(fleet))
    assert r.status_code == 200 and r.content == image_v1
    assert r.headers["etag"] == f'"{rel["sha256"]}"'
    # downloaded completely: never served to it again, whatever version it claims
    again = api.get(url + "?version=0.9", headers=auth(fleet))
    assert (again.status_code, again.headers["etag"]) == (304, f'"{rel["sha256"]}"')
    assert api.get(url, headers=auth(fleet)).status_code == 304


def test_stock_ota_304_from_last_check_in(api: TestClient, fleet: str, image_v1: bytes) -> None:
    rel = publish(api, image_v1)
    check_in(api, fleet, "stock2", version="1.0.0", image_sha256=rel["sha256"])
    assert api.get("/ota/f1/stock2.bin", headers=auth(fleet)).status_code == 304


def test_stock_ota_wrong_fleet_in_path(api: TestClient, fleet: str, image_v1: bytes) -> None:
    publish(api, image_v1)
    assert api.get("/ota/other/stock1.bin", headers=auth(fleet)).status_code == 403


def test_load_shedding_answers_503_with_retry_after(data_dir: object,
                                                    database_url: str | None) -> None:
    with _app_with(data_dir, database_url, max_in_flight=0, retry_after_s=7) as client:
        r = client.get("/api/v1/fleets")
        assert r.status_code == 503
        assert r.headers["retry-after"] == "7"
        assert r.json()["reason"] == "overloaded"
        assert client.get("/healthz").status_code == 200


def test_unauthenticated_requests_never_take_a_slot(data_dir: object,
                                                    database_url: str | None) -> None:
    """Issue 9 §2.1: a request counts against max_in_flight once it is authenticated; one
    without a known token is answered 401 at once, before its body is read."""
    with _app_with(data_dir, database_url, max_in_flight=0) as client:
        client.headers.pop("authorization")
        r = client.post("/api/v1/devices/d1/events", json={"event_id": "e", "state": "failed"})
        assert (r.status_code, r.json()["reason"]) == (401, "unauthorized")
        assert r.headers["www-authenticate"] == "Bearer"
        r = client.post("/api/v1/devices/d1/check-in", headers=auth("otfe_unknown"),
                        json={"fleet": "f1", "chip": "esp32"})
        assert r.status_code == 401
        assert client.get("/dl/otfs_unknown.bin").status_code == 404
        assert client.get("/openapi.json").status_code == 200
        assert client.get("/api/v1/fleets", headers=auth("otfa_x")).status_code == 401
        full = client.get("/api/v1/fleets", headers=auth(Settings(
            data_dir=Path(str(data_dir))).admin_token()))
        assert full.status_code == 503  # authenticated: now it needs a slot


def _app_with(data_dir: object, database_url: str | None, **overrides: object) -> TestClient:
    from pathlib import Path

    from otaforge.server.app import create_app

    settings = Settings(data_dir=Path(str(data_dir)), database_url=database_url,
                        **overrides)  # type: ignore[arg-type]
    client = TestClient(create_app(settings), base_url="https://testserver")
    client.headers["authorization"] = f"Bearer {settings.admin_token()}"
    return client


def test_report_flood_is_429_and_earlier_reports_stay(data_dir: object,
                                                      database_url: str | None) -> None:
    with _app_with(data_dir, database_url, max_reports_per_minute=5) as api:
        enroll = api.post("/api/v1/fleets", json={"name": "f1", "chip": "esp32",
                                                  "partition_csv": PARTITIONS_CSV}
                          ).json()["enrollment_token"]
        codes = [report(api, enroll, f"e{i}", "downloading", None).status_code
                 for i in range(8)]
        assert codes == [201] * 5 + [429] * 3
        assert len(api.get("/api/v1/devices/dev1").json()["events"]) == 5


def test_oversized_upload_is_413(data_dir: object, database_url: str | None,
                                 image_v1: bytes) -> None:
    with _app_with(data_dir, database_url, max_upload_bytes=1000) as api:
        api.post("/api/v1/fleets", json={"name": "f1", "chip": "esp32",
                                         "partition_csv": PARTITIONS_CSV})
        r = api.post("/api/v1/fleets/f1/releases", content=image_v1)
        assert r.status_code == 413 and r.json()["reason"] == "too_large"
        assert api.get("/api/v1/fleets/f1/releases").json() == []


def test_publish_to_unknown_fleet_is_404(api: TestClient, image_v1: bytes) -> None:
    r = api.post("/api/v1/fleets/nope/releases", content=image_v1)
    assert r.status_code == 404 and r.json()["reason"] == "not_found"


@pytest.mark.parametrize("name", ["offer", "no update", "bad body", "wrong chip"])
def test_fast_path_answers_like_the_documented_route(data_dir: object,
                                                     database_url: str | None,
                                                     image_v1: bytes, name: str) -> None:
    """The ASGI fast path and the FastAPI route give the same status, headers and body."""
    bodies = {"offer": {"fleet": "f1", "chip": "esp32", "version": "0.1"},
              "no update": {"fleet": "f1", "chip": "esp32", "version": "1.0.0"},
              "bad body": {"fleet": "f1"},
              "wrong chip": {"fleet": "f1", "chip": "esp32c3"}}
    answers = []
    with _app_with(data_dir, database_url) as api:
        enroll = api.post("/api/v1/fleets", json={"name": "f1", "chip": "esp32",
                                                  "partition_csv": PARTITIONS_CSV}
                          ).json()["enrollment_token"]
        publish(api, image_v1)
        fast = api.app.fast  # type: ignore[attr-defined]
        for use_fast in (True, False):
            api.app.fast = fast if use_fast else None  # type: ignore[attr-defined]
            r = api.post("/api/v1/devices/same/check-in", json=bodies[name],
                         headers=auth(enroll))
            body = r.json() if r.content else None
            if isinstance(body, dict):
                body.pop("next_check_in_s", None)
            answers.append((r.status_code, r.headers.get("content-type"),
                            "x-next-check-in-s" in r.headers, body))
    assert answers[0] == answers[1], name


# --- QA regressions (issue 5 acceptance) -------------------------------------------------


@pytest.mark.parametrize("blob_store", STORES, indirect=True)
@pytest.mark.parametrize(("name", "range_header", "status"), [
    ("5000-digit start", b"bytes=" + b"1" * 5000 + b"-", 416),
    ("5000-digit end, clamped", b"bytes=0-" + b"9" * 5000, 206),
])
def test_malformed_range_numbers_never_5xx(api: TestClient, fleet: str, image_v1: bytes,
                                           name: str, range_header: bytes,
                                           status: int) -> None:
    rel = publish(api, image_v1)
    for use_fast in (True, False):  # the fast path and the documented route
        fast = api.app.fast  # type: ignore[attr-defined]
        api.app.fast = fast if use_fast else None  # type: ignore[attr-defined]
        try:
            r = api.get(f"/firmware/{rel['sha256']}.bin",
                        headers={**auth(fleet), "range": range_header})  # type: ignore[dict-item]
        finally:
            api.app.fast = fast  # type: ignore[attr-defined]
        assert r.status_code == status, name
        if status == 200:
            assert r.content == image_v1


def test_nul_in_report_reason_is_kept_not_500(api: TestClient, fleet: str) -> None:
    """PostgreSQL text cannot hold NUL: the report is kept with U+FFFD instead of a 500."""
    r = report(api, fleet, "nul-1", "failed", None, reason="esp_ota_end: \x00 bad")
    assert r.status_code == 201, r.text
    events = api.get("/api/v1/devices/dev1").json()["events"]
    assert events[0]["reason"] == "esp_ota_end: \ufffd bad"


@pytest.mark.parametrize(("name", "facts"), [
    ("NUL in version", {"version": "1.0\x00"}),
    ("control character in chip", {"chip": "esp32\x01"}),
    ("NUL in running partition", {"running_partition": "ota_\x00"}),
])
def test_control_characters_in_check_in_are_422(api: TestClient, fleet: str, name: str,
                                                facts: dict[str, object]) -> None:
    r = check_in(api, fleet, **facts)
    assert r.status_code == 422, name
    assert r.json()["reason"] == "invalid_request"


def test_flush_keeps_other_devices_when_one_row_is_refused(api: TestClient, fleet: str) -> None:
    """One device's facts that the database refuses must not drop the whole batch."""
    for device in ("good", "bad"):
        assert check_in(api, fleet, device, version="0.1").status_code == 204
    store = api.app.state.store  # type: ignore[attr-defined]
    store.flush()
    store.remember("good", {"running_version": "0.2", "running_sha256": None,
                            "running_partition": "ota_1", "otadata_state": "valid",
                            "efuse_secure_version": 0})
    store.remember("bad", {"running_version": "0.2\x00", "running_sha256": None,
                           "running_partition": "ota_1", "otadata_state": "valid",
                           "efuse_secure_version": 0})
    store.flush()
    assert api.get("/api/v1/devices/good").json()["running_version"] == "0.2"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("path", ["/api/v1/devices/dev1/check-in", "/api/v1/devices/dev1/events",
                                  "/api/v1/fleets"])
def test_huge_json_body_is_413_not_buffered(api: TestClient, fleet: str, path: str,
                                            chunked: bool) -> None:
    blob = b'{"fleet": "' + b"a" * (2 * 1024 * 1024) + b'"}'

    def pieces() -> Iterator[bytes]:
        for i in range(0, len(blob), 65536):
            yield blob[i:i + 65536]

    headers = {**auth(fleet), "content-type": "application/json"}
    r = api.post(path, content=pieces() if chunked else blob, headers=headers)
    assert r.status_code == 413, path
    assert r.json()["reason"] == "too_large"


def test_chunked_small_json_body_still_works(api: TestClient, fleet: str) -> None:
    def pieces() -> Iterator[bytes]:
        yield b'{"event_id": "c1", '
        yield b'"state": "downloading"}'

    r = api.post("/api/v1/devices/dev1/events", content=pieces(),
                 headers={**auth(fleet), "content-type": "application/json"})
    assert r.status_code == 201, r.text


def test_openapi_documents_the_download_headers(api: TestClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    for path in ("/firmware/{sha256}.bin", "/ota/{fleet}/{device_id}.bin"):
        for method in ("get", "head"):
            op = paths[path][method]
            headers = {p["name"] for p in op["parameters"] if p["in"] == "header"}
            assert {"range", "if-range", "if-none-match"} <= headers, (path, method)
            assert "Content-Range" in op["responses"]["206"]["headers"]
            assert "Content-Range" in op["responses"]["416"]["headers"]


def test_enrollment_token_cannot_impersonate_a_device_with_its_own_token(
        api: TestClient, fleet: str, image_v1: bytes) -> None:
    """The fleet-wide enrollment token (in every device's firmware) registers new devices;
    it must not check in, report or download as a device that holds its own token."""
    publish(api, image_v1)
    token = api.post("/api/v1/fleets/f1/devices", json={"id": "owned"}).json()["token"]
    assert check_in(api, fleet, "owned", version="0.1").status_code == 403
    assert report(api, fleet, "x1", "failed", None, device="owned").status_code == 403
    assert api.get("/ota/f1/owned.bin", headers=auth(fleet)).status_code == 403
    assert check_in(api, token, "owned", version="0.1").status_code == 200
    assert check_in(api, fleet, "enrolled", version="0.1").status_code == 200  # still enrolls
    assert check_in(api, fleet, "enrolled", version="0.1").status_code == 200
