"""The outbox (side effects that leave the process, written in the transaction that
causes them) and the sandbox insurer's own books.

An outbox row's ``payload`` holds only what the insurer's core system needs about the
policy: the policy facts (number, product, plan, term, premium, sum insured, dates,
status) and the application id.  No names, ID numbers, mobiles, health answers or
blind indexes leave this way; the insurer asks for the applicant's and insured's
personal data over its authenticated insurer API, by application id.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from covernet.core import clock
from covernet.core.db import Base, UtcDateTime
from covernet.core.ids import new_id


class OutboxStatus(StrEnum):
    pending = "pending"
    delivered = "delivered"
    dead = "dead"  # every attempt failed: a person has to look (R19 monitor)


class OutboxTopic(StrEnum):
    policy_issued = "policy.issued"
    policy_cancelled = "policy.cancelled"
    policy_surrendered = "policy.surrendered"
    # Embedded micro-policies: one event per partner batch and insurer (R19), not per row.
    partner_batch_issued = "policies.partner_batch"


class OutboxRow(Base):
    """One event for one insurer, delivered at least once (the insurer dedupes by id)."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)

    # UUIDv7: random, yet ordered by creation; sent as X-Covernet-Event-Id.
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    topic: Mapped[str] = mapped_column(String(48))
    insurer_code: Mapped[str] = mapped_column(String(64), index=True)
    subject_id: Mapped[str] = mapped_column(String(36), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.pending.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(String(200))
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now, index=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class SandboxInsurerEvent(Base):
    """What the sandbox insurer received: each event once, with how often it came."""

    __tablename__ = "sandbox_insurer_events"
    __table_args__ = (UniqueConstraint("insurer_code", "event_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    insurer_code: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(64))
    topic: Mapped[str] = mapped_column(String(48))
    body: Mapped[str] = mapped_column(Text)
    deliveries: Mapped[int] = mapped_column(Integer, default=1)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
    last_received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


class SandboxInsurerControl(Base):
    """Per sandbox insurer: how many of the next deliveries to refuse (tests, demos)."""

    __tablename__ = "sandbox_insurer_controls"

    insurer_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    fail_next: Mapped[int] = mapped_column(Integer, default=0)
