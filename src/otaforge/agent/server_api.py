"""The device side of the update server's device API, over a :class:`Fetcher`.

Endpoints (``otaforge.server.routes_device``):

* ``POST /api/v1/devices/{id}/check-in`` with the running firmware's facts: 200 and a manifest
  when an update is due, 204 otherwise;
* ``POST /api/v1/devices/{id}/events`` with ``event_id`` (idempotent: a replay is a 200 with
  ``duplicate: true``), ``deployment_id``, ``state``, ``reason``, ``bytes``;
* ``GET /firmware/{sha256}.bin`` (Range, If-Range, ETag) -- used through esp_https_ota;
* ``GET /ota/{fleet}/{id}.bin`` -- the stock esp_https_ota URL (304 for the running image).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from otaforge.agent.decision import Offer
from otaforge.agent.fetcher import Fetcher, request_json
from otaforge.errors import TransportError

REPORT_STATES = ("downloading", "downloaded", "installing", "rebooting", "pending_verify",
                 "confirmed", "rolled_back", "failed")


@dataclass(frozen=True)
class CheckIn:
    """What the device tells the server about itself."""

    fleet: str
    chip: str
    version: str | None
    image_sha256: str | None
    running_partition: str | None
    otadata_state: str | None
    secure_version: int | None

    def to_json(self) -> dict[str, Any]:
        """The check-in body (fields left out when unknown)."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class Event:
    """One report. ``event_id`` is derived from its content so a retry is a replay."""

    state: str
    deployment_id: int | None = None
    reason: str | None = None
    bytes: int | None = None
    nonce: str = ""

    @property
    def event_id(self) -> str:
        """Stable id from the content: sending the same report again is a replay."""
        key = f"{self.deployment_id}|{self.state}|{self.reason}|{self.bytes}|{self.nonce}"
        return "ev-" + hashlib.sha256(key.encode()).hexdigest()[:40]

    def to_json(self) -> dict[str, Any]:
        """The report body."""
        body: dict[str, Any] = {"event_id": self.event_id, "state": self.state}
        if self.deployment_id is not None:
            body["deployment_id"] = self.deployment_id
        if self.reason is not None:
            body["reason"] = self.reason[:1000]
        if self.bytes is not None:
            body["bytes"] = self.bytes
        return body


class ServerClient:
    """Talks to one update server as one device.

    Args:
        fetcher: the network seam (pinned TLS).
        base_url: ``https://host:port`` of the server.
        device_id: this device's id.
        token: bearer token (device or fleet enrollment token).
    """

    def __init__(self, fetcher: Fetcher, base_url: str, device_id: str, token: str) -> None:
        self.fetcher = fetcher
        self.base_url = base_url.rstrip("/")
        self.device_id = device_id
        self.token = token

    @property
    def auth(self) -> dict[str, str]:
        """The ``Authorization: Bearer`` header."""
        return {"Authorization": f"Bearer {self.token}"}

    def _url(self, tail: str) -> str:
        return f"{self.base_url}/api/v1/devices/{quote(self.device_id, safe='')}/{tail}"

    def check_in(self, facts: CheckIn) -> tuple[Offer | None, dict[str, Any] | None]:
        """Ask for an update.

        Returns:
            ``(offer, raw manifest)`` or ``(None, None)`` when nothing is due.

        Raises:
            HTTPStatusError: the server refused (401/403/409...).
            TransportError: network failure or a malformed manifest.
        """
        status, body = request_json(self.fetcher, "POST", self._url("check-in"),
                                    facts.to_json(), self.auth, ok=(200, 204))
        if status == 204 or not body:
            return None, None
        try:
            offer = Offer(version=str(body["version"]), sha256=str(body["sha256"]),
                          size=int(body["size"]), url=str(body["url"]),
                          secure_version=int(body["secure_version"]),
                          deployment=str(body["deployment_id"]))
        except (KeyError, TypeError, ValueError) as err:
            raise TransportError(f"check-in: malformed manifest ({err!r})") from err
        return offer, body

    def report(self, event: Event) -> bool:
        """Send a report; True when it was new, False when the server already had it.

        Raises:
            HTTPStatusError: refused (e.g. 409 for a report on an ended deployment).
            TransportError: network failure.
        """
        status, _ = request_json(self.fetcher, "POST", self._url("events"), event.to_json(),
                                 self.auth, ok=(200, 201))
        return status == 201

    def stock_ota_url(self, fleet: str) -> str:
        """``/ota/{fleet}/{device}.bin``: the URL an unmodified esp_https_ota client polls."""
        return (f"{self.base_url}/ota/{quote(fleet, safe='')}/"
                f"{quote(self.device_id, safe='')}.bin")
