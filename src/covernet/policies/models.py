"""Quotes (applications and policies arrive with the buying flow)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from covernet.core import clock
from covernet.core.db import Base, UtcDateTime
from covernet.core.ids import new_id


class Quote(Base):
    """A priced offer for one insured, valid for a short while, on one product version."""

    __tablename__ = "quotes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    product_code: Mapped[str] = mapped_column(String(64), index=True)
    product_version_id: Mapped[int] = mapped_column(ForeignKey("product_versions.id"))
    plan_code: Mapped[str] = mapped_column(String(64))
    term_code: Mapped[str] = mapped_column(String(64))
    payment_code: Mapped[str] = mapped_column(String(64))
    frequency: Mapped[str] = mapped_column(String(16))
    premium_fen: Mapped[int] = mapped_column(Integer)
    sum_insured_fen: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    order_amount_fen: Mapped[int | None] = mapped_column(Integer)
    insured_birth_date: Mapped[date | None] = mapped_column(Date)
    insured_gender: Mapped[str | None] = mapped_column(String(1))
    insured_age: Mapped[int | None] = mapped_column(Integer)
    # The insured's ID number, when given: encrypted, with a blind index for look-ups.
    insured_id_enc: Mapped[str | None] = mapped_column(String(255))
    insured_id_index: Mapped[str | None] = mapped_column(String(64), index=True)
    region: Mapped[str] = mapped_column(String(6))
    occupation_class: Mapped[int] = mapped_column(Integer)
    effective_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)
    customer_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
    valid_until: Mapped[datetime] = mapped_column(UtcDateTime)
