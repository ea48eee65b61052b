"""Customers' consents by purpose (R28): the standing answer per customer and purpose,
and every grant and withdrawal with its time, source and the text version shown."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from covernet.core import clock
from covernet.core.db import Base, UtcDateTime
from covernet.core.ids import new_id


class Purpose(StrEnum):
    marketing_offers = "marketing_offers"  # scenario offers from partners' events


class ConsentAction(StrEnum):
    granted = "granted"
    withdrawn = "withdrawn"


class CustomerConsent(Base):
    """The standing answer: one row per customer and purpose, written on the first
    grant (never pre-ticked: no row means no consent)."""

    __tablename__ = "customer_consents"
    __table_args__ = (UniqueConstraint("user_id", "purpose", name="uq_customer_consents"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(32))
    granted: Mapped[bool] = mapped_column(Boolean, default=False)
    text_version: Mapped[str] = mapped_column(String(32))  # the notice last agreed to
    source: Mapped[str] = mapped_column(String(32))
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


class CustomerConsentEvent(Base):
    """Each grant and withdrawal, append-only."""

    __tablename__ = "customer_consent_events"
    __table_args__ = (Index("ix_customer_consent_events_user", "user_id", "purpose", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16))
    text_version: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
