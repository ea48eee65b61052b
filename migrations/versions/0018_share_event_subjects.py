"""share_event_subjects: find a subject's share events (purchases credited at issuance)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01 23:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_share_events_subject", "share_events", ["subject_id", "kind"])


def downgrade() -> None:
    op.drop_index("ix_share_events_subject", table_name="share_events")
