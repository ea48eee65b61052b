"""Advisor licenses: the registry every licensed action asks (R1)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import JSON, Date, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from covernet.core import clock
from covernet.core.db import Base, UtcDateTime
from covernet.core.ids import new_id


class LicenseStatus(StrEnum):
    active = "active"
    suspended = "suspended"
    revoked = "revoked"


class AdvisorLicense(Base):
    __tablename__ = "advisor_licenses"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    license_no: Mapped[str] = mapped_column(String(32), unique=True)  # 执业证编号
    advisor_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), unique=True
    )
    institution: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=LicenseStatus.active.value)
    valid_until: Mapped[date] = mapped_column(Date)
    lines: Mapped[list[str]] = mapped_column(JSON)
    grade: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


class ContentStatus(StrEnum):
    pending_review = "pending_review"
    approved = "approved"
    rejected = "rejected"
    published = "published"


class ContentItem(Base):
    """A piece of marketing content an advisor wants to use (R3): only the approved
    version, frozen by its hash, can be published."""

    __tablename__ = "content_items"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    advisor_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(String(20_000))
    product_codes: Mapped[list[str]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(default=1)
    content_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    verdict: Mapped[str] = mapped_column(String(8))
    findings: Mapped[list[dict[str, object]]] = mapped_column(JSON)
    approved_hash: Mapped[str | None] = mapped_column(String(64))
    reviewer_id: Mapped[str | None] = mapped_column(String(36))
    review_note: Mapped[str | None] = mapped_column(String(500))
    reviewed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


class LiveStatus(StrEnum):
    scheduled = "scheduled"
    live = "live"
    ended = "ended"
    pending_review = "pending_review"  # transcript uploaded and checked
    reviewed = "reviewed"


class LiveSession(Base):
    """A live-stream sales session (R1, R2, R4): a licensed host, the products introduced,
    the approved script frozen by its hash, and after the session the checked transcript."""

    __tablename__ = "live_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    host_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    title: Mapped[str] = mapped_column(String(120))
    scheduled_at: Mapped[datetime] = mapped_column(UtcDateTime)
    product_codes: Mapped[list[str]] = mapped_column(JSON)
    script_id: Mapped[str] = mapped_column(ForeignKey("content_items.id", ondelete="RESTRICT"))
    script_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    transcript: Mapped[str | None] = mapped_column(Text)
    transcript_hash: Mapped[str | None] = mapped_column(String(64))
    transcript_verdict: Mapped[str | None] = mapped_column(String(8))
    transcript_findings: Mapped[list[dict[str, object]] | None] = mapped_column(JSON)
    transcript_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    review_outcome: Mapped[str | None] = mapped_column(String(16))
    review_note: Mapped[str | None] = mapped_column(String(500))
    reviewer_id: Mapped[str | None] = mapped_column(String(36))
    reviewed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
