"""free_shares: an envelope's free shares in seq order, for grabs

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 00:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

FREE = sa.text("status = 'available' AND grabbed_by IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_red_envelope_shares_free",
        "red_envelope_shares",
        ["envelope_id", "seq"],
        postgresql_where=FREE,
        sqlite_where=FREE,
    )


def downgrade() -> None:
    op.drop_index("ix_red_envelope_shares_free", table_name="red_envelope_shares")
