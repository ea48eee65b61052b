"""Issuing a policy (R16): one policy per application, with a human-readable number,
its dates and a verification code for the e-policy."""

from __future__ import annotations

import secrets
from datetime import date, timedelta

from sqlalchemy.orm import Session

from covernet.audit import service as audit
from covernet.catalog import service as catalog
from covernet.catalog.pricing import end_date
from covernet.catalog.spec import Product
from covernet.core import clock
from covernet.core.ids import new_id
from covernet.integration import outbox, payloads
from covernet.policies import trace
from covernet.policies.models import Application, ApplicationStatus, Policy, PolicyStatus, Quote
from covernet.social import attribution

# Crockford's base 32 without I, L, O, U: easy to read out and type.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _code(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def policy_number(on: date) -> str:
    """``CN20261201-7KQ2M9XW``: the issue date and 40 random bits."""
    return f"CN{on:%Y%m%d}-{_code(8)}"


def effective_date(product: Product, paid_on: date) -> date:
    """Cover starts ``effective_after_days`` after payment (never before the quoted start,
    which was the same days after the quote)."""
    return paid_on + timedelta(days=product.effective_after_days)


def issue(db: Session, app: Application, *, by: audit.Actor, quote: Quote | None = None) -> Policy:
    """Issue the application's policy (``quote``: the application's, when already read)."""
    product, _ = catalog.product_at_version(db, app.product_version_id)
    today = clock.today()
    if quote is None or quote.id != app.quote_id:
        quote = db.get(Quote, app.quote_id)
    start = max(effective_date(product, today), quote.effective_date if quote else today)
    renewing = app.renewal_of is not None  # continuous cover: no new waiting period
    term = next(t for t in product.terms_options if t.code == app.term_code)
    policy = Policy(
        id=new_id(),  # known before the flush: the audit entry and the outbox name it
        policy_no=policy_number(today),
        verification_code=_code(12),
        application_id=app.id,
        customer_id=app.customer_id,
        product_code=app.product_code,
        product_version_id=app.product_version_id,
        insurer_code=app.insurer_code,
        line=app.line,
        plan_code=app.plan_code,
        term_code=app.term_code,
        payment_code=app.payment_code,
        premium_fen=app.premium_fen,
        sum_insured_fen=app.sum_insured_fen,
        insured_id_index=app.insured_id_index,
        effective_date=start,
        end_date=end_date(term, start, app.insured_birth_date),
        waiting_period_end=(
            # the last day of the waiting period (inclusive, as the e-policy shows it)
            start + timedelta(days=product.waiting_period_days - 1)
            if product.waiting_period_days and not renewing
            else None
        ),
        cooling_off_end=(
            today + timedelta(days=product.cooling_off_days) if product.cooling_off_days else None
        ),
        status=PolicyStatus.in_force.value,
        payment_id=app.payment_id,
        advisor_id=app.advisor_id,
        renewal_of=app.renewal_of,
        renewal_consent_at=clock.now() if renewing else None,
    )
    db.add(policy)
    app.status, app.updated_at = ApplicationStatus.issued.value, clock.now()
    trace.system(db, app, "issued", policy_no=policy.policy_no, effective_date=start.isoformat())
    audit.record(
        db,
        "policy.issue",
        actor=by,
        subject_type="policy",
        subject_id=policy.id,
        detail={"policy_no": policy.policy_no, "application_id": app.id},
    )
    outbox.enqueue(  # R19: the insurer hears of it once this transaction commits
        db,
        "policy.issued",
        insurer_code=policy.insurer_code,
        subject_id=policy.id,
        payload=payloads.policy_facts(policy),
    )
    attribution.on_issued(db, app.id)  # the share links it was submitted through
    return policy
