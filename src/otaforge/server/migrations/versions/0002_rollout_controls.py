"""Rollout controls on channels: concurrent-update limit, staged percentage, failure
threshold and pause.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("channels") as batch:
        batch.add_column(sa.Column("max_in_flight", sa.Integer))
        batch.add_column(sa.Column("rollout_percent", sa.Integer))
        batch.add_column(sa.Column("failure_threshold", sa.Integer))
        batch.add_column(sa.Column("failure_count", sa.Integer, nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("paused", sa.Boolean, nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("paused_reason", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("channels") as batch:
        for column in ("paused_reason", "paused", "failure_count", "failure_threshold",
                       "rollout_percent", "max_in_flight"):
            batch.drop_column(column)
