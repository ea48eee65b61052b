"""customer_profiles

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 22:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import covernet.core.db

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "crm_teams",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", covernet.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_teams")),
        sa.UniqueConstraint("code", name=op.f("uq_crm_teams_code")),
    )
    op.create_table(
        "crm_unmask_views",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("staff_id", sa.String(length=36), nullable=False),
        sa.Column("customer_id", sa.String(length=36), nullable=False),
        sa.Column("field", sa.String(length=16), nullable=False),
        sa.Column("reason_code", sa.String(length=32), nullable=False),
        sa.Column("at", covernet.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_unmask_views")),
    )
    with op.batch_alter_table("crm_unmask_views", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_crm_unmask_views_at"), ["at"], unique=False)
        batch_op.create_index("ix_crm_unmask_views_staff_at", ["staff_id", "at"], unique=False)

    op.create_table(
        "crm_customer_notes",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("customer_id", sa.String(length=36), nullable=False),
        sa.Column("author_id", sa.String(length=36), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", covernet.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["users.id"],
            name=op.f("fk_crm_customer_notes_customer_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_customer_notes")),
    )
    with op.batch_alter_table("crm_customer_notes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_crm_customer_notes_customer", ["customer_id", "created_at"], unique=False
        )

    op.create_table(
        "crm_customer_tags",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("customer_id", sa.String(length=36), nullable=False),
        sa.Column("tag", sa.String(length=32), nullable=False),
        sa.Column("created_by", sa.String(length=36), nullable=False),
        sa.Column("created_at", covernet.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["users.id"],
            name=op.f("fk_crm_customer_tags_customer_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_customer_tags")),
        sa.UniqueConstraint("customer_id", "tag", name="uq_crm_customer_tags"),
    )
    op.create_table(
        "crm_team_members",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("team_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("is_supervisor", sa.Boolean(), nullable=False),
        sa.Column("created_at", covernet.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["crm_teams.id"],
            name=op.f("fk_crm_team_members_team_id_crm_teams"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_crm_team_members_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_team_members")),
        sa.UniqueConstraint("team_id", "user_id", name="uq_crm_team_members"),
    )
    with op.batch_alter_table("crm_team_members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_crm_team_members_user_id"), ["user_id"], unique=False)

    op.create_table(
        "customer_pool",
        sa.Column("customer_id", sa.String(length=36), nullable=False),
        sa.Column("advisor_id", sa.String(length=36), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("since", covernet.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("assigned_by", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(
            ["advisor_id"],
            ["users.id"],
            name=op.f("fk_customer_pool_advisor_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["users.id"],
            name=op.f("fk_customer_pool_customer_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customer_pool")),
    )
    with op.batch_alter_table("customer_pool", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_customer_pool_advisor_id"), ["advisor_id"], unique=False
        )

    op.create_table(
        "customer_pool_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.String(length=36), nullable=False),
        sa.Column("advisor_id", sa.String(length=36), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("since", covernet.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("until", covernet.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("assigned_by", sa.String(length=36), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["users.id"],
            name=op.f("fk_customer_pool_history_customer_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_pool_history")),
    )
    with op.batch_alter_table("customer_pool_history", schema=None) as batch_op:
        batch_op.create_index(
            "ix_customer_pool_history_customer", ["customer_id", "since"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("customer_pool_history", schema=None) as batch_op:
        batch_op.drop_index("ix_customer_pool_history_customer")
    op.drop_table("customer_pool_history")
    with op.batch_alter_table("customer_pool", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_pool_advisor_id"))
    op.drop_table("customer_pool")
    with op.batch_alter_table("crm_team_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_crm_team_members_user_id"))
    op.drop_table("crm_team_members")
    op.drop_table("crm_customer_tags")
    with op.batch_alter_table("crm_customer_notes", schema=None) as batch_op:
        batch_op.drop_index("ix_crm_customer_notes_customer")
    op.drop_table("crm_customer_notes")
    with op.batch_alter_table("crm_unmask_views", schema=None) as batch_op:
        batch_op.drop_index("ix_crm_unmask_views_staff_at")
        batch_op.drop_index(batch_op.f("ix_crm_unmask_views_at"))
    op.drop_table("crm_unmask_views")
    op.drop_table("crm_teams")
