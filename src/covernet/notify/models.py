"""Notifications and the sandbox SMS gateway's record of what it would have sent."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from covernet.core import clock
from covernet.core.db import Base, UtcDateTime
from covernet.core.ids import new_id

SANDBOX_MOBILE_CONTEXT = "sandbox_sms.mobile"


class Channel(StrEnum):
    inbox = "inbox"  # the row itself is the message the recipient reads in the app
    sms = "sms"
    email = "email"


class NotificationStatus(StrEnum):
    queued = "queued"
    sent = "sent"
    failed = "failed"  # every attempt failed, or the recipient cannot be reached this way


class Notification(Base):
    """One message to one account on one channel."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_due", "status", "next_attempt_at"),
        Index("ix_notifications_recipient", "user_id", "channel", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(8))
    topic: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(64), index=True)
    title: Mapped[str] = mapped_column(String(200))  # Simplified Chinese
    body: Mapped[str] = mapped_column(Text)
    title_en: Mapped[str | None] = mapped_column(String(200))
    body_en: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(8), default=NotificationStatus.queued.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    read_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class SandboxSms(Base):
    """What the sandbox SMS gateway would have sent: the number only encrypted (and
    masked for listings), never in clear."""

    __tablename__ = "sandbox_sms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    notification_id: Mapped[str] = mapped_column(String(36), index=True)
    mobile_enc: Mapped[str] = mapped_column(String(255))
    mobile_masked: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    sent_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
