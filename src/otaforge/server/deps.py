"""FastAPI dependencies shared by the route modules: the store and the caller."""

from __future__ import annotations

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from otaforge.errors import Unauthorized
from otaforge.server.auth import Principal, forbidden
from otaforge.server.store import Store

bearer_scheme = HTTPBearer(auto_error=False, description="admin, device or enrollment token")


def get_store(request: Request) -> Store:
    """The app's :class:`Store`."""
    store: Store = request.app.state.store
    return store


async def caller(request: Request,
                 creds: HTTPAuthorizationCredentials | None = Security(bearer_scheme)
                 ) -> Principal:
    """Who sends the request (Unauthorized without a known bearer token)."""
    if creds is None:
        raise Unauthorized("missing Authorization: Bearer <token> header")
    return get_store(request).authenticate(creds.credentials)


async def admin(who: Principal = Security(caller)) -> Principal:
    """Only the admin token passes."""
    if not who.is_admin:
        raise forbidden("this endpoint needs the admin token")
    return who


async def device_caller(who: Principal = Security(caller)) -> Principal:
    """A device or enrollment token; the admin token is refused (403) on device routes."""
    if who.is_admin:
        raise forbidden("the admin token is not accepted on device routes: send a device or "
                        "fleet enrollment token (the admin uses the /api/v1 management routes)")
    return who
