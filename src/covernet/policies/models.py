"""Quotes, applications, policies and the sale's trace (R13)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Integer, String, Text, UniqueConstraint
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


class ApplicationStatus(StrEnum):
    pending_payment = "pending_payment"
    referred = "referred"  # paid; waits for a manual underwriting decision
    declined = "declined"  # paid; declined and refunded in full
    issued = "issued"
    abandoned = "abandoned"  # the payment failed or expired


class Application(Base):
    """A customer's application from a quote: who, the answers, what they acknowledged,
    and what became of it.  Personal data is stored encrypted (ID numbers, names of
    others, health answers, beneficiaries)."""

    __tablename__ = "applications"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    customer_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    quote_id: Mapped[str] = mapped_column(ForeignKey("quotes.id", ondelete="RESTRICT"), unique=True)
    product_code: Mapped[str] = mapped_column(String(64))
    product_version_id: Mapped[int] = mapped_column(ForeignKey("product_versions.id"))
    insurer_code: Mapped[str] = mapped_column(String(64))
    line: Mapped[str] = mapped_column(String(32))
    plan_code: Mapped[str] = mapped_column(String(64))
    term_code: Mapped[str] = mapped_column(String(64))
    payment_code: Mapped[str] = mapped_column(String(64))
    premium_fen: Mapped[int] = mapped_column(Integer)
    sum_insured_fen: Mapped[int] = mapped_column(Integer)
    applicant_name_enc: Mapped[str] = mapped_column(String(400))
    applicant_id_enc: Mapped[str] = mapped_column(String(255))
    relationship: Mapped[str] = mapped_column(String(16))  # the insured is the applicant's …
    insured_name_enc: Mapped[str] = mapped_column(String(400))
    insured_id_enc: Mapped[str] = mapped_column(String(255))
    insured_id_index: Mapped[str] = mapped_column(String(64), index=True)
    insured_birth_date: Mapped[date] = mapped_column(Date)
    insured_gender: Mapped[str] = mapped_column(String(1))
    beneficiaries_enc: Mapped[str | None] = mapped_column(Text)  # None: statutory heirs
    health_answers_enc: Mapped[str | None] = mapped_column(Text)
    acknowledgements: Mapped[dict[str, Any]] = mapped_column(JSON)
    suitability_warnings: Mapped[list[str]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), index=True)
    decision_reason: Mapped[str | None] = mapped_column(String(64))
    decided_by: Mapped[str | None] = mapped_column(String(36))
    payment_id: Mapped[str | None] = mapped_column(String(36))
    # The licensed advisor who sold it, when the sale was advised (R1, R2).
    advisor_id: Mapped[str | None] = mapped_column(String(36), index=True)
    # The policy this application renews (continuous cover), with the customer's consent.
    renewal_of: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


class PolicyStatus(StrEnum):
    in_force = "in_force"  # issued; cover runs from effective_date to end_date
    cancelled = "cancelled"  # within 犹豫期 (R17)
    surrendered = "surrendered"  # after 犹豫期 (R18)
    expired = "expired"


class Policy(Base):
    __tablename__ = "policies"
    __table_args__ = (UniqueConstraint("partner_code", "external_ref"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    policy_no: Mapped[str] = mapped_column(String(32), unique=True)
    verification_code: Mapped[str] = mapped_column(String(16), unique=True)
    # One policy per application, whatever retries and callbacks happen.  Embedded
    # micro-policies issued by a partner have no application: one per (partner, ref).
    application_id: Mapped[str | None] = mapped_column(
        ForeignKey("applications.id", ondelete="RESTRICT"), unique=True
    )
    customer_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    partner_code: Mapped[str | None] = mapped_column(String(64))
    external_ref: Mapped[str | None] = mapped_column(String(100))
    holder_ref: Mapped[str | None] = mapped_column(String(100))  # the partner's customer id
    product_code: Mapped[str] = mapped_column(String(64), index=True)
    product_version_id: Mapped[int] = mapped_column(ForeignKey("product_versions.id"))
    insurer_code: Mapped[str] = mapped_column(String(64), index=True)
    line: Mapped[str] = mapped_column(String(32))
    plan_code: Mapped[str] = mapped_column(String(64))
    term_code: Mapped[str] = mapped_column(String(64))
    payment_code: Mapped[str] = mapped_column(String(64))
    premium_fen: Mapped[int] = mapped_column(Integer)
    sum_insured_fen: Mapped[int] = mapped_column(Integer)
    insured_id_index: Mapped[str | None] = mapped_column(String(64), index=True)
    effective_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)
    waiting_period_end: Mapped[date | None] = mapped_column(Date)
    cooling_off_end: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), index=True)
    gifted: Mapped[bool] = mapped_column(default=False)
    payment_id: Mapped[str | None] = mapped_column(String(36))
    refund_id: Mapped[str | None] = mapped_column(String(36))
    advisor_id: Mapped[str | None] = mapped_column(String(36), index=True)
    # Renewal only with the customer's explicit consent (R8): the policy it renews.
    renewal_of: Mapped[str | None] = mapped_column(String(36), index=True)
    renewal_consent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    reminded_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


class TraceEvent(Base):
    """One step of a sale (R13): a page shown with its content hash and document version,
    a confirmation, a payment or a decision, with time and device."""

    __tablename__ = "trace_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    application_id: Mapped[str] = mapped_column(
        ForeignKey("applications.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(24))  # shown | confirmed | submitted | system
    step: Mapped[str] = mapped_column(String(48))
    document: Mapped[str | None] = mapped_column(String(48))
    document_version: Mapped[int | None] = mapped_column(Integer)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(255))
