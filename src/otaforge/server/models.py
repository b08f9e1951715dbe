"""The server's tables (SQLAlchemy 2 declarative); the schema itself is made by Alembic.

Releases and events are append-only: a release row and its blob never change after upload
(a new image is a new release), and events are only inserted.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> dt.datetime:
    """Timezone-aware now in UTC."""
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    # every timestamp column is timezone-aware (UTC, see utcnow)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON, list[str]: JSON, dt.datetime: DateTime(timezone=True)}


class Fleet(Base):
    """Devices that share a chip, a partition table and a signing policy."""

    __tablename__ = "fleets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    chip: Mapped[str] = mapped_column(String(32))
    partition_csv: Mapped[str] = mapped_column(Text)
    ota_slot_size: Mapped[int] = mapped_column(BigInteger)
    require_signature: Mapped[bool] = mapped_column(Boolean, default=False)
    public_keys: Mapped[list[str]] = mapped_column(JSON, default=list)
    secure_version_bits: Mapped[int] = mapped_column(Integer)
    enrollment_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)  # migration 0006


class Release(Base):
    """One uploaded image (immutable); the blob is stored once by SHA-256."""

    __tablename__ = "releases"
    __table_args__ = (UniqueConstraint("fleet_id", "sha256", name="uq_release_fleet_sha"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fleet_id: Mapped[int] = mapped_column(ForeignKey("fleets.id"), index=True)
    version: Mapped[str] = mapped_column(String(32))
    project_name: Mapped[str] = mapped_column(String(32))
    idf_ver: Mapped[str] = mapped_column(String(32))
    secure_version: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    app_desc: Mapped[dict[str, Any]] = mapped_column(JSON)
    signature: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)  # migration 0006


class Channel(Base):
    """A named pointer from a fleet to the release its devices should run."""

    __tablename__ = "channels"
    __table_args__ = (UniqueConstraint("fleet_id", "name", name="uq_channel_fleet_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fleet_id: Mapped[int] = mapped_column(ForeignKey("fleets.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    release_id: Mapped[int | None] = mapped_column(ForeignKey("releases.id"), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # rollout controls (migration 0002): at most max_in_flight devices mid-update; only a
    # hash-chosen rollout_percent of devices offered; pause when more than failure_threshold
    # deployments of the current release fail or roll back
    max_in_flight: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rollout_percent: Mapped[int | None] = mapped_column(Integer, nullable=True)
    failure_threshold: Mapped[int | None] = mapped_column(Integer, nullable=True)
    failure_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    paused: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    paused_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class Device(Base):
    """A device and what it last told the server."""

    __tablename__ = "devices"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    fleet_id: Mapped[int] = mapped_column(ForeignKey("fleets.id"), index=True)
    channel: Mapped[str] = mapped_column(String(64), default="stable")
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    # SHA-256 of the secret in the device's header-less download URL /dl/<secret>.bin
    # (migration 0003); None: no such URL (never issued, or revoked)
    download_secret_hash: Mapped[str | None] = mapped_column(String(64), unique=True,
                                                             nullable=True)
    running_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    running_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    running_partition: Mapped[str | None] = mapped_column(String(16), nullable=True)
    otadata_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    efuse_secure_version: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="registered")
    last_check_in: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # rollout targeting and the penalty box (migration 0004)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    hw_revision: Mapped[str | None] = mapped_column(String(32), nullable=True)
    penalty_cleared_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    retired_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)  # migration 0006


class Deployment(Base):
    """One offer of one release to one device, and how far it got."""

    __tablename__ = "deployments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"))
    state: Mapped[str] = mapped_column(String(16), default="offered")
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # the rollout (and its wave) that offered it (migration 0004); None: a plain channel offer
    rollout_id: Mapped[int | None] = mapped_column(ForeignKey("rollouts.id"), nullable=True,
                                                   index=True)
    wave: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Event(Base):
    """Append-only log of device reports (and server decisions)."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("device_id", "event_id", name="uq_event_device_eid"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    event_id: Mapped[str] = mapped_column(String(64))
    deployment_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    # the numbers a server decision was based on (rollout gates, migration 0004)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class Rollout(Base):
    """A release rolled out to a channel's devices in waves, gated on their health.

    ``plan`` is the immutable part (waves, filters, gates, limits; see
    :class:`otaforge.server.waves.Plan`); the other columns are the rollout's moving state.
    ``cutoffs`` and ``sizes`` hold, per opened wave, the stable-hash cutoff below which a
    device belongs to it and how many devices it held when it opened.
    """

    __tablename__ = "rollouts"
    __table_args__ = (Index("ix_rollouts_channel", "fleet_id", "channel"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fleet_id: Mapped[int] = mapped_column(ForeignKey("fleets.id"), index=True)
    channel: Mapped[str] = mapped_column(String(64))
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"))
    previous_release_id: Mapped[int | None] = mapped_column(ForeignKey("releases.id"),
                                                            nullable=True)
    plan: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default="running")
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    reverting: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    wave: Mapped[int] = mapped_column(Integer, default=0)
    wave_started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    cutoffs: Mapped[list[int]] = mapped_column(JSON, default=list)
    sizes: Mapped[list[int]] = mapped_column(JSON, default=list)
    failure_baseline: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    rate: Mapped[float | None] = mapped_column(Float, nullable=True)
    window_start: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    window_offers: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_eval_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    decisions: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Delta(Base):
    """An esp_delta_ota patch from one release to another (migration 0003).

    ``state``: ``pending`` (queued), ``running`` (being made), ``ready`` (offered),
    ``too_large`` (not smaller than the configured share of the full image: not offered),
    ``failed`` (``error`` says why). The patch blob is stored by its SHA-256.
    """

    __tablename__ = "deltas"
    __table_args__ = (UniqueConstraint("base_release_id", "target_release_id",
                                       name="uq_delta_pair"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fleet_id: Mapped[int] = mapped_column(ForeignKey("fleets.id"), index=True)
    base_release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"))
    target_release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    patch_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    full_size: Mapped[int] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class UpdateStat(Base):
    """How one deployment was delivered: full image or delta, and the bytes that saved
    (NervesHub's ``update_stats.saved_bytes``: full size minus what was sent)."""

    __tablename__ = "update_stats"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    deployment_id: Mapped[int] = mapped_column(Integer, unique=True)
    release_id: Mapped[int] = mapped_column(Integer, index=True)
    delta_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    method: Mapped[str] = mapped_column(String(8))
    full_size: Mapped[int] = mapped_column(BigInteger)
    sent_size: Mapped[int] = mapped_column(BigInteger)
    saved_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class User(Base):
    """A person who logs in to the dashboard or uses the CLI with a per-user token
    (migration 0006). ``role``: viewer, operator or admin. Revoked users keep their row (the
    audit log names them)."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class UserToken(Base):
    """A per-user API token (``otfu_...``); only its SHA-256 is stored."""

    __tablename__ = "user_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class UiSession(Base):
    """A dashboard login: the cookie's SHA-256 and the CSRF token its forms carry."""

    __tablename__ = "ui_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    ended_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class AuditEntry(Base):
    """One management action (append-only): who, what, when, from where, and the result,
    refusals included."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(80), index=True)
    role: Mapped[str | None] = mapped_column(String(16), nullable=True)
    action: Mapped[str] = mapped_column(String(80), index=True)
    target: Mapped[str | None] = mapped_column(Text, nullable=True)
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(Text)
    status: Mapped[int] = mapped_column(Integer)
    result: Mapped[str] = mapped_column(String(16))
    client: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
