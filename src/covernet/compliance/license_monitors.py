"""Monitor: advisor licenses expiring within 30 days, and expired ones still marked
active (R1: an expired license may not sell, advise or publish)."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from covernet.compliance import monitors
from covernet.compliance.models import AdvisorLicense, LicenseStatus
from covernet.identity.models import User

KEY = "licenses_expiring"
WARNING_DAYS = 30  # the license console's "expiring" filter uses the same window
HREF = "/console/licenses?expiring=true"


@monitors.register(KEY, order=10, regulation="R1", href=HREF)
def licenses_expiring(db: Session, today: date) -> monitors.Figure:
    active = AdvisorLicense.status == LicenseStatus.active.value
    cutoff = today + timedelta(days=WARNING_DAYS)
    due = select(AdvisorLicense, User.name).join(User, User.id == AdvisorLicense.advisor_id)
    rows = db.execute(
        due.where(active, AdvisorLicense.valid_until <= cutoff)
        .order_by(AdvisorLicense.valid_until, AdvisorLicense.license_no)
        .limit(monitors.MAX_ITEMS)
    ).all()
    count = db.scalar(
        select(func.count())
        .select_from(AdvisorLicense)
        .where(active, AdvisorLicense.valid_until <= cutoff)
    )
    expired = db.scalar(
        select(func.count())
        .select_from(AdvisorLicense)
        .where(active, AdvisorLicense.valid_until < today)
    )
    total = db.scalar(select(func.count()).select_from(AdvisorLicense).where(active))
    if expired:
        status: monitors.Status = "breach"
    elif count:
        status = "warning"
    else:
        status = "ok"
    return monitors.Figure(
        key=KEY,
        regulation="R1",
        value=count or 0,
        total=total or 0,
        status=status,
        thresholds={"warning_days": WARNING_DAYS, "breach_days": 0},
        href=HREF,
        items=[
            monitors.Item(
                label=f"{row.license_no} · {name}",
                href=HREF,
                due=row.valid_until,
                state="expired" if row.valid_until < today else "expiring",
            )
            for row, name in rows
        ],
    )
