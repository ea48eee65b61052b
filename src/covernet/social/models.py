"""Red envelopes and their shares: one row per share, claimed by a conditional UPDATE."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from covernet.core import clock
from covernet.core.db import Base, UtcDateTime
from covernet.core.ids import new_id


class EnvelopeStatus(StrEnum):
    pending_payment = "pending_payment"
    open = "open"
    failed = "failed"  # the payment failed or expired
    closed = "closed"  # every share activated or expired


class ShareStatus(StrEnum):
    available = "available"
    held = "held"  # grabbed, waiting for activation
    activated = "activated"
    expired = "expired"  # refunded to the sender


class RedEnvelope(Base):
    __tablename__ = "red_envelopes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    sender_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    product_code: Mapped[str] = mapped_column(String(64))
    product_version_id: Mapped[int] = mapped_column(ForeignKey("product_versions.id"))
    insurer_code: Mapped[str] = mapped_column(String(64))
    line: Mapped[str] = mapped_column(String(32))
    plan_code: Mapped[str] = mapped_column(String(64))
    term_code: Mapped[str] = mapped_column(String(64))
    payment_code: Mapped[str] = mapped_column(String(64))
    split: Mapped[str] = mapped_column(String(8))  # equal | random
    greeting: Mapped[str] = mapped_column(String(60))
    shares_total: Mapped[int] = mapped_column(Integer)
    # set once a grab finds no share left: later grabs answer sold_out without a claim
    sold_out: Mapped[bool] = mapped_column(default=False)
    premium_fen: Mapped[int] = mapped_column(Integer)  # the total paid
    sum_insured_fen: Mapped[int] = mapped_column(BigInteger)  # the total cover
    refunded_fen: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), index=True)
    payment_id: Mapped[str | None] = mapped_column(String(36))
    opened_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


FREE_SHARE = "status = 'available' AND grabbed_by IS NULL"


class RedEnvelopeShare(Base):
    """One share of an envelope; its id is the grab's id once grabbed."""

    __tablename__ = "red_envelope_shares"
    __table_args__ = (
        UniqueConstraint("envelope_id", "seq", name="uq_red_envelope_shares_seq"),
        # one grab per person per envelope
        UniqueConstraint("envelope_id", "grabbed_by", name="uq_red_envelope_shares_grabber"),
        Index("ix_red_envelope_shares_status_hold", "status", "hold_until"),
        # A grab claims an envelope's first free shares in seq order (social/grabs.py).
        Index(
            "ix_red_envelope_shares_free",
            "envelope_id",
            "seq",
            postgresql_where=text(FREE_SHARE),
            sqlite_where=text(FREE_SHARE),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    envelope_id: Mapped[str] = mapped_column(
        ForeignKey("red_envelopes.id", ondelete="CASCADE"), index=True
    )
    seq: Mapped[int] = mapped_column(Integer)
    premium_fen: Mapped[int] = mapped_column(Integer)
    sum_insured_fen: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default=ShareStatus.available.value)
    grabbed_by: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    grabbed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    hold_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    application_id: Mapped[str | None] = mapped_column(String(36))
    policy_id: Mapped[str | None] = mapped_column(String(36))
    activated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    decline_reason: Mapped[str | None] = mapped_column(String(64))
    expired_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
