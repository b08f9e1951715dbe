"""``/metrics`` parsed with prometheus-client's own parser after real traffic: check-ins by
answer, downloads and their bytes, deployments by state, the rollout gate, request latency;
a viewer may scrape, a device may not; the JSON access log names every request."""

from __future__ import annotations

import io
import json

from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from tests.server.conftest import auth, publish
from tests.server.test_device_api import check_in, report


def scrape(api: TestClient, token: str | None = None) -> dict[tuple[str, tuple[tuple[str, str],
                                                                               ...]], float]:
    r = api.get("/metrics", headers=auth(token) if token else None)
    assert r.status_code == 200, r.text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(r.text) for s in fam.samples}


def test_metrics_count_check_ins_downloads_and_states(api: TestClient, fleet: str,
                                                      image_v1: bytes) -> None:
    publish(api, image_v1)
    m = check_in(api, fleet, device="a", version="0.1").json()
    body = api.get(m["url"], headers=auth(fleet)).content
    report(api, fleet, "e1", "confirmed", m["deployment_id"], device="a")
    assert check_in(api, fleet, device="a", version="1.0.0",
                    image_sha256=m["sha256"]).status_code == 204
    assert check_in(api, "otfd_nobody", device="b").status_code == 401
    api.post("/api/v1/fleets/f1/channels/stable/pause", json={"reason": "looking"})
    got = scrape(api)
    assert got[("otaforge_check_ins_total", (("result", "offer"),))] == 1
    assert got[("otaforge_check_ins_total", (("result", "none"),))] == 1
    assert got[("otaforge_check_ins_total", (("result", "refused"),))] == 1
    assert got[("otaforge_downloads_total", (("status", "200"),))] == 1
    assert got[("otaforge_download_bytes_total", ())] == len(body) == len(image_v1)
    assert got[("otaforge_deployments", (("state", "confirmed"),))] == 1
    gate = (("channel", "stable"), ("fleet", "f1"), ("kind", "channel"), ("state", "paused"))
    assert got[("otaforge_rollout_paused", gate)] == 1
    assert got[("otaforge_delta_saved_bytes", ())] == 0
    assert got[("otaforge_request_duration_seconds_count", (("route", "check_in"),))] == 3
    assert got[("otaforge_devices", (("fleet", "f1"),))] == 1


def test_metrics_need_a_management_role(api: TestClient, fleet: str) -> None:
    assert api.get("/metrics", headers=auth(fleet)).status_code == 403
    assert api.get("/metrics", headers={"authorization": ""}).status_code == 401
    viewer = api.post("/api/v1/users", json={"name": "vera", "role": "viewer"})
    assert viewer.status_code == 201
    token = api.post("/api/v1/users/vera/tokens").json()["token"]
    assert ("otaforge_check_ins_total", (("result", "offer"),)) in scrape(api, token)


def test_access_log_is_json_per_request(api: TestClient, fleet: str) -> None:
    access = api.app.access  # type: ignore[attr-defined]
    access.flush()  # what came before (the fleet fixture) goes to stderr
    access.stream = io.StringIO()
    check_in(api, fleet, device="a", version="0.1")
    api.get("/api/v1/fleets")
    assert api.get(f"/dl/otfs_{'s' * 43}.bin", headers={"authorization": ""}).status_code == 404
    access.flush()
    lines = [json.loads(x) for x in access.stream.getvalue().splitlines()]
    assert [(x["method"], x["path"], x["status"]) for x in lines] == [
        ("POST", "/api/v1/devices/a/check-in", 204), ("GET", "/api/v1/fleets", 200),
        ("GET", "/dl/<redacted>.bin", 404)]
    assert lines[1]["user"] == "admin-token" and lines[0]["user"] is None
    assert all(x["ms"] >= 0 and x["client"] and x["ts"] > 0 for x in lines)
