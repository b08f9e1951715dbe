"""Delta updates: esp_delta_ota patches between releases, and per-deployment update stats
(full image or delta, bytes saved).

Revision ID: 0005
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deltas",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("fleet_id", sa.Integer, sa.ForeignKey("fleets.id"), nullable=False),
        sa.Column("base_release_id", sa.Integer, sa.ForeignKey("releases.id"), nullable=False),
        sa.Column("target_release_id", sa.Integer, sa.ForeignKey("releases.id"),
                  nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("patch_sha256", sa.String(64)),
        sa.Column("size", sa.BigInteger),
        sa.Column("full_size", sa.BigInteger, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("base_release_id", "target_release_id", name="uq_delta_pair"),
    )
    op.create_index("ix_deltas_fleet_id", "deltas", ["fleet_id"])
    op.create_index("ix_deltas_target_release_id", "deltas", ["target_release_id"])
    op.create_index("ix_deltas_state", "deltas", ["state"])
    op.create_index("ix_deltas_patch_sha256", "deltas", ["patch_sha256"])
    op.create_table(
        "update_stats",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("deployment_id", sa.Integer, nullable=False, unique=True),
        sa.Column("release_id", sa.Integer, nullable=False),
        sa.Column("delta_id", sa.Integer),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("full_size", sa.BigInteger, nullable=False),
        sa.Column("sent_size", sa.BigInteger, nullable=False),
        sa.Column("saved_bytes", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_update_stats_device_id", "update_stats", ["device_id"])
    op.create_index("ix_update_stats_release_id", "update_stats", ["release_id"])


def downgrade() -> None:
    op.drop_table("update_stats")
    op.drop_table("deltas")
