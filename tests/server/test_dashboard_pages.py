"""Every dashboard page over HTTP on SQLite and PostgreSQL (the browser tests run on SQLite):
the pages' queries work on both, a page without a session redirects to the login, a form
without the session's CSRF token or with a role too low is refused, a logged-out or revoked
session stops at once, and every page forbids framing and foreign scripts."""

from __future__ import annotations

import re

from starlette.testclient import TestClient

from tests.server.conftest import publish
from tests.server.test_device_api import check_in, report

PAGES = ("/ui/", "/ui/?fleet=f1", "/ui/devices", "/ui/devices?fleet=f1&state=registered",
         "/ui/devices?tag=lab&version=0.1&q=dev&page=2", "/ui/devices/dev1", "/ui/releases",
         "/ui/releases?fleet=f1", "/ui/rollouts", "/ui/audit", "/ui/audit?actor=ann")


def _login(api: TestClient, name: str, role: str, admin: str | None = None) -> str:
    r = api.post("/api/v1/users", json={"name": name, "role": role, "password": "password-123"},
                 headers={"authorization": admin} if admin else None)
    assert r.status_code == 201, r.text
    form = api.get("/ui/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf is not None
    r = api.post("/ui/login", data={"name": name, "password": "password-123",
                                    "csrf": csrf.group(1)}, follow_redirects=False)
    assert r.status_code == 303, r.text
    page = api.get("/ui/rollouts").text
    token = re.search(r'<meta name="csrf" content="([^"]+)"', page)
    assert token is not None
    return token.group(1)


def test_every_page_renders_real_data(api: TestClient, fleet: str, image_v1: bytes) -> None:
    publish(api, image_v1)
    dep = check_in(api, fleet, version="0.1").json()["deployment_id"]
    report(api, fleet, "e1", "rolled_back", dep, reason="self-test failed")
    _login(api, "ann", "viewer")
    for path in PAGES:
        r = api.get(path)
        assert r.status_code == 200, (path, r.text[:500])
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert "cdn" not in r.text.lower() and "http://" not in r.text
    assert "self-test failed" in api.get("/ui/devices/dev1").text
    assert re.search(r'id="health-rolled_back" [^>]*><b>1</b>', api.get("/ui/").text)
    partial = api.get("/ui/", headers={"x-partial": "1"}).text
    assert "<html" not in partial and "health-rolled_back" in partial
    assert api.get("/ui/devices/nobody").status_code == 404


def test_no_session_redirects_and_forms_are_refused(api: TestClient, fleet: str) -> None:
    api.headers.pop("authorization")
    r = api.get("/ui/devices", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/ui/login?next=%2Fui%2Fdevices")
    assert api.post("/ui/channels/f1/stable/pause", data={"csrf": "x"}).status_code == 401


def test_csrf_role_logout_and_revocation(api: TestClient, fleet: str, image_v1: bytes) -> None:
    publish(api, image_v1)
    admin = api.headers.pop("authorization")
    csrf = _login(api, "vic", "viewer", admin)
    assert api.post("/ui/channels/f1/stable/pause", data={"csrf": "forged"}).status_code == 403
    assert api.post("/ui/channels/f1/stable/pause", data={"csrf": csrf}).status_code == 403
    rollout = api.get("/api/v1/fleets/f1/channels/stable/rollout", headers={
        "authorization": admin}).json()
    assert rollout["paused"] is False
    assert api.post("/ui/users", data={"csrf": csrf, "name": "x", "role": "admin"}
                    ).status_code == 403
    api.post("/ui/logout", data={"csrf": csrf}, follow_redirects=False)
    assert api.get("/ui/", follow_redirects=False).status_code == 303
    csrf = _login(api, "olga", "operator", admin)
    r = api.post("/ui/channels/f1/stable/pause", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert api.get("/api/v1/fleets/f1/channels/stable/rollout", headers={
        "authorization": admin}).json()["paused"] is True
    api.delete("/api/v1/users/olga", headers={"authorization": admin})
    assert api.get("/ui/", follow_redirects=False).status_code == 303
