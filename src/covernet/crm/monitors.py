"""Monitor: views of customers' full personal data (R28, R29).

Every unmasked view needs a reason and is audited (:func:`covernet.crm.service.unmask`);
a staff member with more than ``UNMASK_PER_HOUR`` views in the last hour is a breach to
review, from 80% of it a warning. Items name the staff member by name, never the
customers they looked at.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session

from covernet.compliance import monitors
from covernet.crm import service

KEY = "unmask_views"
HREF = "/console/audit?action=customer.unmask"


@monitors.register(KEY, order=90, regulation="R29", href=HREF)
def unmask_views(db: Session, today: date) -> monitors.Figure:
    limit = service.UNMASK_PER_HOUR
    counts = service.unmask_counts(db, hours=1)
    names = service.staff_names(db, {staff for staff, _ in counts})
    top = counts[0][1] if counts else 0
    warn = max(1, (limit * 4) // 5)
    items = [
        monitors.Item(
            label=names.get(staff, staff),
            href=f"/console/audit?action=customer.unmask&actor_id={staff}",
            state="unmask_over" if n > limit else "unmask_near",
            detail=None,
        )
        for staff, n in counts
        if n >= warn
    ][: monitors.MAX_ITEMS]
    return monitors.Figure(
        key=KEY,
        regulation="R29",
        value=top,
        status=monitors.status_for(top, warning=warn, breach=limit + 1),
        thresholds={"limit": limit},
        meter=monitors.Meter(value=top, limit=limit, unit="monitors.unit.views"),
        href=HREF,
        items=items,
    )
