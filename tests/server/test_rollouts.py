"""Rollout controls, named after the reliability-matrix rows they cover (section 6):
row 51 (report on an aborted deployment), row 58 (concurrent-update limit), row 56 (failure
threshold pauses the rollout), and staged rollout percentages. Every test runs on SQLite and
on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import hashlib
import ssl
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from starlette.testclient import TestClient

from otaforge.server.settings import Settings
from tests.conftest import run_cli
from tests.server.conftest import auth, publish, serve_https

ROLLOUT = "/api/v1/fleets/f1/channels/stable/rollout"


def check_in(api: TestClient, token: str, device: str, **facts: object) -> Any:
    body = {"fleet": "f1", "chip": "esp32", "version": "0.1", **facts}
    return api.post(f"/api/v1/devices/{device}/check-in", json=body, headers=auth(token))


def report(api: TestClient, token: str, device: str, event_id: str, state: str,
           deployment: int) -> Any:
    body = {"event_id": event_id, "state": state, "deployment_id": deployment}
    return api.post(f"/api/v1/devices/{device}/events", json=body, headers=auth(token))


def in_flight_deployments(api: TestClient, devices: list[str]) -> int:
    """Devices whose newest deployment has not ended, from the admin API."""
    busy = 0
    for device in devices:
        deps = api.get(f"/api/v1/devices/{device}").json()["deployments"]
        ended = ("confirmed", "failed", "rolled_back", "aborted")
        busy += bool(deps) and deps[0]["state"] not in ended
    return busy


# --- row 51: status report for an aborted/cancelled deployment ------------------------------


def test_row51_report_on_aborted_deployment_is_409_and_not_reoffered(
        api: TestClient, fleet: str, image_v1: bytes) -> None:
    publish(api, image_v1)
    dep = check_in(api, fleet, "dev1").json()["deployment_id"]
    assert report(api, fleet, "dev1", "e1", "downloading", dep).status_code == 201
    r = api.post(f"/api/v1/admin/deployments/{dep}/abort", json={"reason": "bad batch"})
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["reason"]) == ("aborted", "bad batch")
    for eid, state in (("e2", "downloaded"), ("e3", "failed"), ("e4", "confirmed")):
        late = report(api, fleet, "dev1", eid, state, dep)
        assert late.status_code == 409, (state, late.text)
        assert late.headers["content-type"] == "application/problem+json"
        assert late.json()["reason"] == "conflict"
        assert "aborted" in late.json()["detail"]
    # the device keeps its firmware: the aborted release is not offered to it again
    assert check_in(api, fleet, "dev1").status_code == 204
    # a duplicate of a report recorded before the abort is still acknowledged, not refused
    assert report(api, fleet, "dev1", "e1", "downloading", dep).status_code == 200
    again = api.post(f"/api/v1/admin/deployments/{dep}/abort")
    assert (again.status_code, again.json()["state"]) == (200, "aborted")  # idempotent
    detail = api.get("/api/v1/devices/dev1").json()
    assert detail["deployments"][0]["state"] == "aborted"
    assert [e["event_id"] for e in detail["events"]] == [f"admin abort {dep}", "e1"]
    # other devices still get the release
    assert check_in(api, fleet, "dev2").status_code == 200


def test_row51_abort_refused_for_ended_or_unknown_deployment(
        api: TestClient, fleet: str, image_v1: bytes) -> None:
    publish(api, image_v1)
    dep = check_in(api, fleet, "dev1").json()["deployment_id"]
    assert report(api, fleet, "dev1", "ok", "confirmed", dep).status_code == 201
    done = api.post(f"/api/v1/admin/deployments/{dep}/abort")
    assert done.status_code == 409 and "confirmed" in done.json()["detail"]
    assert api.post("/api/v1/admin/deployments/999999/abort").status_code == 404
    # device tokens cannot abort
    assert api.post(f"/api/v1/admin/deployments/{dep}/abort",
                    headers=auth(fleet)).status_code in (401, 403)


# --- row 58: concurrent-update limit --------------------------------------------------------


def test_row58_never_more_than_limit_in_flight_next_starts_when_one_finishes(
        api: TestClient, fleet: str, image_v1: bytes) -> None:
    publish(api, image_v1)
    limit, devices = 3, [f"d{i:02d}" for i in range(10)]
    r = api.put(ROLLOUT, json={"max_in_flight": limit})
    assert (r.status_code, r.json()["max_in_flight"]) == (200, limit), r.text
    sha = hashlib.sha256(image_v1).hexdigest()
    running: dict[str, str] = {}  # device -> deployment in flight
    done: set[str] = set()
    outcomes = iter(["failed", "confirmed", "rolled_back", "failed"] + ["confirmed"] * 20)
    for _ in range(30):
        for device in devices:
            if device in done:
                continue
            answer = check_in(api, fleet, device)
            if answer.status_code == 204:
                assert device not in running
                assert int(answer.headers["x-next-check-in-s"]) >= 1
            else:
                assert answer.status_code == 200, answer.text
                running[device] = answer.json()["deployment_id"]
            assert len(running) <= limit
        assert in_flight_deployments(api, devices) == len(running) <= limit
        # one finishes per round (confirmed, failed or rolled back): the next may start
        if running:
            device, dep = next(iter(running.items()))
            outcome = next(outcomes)
            assert report(api, fleet, device, f"end-{dep}", outcome, int(dep)).status_code == 201
            del running[device]
            if outcome == "confirmed":
                done.add(device)
        if len(done) == len(devices):
            break
    # every device confirmed; the failed ones got their retry within the limit
    assert done == set(devices)
    assert all(check_in(api, fleet, d, version="1.0.0", image_sha256=sha).status_code == 204
               for d in devices)


def test_row58_limit_holds_under_concurrent_check_ins(
        settings: Settings, fleet: str, api: TestClient, image_v1: bytes) -> None:
    publish(api, image_v1)
    assert api.put(ROLLOUT, json={"max_in_flight": 4}).status_code == 200
    with serve_https(settings) as url:
        def one(i: int) -> int:
            ctx = ssl.create_default_context(cafile=str(settings.ca_cert_path))
            with httpx.Client(base_url=url, verify=ctx) as client:
                r = client.post(f"/api/v1/devices/c{i:02d}/check-in", headers=auth(fleet),
                                json={"fleet": "f1", "chip": "esp32", "version": "0.1"})
                return r.status_code

        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(one, range(24)))
    assert sorted(set(codes)) == [200, 204], codes
    assert codes.count(200) == 4, codes


def test_row58_lifting_the_limit_lets_waiting_devices_start(
        api: TestClient, fleet: str, image_v1: bytes) -> None:
    publish(api, image_v1)
    api.put(ROLLOUT, json={"max_in_flight": 1})
    assert check_in(api, fleet, "a").status_code == 200
    assert check_in(api, fleet, "b").status_code == 204
    assert check_in(api, fleet, "a").status_code == 200  # its own slot is kept
    assert api.put(ROLLOUT, json={}).json()["max_in_flight"] is None
    assert check_in(api, fleet, "b").status_code == 200


def test_row58_offline_device_does_not_hold_its_slot_forever(
        settings: Settings, api: TestClient, fleet: str, image_v1: bytes) -> None:
    from sqlalchemy import update

    from otaforge.server.db import make_engine
    from otaforge.server.models import Deployment, utcnow

    publish(api, image_v1)
    api.put(ROLLOUT, json={"max_in_flight": 1})
    dep = check_in(api, fleet, "gone").json()["deployment_id"]
    assert check_in(api, fleet, "next").status_code == 204
    # the device went offline a day and a bit ago, mid-download
    engine = make_engine(settings.url)
    with engine.begin() as conn:
        conn.execute(update(Deployment).where(Deployment.id == dep).values(
            updated_at=utcnow() - dt.timedelta(seconds=settings.stale_deployment_s + 60)))
    engine.dispose()
    assert check_in(api, fleet, "next").status_code == 200


# --- row 56: rollout failure threshold ------------------------------------------------------


def test_row56_failures_past_threshold_pause_rollout_and_admin_resumes(
        api: TestClient, fleet: str, image_v1: bytes, image_v2: bytes) -> None:
    publish(api, image_v1)
    assert api.put(ROLLOUT, json={"failure_threshold": 2}).status_code == 200
    deps = {d: check_in(api, fleet, d).json()["deployment_id"] for d in ("a", "b", "c", "d")}
    assert report(api, fleet, "a", "x1", "failed", deps["a"]).status_code == 201
    assert report(api, fleet, "a", "x1b", "failed", deps["a"]).status_code == 201  # same outcome
    assert report(api, fleet, "b", "x2", "rolled_back", deps["b"]).status_code == 201
    state = api.get(ROLLOUT).json()
    assert (state["failure_count"], state["paused"]) == (2, False)  # at, not past, threshold
    assert check_in(api, fleet, "e").status_code == 200
    assert report(api, fleet, "c", "x3", "rolled_back", deps["c"]).status_code == 201
    state = api.get(ROLLOUT).json()
    assert state["paused"] is True and "threshold 2" in state["paused_reason"]
    # paused: nobody new is offered the release; devices keep their firmware
    assert check_in(api, fleet, "f").status_code == 204
    assert check_in(api, fleet, "a").status_code == 204
    # a device already mid-update may still report its outcome
    assert report(api, fleet, "d", "ok", "confirmed", deps["d"]).status_code == 201
    resumed = api.post("/api/v1/fleets/f1/channels/stable/resume").json()
    assert (resumed["paused"], resumed["failure_count"]) == (False, 0)
    assert check_in(api, fleet, "f").status_code == 200
    # pointing the channel at a new release starts a fresh rollout too
    deps["e"] = check_in(api, fleet, "e").json()["deployment_id"]
    for i in range(3):
        report(api, fleet, "e" if i == 0 else "f", f"y{i}", "failed",
               deps["e"] if i == 0 else check_in(api, fleet, "f").json()["deployment_id"])
    assert api.get(ROLLOUT).json()["paused"] is True
    publish(api, image_v2)
    fresh = api.get(ROLLOUT).json()
    assert (fresh["paused"], fresh["failure_count"], fresh["failure_threshold"]) == (False, 0, 2)
    assert check_in(api, fleet, "g").json()["version"] == "2.0.0"


def test_row56_paused_rollout_gives_stock_devices_304_not_the_image(
        api: TestClient, fleet: str, image_v1: bytes) -> None:
    publish(api, image_v1)
    api.put(ROLLOUT, json={"failure_threshold": 0})
    dep = check_in(api, fleet, "a").json()["deployment_id"]
    assert report(api, fleet, "a", "x", "failed", dep).status_code == 201
    r = api.get("/ota/f1/stock1.bin", headers=auth(fleet))
    assert (r.status_code, r.content, r.headers.get("etag")) == (304, b"", None)
    api.post("/api/v1/fleets/f1/channels/stable/resume")
    assert api.get("/ota/f1/stock1.bin", headers=auth(fleet)).content == image_v1


# --- staged rollout percentage --------------------------------------------------------------


def offered(api: TestClient, token: str, devices: list[str]) -> set[str]:
    return {d for d in devices if check_in(api, token, d).status_code == 200}


def test_staged_rollout_offers_a_stable_hash_chosen_share_that_only_grows(
        api: TestClient, fleet: str, image_v1: bytes) -> None:
    publish(api, image_v1)
    devices = [f"s{i:03d}" for i in range(100)]
    assert api.put(ROLLOUT, json={"rollout_percent": 25}).json()["rollout_percent"] == 25
    first = offered(api, fleet, devices)
    assert 10 <= len(first) <= 40, len(first)
    assert offered(api, fleet, devices) == first  # deterministic, not a dice roll per check-in
    api.put(ROLLOUT, json={"rollout_percent": 60})
    wider = offered(api, fleet, devices)
    assert first < wider and 45 <= len(wider) <= 75, len(wider)
    outside = next(d for d in devices if d not in wider)
    stock = api.get(f"/ota/f1/{outside}.bin", headers=auth(fleet))
    assert (stock.status_code, stock.headers.get("etag")) == (304, None)
    api.put(ROLLOUT, json={"rollout_percent": 100})
    assert offered(api, fleet, devices) == set(devices)


def test_rollout_controls_refuse_bad_input(api: TestClient, fleet: str) -> None:
    assert api.put(ROLLOUT, json={"max_in_flight": 0}).status_code == 422
    assert api.put(ROLLOUT, json={"failure_threshold": -1}).status_code == 422
    assert api.put(ROLLOUT, json={"rollout_percent": 0}).status_code == 422
    assert api.put(ROLLOUT, json={"rollout_percent": 101}).status_code == 422
    assert api.put("/api/v1/fleets/f1/channels/nope/rollout", json={}).status_code == 404
    assert api.post("/api/v1/fleets/f1/channels/nope/resume").status_code == 404
    assert api.put(ROLLOUT, json={"max_in_flight": 1},
                   headers=auth(fleet)).status_code in (401, 403)


# --- the CLI over a real HTTPS server ------------------------------------------------------


def test_rollout_cli_abort_limit_and_resume(settings: Settings, api: TestClient, fleet: str,
                                            image_v1: bytes) -> None:
    publish(api, image_v1)
    dep = check_in(api, fleet, "dev1").json()["deployment_id"]
    with serve_https(settings) as url:
        env = {"OTAFORGE_SERVER": url, "OTAFORGE_CA": str(settings.ca_cert_path),
               "OTAFORGE_TOKEN": settings.admin_token()}
        out = run_cli("release", "abort", str(dep), "--reason", "recall", env=env)
        assert out.returncode == 0, out.stderr
        assert f"deployment {dep} (dev1, release" in out.stdout and "aborted" in out.stdout
        gone = run_cli("release", "abort", "424242", env=env)
        assert gone.returncode == 1 and "no deployment 424242" in gone.stderr
        out = run_cli("channel", "rollout", "stable", "--fleet", "f1", "--max-in-flight", "5",
                      "--failure-threshold", "1", env=env)
        assert out.returncode == 0, out.stderr
        assert "running; 100% of devices; max in flight 5; failures 0 (threshold 1)" in out.stdout
        out = run_cli("channel", "rollout", "stable", "--fleet", "f1", "--percent", "10",
                      env=env)
        assert "10% of devices; max in flight none" in out.stdout, out.stderr
        bad = run_cli("channel", "rollout", "stable", "--fleet", "f1", "--max-in-flight", "0",
                      env=env)
        assert bad.returncode == 2
        out = run_cli("channel", "resume", "stable", "--fleet", "f1", "--json", env=env)
        assert out.returncode == 0, out.stderr
        assert '"paused": false' in out.stdout
