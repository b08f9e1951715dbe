"""Per-device download secrets: the header-less URL ``/dl/<secret>.bin`` of a stock
``esp_https_ota`` device (only the SHA-256 of the secret is stored).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("download_secret_hash", sa.String(64)))
        batch.create_unique_constraint("uq_device_download_secret", ["download_secret_hash"])


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_constraint("uq_device_download_secret", type_="unique")
        batch.drop_column("download_secret_hash")
