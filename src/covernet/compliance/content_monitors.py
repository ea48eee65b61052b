"""Monitor: marketing content waiting for compliance review (R3), oldest first; a draft
that has waited longer than ``COVERNET_CONTENT_REVIEW_MAX_DAYS`` is a breach."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from covernet.compliance import monitors
from covernet.compliance.models import ContentItem, ContentStatus
from covernet.core import clock
from covernet.core.config import get_settings
from covernet.identity.models import User

KEY = "content_pending_review"
HREF = "/console/content"


@monitors.register(KEY, order=20, regulation="R3", href=HREF)
def content_pending_review(db: Session, today: date) -> monitors.Figure:
    limit_days = get_settings().content_review_max_days
    warning_days = limit_days // 2
    pending = ContentItem.status == ContentStatus.pending_review.value
    rows = db.execute(
        select(ContentItem, User.name)
        .join(User, User.id == ContentItem.advisor_id)
        .where(pending)
        .order_by(ContentItem.updated_at, ContentItem.id)
        .limit(monitors.MAX_ITEMS)
    ).all()
    count = db.scalar(select(func.count()).select_from(ContentItem).where(pending)) or 0
    now = clock.now()
    limit = timedelta(days=limit_days)
    oldest_days = 0
    items: list[monitors.Item] = []
    overdue = soon = False
    for item, name in rows:
        waited = now - clock.as_utc(item.updated_at)
        late = waited > limit
        overdue = overdue or late
        soon = soon or waited > timedelta(days=warning_days)
        oldest_days = max(oldest_days, waited.days)
        items.append(
            monitors.Item(
                label=f"{name} · v{item.version}",
                detail=f"check.kind.{item.kind}",
                href=HREF,
                due=(clock.to_local(item.updated_at) + limit).date(),
                state="overdue" if late else "waiting",
            )
        )
    if overdue:
        status: monitors.Status = "breach"
    elif soon:
        status = "warning"
    else:
        status = "ok"
    return monitors.Figure(
        key=KEY,
        regulation="R3",
        value=count,
        status=status,
        thresholds={"warning_days": warning_days, "limit_days": limit_days},
        meter=monitors.Meter(value=oldest_days, limit=limit_days, unit="monitors.unit.days"),
        href=HREF,
        items=items,
    )
