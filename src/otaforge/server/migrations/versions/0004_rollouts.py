"""Rollouts: waves gated on device health, targeting by tags and hardware revision, the
penalty box, and the numbers behind every gate decision in the event log.

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("fleet_id", sa.Integer, sa.ForeignKey("fleets.id"), nullable=False, index=True),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("release_id", sa.Integer, sa.ForeignKey("releases.id"), nullable=False),
        sa.Column("previous_release_id", sa.Integer, sa.ForeignKey("releases.id")),
        sa.Column("plan", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("reverting", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("wave", sa.Integer, nullable=False),
        sa.Column("wave_started_at", TS, nullable=False),
        sa.Column("cutoffs", sa.JSON, nullable=False),
        sa.Column("sizes", sa.JSON, nullable=False),
        sa.Column("failure_baseline", sa.Integer, nullable=False, server_default="0"),
        sa.Column("rate", sa.Float),
        sa.Column("window_start", TS),
        sa.Column("window_offers", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_eval_at", TS, nullable=False),
        sa.Column("decisions", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_rollouts_channel", "rollouts", ["fleet_id", "channel"])
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(sa.Column("rollout_id", sa.Integer,
                                   sa.ForeignKey("rollouts.id", name="fk_deployment_rollout")))
        batch.add_column(sa.Column("wave", sa.Integer))
        batch.create_index("ix_deployments_rollout_id", ["rollout_id"])
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("tags", sa.JSON, nullable=False, server_default="[]"))
        batch.add_column(sa.Column("hw_revision", sa.String(32)))
        batch.add_column(sa.Column("penalty_cleared_at", TS))
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("data", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("data")
    with op.batch_alter_table("devices") as batch:
        for column in ("penalty_cleared_at", "hw_revision", "tags"):
            batch.drop_column(column)
    with op.batch_alter_table("deployments") as batch:
        batch.drop_index("ix_deployments_rollout_id")
        batch.drop_column("wave")
        batch.drop_column("rollout_id")
    op.drop_index("ix_rollouts_channel", "rollouts")
    op.drop_table("rollouts")
