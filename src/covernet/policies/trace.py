"""The sale's trace (可回溯, R13, R14): every page shown with its content hash and document
version, every confirmation, and what happened after, with time and device.

Written in the transaction of the step it records, read back as a timeline the customer
(their own) and staff can replay and export.  Retention follows R14 from the contract's
end: 5 years for cover of a year or less, 10 years for longer cover.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from covernet.catalog.documents import SaleDocument
from covernet.core import clock
from covernet.policies.models import Application, TraceEvent

if TYPE_CHECKING:
    from covernet.policies.applications import ApplicationIn

SHORT_RETENTION_YEARS = 5  # cover of one year or less (R14)
LONG_RETENTION_YEARS = 10


def _parse_time(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    moment = clock.as_utc(moment)
    now = clock.now()
    # A client clock may be a little off, never in the future or more than a day back.
    return moment if now.timestamp() - 86_400 <= moment.timestamp() <= now.timestamp() else None


def record_application(
    db: Session,
    app: Application,
    docs: list[SaleDocument],
    *,
    version: int,
    data: ApplicationIn,
    warnings: list[str],
    ip: str,
    user_agent: str,
) -> None:
    """Each document shown and confirmed, the suitability warnings and the submission."""
    shown = {s.document: _parse_time(s.shown_at) for s in data.shown}
    now = clock.now()
    events = []
    for doc in docs:
        common = {
            "application_id": app.id,
            "document": doc.code,
            "document_version": version,
            "content_hash": doc.content_hash,
            "ip": ip,
            "user_agent": user_agent[:255],
        }
        events.append(
            TraceEvent(
                kind="shown", step=doc.code, at=shown.get(doc.code) or now, detail={}, **common
            )
        )
        events.append(TraceEvent(kind="confirmed", step=doc.code, at=now, detail={}, **common))
    if data.uncertainty_statement:
        events.append(
            TraceEvent(
                application_id=app.id,
                kind="confirmed",
                step="uncertainty_statement",
                detail={"typed": True},
                at=now,
                ip=ip,
                user_agent=user_agent[:255],
            )
        )
    for warning in warnings:
        events.append(
            TraceEvent(
                application_id=app.id,
                kind="confirmed",
                step="suitability",
                detail={"warning": warning, "chose_to_continue": True},
                at=now,
                ip=ip,
                user_agent=user_agent[:255],
            )
        )
    events.append(
        TraceEvent(
            application_id=app.id,
            kind="submitted",
            step="application",
            detail={"premium_fen": app.premium_fen, "product": app.product_code},
            at=now,
            ip=ip,
            user_agent=user_agent[:255],
        )
    )
    db.add_all(events)


def system(db: Session, app: Application, step: str, **detail: Any) -> None:
    """A step the platform took (paid, underwriting, issued, refunded …)."""
    db.add(
        TraceEvent(application_id=app.id, kind="system", step=step, detail=detail, at=clock.now())
    )


def timeline(db: Session, application_id: str) -> list[TraceEvent]:
    return list(
        db.scalars(
            select(TraceEvent)
            .where(TraceEvent.application_id == application_id)
            .order_by(TraceEvent.at, TraceEvent.id)
        )
    )


def retention_until(end: date | None, *, long_term: bool) -> date | None:
    """R14: how long the sale's record is kept (None while whole-life cover runs)."""
    if end is None:
        return None
    years = LONG_RETENTION_YEARS if long_term else SHORT_RETENTION_YEARS
    try:
        return end.replace(year=end.year + years)
    except ValueError:  # 29 February
        return end.replace(year=end.year + years, day=28)
