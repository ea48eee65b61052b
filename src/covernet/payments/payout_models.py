"""Payouts (money paid out through the payment provider, e.g. a claim's indemnity) and
their provider attempts.

A subject (a claim, …) has at most one payout per purpose, whatever retries happen:
``(purpose, subject_type, subject_id)`` is unique.  Each time the money is sent to the
provider is an *attempt* (``payout_attempts``); a failed attempt is kept, and a retry
adds a new one to the same payout.  At most one attempt is ever open or succeeded.
The payee's account number and name are stored only encrypted; ``payee_account_masked``
(``6222 **** **** 1234``) is what screens show.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from covernet.core import clock
from covernet.core.db import Base, UtcDateTime
from covernet.core.ids import new_id

ACCOUNT_CONTEXT = "payout.account"
NAME_CONTEXT = "payout.payee_name"


class PayoutStatus(StrEnum):
    requested = "requested"  # an attempt is with the provider
    succeeded = "succeeded"
    failed = "failed"  # the last attempt failed; retry_payout may start another


class Payout(Base):
    __tablename__ = "payouts"
    __table_args__ = (UniqueConstraint("purpose", "subject_type", "subject_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    provider: Mapped[str] = mapped_column(String(32))
    purpose: Mapped[str] = mapped_column(String(32))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(64), index=True)
    insurer_code: Mapped[str] = mapped_column(String(64))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    # Personal data: AES-GCM tokens bound to their column (core.crypto), never in clear.
    payee_account_enc: Mapped[str] = mapped_column(String(255))
    payee_account_masked: Mapped[str] = mapped_column(String(32))
    payee_name_enc: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default=PayoutStatus.requested.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The current (latest) attempt's provider reference and, once failed, why.
    provider_ref: Mapped[str | None] = mapped_column(String(64), index=True)
    failure: Mapped[str | None] = mapped_column(String(200))
    requested_by: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
    paid_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    failed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class PayoutAttempt(Base):
    """One sending of a payout to the provider; confirmed (or failed) by its callback."""

    __tablename__ = "payout_attempts"
    __table_args__ = (UniqueConstraint("payout_id", "number"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    payout_id: Mapped[str] = mapped_column(
        ForeignKey("payouts.id", ondelete="RESTRICT"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)  # 1, 2, … per payout
    status: Mapped[str] = mapped_column(String(16), default=PayoutStatus.requested.value)
    provider_ref: Mapped[str | None] = mapped_column(String(64))
    failure: Mapped[str | None] = mapped_column(String(200))
    # The provider event that settled this attempt.
    event_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
