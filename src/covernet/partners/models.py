"""Partner events received, once each per partner and event id."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from covernet.core import clock
from covernet.core.db import Base, UtcDateTime
from covernet.core.ids import new_id


class PartnerEvent(Base):
    """One event a partner posted and what it was answered.  The unique key makes each
    event count once: a replay (or a concurrent twin) finds this row and gets
    ``result`` again.  Only events that were accepted are kept (a rejected one rolls
    back with its transaction); ``body_sha256`` binds the id to the body first sent."""

    __tablename__ = "partner_events"
    __table_args__ = (UniqueConstraint("partner_code", "event_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    partner_code: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(64))
    body_sha256: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
    outcome: Mapped[str] = mapped_column(String(32))  # the answer's ``result``
    status_code: Mapped[int] = mapped_column(Integer, default=200)
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    claim_id: Mapped[str | None] = mapped_column(String(36), index=True)
