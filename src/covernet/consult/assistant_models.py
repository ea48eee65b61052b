"""The assistant's log: one row per question asked, for bot resolution and hand-off rates."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from covernet.core import clock
from covernet.core.db import Base, UtcDateTime
from covernet.core.ids import new_id


class Outcome(StrEnum):
    answered = "answered"
    unsure = "unsure"  # below the confidence threshold: handed off
    advice = "advice"  # asks which product to buy: needs a licensed human (R1, R2)
    asked = "asked"  # asked for a person


class AssistantQuestion(Base):
    __tablename__ = "assistant_questions"
    __table_args__ = (
        Index("ix_assistant_questions_asked_at", "asked_at"),
        Index("ix_assistant_questions_client_asked", "client_key", "asked_at"),
        Index("ix_assistant_questions_thread", "thread_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    # Questions sent with the same conversation id form one exchange (the transcript).
    thread_id: Mapped[str] = mapped_column(String(36))
    customer_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    # Keyed hash of the customer id or the client address, for throttling; never the
    # address itself.
    client_key: Mapped[str] = mapped_column(String(64))
    # The question with mobile and ID numbers masked.
    question: Mapped[str] = mapped_column(Text)
    lang: Mapped[str] = mapped_column(String(8))
    article_id: Mapped[str | None] = mapped_column(String(80))
    answer: Mapped[str] = mapped_column(Text)
    confidence: Mapped[float] = mapped_column(Float)
    outcome: Mapped[str] = mapped_column(String(16))
    handed_off: Mapped[bool] = mapped_column(Boolean)
    # The desk's conversation the exchange was handed to, if the desk took it.
    handoff_conversation_id: Mapped[str | None] = mapped_column(String(36))
    asked_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
