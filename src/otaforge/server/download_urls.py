"""Per-device download secrets: the header-less URL ``/dl/<secret>.bin`` of a stock device.

The seed's ``start_ota(url)`` sets only ``url`` and ``cert_pem``, so the credential is in the
path: a random secret (256 bits) that grants only that device's firmware. Only its SHA-256
is stored; the URL is shown once (``otaforge device add``, or a rotation) and never logged
(:mod:`otaforge.server.access_log`). Rotating issues a new secret and ends the old URL;
revoking ends it without a new one.
"""

from __future__ import annotations

from sqlalchemy import Engine, bindparam, select, update
from sqlalchemy.orm import Session, sessionmaker

from otaforge.errors import NotFound
from otaforge.server.auth import new_token, token_hash
from otaforge.server.models import Device
from otaforge.server.store_devices import CACHE_TTL_S, TTLCache

_BY_SECRET = select(Device.id).where(Device.download_secret_hash == bindparam("h"))


def new_secret() -> str:
    """A fresh download secret (URL-safe: ``otfs_`` and 43 characters)."""
    return new_token("download")


def download_path(secret: str) -> str:
    """The path of the download URL for ``secret``."""
    return f"/dl/{secret}.bin"


class DownloadSecrets:
    """Issue, rotate, revoke and resolve download secrets."""

    def __init__(self, engine: Engine, sessions: sessionmaker[Session]) -> None:
        self.engine, self.sessions = engine, sessions
        self._cache = TTLCache(CACHE_TTL_S)

    def device(self, secret: str) -> str | None:
        """The device whose download secret is ``secret`` (cached briefly), or None."""
        digest = token_hash(secret)
        hit: str | None = self._cache.get(digest)
        if hit is not None:
            return hit or None
        with self.engine.connect() as conn:
            found = conn.execute(_BY_SECRET, {"h": digest}).scalar()
        self._cache.put(digest, found or "")
        return str(found) if found else None

    def rotate(self, device_id: str) -> str:
        """Give ``device_id`` a new secret (the old URL stops working); returns it."""
        secret = new_secret()
        self._set(device_id, token_hash(secret))
        return secret

    def revoke(self, device_id: str) -> None:
        """End the device's download URL."""
        self._set(device_id, None)

    def _set(self, device_id: str, digest: str | None) -> None:
        with self.sessions() as s, s.begin():
            done = s.execute(update(Device).where(Device.id == device_id)
                             .values(download_secret_hash=digest))
            if done.rowcount == 0:  # type: ignore[attr-defined]
                raise NotFound(f"no device {device_id!r}")
        self._cache.clear()
