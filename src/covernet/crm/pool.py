"""The advisor's pool: which customers belong to which advisor.

A customer has at most one current advisor (``customer_pool``, keyed by customer) and a
history of every advisor they had (``customer_pool_history``). The first advisor who
brought the customer in keeps them — through an advised sale (``referral``), the
advisor's share link (``share_link``) or an assigned conversation — until a supervisor
of the advisor's team, ops or admin reassigns them (``manual``). Claims are made where
the thing happens (:func:`on_signup`, :func:`on_sale`) and by the ``sync_customer_pool``
job, which fills the pool from the applications and share-link events already stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from covernet.audit import service as audit
from covernet.core import clock
from covernet.core.errors import Forbidden, NotFound, ValidationFailed
from covernet.crm import teams
from covernet.crm.models import PoolEntry, PoolHistory, PoolSource
from covernet.identity.models import Role, User
from covernet.social import attribution

if TYPE_CHECKING:  # identity.service calls on_signup: no import cycle at run time
    from covernet.identity.access import Principal

EVERYONE = frozenset({Role.ops, Role.compliance, Role.admin})
ASSIGNERS = frozenset({Role.ops, Role.admin})


@dataclass(frozen=True)
class Scope:
    """Whose customers a staff member sees: ``advisors`` None means everyone's."""

    advisors: frozenset[str] | None

    def covers(self, advisor_id: str | None) -> bool:
        return self.advisors is None or (advisor_id is not None and advisor_id in self.advisors)


def scope_of(db: Session, who: Principal) -> Scope:
    """Ops, compliance and admin see every pool; a supervisor their teams' pools and
    their own; an advisor only their own; anyone else nothing."""
    if who.role in EVERYONE:
        return Scope(None)
    if who.role is Role.advisor and who.user_id is not None:
        return Scope(frozenset({who.user_id, *teams.team_members(db, who.user_id)}))
    return Scope(frozenset())


def current(db: Session, customer_id: str) -> PoolEntry | None:
    return db.get(PoolEntry, customer_id)


def advisors_of(db: Session, customer_ids: list[str]) -> dict[str, str]:
    if not customer_ids:
        return {}
    rows = db.execute(
        select(PoolEntry.customer_id, PoolEntry.advisor_id).where(
            PoolEntry.customer_id.in_(customer_ids)
        )
    )
    return {c: a for c, a in rows}


def customers_of(db: Session, scope: Scope, *, limit: int = 200) -> list[PoolEntry]:
    stmt = select(PoolEntry).order_by(PoolEntry.since.desc(), PoolEntry.customer_id)
    if scope.advisors is not None:
        if not scope.advisors:
            return []
        stmt = stmt.where(PoolEntry.advisor_id.in_(scope.advisors))
    return list(db.scalars(stmt.limit(limit)))


def history(db: Session, customer_id: str) -> list[PoolHistory]:
    return list(
        db.scalars(
            select(PoolHistory)
            .where(PoolHistory.customer_id == customer_id)
            .order_by(PoolHistory.since.desc(), PoolHistory.id.desc())
        )
    )


def _is_customer(db: Session, user_id: str) -> bool:
    return db.scalar(select(User.role).where(User.id == user_id)) == Role.customer.value


def _is_advisor(db: Session, user_id: str) -> bool:
    row = db.execute(select(User.role, User.is_active).where(User.id == user_id)).first()
    return row is not None and row[0] == Role.advisor.value and bool(row[1])


def claim(
    db: Session,
    customer_id: str,
    advisor_id: str,
    source: PoolSource,
    *,
    at: datetime | None = None,
) -> bool:
    """Put the customer in the advisor's pool unless they already have an advisor
    (first come keeps them). True when this call made the assignment. Two concurrent
    claims race on the primary key: one wins, the other finds the winner."""
    if current(db, customer_id) is not None:
        return False
    if not _is_customer(db, customer_id) or not _is_advisor(db, advisor_id):
        return False
    since = at or clock.now()
    try:
        with db.begin_nested():
            db.add(
                PoolEntry(
                    customer_id=customer_id, advisor_id=advisor_id, source=source.value, since=since
                )
            )
            db.flush()
    except IntegrityError:
        return False
    db.add(
        PoolHistory(
            customer_id=customer_id, advisor_id=advisor_id, source=source.value, since=since
        )
    )
    db.flush()
    return True


def on_signup(db: Session, customer_id: str) -> None:
    """A new customer who came through an advisor's share link joins their pool."""
    link = attribution.link_by_code(db, attribution.current_code())
    if link is not None and link.owner_role == Role.advisor.value:
        claim(db, customer_id, link.owner_id, PoolSource.share_link)


def on_sale(db: Session, customer_id: str, advisor_id: str | None) -> None:
    """An application: the advisor who advised it, else the advisor whose link it came
    through, gets the customer (when nobody has them yet)."""
    if advisor_id is not None and claim(db, customer_id, advisor_id, PoolSource.referral):
        return
    on_signup(db, customer_id)


def on_conversation(db: Session, customer_id: str, advisor_id: str) -> None:
    """A desk conversation assigned to an advisor (for the desk to call)."""
    claim(db, customer_id, advisor_id, PoolSource.conversation)


def assign(
    db: Session, who: Principal, customer_id: str, advisor_id: str, reason: str
) -> PoolEntry:
    """Manual (re)assignment by ops, admin or a supervisor of both the current and the
    new advisor; the previous assignment is closed in the history."""
    reason = " ".join(reason.split())
    if not 2 <= len(reason) <= 200:
        raise ValidationFailed(
            "give a reason of 2 to 200 characters",
            code="reason_required",
            detail={"field": "reason"},
        )
    if not _is_customer(db, customer_id):
        raise NotFound("no such customer", code="customer_not_found")
    if not _is_advisor(db, advisor_id):
        raise ValidationFailed(
            "the new advisor is not an active advisor",
            code="not_an_advisor",
            detail={"field": "advisor_id"},
        )
    row = db.get(PoolEntry, customer_id, with_for_update=True, populate_existing=True)
    if who.role not in ASSIGNERS:
        led = (
            teams.team_members(db, who.user_id)
            if who.role is Role.advisor and who.user_id
            else set()
        )
        if not led or advisor_id not in led or (row is not None and row.advisor_id not in led):
            raise Forbidden(
                "only ops, admin or the supervisor of both advisors may reassign",
                code="not_your_team",
            )
    now = clock.now()
    if row is not None:
        if row.advisor_id == advisor_id:
            return row
        open_rows = db.scalars(
            select(PoolHistory).where(
                PoolHistory.customer_id == customer_id, PoolHistory.until.is_(None)
            )
        )
        for old in open_rows:
            old.until = now
        previous = row.advisor_id
        row.advisor_id, row.source, row.since, row.assigned_by = (
            advisor_id,
            PoolSource.manual.value,
            now,
            who.user_id,
        )
    else:
        previous = None
        row = PoolEntry(
            customer_id=customer_id,
            advisor_id=advisor_id,
            source=PoolSource.manual.value,
            since=now,
            assigned_by=who.user_id,
        )
        try:
            with db.begin_nested():
                db.add(row)
                db.flush()
        except IntegrityError:  # a claim placed the customer meanwhile: reassign from it
            return assign(db, who, customer_id, advisor_id, reason)
    db.add(
        PoolHistory(
            customer_id=customer_id,
            advisor_id=advisor_id,
            source=PoolSource.manual.value,
            since=now,
            assigned_by=who.user_id,
            reason=reason,
        )
    )
    db.flush()
    audit.record(
        db,
        "customer.assign",
        actor=audit.Actor("user", who.user_id, who.role.value if who.role else None),
        subject_type="user",
        subject_id=customer_id,
        detail={"advisor_id": advisor_id, "previous_advisor_id": previous},
    )
    return row


def sync(db: Session) -> int:
    """The ``sync_customer_pool`` job: claim customers from the advised applications
    and the advisors' share-link sign-ups and purchases already stored, oldest first
    (so the first advisor keeps them). Safe to run again; returns how many it placed."""
    from covernet.policies import applications
    from covernet.social import links

    placed = 0
    for customer_id, advisor_id, at in applications.advised_sales(db):
        placed += claim(db, customer_id, advisor_id, PoolSource.referral, at=at)
    found = links.advisor_attributions(db)
    buyers = applications.customers_of(db, [s for _, k, s, _ in found if k == "purchase"])
    for advisor_id, kind, subject, at in found:
        buyer = buyers.get(subject) if kind == "purchase" else subject
        if buyer is not None:
            placed += claim(db, buyer, advisor_id, PoolSource.share_link, at=at)
    return placed
