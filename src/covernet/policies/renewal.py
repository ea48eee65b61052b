"""Renewal and expiry (R8, R20).

Nothing renews by itself: before a policy ends the customer is reminded, and renewing is
a new application from a renewal quote — priced for the next period, starting the day
after the current cover ends, so cover is continuous and no new waiting period runs —
which the customer confirms and pays like any purchase.  Short-term health cover says
"不保证续保" wherever renewal is offered.  Policies past their end date are expired by
:func:`expire_ended`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from covernet.audit import service as audit
from covernet.catalog import service as catalog
from covernet.catalog.pricing import is_on_sale
from covernet.core import clock
from covernet.core.config import get_settings
from covernet.core.crypto import get_cipher
from covernet.core.errors import Conflict
from covernet.identity.access import Principal
from covernet.policies import applications, policies, trace
from covernet.policies.models import Application, Policy, PolicyStatus, Quote
from covernet.policies.quotes import InsuredIn, QuoteIn, QuoteResult, create_quote


@dataclass(frozen=True)
class RenewalState:
    open: bool
    opens_on: date | None
    reminded: bool
    guaranteed: bool
    reason: str | None  # why it cannot be renewed, when it cannot


def state(db: Session, policy: Policy, today: date | None = None) -> RenewalState:
    today = today or clock.today()
    product, _ = catalog.product_at_version(db, policy.product_version_id)
    guaranteed = product.renewal.guaranteed
    reminded = policy.reminded_at is not None
    if policy.end_date is None or policy.application_id is None:
        return RenewalState(False, None, reminded, guaranteed, "not_renewable")
    opens = policy.end_date - timedelta(days=get_settings().renewal_window_days)
    current = catalog.snapshot(db).products.get(policy.product_code)
    if policies.effective_status(policy, today) not in (PolicyStatus.in_force.value, "pending"):
        return RenewalState(False, opens, reminded, guaranteed, "policy_not_in_force")
    if current is None or not is_on_sale(current.product, policy.end_date + timedelta(days=1)):
        return RenewalState(False, opens, reminded, guaranteed, "product_not_on_sale")
    if today < opens:
        return RenewalState(False, opens, reminded, guaranteed, "renewal_not_open")
    if _renewed(db, policy):
        return RenewalState(False, opens, reminded, guaranteed, "already_renewed")
    return RenewalState(True, opens, reminded, guaranteed, None)


def _renewed(db: Session, policy: Policy) -> bool:
    return (
        db.scalar(
            select(Policy.id).where(
                Policy.renewal_of == policy.id,
                Policy.status == PolicyStatus.in_force.value,
            )
        )
        is not None
    )


def renewal_quote(db: Session, who: Principal, policy_id: str) -> QuoteResult:
    """A quote for the next period, starting the day after this policy ends."""
    policy = policies.get(db, who, policy_id)
    if policy.customer_id != who.user_id:
        raise Conflict("only the policyholder can renew", code="not_policyholder")
    found = state(db, policy)
    if not found.open:
        raise Conflict(
            "this policy cannot be renewed now",
            code=found.reason or "not_renewable",
            detail={"opens_on": str(found.opens_on) if found.opens_on else None},
        )
    assert policy.end_date is not None and policy.application_id is not None
    app = db.get(Application, policy.application_id)
    original = db.get(Quote, app.quote_id) if app else None
    assert app is not None and original is not None
    product = catalog.snapshot(db).get(policy.product_code).product
    id_number = get_cipher().decrypt(app.insured_id_enc, context=applications.ID_CONTEXT)
    start = policy.end_date + timedelta(days=1)
    data = QuoteIn(
        product_code=policy.product_code,
        plan_code=policy.plan_code,
        term=policy.term_code,
        payment=policy.payment_code,
        insured=InsuredIn(
            id_number=id_number,
            region=original.region,
            occupation_class=original.occupation_class,
        ),
    )
    return create_quote(
        db, data, who, quote_date=start - timedelta(days=product.effective_after_days)
    )


def check_renewal(db: Session, who: Principal, policy_id: str, quote: Quote) -> Policy:
    """An application that renews ``policy_id`` must come from its renewal quote."""
    policy = policies.get(db, who, policy_id)
    found = state(db, policy)
    if policy.customer_id != who.user_id or not found.open:
        raise Conflict(
            "this policy cannot be renewed now",
            code=found.reason or "not_renewable",
            detail={"field": "renewal_of"},
        )
    assert policy.end_date is not None
    if (
        quote.product_code != policy.product_code
        or quote.effective_date != policy.end_date + timedelta(days=1)
    ):
        raise Conflict(
            "use the renewal quote of this policy",
            code="not_a_renewal_quote",
            detail={"field": "quote_id"},
        )
    return policy


def remind(db: Session, today: date | None = None) -> int:
    """Mark policies whose renewal window opened today or earlier as reminded; the
    customer sees the reminder on the policy (and, with a notifier, by message)."""
    today = today or clock.today()
    horizon = today + timedelta(days=get_settings().renewal_window_days)
    rows = list(
        db.scalars(
            select(Policy).where(
                Policy.status == PolicyStatus.in_force.value,
                Policy.reminded_at.is_(None),
                Policy.end_date.is_not(None),
                Policy.end_date >= today,
                Policy.end_date <= horizon,
                Policy.application_id.is_not(None),
            )
        )
    )
    now = clock.now()
    for policy in rows:
        policy.reminded_at = now
        app = db.get(Application, policy.application_id)
        if app is not None:
            trace.system(db, app, "renewal_reminder", end_date=str(policy.end_date))
    return len(rows)


def expire_ended(db: Session, today: date | None = None) -> int:
    """In-force policies whose cover ended before ``today`` become expired."""
    today = today or clock.today()
    now = clock.now()
    result = db.execute(
        update(Policy)
        .where(Policy.status == PolicyStatus.in_force.value, Policy.end_date < today)
        .values(status=PolicyStatus.expired.value, ended_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    count = int(getattr(result, "rowcount", 0) or 0)
    if count:
        audit.record(db, "policy.expire", detail={"count": count, "before": today.isoformat()})
    return count
