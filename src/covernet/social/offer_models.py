"""Scenario offers: rule versions edited in the console, the offers made to people from
partners' events, a lock row per person (caps) and the conversion funnel per rule."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from covernet.core import clock
from covernet.core.db import Base, UtcDateTime
from covernet.core.ids import new_id


class OfferKind(StrEnum):
    quote = "quote"  # a product with a pre-filled quote
    gift = "gift"  # gifted cover redeemable with points or steps (R12)


class OfferStatus(StrEnum):
    created = "created"
    shown = "shown"  # the landing page was opened
    quoted = "quoted"  # one tap made the quote
    redeemed = "redeemed"  # a gift was taken: waiting for activation
    purchased = "purchased"  # a policy was issued (bought or activated gift)


class FunnelKind(StrEnum):
    event = "event"  # an event of the rule's type arrived
    offer = "offer"
    suppressed = "suppressed"  # with a reason
    shown = "shown"
    quote = "quote"
    purchase = "purchase"


class SuppressReason(StrEnum):
    unknown_person = "unknown_person"
    no_marketing_consent = "no_marketing_consent"
    frequency_cap = "frequency_cap"  # the rule's cap per person
    daily_cap = "daily_cap"  # the cap per person per day over every rule


class OfferRuleVersion(Base):
    """A rule as edited in the console; the newest is in force while the file's text of
    the rule is still the one it was edited from (``file_digest``)."""

    __tablename__ = "offer_rule_versions"
    __table_args__ = (UniqueConstraint("rule_code", "version", name="uq_offer_rule_versions"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule_code: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    yaml_text: Mapped[str] = mapped_column(Text)
    file_digest: Mapped[str] = mapped_column(String(64))  # the file's rule when edited
    created_by: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


class OfferPerson(Base):
    """One row per person offers were considered for: locked while caps are counted, so
    two events for one person at once queue instead of both passing the cap."""

    __tablename__ = "offer_people"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    last_offer_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Offer(Base):
    __tablename__ = "offers"
    __table_args__ = (
        Index("ix_offers_user_rule", "user_id", "rule_code", "created_at"),
        Index("ix_offers_user_created", "user_id", "created_at"),
        # one offer per rule per event
        UniqueConstraint("rule_code", "event_key", name="uq_offers_rule_event"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    token: Mapped[str] = mapped_column(String(32), unique=True)
    rule_code: Mapped[str] = mapped_column(String(64))
    rule_version: Mapped[str] = mapped_column(String(24))  # file:<digest> or db:<n>
    kind: Mapped[str] = mapped_column(String(8))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    partner_code: Mapped[str] = mapped_column(String(64))
    event_key: Mapped[str] = mapped_column(String(100))
    event_type: Mapped[str] = mapped_column(String(64))
    product_code: Mapped[str] = mapped_column(String(64))
    plan_code: Mapped[str] = mapped_column(String(64))
    # the quote's inputs taken from the event (no mobile, no ID number)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    redeem_with: Mapped[str | None] = mapped_column(String(8))  # points | steps
    redeem_cost: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=OfferStatus.created.value)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    notify_after: Mapped[datetime | None] = mapped_column(UtcDateTime)  # quiet hours
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
    shown_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    quote_id: Mapped[str | None] = mapped_column(String(36), index=True)
    quoted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    share_id: Mapped[str | None] = mapped_column(String(36))  # the gift's envelope share
    policy_id: Mapped[str | None] = mapped_column(String(36))
    purchased_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class OfferFunnelEvent(Base):
    """One step of the funnel for one rule; an offer's steps count once each."""

    __tablename__ = "offer_funnel_events"
    __table_args__ = (
        UniqueConstraint("offer_id", "kind", name="uq_offer_funnel_offer_kind"),
        Index("ix_offer_funnel_rule_kind", "rule_code", "kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule_code: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32))
    offer_id: Mapped[str | None] = mapped_column(ForeignKey("offers.id", ondelete="CASCADE"))
    event_key: Mapped[str | None] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
