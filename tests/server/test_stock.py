"""The stock esp_https_ota routes, in-process on SQLite and PostgreSQL: the header-less
download URL /dl/{secret}.bin (grants one device's firmware, rotates, revokes), 304 after a
complete download or a rollback, Range/partial download, and anti-rollback: 304 for a
release the device's eFuse would refuse, and publishing one to its channel refused unless
forced."""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

import pytest
from starlette.testclient import TestClient

from otaforge.formats.image_builder import build_image
from tests.server.conftest import PARTITIONS_CSV, STORES, auth, publish


def _add_device(api: TestClient, device: str = "seed1", fleet: str = "f1") -> dict[str, str]:
    r = api.post(f"/api/v1/fleets/{fleet}/devices", json={"id": device})
    assert r.status_code == 201, r.text
    out: dict[str, str] = r.json()
    return out


def _path(url: str) -> str:
    return urlsplit(url).path


def _check_in(api: TestClient, token: str, device: str, **facts: object) -> int:
    r = api.post(f"/api/v1/devices/{device}/check-in", headers=auth(token),
                 json={"fleet": "f1", "chip": "esp32", **facts})
    return r.status_code


def test_device_add_gives_a_download_url_that_needs_no_header(api: TestClient, fleet: str,
                                                               image_v1: bytes) -> None:
    out = _add_device(api)
    url = out["download_url"]
    assert url.startswith("https://testserver/dl/otfs_") and url.endswith(".bin")
    publish(api, image_v1)
    path = _path(url)
    bare = {"authorization": ""}
    head = api.head(path, headers=bare)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(image_v1))
    r = api.get(path, headers=bare)
    assert r.status_code == 200 and r.content == image_v1
    # downloaded completely: the seed calls esp_https_ota() at every boot -- no re-flash loop
    assert api.get(path, headers=bare).status_code == 304
    assert api.head(path, headers=bare).status_code == 304
    detail = api.get("/api/v1/devices/seed1").json()
    assert [d["state"] for d in detail["deployments"]] == ["downloaded"]
    assert detail["deployments"][0]["bytes"] == len(image_v1)
    # the shown device listing never repeats the secret
    assert all(d.get("download_url") is None for d in api.get("/api/v1/devices").json())


def test_download_url_grants_only_that_devices_firmware(api: TestClient, fleet: str,
                                                        image_v1: bytes, image_v2: bytes) -> None:
    api.post("/api/v1/fleets", json={"name": "f2", "chip": "esp32",
                                     "partition_csv": PARTITIONS_CSV})
    publish(api, image_v1)
    rel2 = publish(api, image_v2, fleet="f2")
    one = _path(_add_device(api, "one")["download_url"])
    two = _path(_add_device(api, "two", fleet="f2")["download_url"])
    bare = {"authorization": ""}
    assert api.get(one, headers=bare).content == image_v1
    assert api.get(two, headers=bare).content == image_v2
    secret = one.removeprefix("/dl/").removesuffix(".bin")
    # the secret is not a token: no other route accepts it
    for path in (f"/firmware/{rel2['sha256']}.bin", "/ota/f1/one.bin"):
        assert api.get(path, headers=auth(secret)).status_code == 401
    assert api.post("/api/v1/devices/one/check-in", headers=auth(secret),
                    json={"fleet": "f1", "chip": "esp32"}).status_code == 401
    assert api.get("/dl/otfs_not-issued.bin", headers=bare).status_code == 404
    assert api.get(one.replace(".bin", "x.bin"), headers=bare).status_code == 404


def test_rotate_and_revoke_end_the_old_url(api: TestClient, fleet: str,
                                           image_v1: bytes) -> None:
    publish(api, image_v1)
    old = _path(_add_device(api)["download_url"])
    bare = {"authorization": "", "range": "bytes=0-0"}
    assert api.get(old, headers=bare).status_code == 206
    r = api.post("/api/v1/devices/seed1/download-url")
    assert r.status_code == 200, r.text
    new = _path(r.json()["download_url"])
    assert new != old
    assert api.get(old, headers=bare).status_code == 404
    assert api.get(new, headers=bare).status_code == 206
    assert api.delete("/api/v1/devices/seed1/download-url").status_code == 204
    assert api.get(new, headers=bare).status_code == 404
    assert api.post("/api/v1/devices/nobody/download-url").status_code == 404
    assert api.post("/api/v1/devices/seed1/download-url",
                    headers=auth(fleet)).status_code == 403  # management only


@pytest.mark.parametrize("blob_store", STORES, indirect=True)
def test_partial_http_download_in_chunks_then_304(api: TestClient, fleet: str,
                                                  image_v1: bytes) -> None:
    """esp_https_ota with partial_http_download: HEAD, then ranges whose last end is one past
    the image; the last chunk completes the download."""
    publish(api, image_v1)
    path = _path(_add_device(api)["download_url"])
    size = int(api.head(path, headers={"authorization": ""}).headers["content-length"])
    step, parts, offset = 16384, [], 0
    while offset < size:
        end = min(offset + step - 1, size)
        r = api.get(path, headers={"authorization": "", "range": f"bytes={offset}-{end}"})
        assert r.status_code == 206, (offset, r.status_code)
        parts.append(r.content)
        offset += len(r.content)
    assert b"".join(parts) == image_v1
    assert api.get(path, headers={"authorization": ""}).status_code == 304


@pytest.mark.parametrize("blob_store", STORES, indirect=True)
def test_resume_from_an_offset_counts_what_the_device_holds(api: TestClient, fleet: str,
                                                            image_v1: bytes) -> None:
    """ota_resumption asks for bytes=<what it wrote>-: the device holds that prefix, so the
    rest completes the download; ranges short of the end do not."""
    publish(api, image_v1)
    path = _path(_add_device(api)["download_url"])

    def deployment() -> tuple[str, int]:
        dep = api.get("/api/v1/devices/seed1").json()["deployments"][0]
        return dep["state"], dep["bytes"]

    bare = {"authorization": ""}
    assert api.get(path, headers={**bare, "range": "bytes=0-999"}).status_code == 206
    assert deployment() == ("downloading", 1000)
    assert api.get(path, headers={**bare, "range": "bytes=5000-5999"}).status_code == 206
    assert deployment() == ("downloading", 6000)
    assert api.get(path, headers={**bare, "range": "bytes=150000-"}).status_code == 206
    assert deployment() == ("downloaded", len(image_v1))
    # a resume is always served, even after completion; a fresh start is not
    assert api.get(path, headers={**bare, "range": "bytes=50000-"}).status_code == 206
    assert api.get(path, headers={**bare, "range": "bytes=0-"}).status_code == 304
    assert api.get(path, headers=bare).status_code == 304


def test_rolled_back_release_never_offered_again(api: TestClient, fleet: str,
                                                 image_v1: bytes) -> None:
    publish(api, image_v1)
    out = _add_device(api)
    token = out["token"]
    r = api.post("/api/v1/devices/seed1/check-in", headers=auth(token),
                 json={"fleet": "f1", "chip": "esp32", "version": "0.1"})
    dep = r.json()["deployment_id"]
    assert api.post("/api/v1/devices/seed1/events", headers=auth(token), json={
        "event_id": "rb1", "deployment_id": dep, "state": "rolled_back"}).status_code == 201
    for path, headers in ((_path(out["download_url"]), {"authorization": ""}),
                          ("/ota/f1/seed1.bin", auth(token))):
        r = api.get(path + "?version=0.1", headers=headers)
        assert (r.status_code, r.headers.get("etag")) == (304, None), path


@pytest.mark.parametrize("route", ["ota", "dl"])
def test_stock_routes_304_for_a_release_the_efuse_would_refuse(
        api: TestClient, fleet: str, route: str) -> None:
    """Issue 9 §2.2: the check-in says 204, and so must the stock URL (as 304)."""
    out = _add_device(api)
    token = out["token"]
    assert _check_in(api, token, "seed1", version="2.0.0", secure_version=2) == 204
    low = build_image(version="1.9.0", size=100_000, seed=5, secure_version=0)
    publish(api, low, channel=None)
    r = api.put("/api/v1/fleets/f1/channels/stable", json={"release": "1.9.0", "force": True})
    assert r.status_code == 200, r.text
    assert _check_in(api, token, "seed1", version="2.0.0", secure_version=2) == 204
    path, headers = (("/ota/f1/seed1.bin", auth(token)) if route == "ota"
                     else (_path(out["download_url"]), {"authorization": ""}))
    for method in ("GET", "HEAD"):
        r = api.request(method, path, headers=headers)
        assert (r.status_code, r.content) == (304, b""), method
    assert api.get("/api/v1/devices/seed1").json()["deployments"] == []


def test_publish_refused_when_channel_devices_would_refuse(api: TestClient,
                                                           fleet: str) -> None:
    for i, burned in enumerate((3, 1, 2)):
        assert _check_in(api, fleet, f"d{i}", version="5.0", secure_version=burned) == 204
    low = build_image(version="1.0.0", size=100_000, seed=6, secure_version=1)
    r = api.post("/api/v1/fleets/f1/releases", params={"channel": "stable"}, content=low)
    assert r.status_code == 409, r.text
    problem = r.json()
    assert problem["reason"] == "secure_version"
    assert "2 device(s) on channel 'stable'" in problem["detail"]
    assert "d0 has 3" in problem["detail"] and "--force" in problem["detail"]
    assert api.get("/api/v1/fleets/f1/releases").json() == []  # nothing stored
    # uploading without a channel is fine; pointing the channel at it is refused the same way
    rel = api.post("/api/v1/fleets/f1/releases", content=low).json()
    r = api.put("/api/v1/fleets/f1/channels/stable", json={"release": str(rel["id"])})
    assert (r.status_code, r.json()["reason"]) == (409, "secure_version")
    assert api.get("/api/v1/fleets/f1").json()["channels"]["stable"] is None
    # another channel has none of those devices
    assert api.put("/api/v1/fleets/f1/channels/beta",
                   json={"release": str(rel["id"])}).status_code == 200
    forced = api.post("/api/v1/fleets/f1/releases",
                      params={"channel": "stable", "force": "true"}, content=low)
    assert forced.status_code == 200, forced.text
    assert api.get("/api/v1/fleets/f1").json()["channels"]["stable"] == rel["id"]
    high = build_image(version="5.1", size=100_000, seed=7, secure_version=3)
    assert api.post("/api/v1/fleets/f1/releases", params={"channel": "stable"},
                    content=high).status_code == 201


def test_download_url_etag_is_the_image_digest(api: TestClient, fleet: str,
                                               image_v1: bytes) -> None:
    publish(api, image_v1)
    path = _path(_add_device(api)["download_url"])
    etag = f'"{hashlib.sha256(image_v1).hexdigest()}"'
    r = api.get(path, headers={"authorization": "", "if-none-match": etag})
    assert (r.status_code, r.headers["etag"]) == (304, etag)
