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


def _require(who: Principal, role: str) -> Principal:
    if not who.may(role):
        held = f"role {who.role}" if who.role else f"a {who.kind} token"
        raise forbidden(f"this endpoint needs the {role} role (the caller has {held})")
    return who


async def management(request: Request, who: Principal = Security(caller)) -> Principal:
    """Every management route: reading needs the viewer role, changing anything (any method
    but GET/HEAD) the operator role. Admin-only routes add :func:`admin` on top."""
    return _require(who, "viewer" if request.method in ("GET", "HEAD") else "operator")


async def admin(who: Principal = Security(caller)) -> Principal:
    """The admin role (the bootstrap admin token, or a user with role admin)."""
    return _require(who, "admin")


async def device_caller(who: Principal = Security(caller)) -> Principal:
    """A device or enrollment token; management tokens are refused (403) on device routes."""
    if who.is_manager:
        raise forbidden("the admin token is not accepted on device routes: send a device or "
                        "fleet enrollment token (the admin uses the /api/v1 management routes)")
    return who
