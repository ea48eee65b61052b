"""The desk's e-mail threads and phone/video appointments (migration 0019).

* ``desk_emails``: one row per e-mail in or out of an ``email`` conversation.  Its
  ``message_id`` (the RFC 5322 Message-ID) is unique: an inbound mail delivered twice
  is kept once, and a reply's ``In-Reply-To``/``References`` find the conversation.
  The address is only encrypted (``address_enc``) and masked; outbound rows are the
  queue the delivery job works through after the reply's transaction commits.
* ``advisor_availability`` / ``availability_exceptions``: an advisor's weekly hours in
  Asia/Shanghai wall-clock minutes and the dates they are off (or extra hours).
* ``appointments``: a booked slot.  ``(advisor_id, slot_start)`` is unique among live
  bookings (``live_key``): two customers racing for one slot cannot both have it, on
  either database.
* ``call_records``: after the call, the notes and the recording's *reference*
  (storage key, duration, checksum; never the audio) kept for R15.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from covernet.core import clock
from covernet.core.db import Base, UtcDateTime
from covernet.core.ids import new_id

EMAIL_ADDRESS_CONTEXT = "desk_emails.address"


class EmailDirection(StrEnum):
    inbound = "inbound"
    outbound = "outbound"


class EmailStatus(StrEnum):
    received = "received"  # inbound, in the conversation
    queued = "queued"  # outbound, waiting for the delivery job
    sent = "sent"
    failed = "failed"


class DeskEmail(Base):
    __tablename__ = "desk_emails"
    __table_args__ = (
        Index("ix_desk_emails_due", "status", "next_attempt_at"),
        Index("ix_desk_emails_conversation", "conversation_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(8))
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    # The desk message this mail carries (inbound: the customer's; outbound: the answer).
    desk_message_id: Mapped[str | None] = mapped_column(String(36), unique=True)
    address_enc: Mapped[str] = mapped_column(String(512))
    address_masked: Mapped[str] = mapped_column(String(255))
    address_index: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str] = mapped_column(String(300))
    in_reply_to: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(8))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class AppointmentKind(StrEnum):
    phone = "phone"
    video = "video"


class AppointmentStatus(StrEnum):
    booked = "booked"
    cancelled = "cancelled"
    rescheduled = "rescheduled"  # replaced by a booking of another slot
    completed = "completed"


# from → allowed targets
APPOINTMENT_TRANSITIONS: dict[AppointmentStatus, frozenset[AppointmentStatus]] = {
    AppointmentStatus.booked: frozenset(
        {AppointmentStatus.cancelled, AppointmentStatus.rescheduled, AppointmentStatus.completed}
    ),
    AppointmentStatus.cancelled: frozenset(),
    AppointmentStatus.rescheduled: frozenset(),
    AppointmentStatus.completed: frozenset(),
}


class AdvisorAvailability(Base):
    """One weekly window: ``weekday`` 0 = Monday, minutes from local midnight."""

    __tablename__ = "advisor_availability"
    __table_args__ = (Index("ix_advisor_availability_advisor", "advisor_id", "weekday"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    advisor_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    weekday: Mapped[int] = mapped_column(Integer)
    start_minute: Mapped[int] = mapped_column(Integer)
    end_minute: Mapped[int] = mapped_column(Integer)
    slot_minutes: Mapped[int] = mapped_column(Integer, default=30)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


class AvailabilityException(Base):
    """A local date the advisor is off (``available`` 0) or has other hours."""

    __tablename__ = "availability_exceptions"
    __table_args__ = (UniqueConstraint("advisor_id", "day", name="uq_availability_exception_day"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    advisor_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    available: Mapped[int] = mapped_column(Integer, default=0)
    start_minute: Mapped[int | None] = mapped_column(Integer)
    end_minute: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


class Appointment(Base):
    __tablename__ = "appointments"
    __table_args__ = (
        # live_key is "<advisor>|<slot start>" while booked, the row's id otherwise.
        UniqueConstraint("live_key", name="uq_appointments_live_slot"),
        Index("ix_appointments_advisor_start", "advisor_id", "slot_start"),
        Index("ix_appointments_customer_start", "customer_id", "slot_start"),
        Index("ix_appointments_reminder", "status", "reminded_at", "slot_start"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    advisor_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    conversation_id: Mapped[str | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL")
    )
    kind: Mapped[str] = mapped_column(String(8))
    topic: Mapped[str] = mapped_column(String(200))
    product_line: Mapped[str | None] = mapped_column(String(32))
    slot_start: Mapped[datetime] = mapped_column(UtcDateTime)
    slot_end: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(12), default=AppointmentStatus.booked.value)
    live_key: Mapped[str] = mapped_column(String(80))
    rescheduled_to_id: Mapped[str | None] = mapped_column(String(36))
    cancelled_by: Mapped[str | None] = mapped_column(String(16))
    cancel_reason: Mapped[str | None] = mapped_column(String(500))
    reminded_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


class CallRecord(Base):
    """Notes and the recording reference of one call (R15: kept with the sale)."""

    __tablename__ = "call_records"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    appointment_id: Mapped[str] = mapped_column(
        ForeignKey("appointments.id", ondelete="RESTRICT"), index=True
    )
    author_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    notes: Mapped[str | None] = mapped_column(Text)
    recording_ref: Mapped[str | None] = mapped_column(String(500))
    recording_seconds: Mapped[int | None] = mapped_column(Integer)
    recording_sha256: Mapped[str | None] = mapped_column(String(64))
    retain_until: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
