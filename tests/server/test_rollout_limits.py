"""A rollout's limits and targeting on the real server, named after what each one stops: too
many devices mid-update at once (also under concurrent check-ins over TLS), a release
spreading faster than its rate ramp, a device retrying a release that keeps failing on it
(the penalty box), the wrong hardware getting a release, stock esp_https_ota devices
bypassing the rollout, and bad plans. SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from otaforge.server.settings import Settings
from tests.server.conftest import auth, publish, serve_https
from tests.server.rollout_env import Env, env


@pytest.fixture
def e(settings: Settings, image_v1: bytes, image_v2: bytes) -> Iterator[Env]:
    yield from env(settings, image_v1, image_v2, devices=20)


def test_concurrency_limit_holds_slots_until_devices_confirm(e: Env) -> None:
    e.create(waves="100%", max_in_flight=3)
    offers = e.offered()
    assert len(offers) == 3
    first = next(iter(offers))
    for state in ("downloading", "downloaded", "installing", "rebooting", "pending_verify"):
        e.report(first, offers[first], state)
    assert e.offered().keys() == offers.keys()  # rebooted but unconfirmed: slot still held
    e.report(first, offers[first], "confirmed")
    e.runs[first] = e.new
    now = e.offered()
    assert len(now) == 3 and len(set(now) - set(offers)) == 1


def test_concurrency_limit_holds_under_concurrent_check_ins_over_tls(
        settings: Settings, api: TestClient, fleet: str, image_v1: bytes,
        image_v2: bytes) -> None:
    old = publish(api, image_v1)
    new = publish(api, image_v2, channel=None)
    running = {"fleet": "f1", "chip": "esp32", "version": old["version"],
               "image_sha256": old["sha256"]}
    for i in range(24):
        r = api.post(f"/api/v1/devices/c{i:02d}/check-in", json=running, headers=auth(fleet))
        assert r.status_code == 204, r.text
    r = api.post("/api/v1/fleets/f1/rollouts", json={"release": str(new["id"]),
                                                      "waves": "100%", "max_in_flight": 4})
    assert r.status_code == 201, r.text
    with serve_https(settings) as url:
        def one(i: int) -> int:
            ctx = ssl.create_default_context(cafile=str(settings.ca_cert_path))
            with httpx.Client(base_url=url, verify=ctx) as client:
                r = client.post(f"/api/v1/devices/c{i:02d}/check-in", headers=auth(fleet),
                                json=running)
                return r.status_code

        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(one, range(24)))
    assert codes.count(200) == 4 and codes.count(204) == 20, codes
    assert api.get(f"/api/v1/rollouts/{r.json()['id']}").json()["in_flight"] == 4


def test_rate_ramp_limits_new_offers_per_minute_and_grows_by_its_factor(e: Env) -> None:
    ro = e.create(waves="100%", rate_per_min=2, rate_factor=2)
    assert len(e.offered()) == 2
    assert len(e.offered()) == 2  # the same two again: no new offers this minute
    e.clock.advance(60)
    assert len(e.offered()) == 2 + 4
    e.clock.advance(60)
    assert len(e.offered()) == 2 + 4 + 8
    assert e.show(ro["id"])["rate_per_min"] == 8


def test_penalty_box_stops_offering_a_release_that_keeps_failing_until_cleared(
        e: Env) -> None:
    e.create(waves="100%", max_failures_percent=None, penalty_failures=2)
    device = e.devices[0]
    for attempt in range(2):
        manifest = e.check_in(device)
        assert manifest is not None, f"attempt {attempt + 1} not offered"
        e.install({device: manifest["deployment_id"]}, "rolled_back")
    assert e.check_in(device) is None  # two failures: in the penalty box
    assert e.check_in(e.devices[1]) is not None  # others are not
    r = e.api.delete(f"/api/v1/devices/{device}/penalty")
    assert r.status_code == 200 and r.json()["penalty_cleared_at"] is not None
    e.clock.advance(1)
    again = e.check_in(device)
    assert again is not None and again["release_id"] == e.new["id"]
    assert e.api.delete("/api/v1/devices/nobody/penalty").status_code == 404


def test_targeting_by_tag_hardware_revision_and_running_version(e: Env) -> None:
    lab = e.devices[:6]
    for device in lab:
        r = e.api.put(f"/api/v1/devices/{device}/targeting", json={"tags": ["lab", "eu"]})
        assert r.status_code == 200 and r.json()["tags"] == ["eu", "lab"]
    for device in lab[:3]:
        e.check_in(device, hw_revision="rev3")  # a reported fact
    e.check_in(lab[3], hw_revision="rev1")
    assert e.api.get(f"/api/v1/devices/{lab[0]}").json()["hw_revision"] == "rev3"
    ro = e.create(waves="100%", tags=["lab"], hw_revisions=["rev3"],
                  canary=[e.devices[10]])
    assert ro["sizes"] == [1]  # the canary
    offers = e.offered()
    assert set(offers) == {e.devices[10]}  # wave 0 (canary) first, whatever the filters
    e.install(offers)
    e.keep_checking_in(list(offers), 900)
    assert set(e.offered()) == set(lab[:3])  # then the lab devices on rev3, only
    assert e.show(ro["id"])["sizes"] == [1, 3]
    # a version filter nobody matches reaches no one
    r = e.api.post(f"/api/v1/rollouts/{ro['id']}/abort")
    assert r.status_code == 200
    nobody = e.create(waves="100%", from_versions=["9.9.9"])
    assert nobody["sizes"] == [1]  # only the canary, which runs the release already
    assert {d for d in e.offered() if d not in lab[:3]} == set()
    # the admin can clear a hardware revision; omitting it keeps it
    r = e.api.put(f"/api/v1/devices/{lab[0]}/targeting", json={"tags": []})
    assert r.json() == {**r.json(), "tags": [], "hw_revision": "rev3"}
    r = e.api.put(f"/api/v1/devices/{lab[0]}/targeting", json={"hw_revision": None})
    assert r.json()["hw_revision"] is None


def test_stock_routes_follow_the_rollout(e: Env) -> None:
    urls = {}
    for name in ("stock1", "stock2"):
        r = e.api.post("/api/v1/fleets/f1/devices", json={"id": name})
        assert r.status_code == 201, r.text
        urls[name] = r.json()["download_url"].replace("https://testserver", "")
    ro = e.create(waves="100%", canary=["stock1", "stock2"])
    old = {"version": e.old["version"]}
    got = e.api.get(urls["stock1"], params=old)
    assert got.status_code == 200 and got.headers["etag"] == f'"{e.new["sha256"]}"'
    assert got.content == e.store.blobs.path(str(e.new["sha256"])).read_bytes()
    # outside the opened (canary) wave: the channel's own release, which it runs
    other = e.api.get(f"/ota/f1/{e.devices[0]}.bin", headers=auth(e.enroll), params=old)
    assert other.status_code == 304
    assert e.api.post(f"/api/v1/rollouts/{ro['id']}/pause").status_code == 200
    held = e.api.get(urls["stock2"], params=old)
    assert held.status_code == 304 and "etag" not in held.headers
    assert e.api.post(f"/api/v1/rollouts/{ro['id']}/resume").status_code == 200
    served = e.api.get(urls["stock2"], params=old)
    assert served.status_code == 200 and served.headers["etag"] == f'"{e.new["sha256"]}"'


def test_bad_plans_and_conflicting_rollouts_are_refused(e: Env) -> None:
    base = {"release": str(e.new["id"])}
    for body, status, words in [
        ({**base, "waves": "50%,10%"}, 422, "must not shrink"),
        ({**base, "waves": "ten"}, 422, "expected a percentage"),
        ({**base, "canary": ["ghost"]}, 422, "not on channel"),
        ({**base, "release": "9.9.9"}, 404, "no release"),
        ({**base, "channel": "beta"}, 404, "no channel"),
        ({**base, "confirm_percent": 0}, 422, "confirm_percent"),
        ({"release": str(e.old["id"])}, 409, "already points at"),
    ]:
        r = e.api.post("/api/v1/fleets/f1/rollouts", json=body)
        assert r.status_code == status, (body, r.text)
        assert words in r.json()["detail"], (body, r.text)
    ro = e.create()
    r = e.api.post("/api/v1/fleets/f1/rollouts", json=base)
    assert r.status_code == 409 and f"already has rollout {ro['id']}" in r.json()["detail"]
    assert e.api.get("/api/v1/rollouts/999").status_code == 404
    assert e.api.post(f"/api/v1/rollouts/{ro['id']}/resume").status_code == 409
    listed = e.api.get("/api/v1/rollouts", params={"fleet": "f1", "state": "running"})
    assert [x["id"] for x in listed.json()] == [ro["id"]]
    # pointing the channel by hand supersedes the rollout
    r = e.api.put("/api/v1/fleets/f1/channels/stable", json={"release": str(e.new["id"])})
    assert r.status_code == 200, r.text
    assert e.show(ro["id"])["state"] == "superseded"


def test_rollout_offer_still_carries_the_delta_from_the_running_image(
        api: TestClient, fleet: str, shared_fixtures: Path) -> None:
    from otaforge.delta import variants

    base = (shared_fixtures / "esp-idf" / "hello_world_esp32.bin").read_bytes()
    new = variants.code_change(base)
    publish(api, base)
    running = {"fleet": "f1", "chip": "esp32", "version": "1.0.0", "otadata_state": "valid",
               "image_sha256": hashlib.sha256(base).hexdigest()}
    assert api.post("/api/v1/devices/dev1/check-in", json=running,
                    headers=auth(fleet)).status_code == 204
    release = publish(api, new, channel=None)
    r = api.post("/api/v1/fleets/f1/rollouts", json={"release": str(release["id"]),
                                                      "waves": "100%"})
    assert r.status_code == 201, r.text
    api.app.state.store.deltas.wait(60)  # type: ignore[attr-defined]
    r = api.post("/api/v1/devices/dev1/check-in", json=running, headers=auth(fleet))
    assert r.status_code == 200, r.text
    manifest = r.json()
    assert manifest["release_id"] == release["id"]  # the rollout decided which release...
    delta = manifest["delta"]  # ...and the delta logic how
    assert delta is not None and delta["base_sha256"] == running["image_sha256"]
    assert 0 < delta["size"] < len(new) // 10
