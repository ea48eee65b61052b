"""assistant_questions

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 22:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import covernet.core.db

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "assistant_questions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("thread_id", sa.String(length=36), nullable=False),
        sa.Column("customer_id", sa.String(length=36), nullable=True),
        sa.Column("client_key", sa.String(length=64), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("lang", sa.String(length=8), nullable=False),
        sa.Column("article_id", sa.String(length=80), nullable=True),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("handed_off", sa.Boolean(), nullable=False),
        sa.Column("handoff_conversation_id", sa.String(length=36), nullable=True),
        sa.Column("asked_at", covernet.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["users.id"],
            name=op.f("fk_assistant_questions_customer_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assistant_questions")),
    )
    with op.batch_alter_table("assistant_questions", schema=None) as batch_op:
        batch_op.create_index("ix_assistant_questions_asked_at", ["asked_at"], unique=False)
        batch_op.create_index(
            "ix_assistant_questions_client_asked", ["client_key", "asked_at"], unique=False
        )
        batch_op.create_index("ix_assistant_questions_thread", ["thread_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_assistant_questions_customer_id"), ["customer_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("assistant_questions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assistant_questions_customer_id"))
        batch_op.drop_index("ix_assistant_questions_thread")
        batch_op.drop_index("ix_assistant_questions_client_asked")
        batch_op.drop_index("ix_assistant_questions_asked_at")
    op.drop_table("assistant_questions")
