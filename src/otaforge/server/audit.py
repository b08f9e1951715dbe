"""The audit log: every management action, who did it, when, from where, and the result.

:class:`AuditRecorder` is called by :class:`~otaforge.server.app.ServerApp` for every
request that changes something through the management API or the dashboard (any method but
GET/HEAD outside the device routes), after the answer went out, refusals included (401 for
an unknown token, 403 for a role too low or a bad CSRF token, 4xx for bad input). The action
is the route's name (``publish``, ``set_channel``, ``user_add``...), the target its path
parameters. Rows are only ever inserted; nothing updates or deletes them.
"""

from __future__ import annotations

import json
import re
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session, sessionmaker

from otaforge.server.access_log import redact
from otaforge.server.auth import Principal
from otaforge.server.clock import Clock
from otaforge.server.models import AuditEntry

# device traffic (check-ins, reports, downloads) is not a management action
DEVICE_PATH = re.compile(r"^/api/v1/devices/[^/]+/(check-in|events)$|^/(firmware|ota|dl|deltas)/")
AUDIT_ACTOR = "otaforge.audit_actor"  # scope extension: a name to record (failed logins)
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def audited(method: str, path: str) -> bool:
    """True when a request with ``method`` to ``path`` goes to the audit log."""
    return method in MUTATING and (path.startswith(("/api/", "/ui/"))) \
        and DEVICE_PATH.match(path) is None


@dataclass(frozen=True)
class AuditRecord:
    """One entry before it is written."""

    actor: str
    role: str | None
    action: str
    target: str | None
    method: str
    path: str
    status: int
    client: str | None
    detail: str | None


def result_of(status: int) -> str:
    if status < 400:
        return "ok"
    if status in (401, 403):
        return "refused"
    return "failed" if status >= 500 else "rejected"


def record_of(scope: MutableMapping[str, Any], who: Principal | None, status: int,
              body: bytes) -> AuditRecord:
    """What to record for a finished request (``body``: the start of the answer)."""
    route = scope.get("route")
    action = getattr(route, "name", None) or "unrouted"
    params = scope.get("path_params") or {}
    target = "/".join(str(v) for v in params.values()) or None
    ext = scope.get("extensions") or {}
    actor = who.user if who is not None and who.user else ext.get(AUDIT_ACTOR) or "anonymous"
    client = scope.get("client")
    detail = None
    if status >= 400 and body:
        try:
            detail = str(json.loads(body).get("detail"))[:500]
        except (ValueError, AttributeError):
            detail = None
    return AuditRecord(actor=str(actor)[:80], role=who.role if who else None, action=action,
                       target=target, method=scope["method"], path=redact(scope["path"]),
                       status=status, client=client[0] if client else None, detail=detail)


class AuditLog:
    """Append to and read the audit table."""

    def __init__(self, engine: Engine, sessions: sessionmaker[Session], clock: Clock) -> None:
        self.engine, self.sessions, self.clock = engine, sessions, clock

    def append(self, rec: AuditRecord) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(AuditEntry).values(
                at=self.clock.now(), actor=rec.actor, role=rec.role, action=rec.action,
                target=rec.target, method=rec.method, path=rec.path, status=rec.status,
                result=result_of(rec.status), client=rec.client, detail=rec.detail))

    def entries(self, limit: int = 100, before: int | None = None, actor: str | None = None,
                action: str | None = None) -> list[AuditEntry]:
        """Newest first; ``before`` an id to page back from."""
        query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        if before is not None:
            query = query.where(AuditEntry.id < before)
        if actor:
            query = query.where(AuditEntry.actor == actor)
        if action:
            query = query.where(AuditEntry.action == action)
        with self.sessions() as s:
            return list(s.scalars(query))
