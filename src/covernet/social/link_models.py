"""Share links and the events attributed to them (the fission funnel)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from covernet.core import clock
from covernet.core.db import Base, UtcDateTime
from covernet.core.ids import new_id


class TargetKind(StrEnum):
    product = "product"
    envelope = "envelope"
    live = "live"


class EventKind(StrEnum):
    visit = "visit"
    signup = "signup"
    quote = "quote"
    application = "application"  # submitted through the link: a purchase once issued
    purchase = "purchase"


class ShareLink(Base):
    __tablename__ = "share_links"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(24), unique=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    owner_role: Mapped[str] = mapped_column(String(16))
    target_kind: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[str] = mapped_column(String(64))
    # The chain of sharers: the link the owner arrived through, and this link's depth in
    # the chain (1 for a link made without one).
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("share_links.id", ondelete="SET NULL"), index=True
    )
    depth: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


class ShareEvent(Base):
    """One event credited to one link: ``depth`` 1 is the link it happened through, 2 its
    parent, and so on up the chain."""

    __tablename__ = "share_events"
    __table_args__ = (
        Index("ix_share_events_link_kind", "link_id", "kind", "depth"),
        Index("ix_share_events_subject", "subject_id", "kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    link_id: Mapped[str] = mapped_column(ForeignKey("share_links.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[str | None] = mapped_column(String(64))
    depth: Mapped[int] = mapped_column(Integer, default=1)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
