"""What the insurer's core system is told about a policy (R19, R30 data minimisation).

The policy facts it must book (number, product, plan, term, payment option, premium,
sum insured, cover dates, status) and the application id, by which it asks for the
applicant's and insured's personal data over the authenticated insurer API.  Never
names, ID numbers (not even masked), mobiles, health answers, blind indexes or
Covernet's customer and advisor ids.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from covernet.policies.models import Policy


def _day(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def policy_facts(policy: Policy, **extra: Any) -> dict[str, Any]:
    """The payload of a ``policy.*`` event; ``extra`` adds the event's own facts
    (for an ending: the basis and the amount refunded)."""
    facts: dict[str, Any] = {
        "policy_id": policy.id,
        "policy_no": policy.policy_no,
        "application_id": policy.application_id,
        "partner_code": policy.partner_code,
        "external_ref": policy.external_ref,
        "product_code": policy.product_code,
        "line": policy.line,
        "plan_code": policy.plan_code,
        "term_code": policy.term_code,
        "payment_code": policy.payment_code,
        "premium_fen": policy.premium_fen,
        "sum_insured_fen": policy.sum_insured_fen,
        "currency": "CNY",
        "effective_date": _day(policy.effective_date),
        "end_date": _day(policy.end_date),
        "waiting_period_end": _day(policy.waiting_period_end),
        "cooling_off_end": _day(policy.cooling_off_end),
        "status": policy.status,
        "issued_at": policy.issued_at.isoformat() if policy.issued_at else None,
        "ended_at": policy.ended_at.isoformat() if policy.ended_at else None,
    }
    facts.update(extra)
    return facts
