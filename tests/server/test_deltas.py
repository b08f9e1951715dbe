"""Server-side deltas, in-process on SQLite and PostgreSQL: patches made in the background
when a release is published, offered to devices running the base, served with Range,
not offered above the size threshold, resumed after a restart; bytes saved recorded."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from otaforge.delta import variants
from otaforge.delta.create import apply_checked
from otaforge.server.app import create_app
from otaforge.server.models import Delta
from otaforge.server.settings import Settings
from otaforge.server.store import Store
from tests.server.conftest import STORES, auth, publish
from tests.server.test_device_api import check_in, report


@pytest.fixture(scope="module")
def base_image(shared_fixtures: Path) -> bytes:
    return (shared_fixtures / "esp-idf" / "hello_world_esp32.bin").read_bytes()


@pytest.fixture(scope="module")
def new_image(base_image: bytes) -> bytes:
    return variants.code_change(base_image)


def _store(api: TestClient) -> Store:
    store = api.app.state.store  # type: ignore[attr-defined]
    assert isinstance(store, Store)
    return store


def _running(api: TestClient, token: str, image: bytes, device: str = "dev1") -> object:
    return check_in(api, token, device, version="1.0.0", otadata_state="valid",
                    image_sha256=hashlib.sha256(image).hexdigest())


@pytest.mark.parametrize("blob_store", STORES, indirect=True)
def test_published_release_gets_a_delta_for_what_devices_run(
        api: TestClient, fleet: str, base_image: bytes, new_image: bytes) -> None:
    publish(api, base_image)
    assert _running(api, fleet, base_image).status_code == 204  # dev1 runs the base
    target = publish(api, new_image)
    store = _store(api)
    store.deltas.wait(60)
    r = _running(api, fleet, base_image)
    assert r.status_code == 200, r.text
    manifest = r.json()
    delta = manifest["delta"]
    assert delta["base_sha256"] == hashlib.sha256(base_image).hexdigest()
    assert delta["target_sha256"] == manifest["sha256"] == hashlib.sha256(new_image).hexdigest()
    assert 0 < delta["size"] < 0.05 * len(new_image)
    assert manifest["url"].endswith(f"/firmware/{manifest['sha256']}.bin")  # fallback kept
    patch = api.get(delta["url"], headers=auth(fleet)).content
    assert len(patch) == delta["size"] and hashlib.sha256(patch).hexdigest() == delta["sha256"]
    assert apply_checked(base_image, patch) == new_image
    part = api.get(delta["url"], headers={**auth(fleet), "range": "bytes=100-"})
    assert part.status_code == 206 and part.content == patch[100:]
    # the device reports what it used: the server records the bytes saved
    assert report(api, fleet, "d1", "downloaded", manifest["deployment_id"], method="delta",
                  bytes=delta["size"]).status_code == 201
    assert report(api, fleet, "d1", "downloaded", manifest["deployment_id"], method="delta",
                  bytes=delta["size"]).status_code == 200  # a replay changes nothing
    stats = api.get("/api/v1/fleets/f1/deltas").json()
    saved = len(new_image) - delta["size"]
    assert stats["saved_bytes"] == saved
    assert stats["per_device"] == {"dev1": saved}
    assert stats["per_release"][str(target["id"])]["delta_updates"] == 1
    assert [d["state"] for d in stats["deltas"]] == ["ready"]


def test_device_on_another_image_gets_the_full_image_only(
        api: TestClient, fleet: str, base_image: bytes, new_image: bytes) -> None:
    publish(api, base_image)
    publish(api, new_image)
    _store(api).deltas.wait(60)
    r = _running(api, fleet, variants.version_change(base_image, "9.9.9"), device="dev2")
    assert r.status_code == 200 and r.json()["delta"] is None


def test_a_device_checking_in_from_a_base_queues_its_delta(
        api: TestClient, fleet: str, base_image: bytes, new_image: bytes) -> None:
    publish(api, base_image, channel=None)
    publish(api, new_image)  # no device runs the base yet: nothing to make
    store = _store(api)
    first = _running(api, fleet, base_image)
    assert first.status_code == 200 and first.json()["delta"] is None
    store.deltas.wait(60)
    again = _running(api, fleet, base_image)
    assert again.json()["delta"] is not None
    # patches are for the fleet's devices only
    assert api.get(again.json()["delta"]["url"], headers=auth("nope")).status_code == 401


def test_patch_not_smaller_than_the_threshold_is_not_offered(
        settings: Settings, base_image: bytes) -> None:
    tight = Settings(data_dir=settings.data_dir, database_url=settings.database_url,
                     delta_max_ratio=0.01)
    with TestClient(create_app(tight), base_url="https://testserver") as api:
        api.headers["authorization"] = f"Bearer {tight.admin_token()}"
        from tests.server.conftest import PARTITIONS_CSV
        token = api.post("/api/v1/fleets", json={"name": "f1", "chip": "esp32",
                                                 "partition_csv": PARTITIONS_CSV}
                         ).json()["enrollment_token"]
        publish(api, base_image)
        _running(api, token, base_image)
        publish(api, variants.larger_release(base_image))  # ~9 % of the image
        _store(api).deltas.wait(60)
        r = _running(api, token, base_image)
        assert r.status_code == 200 and r.json()["delta"] is None
        assert [d["state"] for d in api.get("/api/v1/fleets/f1/deltas").json()["deltas"]] \
            == ["too_large"]


def test_queued_patches_are_made_after_a_restart(settings: Settings, base_image: bytes,
                                                 new_image: bytes) -> None:
    with TestClient(create_app(settings), base_url="https://testserver") as api:
        api.headers["authorization"] = f"Bearer {settings.admin_token()}"
        from tests.server.conftest import PARTITIONS_CSV
        api.post("/api/v1/fleets", json={"name": "f1", "chip": "esp32",
                                         "partition_csv": PARTITIONS_CSV})
        base = publish(api, base_image, channel=None)
        target = publish(api, new_image, channel=None)
        store = _store(api)
        with store.tx() as s:  # as if the server stopped mid-generation
            s.add(Delta(fleet_id=1, base_release_id=base["id"], target_release_id=target["id"],
                        state="running", full_size=len(new_image)))
    with TestClient(create_app(settings), base_url="https://testserver") as api:
        api.headers["authorization"] = f"Bearer {settings.admin_token()}"
        _store(api).deltas.wait(60)
        states = [d["state"] for d in api.get("/api/v1/fleets/f1/deltas").json()["deltas"]]
        assert states == ["ready"]


def test_the_release_a_device_confirmed_is_a_base(api: TestClient, fleet: str,
                                                  base_image: bytes, new_image: bytes) -> None:
    """A device that confirmed the base but has not checked in since still gets its delta."""
    publish(api, variants.version_change(base_image, "0.9.0"))
    assert check_in(api, fleet, version="0.1").status_code == 200
    publish(api, base_image)
    offer = check_in(api, fleet, version="0.1").json()  # still reports the old image
    assert report(api, fleet, "c1", "confirmed", offer["deployment_id"]).status_code == 201
    publish(api, new_image)
    store = _store(api)
    store.deltas.wait(60)
    pairs = [(d["base_release_id"], d["state"])
             for d in api.get("/api/v1/fleets/f1/deltas").json()["deltas"]]
    assert (offer["release_id"], "ready") in pairs
