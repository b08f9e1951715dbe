"""The server clock seam: with a virtual clock, every timestamp and every time-based decision
follows that clock, not the wall clock (the fleet simulator runs the server this way)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from otaforge.server.app import create_app
from otaforge.server.clock import ManualClock
from otaforge.server.settings import Settings
from tests.server.conftest import PARTITIONS_CSV, auth, publish

START = dt.datetime(2031, 5, 4, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def vapi(settings: Settings, clock: ManualClock) -> Iterator[TestClient]:
    short = dataclasses.replace(settings, stale_deployment_s=600)
    with TestClient(create_app(short, clock=clock), base_url="https://testserver") as client:
        client.headers["authorization"] = f"Bearer {settings.admin_token()}"
        r = client.post("/api/v1/fleets", json={"name": "f1", "chip": "esp32",
                                                "partition_csv": PARTITIONS_CSV})
        assert r.status_code == 201, r.text
        client.headers["x-enroll"] = r.json()["enrollment_token"]
        yield client


def _check_in(api: TestClient, device: str) -> int:
    body = {"fleet": "f1", "chip": "esp32", "version": "0.1"}
    r = api.post(f"/api/v1/devices/{device}/check-in", json=body,
                 headers=auth(api.headers["x-enroll"]))
    return r.status_code


def test_check_in_time_is_the_virtual_clock_not_the_wall_clock(
        vapi: TestClient, clock: ManualClock, image_v1: bytes) -> None:
    release = publish(vapi, image_v1)
    assert dt.datetime.fromisoformat(str(release["created_at"])) == START
    clock.advance(3600)
    assert _check_in(vapi, "dev1") == 200
    seen = vapi.get("/api/v1/devices/dev1").json()
    assert dt.datetime.fromisoformat(seen["last_check_in"]) == START + dt.timedelta(hours=1)
    deployment = seen["deployments"][0]
    assert dt.datetime.fromisoformat(deployment["updated_at"]) == START + dt.timedelta(hours=1)


def test_stale_deployment_frees_its_slot_only_when_virtual_time_passes(
        vapi: TestClient, clock: ManualClock, image_v1: bytes) -> None:
    publish(vapi, image_v1)
    r = vapi.put("/api/v1/fleets/f1/channels/stable/rollout",
                 json={"max_in_flight": 1, "failure_threshold": None})
    assert r.status_code == 200, r.text
    assert _check_in(vapi, "dev1") == 200
    assert _check_in(vapi, "dev2") == 204  # dev1 holds the only slot
    clock.advance(599)
    assert _check_in(vapi, "dev2") == 204  # not stale yet in virtual time
    clock.advance(2)
    assert _check_in(vapi, "dev2") == 200  # dev1 went quiet for 601 virtual seconds


def test_manual_clock_refuses_to_go_backwards() -> None:
    clock = ManualClock(START)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="backwards"):
        clock.set(START - dt.timedelta(seconds=1))
    with pytest.raises(ValueError, match="timezone-aware"):
        ManualClock(dt.datetime(2031, 1, 1))
    clock.set(START + dt.timedelta(days=1))
    assert clock.now() == START + dt.timedelta(days=1)
