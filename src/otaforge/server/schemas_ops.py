"""Bodies of the operations API: users, per-user tokens, the audit log, pausing a channel."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

from otaforge.server.schemas import LABEL, NAME, Strict

Role = Literal["viewer", "operator", "admin"]


class UserCreate(Strict):
    name: str = Field(pattern=NAME)
    role: Role
    password: str | None = Field(default=None, min_length=10, max_length=1024,
                                 description="omit to have the server generate one "
                                             "(returned once)")


class UserOut(BaseModel):
    name: str
    role: Role
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    tokens: int = Field(description="live API tokens")
    password: str | None = Field(default=None,
                                 description="the generated password (only on create)")


class TokenCreate(Strict):
    label: str | None = Field(default=None, max_length=64, pattern=LABEL)


class TokenOut(BaseModel):
    user: str
    token: str = Field(description="otfu_... (shown once)")


class TokensRevoked(BaseModel):
    user: str
    revoked: int


class AuditOut(BaseModel):
    id: int
    at: dt.datetime
    actor: str
    role: str | None
    action: str
    target: str | None
    method: str
    path: str
    status: int
    result: str
    client: str | None
    detail: str | None


class PauseRequest(Strict):
    reason: str | None = Field(default=None, max_length=1000, pattern=LABEL)
