"""Users, roles, per-user API tokens and dashboard sessions.

Passwords are hashed with scrypt (``hashlib.scrypt``, n=2**14, r=8, p=1, 16-byte salt),
stored as ``scrypt$n$r$p$salt$hash``; per-user tokens (``otfu_...``) and session cookies are
stored as SHA-256 digests only. Revoking a user ends its tokens and sessions at once (they are
looked up on every request: management requests are rare, unlike check-ins).
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from otaforge.errors import Conflict, InputError, NotFound, Unauthorized
from otaforge.server.auth import ROLES, Principal, new_token, token_hash
from otaforge.server.clock import Clock
from otaforge.server.models import UiSession, User, UserToken

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
MIN_PASSWORD = 10


def hash_password(password: str) -> str:
    """The stored form of ``password``."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                            dklen=32)
    b64 = base64.urlsafe_b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored`` (constant time)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=base64.urlsafe_b64decode(salt), n=int(n),
                             r=int(r), p=int(p), dklen=32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.urlsafe_b64decode(digest))


def new_password() -> str:
    """A generated password (printed once by ``user add``)."""
    return secrets.token_urlsafe(15)


@dataclass(frozen=True)
class UserView:
    """What the API and the dashboard show of a user (never its hash)."""

    name: str
    role: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    tokens: int


@dataclass(frozen=True)
class SessionInfo:
    """A live dashboard session."""

    principal: Principal
    csrf: str


class Users:
    """User, token and session rows."""

    def __init__(self, engine: Engine, sessions: sessionmaker[Session], clock: Clock,
                 session_ttl_s: int) -> None:
        self.engine, self.sessions, self.clock = engine, sessions, clock
        self.session_ttl_s = session_ttl_s

    def add(self, name: str, role: str, password: str) -> User:
        """Create a user. Raises InputError (bad role, short password), Conflict (exists)."""
        if role not in ROLES:
            raise InputError(f"role {role!r}: expected one of {', '.join(ROLES)}")
        if len(password) < MIN_PASSWORD:
            raise InputError(f"password too short: at least {MIN_PASSWORD} characters")
        user = User(name=name, role=role, password_hash=hash_password(password),
                    created_at=self.clock.now())
        try:
            with self.sessions() as s, s.begin():
                s.add(user)
        except IntegrityError:
            raise Conflict(f"user {name!r} already exists") from None
        return user

    def _user(self, s: Session, name: str) -> User:
        user = s.scalar(select(User).where(User.name == name))
        if user is None:
            raise NotFound(f"no user {name!r}")
        return user

    def list(self) -> list[UserView]:
        with self.sessions() as s:
            users = list(s.scalars(select(User).order_by(User.name)))
            live = {u.id: 0 for u in users}
            for tok in s.scalars(select(UserToken).where(UserToken.revoked_at.is_(None))):
                live[tok.user_id] = live.get(tok.user_id, 0) + 1
            return [UserView(u.name, u.role, u.created_at, u.revoked_at, live[u.id])
                    for u in users]

    def revoke(self, name: str) -> User:
        """Revoke a user: its tokens and sessions stop working at once (the row stays)."""
        now = self.clock.now()
        with self.sessions() as s, s.begin():
            user = self._user(s, name)
            if user.revoked_at is None:
                user.revoked_at = now
            s.execute(update(UserToken).where(UserToken.user_id == user.id,
                                              UserToken.revoked_at.is_(None))
                      .values(revoked_at=now))
            s.execute(update(UiSession).where(UiSession.user_id == user.id,
                                              UiSession.ended_at.is_(None))
                      .values(ended_at=now))
        return user

    def issue_token(self, name: str, label: str | None = None) -> str:
        """A new per-user API token (shown once)."""
        token = new_token("user")
        with self.sessions() as s, s.begin():
            user = self._user(s, name)
            if user.revoked_at is not None:
                raise Conflict(f"user {name!r} is revoked")
            s.add(UserToken(user_id=user.id, token_hash=token_hash(token), label=label,
                            created_at=self.clock.now()))
        return token

    def revoke_tokens(self, name: str) -> int:
        """End every API token of a user (the user keeps its password); how many ended."""
        with self.sessions() as s, s.begin():
            user = self._user(s, name)
            done = s.execute(update(UserToken).where(UserToken.user_id == user.id,
                                                     UserToken.revoked_at.is_(None))
                             .values(revoked_at=self.clock.now()))
            return int(getattr(done, "rowcount", 0) or 0)

    def by_token(self, token: str) -> Principal:
        """Who holds a per-user token. Raises Unauthorized."""
        with self.sessions() as s:
            row = s.execute(select(User.name, User.role).join(
                UserToken, UserToken.user_id == User.id).where(
                UserToken.token_hash == token_hash(token), UserToken.revoked_at.is_(None),
                User.revoked_at.is_(None))).first()
        if row is None:
            raise Unauthorized("unknown or revoked token")
        return Principal("user", user=row[0], role=row[1])

    # --- dashboard sessions ---------------------------------------------------------------

    def login(self, name: str, password: str) -> tuple[str, str]:
        """(session cookie, CSRF token) for a correct password. Raises Unauthorized."""
        with self.sessions() as s, s.begin():
            user = s.scalar(select(User).where(User.name == name))
            stored = user.password_hash if user is not None else _dummy_hash()
            ok = check_password(password, stored)  # same cost for unknown names
            if user is None or not ok or user.revoked_at is not None:
                raise Unauthorized("wrong user name or password")
            cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
            now = self.clock.now()
            s.add(UiSession(user_id=user.id, token_hash=token_hash(cookie), csrf=csrf,
                            created_at=now,
                            expires_at=now + dt.timedelta(seconds=self.session_ttl_s)))
        return cookie, csrf

    def session(self, cookie: str) -> SessionInfo | None:
        """The live session of a cookie, or None (unknown, ended, expired, user revoked)."""
        with self.sessions() as s:
            row = s.execute(select(UiSession, User).join(User, User.id == UiSession.user_id)
                            .where(UiSession.token_hash == token_hash(cookie))).first()
        if row is None:
            return None
        sess, user = row
        expires = sess.expires_at if sess.expires_at.tzinfo else sess.expires_at.replace(
            tzinfo=dt.UTC)
        if sess.ended_at is not None or user.revoked_at is not None or \
                expires <= self.clock.now():
            return None
        return SessionInfo(Principal("user", user=user.name, role=user.role), sess.csrf)

    def logout(self, cookie: str) -> None:
        with self.sessions() as s, s.begin():
            s.execute(update(UiSession).where(UiSession.token_hash == token_hash(cookie))
                      .values(ended_at=self.clock.now()))


@functools.cache
def _dummy_hash() -> str:
    return hash_password("not-a-real-password")
