"""The sandbox provider's payout orders (its side of the wire, like ``sandbox_orders``).

The sandbox keeps only the account's last four digits (to decide the ``0000`` failure
and to show something); the account itself stays with the payments domain, encrypted.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from covernet.core import clock
from covernet.core.db import Base, UtcDateTime


class SandboxPayout(Base):
    __tablename__ = "sandbox_payouts"

    ref: Mapped[str] = mapped_column(String(64), primary_key=True)
    payout_id: Mapped[str] = mapped_column(String(36), index=True)
    attempt_id: Mapped[str] = mapped_column(String(36), unique=True)
    attempt: Mapped[int] = mapped_column(Integer)  # the payout's attempt number
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    account_last4: Mapped[str] = mapped_column(String(4))
    # processing (callback queued, not delivered) | succeeded | failed
    status: Mapped[str] = mapped_column(String(16))
    # The event queued for this order (replaced when the order is made to fail).
    event_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
