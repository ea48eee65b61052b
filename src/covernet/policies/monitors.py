"""Monitors of the buying flow: instant underwriting (R16), referrals waiting for an
underwriter, and products off sale whose policies are still in force (R20)."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from covernet.catalog import service as catalog
from covernet.catalog.pricing import is_on_sale
from covernet.compliance import monitors
from covernet.core import clock
from covernet.policies.models import Application, ApplicationStatus, Policy, PolicyStatus

WINDOW_DAYS = 30
INSTANT_TARGET_PERCENT = 90  # below: warning (seed 001: instant underwriting where rules allow)
REFERRAL_LIMIT_DAYS = 2
DECIDED = (
    ApplicationStatus.issued.value,
    ApplicationStatus.declined.value,
    ApplicationStatus.referred.value,
)


@monitors.register("instant_underwriting", order=50, regulation="R16")
def instant_underwriting(db: Session, today: date) -> monitors.Figure:
    """Share of paid applications in the last 30 days decided without a human."""
    since = clock.now() - timedelta(days=WINDOW_DAYS)
    paid = (
        select(func.count())
        .select_from(Application)
        .where(Application.status.in_(DECIDED), Application.created_at >= since)
    )
    total = db.scalar(paid) or 0
    human = (
        db.scalar(
            paid.where(
                (Application.status == ApplicationStatus.referred.value)
                | Application.decided_by.is_not(None)
            )
        )
        or 0
    )
    instant = total - human
    percent = 100 * instant // total if total else 100
    waiting = list(
        db.scalars(
            select(Application)
            .where(Application.status == ApplicationStatus.referred.value)
            .order_by(Application.updated_at)
            .limit(monitors.MAX_ITEMS)
        )
    )
    items = []
    late = False
    for app in waiting:
        due = (clock.to_local(app.updated_at) + timedelta(days=REFERRAL_LIMIT_DAYS)).date()
        late = late or due < today
        items.append(
            monitors.Item(
                label=f"{app.product_code} · {app.decision_reason or ''}",
                href="/api/v1/underwriting/referrals",
                due=due,
                state="overdue" if due < today else "waiting",
            )
        )
    status: monitors.Status = (
        "breach" if late else "warning" if percent < INSTANT_TARGET_PERCENT else "ok"
    )
    return monitors.Figure(
        key="instant_underwriting",
        regulation="R16",
        value=instant,
        total=total,
        status=status,
        thresholds={"target_percent": INSTANT_TARGET_PERCENT, "limit_days": REFERRAL_LIMIT_DAYS},
        meter=monitors.Meter(value=percent, limit=100, unit="monitors.unit.percent"),
        href="/api/v1/underwriting/referrals",
        items=items,
    )


@monitors.register("off_sale_in_force", order=60, regulation="R20")
def off_sale_in_force(db: Session, today: date) -> monitors.Figure:
    """Products no longer on sale that still have policies in force: their service pages
    (policy, claims, surrender) must keep working until the last one expires."""
    snap = catalog.snapshot(db)
    rows = db.execute(
        select(Policy.product_code, func.count(), func.max(Policy.end_date))
        .where(Policy.status == PolicyStatus.in_force.value)
        .group_by(Policy.product_code)
    ).all()
    items = []
    for code, count, last_end in rows:
        listed = snap.products.get(code)
        if listed is not None and is_on_sale(listed.product, today):
            continue
        items.append(
            monitors.Item(
                label=f"{code} · {count}",
                href=f"/products/{code}",
                due=last_end,
                state="served" if listed is not None else "unlisted",
            )
        )
    unlisted = any(i.state == "unlisted" for i in items)
    return monitors.Figure(
        key="off_sale_in_force",
        regulation="R20",
        value=len(items),
        status="warning" if unlisted else "ok",
        href="/console/monitors",
        items=items[: monitors.MAX_ITEMS],
    )
