"""Tokens: an admin token for management, per-user tokens, device tokens, fleet enrollment
tokens; and the roles management callers hold (viewer < operator < admin).

Only SHA-256 digests of device and enrollment tokens are stored. Clients send
``Authorization: Bearer <token>`` (a stock ESP-IDF device sets it in ``http_client_init_cb``
with ``esp_http_client_set_header``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from otaforge.errors import ServerError, Unauthorized

# "download": the secret in a device's header-less download URL /dl/<secret>.bin
TOKEN_PREFIX = {"admin": "otfa_", "device": "otfd_", "enroll": "otfe_", "download": "otfs_",
                "user": "otfu_"}
# viewers see, operators publish and roll out, admins manage users and fleets
ROLES = ("viewer", "operator", "admin")


def new_token(kind: str) -> str:
    """A fresh random token of ``kind`` ("admin", "device", "enroll", "download", "user")."""
    return TOKEN_PREFIX[kind] + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """The digest stored for a token."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling.

    Attributes:
        kind: "admin" (the bootstrap admin token), "user", "device" or "enroll".
        fleet_id: the fleet of a device or enrollment token.
        device_id: the device of a device token.
        user: the user's name (``admin-token`` for the bootstrap token).
        role: viewer, operator or admin, for management callers.
    """

    kind: str
    fleet_id: int | None = None
    device_id: str | None = None
    user: str | None = None
    role: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"

    @property
    def is_manager(self) -> bool:
        """A management caller (the admin token or a user), not a device."""
        return self.role is not None

    def may(self, role: str) -> bool:
        """True when this caller's role is ``role`` or above."""
        return self.role is not None and ROLES.index(self.role) >= ROLES.index(role)


ADMIN = Principal("admin", user="admin-token", role="admin")


def bearer(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer`` header.

    Raises:
        Unauthorized: the header is missing or not a bearer token.
    """
    if not authorization:
        raise Unauthorized("missing Authorization: Bearer <token> header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization header must be 'Bearer <token>'")
    return token.strip()


def is_admin_token(token: str, admin_token: str) -> bool:
    """Constant-time comparison with the admin token."""
    return hmac.compare_digest(token.encode("utf-8", "replace"), admin_token.encode())


def forbidden(message: str) -> ServerError:
    """A 403: the caller is authenticated but may not touch this resource."""
    return ServerError(message, status_code=403)
