"""Monitor: live sessions not yet reviewed (R4) — ended without a transcript, or with a
checked transcript waiting for compliance; one that has waited longer than
``COVERNET_CONTENT_REVIEW_MAX_DAYS`` since it ended is a breach."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from covernet.compliance import monitors
from covernet.compliance.models import LiveSession, LiveStatus
from covernet.core import clock
from covernet.core.config import get_settings
from covernet.identity.models import User

KEY = "live_sessions_unreviewed"
HREF = "/console/live"
OPEN = (LiveStatus.ended.value, LiveStatus.pending_review.value)


@monitors.register(KEY, order=30, regulation="R4", href=HREF)
def live_sessions_unreviewed(db: Session, today: date) -> monitors.Figure:
    limit_days = get_settings().content_review_max_days
    waiting = LiveSession.status.in_(OPEN)
    rows = db.execute(
        select(LiveSession, User.name)
        .join(User, User.id == LiveSession.host_id)
        .where(waiting)
        .order_by(LiveSession.ended_at, LiveSession.id)
        .limit(monitors.MAX_ITEMS)
    ).all()
    count = db.scalar(select(func.count()).select_from(LiveSession).where(waiting)) or 0
    now, limit = clock.now(), timedelta(days=limit_days)
    items: list[monitors.Item] = []
    oldest_days, overdue = 0, False
    for row, name in rows:
        ended = clock.as_utc(row.ended_at or row.updated_at)
        late = now - ended > limit
        overdue = overdue or late
        oldest_days = max(oldest_days, (now - ended).days)
        state = "waiting" if row.status == LiveStatus.pending_review.value else "no_transcript"
        items.append(
            monitors.Item(
                label=f"{name} · {row.title}",
                href=f"/live/{row.id}" if state == "waiting" else HREF,
                due=(clock.to_local(ended) + limit).date(),
                state="overdue" if late else state,
            )
        )
    status: monitors.Status = "breach" if overdue else "warning" if count else "ok"
    return monitors.Figure(
        key=KEY,
        regulation="R4",
        value=count,
        status=status,
        thresholds={"limit_days": limit_days},
        meter=monitors.Meter(value=oldest_days, limit=limit_days, unit="monitors.unit.days"),
        href=HREF,
        items=items,
    )
