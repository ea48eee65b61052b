"""Payments, refunds, received provider events and the premium ledger (R11)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from covernet.core import clock
from covernet.core.db import Base, UtcDateTime
from covernet.core.ids import new_id


class PaymentStatus(StrEnum):
    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"
    expired = "expired"


class RefundStatus(StrEnum):
    requested = "requested"
    succeeded = "succeeded"
    failed = "failed"


# A subject has at most one payment that is payable or paid for each purpose.
LIVE_STATUSES = ("pending", "succeeded")
_LIVE = text("status IN ('pending', 'succeeded')")


class Payment(Base):
    """One payment intent for a subject (an application, an endorsement, …)."""

    __tablename__ = "payments"
    __table_args__ = (
        Index(
            "uq_payments_live_subject",
            "purpose",
            "subject_type",
            "subject_id",
            unique=True,
            sqlite_where=_LIVE,
            postgresql_where=_LIVE,
        ),
        Index("ix_payments_subject", "subject_type", "subject_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    provider: Mapped[str] = mapped_column(String(32))
    purpose: Mapped[str] = mapped_column(String(32))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(64))
    payer_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    insurer_code: Mapped[str] = mapped_column(String(64))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    description: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=PaymentStatus.pending.value)
    provider_ref: Mapped[str | None] = mapped_column(String(64), index=True)
    pay_url: Mapped[str | None] = mapped_column(String(500))
    # Where the payer goes after paying (a path on this site).
    return_path: Mapped[str | None] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    # Set when the money arrived, also for a payment that had already expired or failed
    # (it is then refunded in full).
    paid_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


class Refund(Base):
    __tablename__ = "refunds"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    payment_id: Mapped[str] = mapped_column(
        ForeignKey("payments.id", ondelete="RESTRICT"), index=True
    )
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=RefundStatus.requested.value)
    provider_ref: Mapped[str | None] = mapped_column(String(64), index=True)
    # The service standard (COVERNET_REFUND_DUE_DAYS, at most the statutory 30, R18).
    due_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    failure: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


class ProviderEvent(Base):
    """A callback that was processed: the same event id is never processed twice."""

    __tablename__ = "provider_events"
    __table_args__ = (UniqueConstraint("provider", "event_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    payment_id: Mapped[str | None] = mapped_column(String(36), index=True)
    outcome: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


class LedgerEntry(Base):
    """One leg of a double-entry transaction; the legs of a transaction sum to zero.

    ``amount_fen`` is signed: positive flows into the account.  ``reference`` names
    what was booked (``payment:<id>``, ``refund:<id>``); it is unique per account, so
    nothing is ever booked twice.
    """

    __tablename__ = "ledger_entries"
    __table_args__ = (UniqueConstraint("reference", "account"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    txn_id: Mapped[str] = mapped_column(String(36), index=True)
    reference: Mapped[str] = mapped_column(String(80))
    account: Mapped[str] = mapped_column(String(100), index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    payment_id: Mapped[str | None] = mapped_column(String(36), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
