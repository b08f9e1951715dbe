"""The device side of the update server's device API, over a :class:`Fetcher`.

Endpoints (``otaforge.server.routes_device``):

* ``POST /api/v1/devices/{id}/check-in`` with the running firmware's facts: 200 and a manifest
  when an update is due, 204 otherwise;
* ``POST /api/v1/devices/{id}/events`` with ``event_id`` (idempotent: a replay is a 200 with
  ``duplicate: true``), ``deployment_id``, ``state``, ``code``, ``reason``, ``bytes``;
* ``GET /firmware/{sha256}.bin`` (Range, If-Range, ETag) -- used through esp_https_ota;
* ``GET /ota/{fleet}/{id}.bin`` -- the stock esp_https_ota URL (304 for the running image).

The bodies are :mod:`otaforge.protocol.reports`' wire types, shared with the server; error
statuses become otaforge errors through :mod:`otaforge.protocol.http_errors`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from otaforge.agent.decision import Offer
from otaforge.agent.fetcher import Fetcher, request_json
from otaforge.errors import TransportError
from otaforge.protocol.reports import CheckIn, Manifest, Report


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
            ServerError: the server refused (401/403/409...).
            TransportError: network failure, a 5xx, or a malformed manifest.
        """
        status, body = request_json(self.fetcher, "POST", self._url("check-in"),
                                    facts.to_json(), self.auth, ok=(200, 204))
        if status == 204 or not body:
            return None, None
        try:
            manifest = Manifest.from_json(body)
        except ValueError as err:
            raise TransportError(f"check-in: {err}") from err
        offer = Offer(version=manifest.version, sha256=manifest.sha256, size=manifest.size,
                      url=manifest.url, secure_version=manifest.secure_version,
                      deployment=str(manifest.deployment_id), delta=manifest.delta)
        return offer, body

    def report(self, report: Report) -> bool:
        """Send a report; True when it was new, False when the server already had it.

        Raises:
            ServerError: refused (e.g. 409 for a report on an ended deployment).
            TransportError: network failure or a 5xx.
        """
        status, _ = request_json(self.fetcher, "POST", self._url("events"), report.to_json(),
                                 self.auth, ok=(200, 201))
        return status == 201

    def stock_ota_url(self, fleet: str) -> str:
        """``/ota/{fleet}/{device}.bin``: the URL an unmodified esp_https_ota client polls."""
        return (f"{self.base_url}/ota/{quote(fleet, safe='')}/"
                f"{quote(self.device_id, safe='')}.bin")
