"""Users, roles, per-user tokens, the audit log, retiring and revoking, on SQLite and
PostgreSQL: a viewer cannot publish, an operator cannot manage users, a revoked token stops at
once, a revoked device cannot check in (nor be taken over with the fleet's enrollment token),
and every management action -- refusals included -- lands in the audit log."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from otaforge.server.users import check_password, hash_password
from tests.server.conftest import auth, publish
from tests.server.test_device_api import check_in


def _user(api: TestClient, name: str, role: str) -> str:
    """Add a user and return a fresh API token of it."""
    r = api.post("/api/v1/users", json={"name": name, "role": role})
    assert r.status_code == 201, r.text
    assert len(r.json()["password"]) >= 10  # generated, shown once
    tok = api.post(f"/api/v1/users/{name}/tokens", json={"label": "cli"})
    assert tok.status_code == 201, tok.text
    assert tok.json()["token"].startswith("otfu_")
    return str(tok.json()["token"])


def _upload(api: TestClient, image: bytes, token: str) -> int:
    return api.post("/api/v1/fleets/f1/releases", content=image,
                    headers={**auth(token), "content-type": "application/octet-stream"}
                    ).status_code


def test_viewer_refused_on_publish_operator_allowed(api: TestClient, fleet: str,
                                                    image_v1: bytes) -> None:
    viewer, operator = _user(api, "vera", "viewer"), _user(api, "otto", "operator")
    assert api.get("/api/v1/fleets", headers=auth(viewer)).status_code == 200
    assert _upload(api, image_v1, viewer) == 403
    assert _upload(api, image_v1, operator) == 201
    r = api.put("/api/v1/fleets/f1/channels/stable", json={"release": "1.0.0"},
                headers=auth(viewer))
    assert (r.status_code, r.json()["reason"]) == (403, "forbidden")


def test_operator_refused_on_users_and_fleets(api: TestClient, fleet: str) -> None:
    operator = _user(api, "otto", "operator")
    assert api.post("/api/v1/users", json={"name": "x", "role": "admin"},
                    headers=auth(operator)).status_code == 403
    assert api.get("/api/v1/users", headers=auth(operator)).status_code == 403
    assert api.post("/api/v1/fleets/f1/retire", headers=auth(operator)).status_code == 403
    assert api.post("/api/v1/fleets/f1/devices", json={"id": "d9"},
                    headers=auth(operator)).status_code == 403


def test_revoked_user_and_token_stop_at_once(api: TestClient, fleet: str) -> None:
    token = _user(api, "otto", "operator")
    assert api.get("/api/v1/fleets", headers=auth(token)).status_code == 200
    r = api.delete("/api/v1/users/otto/tokens")
    assert r.json()["revoked"] == 1
    assert api.get("/api/v1/fleets", headers=auth(token)).status_code == 401
    second = api.post("/api/v1/users/otto/tokens").json()["token"]
    assert api.get("/api/v1/fleets", headers=auth(second)).status_code == 200
    assert api.delete("/api/v1/users/otto").status_code == 200
    assert api.get("/api/v1/fleets", headers=auth(second)).status_code == 401
    assert api.post("/api/v1/users/otto/tokens").status_code == 409
    listed = {u["name"]: u for u in api.get("/api/v1/users").json()}
    assert listed["otto"]["revoked_at"] is not None and listed["otto"]["tokens"] == 0


def test_audit_records_who_what_result_and_refusals(api: TestClient, fleet: str,
                                                    image_v1: bytes) -> None:
    viewer, operator = _user(api, "vera", "viewer"), _user(api, "otto", "operator")
    assert _upload(api, image_v1, operator) == 201
    assert _upload(api, image_v1, viewer) == 403
    assert _upload(api, image_v1, "otfu_forged") == 401
    check_in(api, fleet, version="0.1")  # device traffic is not a management action
    entries = api.get("/api/v1/audit", params={"action": "publish"}).json()
    got = [(e["actor"], e["role"], e["result"], e["status"], e["target"]) for e in entries]
    assert got == [("vera", "viewer", "refused", 403, "f1"),
                   ("otto", "operator", "ok", 201, "f1")]
    assert all(e["client"] and e["method"] == "POST" for e in entries)
    anonymous = api.get("/api/v1/audit", params={"actor": "anonymous"}).json()
    assert [(e["status"], e["path"]) for e in anonymous] == [(401, "/api/v1/fleets/f1/releases")]
    everything = api.get("/api/v1/audit", params={"limit": 1000}).json()
    assert not [e for e in everything if "check-in" in e["path"]]
    assert {"user_add", "user_token", "create_fleet"} <= {e["action"] for e in everything}
    page = api.get("/api/v1/audit", params={"limit": 2, "before": everything[1]["id"]}).json()
    assert [e["id"] for e in page] == [everything[2]["id"], everything[3]["id"]]


def test_revoked_device_cannot_check_in_nor_be_taken_over(api: TestClient, fleet: str) -> None:
    token = api.post("/api/v1/fleets/f1/devices", json={"id": "dev1"}).json()["token"]
    assert check_in(api, token).status_code == 204
    assert api.delete("/api/v1/devices/dev1/token").status_code == 200
    assert check_in(api, token).status_code == 401
    assert check_in(api, fleet).status_code == 403  # the enrollment token cannot act for it


def test_retired_release_and_fleet(api: TestClient, fleet: str, image_v1: bytes,
                                   image_v2: bytes) -> None:
    rel = publish(api, image_v1)
    assert api.post(f"/api/v1/fleets/f1/releases/{rel['id']}/retire").status_code == 409
    publish(api, image_v2)
    r = api.post(f"/api/v1/fleets/f1/releases/{rel['id']}/retire")
    assert r.status_code == 200 and r.json()["retired_at"]
    back = api.put("/api/v1/fleets/f1/channels/stable", json={"release": str(rel["id"])})
    assert back.status_code == 409
    assert [x["retired_at"] is not None for x in api.get("/api/v1/fleets/f1/releases").json()
            ] == [True, False]
    assert check_in(api, fleet, device="early").status_code == 200
    assert api.post("/api/v1/fleets/f1/retire").json()["retired_at"]
    assert check_in(api, fleet, device="late").status_code == 401  # enrollment ended
    assert api.get("/api/v1/devices/early").json()["retired_at"] is not None


@pytest.mark.parametrize(("password", "attempt", "ok"), [
    ("correct horse battery", "correct horse battery", True),
    ("correct horse battery", "correct horse batterY", False),
    ("correct horse battery", "", False),
])
def test_scrypt_password_hash(password: str, attempt: str, ok: bool) -> None:
    stored = hash_password(password)
    assert stored.startswith("scrypt$") and password not in stored
    assert check_password(attempt, stored) is ok
    assert check_password(password, stored.replace("scrypt$", "md5$")) is False


def test_audit_log_is_append_only_in_the_database(api: TestClient, fleet: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    store = api.app.state.store  # type: ignore[attr-defined]
    assert api.get("/api/v1/audit").json()  # creating the fleet was recorded
    for statement in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as conn:
            conn.execute(text(statement))
    assert api.get("/api/v1/audit").json()[-1]["actor"] == "admin-token"
