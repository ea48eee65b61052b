"""The customer relationship tables: teams of advisors, the advisor's pool of customers
(with its history), tags and notes on a customer, and the record of unmasked views."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from covernet.core import clock
from covernet.core.db import Base, UtcDateTime
from covernet.core.ids import new_id


class Team(Base):
    """A team of advisors; its supervisors see the pools of its members."""

    __tablename__ = "crm_teams"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


class TeamMember(Base):
    __tablename__ = "crm_team_members"
    __table_args__ = (UniqueConstraint("team_id", "user_id", name="uq_crm_team_members"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    team_id: Mapped[str] = mapped_column(ForeignKey("crm_teams.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    is_supervisor: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


class PoolSource(StrEnum):
    referral = "referral"  # an application the advisor advised on (R1, R2)
    share_link = "share_link"  # signed up or bought through the advisor's share link
    conversation = "conversation"  # an assigned desk conversation
    manual = "manual"  # assigned by a supervisor or ops


class PoolEntry(Base):
    """The customer's current advisor: one row per customer (the primary key makes two
    current advisors impossible, whatever the concurrency)."""

    __tablename__ = "customer_pool"

    customer_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    advisor_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(16))
    since: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
    assigned_by: Mapped[str | None] = mapped_column(String(36))


class PoolHistory(Base):
    """Every advisor a customer has had, with when and why (kept when reassigned)."""

    __tablename__ = "customer_pool_history"
    __table_args__ = (Index("ix_customer_pool_history_customer", "customer_id", "since"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    advisor_id: Mapped[str] = mapped_column(String(36))
    source: Mapped[str] = mapped_column(String(16))
    since: Mapped[datetime] = mapped_column(UtcDateTime)
    until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    assigned_by: Mapped[str | None] = mapped_column(String(36))
    reason: Mapped[str | None] = mapped_column(String(200))


class CustomerTag(Base):
    __tablename__ = "crm_customer_tags"
    __table_args__ = (UniqueConstraint("customer_id", "tag", name="uq_crm_customer_tags"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    customer_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    tag: Mapped[str] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


class CustomerNote(Base):
    __tablename__ = "crm_customer_notes"
    __table_args__ = (Index("ix_crm_customer_notes_customer", "customer_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    customer_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    author_id: Mapped[str] = mapped_column(String(36))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


class UnmaskView(Base):
    """One view of a customer's full personal data (who, whom, which field, why); the
    audit log holds the same, this table answers the hourly throttle quickly."""

    __tablename__ = "crm_unmask_views"
    __table_args__ = (Index("ix_crm_unmask_views_staff_at", "staff_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    staff_id: Mapped[str] = mapped_column(String(36))
    customer_id: Mapped[str] = mapped_column(String(36))
    field: Mapped[str] = mapped_column(String(16))
    reason_code: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now, index=True)
