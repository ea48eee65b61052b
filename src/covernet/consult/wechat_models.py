"""The desk's official-account channel table: every callback message kept once by its
MsgId (inbound) and every answer queued for the customer-service message API
(outbound).  The sender's openid is stored only encrypted, with a blind index."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from covernet.core import clock
from covernet.core.db import Base, UtcDateTime
from covernet.core.ids import new_id

OPENID_CONTEXT = "desk_wechat_messages.openid"


class WechatDirection(StrEnum):
    inbound = "inbound"
    outbound = "outbound"


class WechatStatus(StrEnum):
    received = "received"  # inbound, in a conversation
    ignored = "ignored"  # inbound, kept only so a replay is recognised
    queued = "queued"  # outbound, waiting for the delivery job
    sent = "sent"
    failed = "failed"


class DeskWechatMessage(Base):
    __tablename__ = "desk_wechat_messages"
    __table_args__ = (
        Index("ix_desk_wechat_messages_due", "status", "next_attempt_at"),
        Index("ix_desk_wechat_messages_conversation", "conversation_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    conversation_id: Mapped[str | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE")
    )
    direction: Mapped[str] = mapped_column(String(8))
    # Inbound: the platform's MsgId (events: a keyed hash of sender, time and event);
    # outbound: "out:<desk message id>".  A replay of a kept key writes nothing.
    msg_key: Mapped[str] = mapped_column(String(80), unique=True)
    msg_type: Mapped[str] = mapped_column(String(16))
    # The desk message this row carries (inbound: the customer's; outbound: the answer).
    desk_message_id: Mapped[str | None] = mapped_column(String(36), unique=True)
    openid_enc: Mapped[str] = mapped_column(String(512))
    openid_masked: Mapped[str] = mapped_column(String(64))
    openid_index: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(8))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
