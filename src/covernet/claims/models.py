"""Claims, their timeline and their documents."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from covernet.core import clock
from covernet.core.db import Base, UtcDateTime
from covernet.core.ids import new_id


class Claim(Base):
    __tablename__ = "claims"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    claim_no: Mapped[str] = mapped_column(String(32), unique=True)
    policy_id: Mapped[str] = mapped_column(
        ForeignKey("policies.id", ondelete="RESTRICT"), index=True
    )
    customer_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    insurer_code: Mapped[str] = mapped_column(String(64))
    line: Mapped[str] = mapped_column(String(32))
    coverage_code: Mapped[str] = mapped_column(String(64))
    cause: Mapped[str] = mapped_column(String(16))  # accident | illness | event
    incident_date: Mapped[date] = mapped_column(Date)
    description_enc: Mapped[str | None] = mapped_column(Text)  # may hold health details
    amount_claimed_fen: Mapped[int] = mapped_column(BigInteger)
    payee_name_enc: Mapped[str | None] = mapped_column(String(400))
    payee_account_enc: Mapped[str | None] = mapped_column(String(400))
    payee_account_index: Mapped[str | None] = mapped_column(String(64), index=True)
    payee_account_masked: Mapped[str | None] = mapped_column(String(40))
    stage: Mapped[str] = mapped_column(String(16), index=True)
    required_documents: Mapped[list[str]] = mapped_column(JSON)
    requested_documents: Mapped[list[str]] = mapped_column(JSON, default=list)
    assessed_amount_fen: Mapped[int | None] = mapped_column(BigInteger)
    assessment: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    decision_reason: Mapped[str | None] = mapped_column(String(500))
    fraud_flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    assessed_by: Mapped[str | None] = mapped_column(String(36))
    approved_by: Mapped[str | None] = mapped_column(String(36))
    payout_id: Mapped[str | None] = mapped_column(String(36))
    device_id: Mapped[str | None] = mapped_column(String(64), index=True)
    auto: Mapped[bool] = mapped_column(default=False)  # parametric: paid without a human
    external_event_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    # The statutory clocks start at these moments (R21).
    reported_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
    documents_complete_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    agreed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    denial_notice_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    paid_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


class ClaimEvent(Base):
    """One step of a claim's timeline: what happened, when, who did it, and a note the
    customer understands (plus, for staff, an internal one)."""

    __tablename__ = "claim_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    claim_id: Mapped[str] = mapped_column(ForeignKey("claims.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
    stage_from: Mapped[str | None] = mapped_column(String(16))
    stage_to: Mapped[str] = mapped_column(String(16))
    actor_type: Mapped[str] = mapped_column(String(16))  # customer | staff | system | partner
    actor_id: Mapped[str | None] = mapped_column(String(36))
    note: Mapped[str | None] = mapped_column(String(1000))
    internal_note: Mapped[str | None] = mapped_column(String(1000))


class ClaimDocument(Base):
    __tablename__ = "claim_documents"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    claim_id: Mapped[str] = mapped_column(ForeignKey("claims.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(48))
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    storage_key: Mapped[str] = mapped_column(String(200))
    uploaded_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
