"""The recipient's own notifications: ``GET /api/v1/me/notifications`` (newest first,
paginated) and ``POST /api/v1/me/notifications/{id}/read``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from covernet.core.pagination import Page, PageParams, page_params
from covernet.identity.access import Db, Principal, allow
from covernet.identity.models import STAFF_ROLES, Role
from covernet.notify import service
from covernet.notify.models import Channel, Notification

router = APIRouter(prefix="/api/v1", tags=["notifications"])

Recipient = Annotated[Principal, allow(Role.customer, *STAFF_ROLES)]


class NotificationOut(BaseModel):
    id: str
    channel: str
    topic: str
    subject_type: str
    subject_id: str
    title: str
    body: str
    title_en: str | None
    body_en: str | None
    status: str
    created_at: datetime
    sent_at: datetime | None
    read_at: datetime | None


class NotificationPage(Page[NotificationOut]):
    unread: int


def _out(row: Notification) -> NotificationOut:
    return NotificationOut.model_validate(row, from_attributes=True)


@router.get("/me/notifications", response_model=NotificationPage)
def my_notifications(
    db: Db,
    who: Recipient,
    paging: Annotated[PageParams, Depends(page_params)],
    channel: Annotated[Channel, Query(description="inbox (default), sms or email")] = Channel.inbox,
) -> NotificationPage:
    """Your own notifications on one channel, newest first, with the unread inbox count."""
    assert who.user_id is not None
    rows, total = service.list_for(
        db, who.user_id, channel=channel.value, offset=paging.offset, limit=paging.size
    )
    return NotificationPage(
        items=[_out(r) for r in rows],
        page=paging.page,
        size=paging.size,
        total=total,
        unread=service.unread_count(db, who.user_id),
    )


@router.post("/me/notifications/{notification_id}/read", response_model=NotificationOut)
def read_notification(notification_id: str, db: Db, who: Recipient) -> NotificationOut:
    """Mark one of your notifications read (others' are 404)."""
    assert who.user_id is not None
    return _out(service.mark_read(db, who.user_id, notification_id))
