"""The management client: the admin API over HTTPS with a pinned CA (used by the CLI).

Errors come back as otaforge errors through :mod:`otaforge.protocol.http_errors`:
problem+json refusals become :class:`~otaforge.errors.ServerError` subclasses carrying the
server's reason, network and TLS failures :class:`~otaforge.errors.ConnectionLost` /
:class:`~otaforge.errors.TransportError`.
"""

from __future__ import annotations

import ssl
import time
from pathlib import Path
from typing import Any

import httpx

from otaforge.errors import ConnectionLost, InputError, TransportError
from otaforge.protocol.http_errors import error_for_status
from otaforge.protocol.httpx_errors import HTTPX_FAILURES, transport_error


def tls_context(ca: Path | None) -> ssl.SSLContext:
    """A client TLS context trusting only ``ca`` (or the system store when None)."""
    if ca is None:
        return ssl.create_default_context()
    if not ca.is_file():
        raise InputError(f"{ca}: CA certificate not found (the server's server_cert.pem)")
    try:
        return ssl.create_default_context(cafile=str(ca))
    except ssl.SSLError as err:
        raise InputError(f"{ca}: not a PEM CA certificate ({err.reason})") from None


class ManagementClient:
    """Admin API calls against one server.

    Args:
        server: base URL, e.g. ``https://updates.example.com:8443``.
        token: the admin token.
        ca: the CA certificate to pin (``DATA/server_cert.pem``).
        transport: an httpx transport (tests use the ASGI transport).
    """

    def __init__(self, server: str, token: str, ca: Path | None = None,
                 transport: httpx.BaseTransport | None = None, timeout: float = 60.0) -> None:
        if not server.startswith(("https://", "http://")):
            raise InputError(f"--server {server!r}: expected an https:// URL")
        verify: ssl.SSLContext | bool = tls_context(ca) if transport is None else True
        self._http = httpx.Client(base_url=server.rstrip("/"), verify=verify, timeout=timeout,
                                  headers={"authorization": f"Bearer {token}"} if token else {},
                                  transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ManagementClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request; the decoded JSON answer, or raise the matching error."""
        what = f"{method} {self._http.base_url.join(path)}"
        try:
            response = self._http.request(method, path, **kwargs)
        except HTTPX_FAILURES as err:
            raise transport_error(err, what) from None
        if response.status_code >= 400:
            raise error_for_status(response.status_code, response.content, what)
        return response.json() if response.content else None

    def wait_until_up(self, timeout_s: float, poll_s: float = 0.2) -> None:
        """Poll ``/healthz`` until the server answers 200, or raise after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.request("GET", "/healthz")
                return
            except TransportError as err:
                if time.monotonic() >= deadline:
                    raise ConnectionLost(f"{self._http.base_url} did not answer within "
                                         f"{timeout_s:g} s ({err}); is `otaforge server run` "
                                         "running there?") from None
            time.sleep(poll_s)

    def create_fleet(self, name: str, chip: str, partition_csv: str,
                     public_keys: list[str] | None = None, require_signature: bool = False,
                     secure_version_bits: int | None = None) -> dict[str, Any]:
        body = {"name": name, "chip": chip, "partition_csv": partition_csv,
                "public_keys": public_keys or [], "require_signature": require_signature,
                "secure_version_bits": secure_version_bits}
        result: dict[str, Any] = self.request("POST", "/api/v1/fleets", json=body)
        return result

    def fleets(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request("GET", "/api/v1/fleets")
        return result

    def fleet(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/api/v1/fleets/{name}")
        return result

    def publish(self, fleet: str, image: bytes, channel: str | None = None,
                force: bool = False) -> dict[str, Any]:
        params: dict[str, str] = {"channel": channel} if channel else {}
        if force:
            params["force"] = "true"
        result: dict[str, Any] = self.request(
            "POST", f"/api/v1/fleets/{fleet}/releases", content=image, params=params,
            headers={"content-type": "application/octet-stream"})
        return result

    def releases(self, fleet: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request("GET", f"/api/v1/fleets/{fleet}/releases")
        return result

    def deltas(self, fleet: str) -> dict[str, Any]:
        """The fleet's delta patches and the bytes deltas saved (total, per release/device)."""
        result: dict[str, Any] = self.request("GET", f"/api/v1/fleets/{fleet}/deltas")
        return result

    def set_channel(self, fleet: str, channel: str, release: str,
                    force: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "PUT", f"/api/v1/fleets/{fleet}/channels/{channel}",
            json={"release": release, "force": force})
        return result

    def rotate_download_url(self, device_id: str) -> dict[str, Any]:
        """A new header-less download URL for the device (the old one stops working)."""
        result: dict[str, Any] = self.request(
            "POST", f"/api/v1/devices/{device_id}/download-url")
        return result

    def revoke_download_url(self, device_id: str) -> None:
        """End the device's download URL."""
        self.request("DELETE", f"/api/v1/devices/{device_id}/download-url")

    def create_device(self, fleet: str, device_id: str,
                      channel: str = "stable") -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "POST", f"/api/v1/fleets/{fleet}/devices", json={"id": device_id,
                                                              "channel": channel})
        return result

    def devices(self, fleet: str | None = None) -> list[dict[str, Any]]:
        params = {"fleet": fleet} if fleet else {}
        result: list[dict[str, Any]] = self.request("GET", "/api/v1/devices", params=params)
        return result

    def device(self, device_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/api/v1/devices/{device_id}")
        return result

    def abort_deployment(self, deployment_id: int, reason: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "POST", f"/api/v1/admin/deployments/{deployment_id}/abort",
            json={"reason": reason})
        return result

    def rollout(self, fleet: str, channel: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "GET", f"/api/v1/fleets/{fleet}/channels/{channel}/rollout")
        return result

    def set_rollout(self, fleet: str, channel: str, max_in_flight: int | None,
                    failure_threshold: int | None,
                    rollout_percent: int | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "PUT", f"/api/v1/fleets/{fleet}/channels/{channel}/rollout",
            json={"max_in_flight": max_in_flight, "failure_threshold": failure_threshold,
                  "rollout_percent": rollout_percent})
        return result

    def resume(self, fleet: str, channel: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "POST", f"/api/v1/fleets/{fleet}/channels/{channel}/resume")
        return result

    # --- rollouts (waves gated on device health) -------------------------------------------

    def create_rollout(self, fleet: str, release: str, **plan: Any) -> dict[str, Any]:
        """Start a rollout of ``release`` (id, version or sha256); ``plan`` holds the other
        fields of the API's ``RolloutCreate`` (channel, waves, canary, soak_s, ...)."""
        result: dict[str, Any] = self.request(
            "POST", f"/api/v1/fleets/{fleet}/rollouts", json={"release": release, **plan})
        return result

    def rollouts(self, fleet: str | None = None, channel: str | None = None,
                 state: str | None = None) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("fleet", fleet), ("channel", channel), ("state", state))
                  if v is not None}
        result: list[dict[str, Any]] = self.request("GET", "/api/v1/rollouts", params=params)
        return result

    def rollout_status(self, rollout_id: int) -> dict[str, Any]:
        """A rollout with each wave's counts and its recent decisions."""
        result: dict[str, Any] = self.request("GET", f"/api/v1/rollouts/{rollout_id}")
        return result

    def rollout_decisions(self, rollout_id: int) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request(
            "GET", f"/api/v1/rollouts/{rollout_id}/decisions")
        return result

    def pause_rollout(self, rollout_id: int, reason: str | None = None,
                      revert: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "POST", f"/api/v1/rollouts/{rollout_id}/pause",
            json={"reason": reason, "revert": revert})
        return result

    def resume_rollout(self, rollout_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", f"/api/v1/rollouts/{rollout_id}/resume")
        return result

    def abort_rollout(self, rollout_id: int, reason: str | None = None,
                      revert: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "POST", f"/api/v1/rollouts/{rollout_id}/abort",
            json={"reason": reason, "revert": revert})
        return result

    def evaluate_rollout(self, rollout_id: int) -> dict[str, Any]:
        """Evaluate the rollout's gates now; the decision and its numbers."""
        result: dict[str, Any] = self.request(
            "POST", f"/api/v1/rollouts/{rollout_id}/evaluate")
        return result

    def set_targeting(self, device_id: str, tags: list[str] | None = None,
                      **hw_revision: str | None) -> dict[str, Any]:
        """Replace the device's tags (None: keep); ``hw_revision=...`` sets (None: clears)
        its hardware revision, left out keeps it."""
        body: dict[str, Any] = dict(hw_revision)
        if tags is not None:
            body["tags"] = tags
        result: dict[str, Any] = self.request(
            "PUT", f"/api/v1/devices/{device_id}/targeting", json=body)
        return result

    def clear_penalty(self, device_id: str) -> dict[str, Any]:
        """Let releases that failed on the device be offered to it again."""
        result: dict[str, Any] = self.request("DELETE", f"/api/v1/devices/{device_id}/penalty")
        return result

    # --- operations: users, audit, retiring, revoking -------------------------------------

    def add_user(self, name: str, role: str, password: str | None = None) -> dict[str, Any]:
        """Add a user; without ``password`` the answer carries a generated one."""
        result: dict[str, Any] = self.request(
            "POST", "/api/v1/users", json={"name": name, "role": role, "password": password})
        return result

    def users(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request("GET", "/api/v1/users")
        return result

    def revoke_user(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("DELETE", f"/api/v1/users/{name}")
        return result

    def user_token(self, name: str, label: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", f"/api/v1/users/{name}/tokens",
                                              json={"label": label})
        return result

    def revoke_user_tokens(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("DELETE", f"/api/v1/users/{name}/tokens")
        return result

    def audit(self, limit: int = 100, before: int | None = None, actor: str | None = None,
              action: str | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        params.update({k: v for k, v in (("before", before), ("actor", actor),
                                         ("action", action)) if v is not None})
        result: list[dict[str, Any]] = self.request("GET", "/api/v1/audit", params=params)
        return result

    def retire_fleet(self, fleet: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", f"/api/v1/fleets/{fleet}/retire")
        return result

    def retire_release(self, fleet: str, release: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "POST", f"/api/v1/fleets/{fleet}/releases/{release}/retire")
        return result

    def retire_device(self, device_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", f"/api/v1/devices/{device_id}/retire")
        return result

    def revoke_device_token(self, device_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("DELETE", f"/api/v1/devices/{device_id}/token")
        return result

    def pause(self, fleet: str, channel: str, reason: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "POST", f"/api/v1/fleets/{fleet}/channels/{channel}/pause", json={"reason": reason})
        return result
