"""Monitor: refunds completed within the standard (R18: ``COVERNET_REFUND_DUE_DAYS``,
default 5, never beyond the statutory 30).  A refund past its due date is a breach."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from covernet.compliance import monitors
from covernet.core import clock
from covernet.core.config import get_settings
from covernet.core.money import format_fen
from covernet.payments.models import Refund, RefundStatus

KEY = "refunds_on_time"
HREF = "/console/monitors"


@monitors.register(KEY, order=40, regulation="R18", href=HREF)
def refunds_on_time(db: Session, today: date) -> monitors.Figure:
    open_refunds = Refund.status != RefundStatus.succeeded.value
    count = db.scalar(select(func.count()).select_from(Refund).where(open_refunds)) or 0
    rows = db.scalars(
        select(Refund).where(open_refunds).order_by(Refund.due_at).limit(monitors.MAX_ITEMS)
    )
    items: list[monitors.Item] = []
    overdue = 0
    for refund in rows:
        due = clock.to_local(refund.due_at).date()
        late = due < today
        overdue += late
        items.append(
            monitors.Item(
                label=f"{format_fen(refund.amount_fen)} · {refund.payment_id[-12:]}",
                href=HREF,
                due=due,
                state="overdue" if late else "waiting",
            )
        )
    days = get_settings().refund_due_days
    return monitors.Figure(
        key=KEY,
        regulation="R18",
        value=overdue,
        total=count,
        status=monitors.status_for(overdue, warning=None, breach=1),
        thresholds={"limit_days": days},
        href=HREF,
        items=items,
    )
