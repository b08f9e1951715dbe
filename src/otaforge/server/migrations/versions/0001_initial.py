"""Initial schema: fleets, releases, channels, devices, deployments, events.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "fleets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("chip", sa.String(32), nullable=False),
        sa.Column("partition_csv", sa.Text, nullable=False),
        sa.Column("ota_slot_size", sa.BigInteger, nullable=False),
        sa.Column("require_signature", sa.Boolean, nullable=False),
        sa.Column("public_keys", sa.JSON, nullable=False),
        sa.Column("secure_version_bits", sa.Integer, nullable=False),
        sa.Column("enrollment_token_hash", sa.String(64), unique=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "releases",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("fleet_id", sa.Integer, sa.ForeignKey("fleets.id"), nullable=False, index=True),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("project_name", sa.String(32), nullable=False),
        sa.Column("idf_ver", sa.String(32), nullable=False),
        sa.Column("secure_version", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False, index=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("app_desc", sa.JSON, nullable=False),
        sa.Column("signature", sa.JSON),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("fleet_id", "sha256", name="uq_release_fleet_sha"),
    )
    op.create_table(
        "channels",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("fleet_id", sa.Integer, sa.ForeignKey("fleets.id"), nullable=False, index=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("release_id", sa.Integer, sa.ForeignKey("releases.id")),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("fleet_id", "name", name="uq_channel_fleet_name"),
    )
    op.create_table(
        "devices",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("fleet_id", sa.Integer, sa.ForeignKey("fleets.id"), nullable=False, index=True),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("token_hash", sa.String(64), unique=True),
        sa.Column("running_version", sa.String(32)),
        sa.Column("running_sha256", sa.String(64)),
        sa.Column("running_partition", sa.String(16)),
        sa.Column("otadata_state", sa.String(16)),
        sa.Column("efuse_secure_version", sa.BigInteger),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("last_check_in", TS),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.id"), nullable=False,
                  index=True),
        sa.Column("release_id", sa.Integer, sa.ForeignKey("releases.id"), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("bytes", sa.BigInteger),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("device_id", sa.String(64), nullable=False, index=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("deployment_id", sa.Integer),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("bytes", sa.BigInteger),
        sa.Column("received_at", TS, nullable=False),
        sa.UniqueConstraint("device_id", "event_id", name="uq_event_device_eid"),
    )


def downgrade() -> None:
    for table in ("events", "deployments", "devices", "channels", "releases", "fleets"):
        op.drop_table(table)
