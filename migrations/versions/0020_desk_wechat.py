"""The desk's official-account channel: inbound de-duplication and outbound queue.

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import covernet.core.db

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "desk_wechat_messages",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("conversation_id", sa.String(length=36), nullable=True),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("msg_key", sa.String(length=80), nullable=False),
        sa.Column("msg_type", sa.String(length=16), nullable=False),
        sa.Column("desk_message_id", sa.String(length=36), nullable=True),
        sa.Column("openid_enc", sa.String(length=512), nullable=False),
        sa.Column("openid_masked", sa.String(length=64), nullable=False),
        sa.Column("openid_index", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", covernet.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("claimed_until", covernet.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.Column("created_at", covernet.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", covernet.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_desk_wechat_messages_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_desk_wechat_messages")),
        sa.UniqueConstraint(
            "desk_message_id", name=op.f("uq_desk_wechat_messages_desk_message_id")
        ),
        sa.UniqueConstraint("msg_key", name=op.f("uq_desk_wechat_messages_msg_key")),
    )
    with op.batch_alter_table("desk_wechat_messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_desk_wechat_messages_openid_index"), ["openid_index"], unique=False
        )
        batch_op.create_index(
            "ix_desk_wechat_messages_conversation",
            ["conversation_id", "created_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_desk_wechat_messages_due", ["status", "next_attempt_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("desk_wechat_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_desk_wechat_messages_due")
        batch_op.drop_index("ix_desk_wechat_messages_conversation")
        batch_op.drop_index(batch_op.f("ix_desk_wechat_messages_openid_index"))

    op.drop_table("desk_wechat_messages")
