"""Dashboard sessions: an HttpOnly, SameSite=Strict (and, over HTTPS, Secure) cookie naming a
server-side session, and a CSRF token per session that every form carries (checked in
constant time on every POST). The login form has its own CSRF token in a short-lived cookie
(double submit), so a foreign page cannot log a browser in either.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request
from fastapi.responses import Response

from otaforge.errors import ServerError, Unauthorized
from otaforge.server.audit import AUDIT_ACTOR
from otaforge.server.fastpath import PRINCIPAL
from otaforge.server.store import Store
from otaforge.server.users import SessionInfo

COOKIE = "otaforge_session"
LOGIN_COOKIE = "otaforge_login"
PATH = "/ui"


class LoginRequired(Exception):
    """No live session: GET pages redirect to the login form."""


def store_of(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def current(request: Request) -> SessionInfo:
    """The request's session (and the principal the audit log names), or LoginRequired."""
    cookie = request.cookies.get(COOKIE)
    info = store_of(request).users.session(cookie) if cookie else None
    if info is None:
        raise LoginRequired()
    request.scope.setdefault("extensions", {})[PRINCIPAL] = info.principal
    return info


def check_csrf(info: SessionInfo, sent: object) -> None:
    """403 unless the form's ``csrf`` field is the session's token."""
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), info.csrf.encode()):
        raise ServerError("missing or wrong CSRF token: reload the page and try again",
                          status_code=403, reason="csrf")


def require(info: SessionInfo, role: str) -> None:
    if not info.principal.may(role):
        raise ServerError(f"this needs the {role} role (you are {info.principal.role})",
                          status_code=403, reason="forbidden")


def set_session(response: Response, cookie: str, secure: bool, max_age: int) -> None:
    response.set_cookie(COOKIE, cookie, max_age=max_age, path=PATH, secure=secure,
                        httponly=True, samesite="strict")
    response.delete_cookie(LOGIN_COOKIE, path=PATH)


def clear_session(response: Response, secure: bool) -> None:
    response.delete_cookie(COOKIE, path=PATH, secure=secure, httponly=True, samesite="strict")


def login_csrf(request: Request) -> str:
    """The login form's token: the one in its cookie, or a new one."""
    return request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)


def set_login_csrf(response: Response, token: str, secure: bool) -> None:
    response.set_cookie(LOGIN_COOKIE, token, max_age=3600, path=PATH, secure=secure,
                        httponly=True, samesite="strict")


def login(request: Request, name: str, password: str, sent_csrf: str) -> tuple[str, str]:
    """Check the login form; (cookie, csrf) of the new session."""
    request.scope.setdefault("extensions", {})[AUDIT_ACTOR] = name[:80] or "anonymous"
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(sent_csrf.encode(), expected.encode()):
        raise ServerError("missing or wrong CSRF token: reload the login page",
                          status_code=403, reason="csrf")
    try:
        return store_of(request).users.login(name, password)
    except Unauthorized:
        raise
