"""Browser fixtures: Debian's chromium driven by Playwright for Python, a real HTTPS server
(uvicorn on loopback) fed by the test through the device and management APIs, and a place
for screenshots (``OTAFORGE_UI_ARTIFACTS``, else a pytest temporary directory)."""

from __future__ import annotations

import hashlib
import os
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from otaforge.crypto import keys as k
from otaforge.crypto.sbv2 import sign_v2
from otaforge.formats.image_builder import build_image
from otaforge.server.lifecycle import init_server
from otaforge.server.settings import Settings
from tests.server.conftest import PARTITIONS_CSV, auth, serve_https

CHROMIUM = os.environ.get("OTAFORGE_CHROMIUM", "/usr/bin/chromium")
PASSWORDS = {"ops": "operator-password-1", "vera": "viewer-password-1",
             "ada": "admin-password-1"}
CHIP = "esp32c6"


@dataclass
class Fed:
    """The running server and what the test put into it."""

    url: str
    settings: Settings
    ca: ssl.SSLContext
    enroll: str
    sha_v1: str
    size_v1: int
    key: k.PrivateKey
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.ca, headers=auth(token))

    def check_in(self, device: str, token: str | None = None, **facts: object) -> httpx.Response:
        with self.client(token or self.enroll) as c:
            return c.post(f"/api/v1/devices/{device}/check-in",
                          json={"fleet": "f1", "chip": CHIP, **facts})

    def report(self, device: str, event: str, state: str, deployment: int,
               **extra: object) -> None:
        with self.client(self.tokens.get(device, self.enroll)) as c:
            r = c.post(f"/api/v1/devices/{device}/events", json={
                "event_id": event, "state": state, "deployment_id": deployment, **extra})
            assert r.status_code == 201, r.text


@pytest.fixture(scope="session")
def artifacts() -> Path:
    where = os.environ.get("OTAFORGE_UI_ARTIFACTS")
    path = Path(where) if where else Path(tempfile.mkdtemp(prefix="otaforge-ui-"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (.ci/system-deps does) "
                    "or point OTAFORGE_CHROMIUM at a Chromium")
    from playwright.sync_api import expect, sync_playwright

    # a loaded 2-core CI machine renders slowly; the live parts of a page poll every 5 s
    expect.set_options(timeout=15_000)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


def _feed(fed: Fed, admin: httpx.Client) -> None:
    """A fleet with a signed release rolled out to eight devices in every state, sixty idle
    lab devices (paging) and two users."""
    for name, role in (("ops", "operator"), ("vera", "viewer"), ("ada", "admin")):
        r = admin.post("/api/v1/users", json={"name": name, "role": role,
                                              "password": PASSWORDS[name]})
        assert r.status_code == 201, r.text
    for n in range(60):
        r = admin.post("/api/v1/fleets/f1/devices", json={"id": f"lab-{n:02d}",
                                                          "channel": "lab"})
        fed.tokens[f"lab-{n:02d}"] = r.json()["token"]
        assert fed.check_in(f"lab-{n:02d}", fed.tokens[f"lab-{n:02d}"], version="0.9",
                            otadata_state="valid").status_code == 204
    offers = {}
    for dev in "abcdefgh":
        r = fed.check_in(f"dev-{dev}", version="0.9", otadata_state="valid")
        assert r.status_code == 200, r.text
        offers[dev] = r.json()["deployment_id"]
        if dev in "abcdef":
            body = fed.client(fed.enroll).get(r.json()["url"]).content
            assert hashlib.sha256(body).hexdigest() == fed.sha_v1
    for dev in "abc":
        fed.report(f"dev-{dev}", "e1", "downloaded", offers[dev], bytes=1000)
        fed.report(f"dev-{dev}", "e2", "confirmed", offers[dev])
        fed.check_in(f"dev-{dev}", version="1.0.0", image_sha256=fed.sha_v1,
                     otadata_state="valid", running_partition="ota_0")
    # the new app failed its self-test: the bootloader went back to the old slot
    again = fed.check_in("dev-d", version="0.9", otadata_state="aborted",
                         running_partition="ota_1")
    assert again.json()["deployment_id"] == offers["d"]
    fed.report("dev-d", "e1", "rolled_back", offers["d"],
               reason="self-test failed: sensor bus not found")
    fed.report("dev-e", "e1", "pending_verify", offers["e"])
    fed.report("dev-f", "e1", "downloading", offers["f"], bytes=50_000)


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fed]:
    data = tmp_path_factory.mktemp("ui") / "data"
    init_server(data)
    settings = Settings(data_dir=data)
    key = k.generate_key("ecdsa256")
    image = sign_v2(build_image(version="1.0.0", chip=CHIP, size=120_000, seed=3), [key])
    with serve_https(settings) as url:
        ca = ssl.create_default_context(cafile=str(settings.ca_cert_path))
        with httpx.Client(base_url=url, verify=ca,
                          headers=auth(settings.admin_token())) as admin:
            r = admin.post("/api/v1/fleets", json={
                "name": "f1", "chip": CHIP, "partition_csv": PARTITIONS_CSV,
                "public_keys": [k.public_key_pem(key).decode()], "require_signature": True})
            assert r.status_code == 201, r.text
            rel = admin.post("/api/v1/fleets/f1/releases", params={"channel": "stable"},
                             content=image)
            assert rel.status_code == 201, rel.text
            assert admin.put("/api/v1/fleets/f1/channels/stable/rollout", json={
                "max_in_flight": 20, "failure_threshold": 3}).status_code == 200
            fed = Fed(url, settings, ca, r.json()["enrollment_token"], rel.json()["sha256"],
                      rel.json()["size"], key)
            _feed(fed, admin)
        yield fed
