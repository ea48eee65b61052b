"""Monitor: policy events reach the insurer's core system within 24 hours (R19).

An outbox row not delivered 24 hours after it was written is a breach; a dead letter
(every attempt failed) is listed first and is a warning while still inside the 24 hours
(nobody will deliver it unless someone acts).  Items name the policy by number.
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from covernet.compliance import monitors
from covernet.core import clock
from covernet.integration.models import OutboxRow, OutboxStatus

KEY = "insurer_sync"
HREF = "/console/monitors"
LIMIT_HOURS = 24  # R19 (seed 001)


@monitors.register(KEY, order=70, regulation="R19", href=HREF)
def insurer_sync(db: Session, today: date) -> monitors.Figure:
    cutoff = clock.now() - timedelta(hours=LIMIT_HOURS)
    open_rows = OutboxRow.status != OutboxStatus.delivered.value
    total = db.scalar(select(func.count()).select_from(OutboxRow).where(open_rows)) or 0
    late = (
        db.scalar(
            select(func.count())
            .select_from(OutboxRow)
            .where(open_rows, OutboxRow.created_at < cutoff)
        )
        or 0
    )
    dead = (
        db.scalar(
            select(func.count())
            .select_from(OutboxRow)
            .where(OutboxRow.status == OutboxStatus.dead.value)
        )
        or 0
    )
    dead_first = case((OutboxRow.status == OutboxStatus.dead.value, 0), else_=1)
    rows = db.scalars(
        select(OutboxRow)
        .where(open_rows)
        .order_by(dead_first, OutboxRow.created_at, OutboxRow.id)
        .limit(monitors.MAX_ITEMS)
    )
    items = []
    for row in rows:
        due_at = row.created_at + timedelta(hours=LIMIT_HOURS)
        if row.status == OutboxStatus.dead.value:
            state = "dead_letter"
        elif row.created_at < cutoff:
            state = "sync_overdue"
        else:
            state = "sync_pending"
        number = row.payload.get("policy_no") if isinstance(row.payload, dict) else None
        items.append(
            monitors.Item(
                label=f"{number or row.subject_id[-12:]} · {row.topic} · {row.insurer_code}",
                href=HREF,
                due=clock.to_local(due_at).date(),
                state=state,
            )
        )
    status = monitors.status_for(late, warning=None, breach=1)
    if status == "ok" and dead:
        status = "warning"
    return monitors.Figure(
        key=KEY,
        regulation="R19",
        value=late,
        total=total,
        status=status,
        thresholds={"limit_hours": LIMIT_HOURS},
        href=HREF,
        items=items,
    )
