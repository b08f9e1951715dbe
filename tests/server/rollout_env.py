"""A fleet on a server with a virtual clock, for the rollout tests: devices check in on the
old release, report like the agent does, and the test moves time."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Iterator
from typing import Any

from starlette.testclient import TestClient

from otaforge.server.app import create_app
from otaforge.server.clock import ManualClock
from otaforge.server.settings import Settings
from otaforge.server.store import Store
from tests.server.conftest import PARTITIONS_CSV, auth, publish

START = dt.datetime(2031, 5, 4, 12, 0, tzinfo=dt.UTC)


@dataclasses.dataclass
class Env:
    api: TestClient
    clock: ManualClock
    store: Store
    enroll: str
    old: dict[str, Any]
    new: dict[str, Any]
    devices: list[str]
    seq: int = 0
    runs: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def running(self, release: dict[str, Any]) -> dict[str, str]:
        return {"version": str(release["version"]), "image_sha256": str(release["sha256"])}

    def check_in(self, device: str, release: dict[str, Any] | None = None,
                 **extra: Any) -> Any:
        release = release or self.runs.get(device, self.old)
        body = {"fleet": "f1", "chip": "esp32", **self.running(release), **extra}
        r = self.api.post(f"/api/v1/devices/{device}/check-in", json=body,
                          headers=auth(self.enroll))
        assert r.status_code in (200, 204), r.text
        return r.json() if r.status_code == 200 else None

    def report(self, device: str, deployment: int, state: str) -> None:
        self.seq += 1
        body = {"event_id": f"e{self.seq}", "state": state, "deployment_id": deployment}
        r = self.api.post(f"/api/v1/devices/{device}/events", json=body,
                          headers=auth(self.enroll))
        assert r.status_code == 201, r.text

    def create(self, **plan: Any) -> dict[str, Any]:
        body = {"release": str(self.new["id"]), "soak_s": 600, "silent_after_s": 900,
                "stuck_timeout_s": 1800, "eval_interval_s": 30, **plan}
        r = self.api.post("/api/v1/fleets/f1/rollouts", json=body)
        assert r.status_code == 201, r.text
        out: dict[str, Any] = r.json()
        return out

    def offered(self) -> dict[str, int]:
        """Every device that gets the new release on its next check-in -> deployment id."""
        got = {}
        for device in self.devices:
            manifest = self.check_in(device)
            if manifest is not None:
                assert manifest["release_id"] == self.new["id"]
                got[device] = int(manifest["deployment_id"])
        return got

    def install(self, offers: dict[str, int], outcome: str = "confirmed") -> None:
        for device, dep in offers.items():
            for state in ("downloading", "downloaded", "installing", "rebooting"):
                self.report(device, dep, state)
            self.report(device, dep, outcome)
            if outcome == "confirmed":
                self.runs[device] = self.new

    def keep_checking_in(self, devices: list[str], seconds: int, every: int = 300,
                         release: dict[str, Any] | None = None) -> None:
        """Move time by ``seconds``; ``devices`` check in every ``every`` seconds (running
        ``release``, by default what they installed)."""
        for _ in range(seconds // every):
            self.clock.advance(every)
            for device in devices:
                self.check_in(device, release)

    def show(self, rollout_id: int) -> dict[str, Any]:
        r = self.api.get(f"/api/v1/rollouts/{rollout_id}")
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out

    def evaluate(self, rollout_id: int) -> dict[str, Any]:
        r = self.api.post(f"/api/v1/rollouts/{rollout_id}/evaluate")
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out

    def decisions(self, rollout_id: int) -> list[dict[str, Any]]:
        r = self.api.get(f"/api/v1/rollouts/{rollout_id}/decisions")
        assert r.status_code == 200, r.text
        out: list[dict[str, Any]] = r.json()
        return out


def env(settings: Settings, image_v1: bytes, image_v2: bytes, devices: int = 40,
        **overrides: Any) -> Iterator[Env]:
    """The server (virtual clock; the background tick out of the way), fleet ``f1`` with
    ``devices`` devices on the old release (``stable``), the new release published."""
    clock = ManualClock(START)
    tuned = dataclasses.replace(settings, rollout_tick_s=3600.0, **overrides)
    app = create_app(tuned, clock=clock)
    with TestClient(app, base_url="https://testserver") as client:
        client.headers["authorization"] = f"Bearer {settings.admin_token()}"
        r = client.post("/api/v1/fleets", json={"name": "f1", "chip": "esp32",
                                                "partition_csv": PARTITIONS_CSV})
        assert r.status_code == 201, r.text
        old = publish(client, image_v1)
        new = publish(client, image_v2, channel=None)
        assert old["sha256"] == hashlib.sha256(image_v1).hexdigest()
        e = Env(client, clock, app.state.store, r.json()["enrollment_token"], old, new,
                [f"dev{i:03d}" for i in range(devices)])
        for device in e.devices:
            assert e.check_in(device) is None  # runs the channel's release already
        yield e
