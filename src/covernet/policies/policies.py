"""Reading policies: the customer's own, staff by role; status as of today (R16)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from covernet.catalog import service as catalog
from covernet.catalog.spec import Product
from covernet.core import clock
from covernet.core.errors import NotFound
from covernet.identity.access import Principal
from covernet.identity.models import Role
from covernet.policies import trace
from covernet.policies.models import Application, Policy, PolicyStatus

READERS = frozenset({Role.advisor, Role.claims, Role.compliance, Role.ops, Role.admin})


def long_term(product: Product, term_code: str) -> bool:
    """Cover of more than one year (R14, R15, R17)."""
    term = next(t for t in product.terms_options if t.code == term_code)
    return bool(term.whole_life or term.to_age or (term.years and term.years > 1))


def effective_status(policy: Policy, today: date | None = None) -> str:
    """``in_force`` turns ``expired`` the day after its end date, even before the expiry
    job has run; ``pending`` before the effective date."""
    today = today or clock.today()
    if policy.status == PolicyStatus.in_force.value:
        if policy.end_date is not None and policy.end_date < today:
            return PolicyStatus.expired.value
        if policy.effective_date > today:
            return "pending"
    return policy.status


def of_customer(db: Session, customer_id: str) -> list[Policy]:
    return list(
        db.scalars(
            select(Policy)
            .where(Policy.customer_id == customer_id)
            .order_by(Policy.issued_at.desc())
            .limit(500)
        )
    )


def get(db: Session, who: Principal, policy_id: str, *, lock: bool = False) -> Policy:
    """The customer's own policy, or any for staff who serve policies; else 404."""
    policy = db.get(Policy, policy_id, with_for_update=lock)
    if policy is None or (who.role not in READERS and policy.customer_id != who.user_id):
        raise NotFound("no such policy", detail={"field": "policy_id"})
    return policy


def by_verification_code(db: Session, code: str) -> Policy | None:
    return db.scalar(select(Policy).where(Policy.verification_code == code.strip().upper()))


def retention_of(db: Session, app: Application) -> date | None:
    """R14: the sale's record is kept 5 (≤ 1-year cover) or 10 years from the contract's
    end; an application that never became a policy is kept 5 years from its date."""
    policy = db.scalar(select(Policy).where(Policy.application_id == app.id))
    if policy is None:
        return trace.retention_until(clock.to_local(app.created_at).date(), long_term=False)
    product, _ = catalog.product_at_version(db, policy.product_version_id)
    end = policy.end_date
    if policy.ended_at is not None:
        end = (
            min(end, clock.to_local(policy.ended_at).date())
            if end
            else clock.to_local(policy.ended_at).date()
        )
    return trace.retention_until(end, long_term=long_term(product, policy.term_code))


def by_policy_no(db: Session, policy_no: str) -> Policy | None:
    """A policy by its number (for staff search; the caller checks who may see it)."""
    return db.scalar(select(Policy).where(Policy.policy_no == policy_no.strip().upper()))


def lines_by_customer(db: Session, *, limit: int = 200_000) -> dict[str, set[str]]:
    """Each customer's product lines in force (for suggestions of what similar customers
    hold); partner micro-policies without a customer are left out."""
    rows = db.execute(
        select(Policy.customer_id, Policy.line)
        .where(Policy.customer_id.is_not(None), Policy.status == PolicyStatus.in_force.value)
        .distinct()
        .limit(limit)
    )
    out: dict[str, set[str]] = {}
    for customer_id, line in rows:
        if customer_id is not None:
            out.setdefault(customer_id, set()).add(line)
    return out
