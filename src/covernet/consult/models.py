"""The consultation desk's tables: conversations, their messages and the desk's agents."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from covernet.core import clock
from covernet.core.db import Base, UtcDateTime
from covernet.core.ids import new_id


class State(StrEnum):
    open = "open"
    pending = "pending"  # waiting for the customer
    snoozed = "snoozed"  # out of the inbox until snooze_until (or the customer writes)
    resolved = "resolved"


# The desk's state machine: from → allowed targets.
TRANSITIONS: dict[State, frozenset[State]] = {
    State.open: frozenset({State.pending, State.snoozed, State.resolved}),
    State.pending: frozenset({State.open, State.snoozed, State.resolved}),
    State.snoozed: frozenset({State.open, State.pending, State.resolved}),
    State.resolved: frozenset({State.open}),
}
ACTIVE_STATES = (State.open.value, State.pending.value, State.snoozed.value)


class Kind(StrEnum):
    consultation = "consultation"  # advice on products: a sale (R1)
    complaint = "complaint"


class Priority(StrEnum):
    urgent = "urgent"
    high = "high"
    normal = "normal"
    low = "low"


PRIORITY_RANK = {Priority.urgent: 0, Priority.high: 1, Priority.normal: 2, Priority.low: 3}


class Channel(StrEnum):
    web = "web"
    live = "live"
    assistant = "assistant"
    wechat = "wechat"
    email = "email"
    phone = "phone"


class AuthorKind(StrEnum):
    customer = "customer"
    advisor = "advisor"
    bot = "bot"
    system = "system"


class Availability(StrEnum):
    online = "online"
    away = "away"
    offline = "offline"


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_state_priority", "state", "priority"),
        Index("ix_conversations_assignee_state", "assignee_id", "state"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    customer_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    # An anonymous visitor's id (from the signed visitor token) when no customer is known.
    visitor_id: Mapped[str | None] = mapped_column(String(36), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16), default=Kind.consultation.value)
    state: Mapped[str] = mapped_column(String(16), default=State.open.value)
    priority: Mapped[str] = mapped_column(String(8), default=Priority.normal.value)
    priority_reason: Mapped[str | None] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(200))
    product_line: Mapped[str | None] = mapped_column(String(32))
    product_code: Mapped[str | None] = mapped_column(String(64))
    live_session_id: Mapped[str | None] = mapped_column(String(36), index=True)
    assignee_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    assigned_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    snooze_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    first_response_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_customer_message_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_message_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    csat_score: Mapped[int | None] = mapped_column(Integer)
    csat_comment: Mapped[str | None] = mapped_column(String(1000))
    csat_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Complaints: the answer is due by complaint_due_at; the outcome is recorded.
    complaint_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    outcome: Mapped[str | None] = mapped_column(String(1000))
    outcome_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    merged_into_id: Mapped[str | None] = mapped_column(String(36))
    escalated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


class ConversationMessage(Base):
    """One message.  An advisor's carries a snapshot of who they were when it was sent:
    name, institution and 执业证编号 (R2), so a later change never rewrites history."""

    __tablename__ = "conversation_messages"
    __table_args__ = (Index("ix_conversation_messages_conv_time", "conversation_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    author_kind: Mapped[str] = mapped_column(String(16))
    author_id: Mapped[str | None] = mapped_column(String(36))
    channel: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    # What the message is for the widget: "text", or "csat_request" (the survey).
    purpose: Mapped[str] = mapped_column(String(16), default="text")
    advisor_name: Mapped[str | None] = mapped_column(String(100))
    advisor_institution: Mapped[str | None] = mapped_column(String(200))
    advisor_license_no: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


class DeskAgent(Base):
    """A staff member who answers conversations: the product lines they take
    (skills), whether they are taking any now, and how many they hold at most."""

    __tablename__ = "desk_agents"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    skills: Mapped[list[str]] = mapped_column(JSON)
    availability: Mapped[str] = mapped_column(String(8), default=Availability.offline.value)
    max_open: Mapped[int] = mapped_column(Integer, default=5)
    last_assigned_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
