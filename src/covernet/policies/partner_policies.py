"""Reading a partner's own micro-policies (for its events about them)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from covernet.core.errors import NotFound, ValidationFailed
from covernet.policies.models import Policy


def of_partner(
    db: Session,
    partner_code: str,
    *,
    external_ref: str | None = None,
    policy_no: str | None = None,
    lock: bool = False,
) -> Policy:
    """The partner's policy by its order/booking reference or by policy number, row-locked
    with ``lock``.  Another partner's policy (or a customer's) is as unknown as none."""
    if not external_ref and not policy_no:
        raise ValidationFailed(
            "name the policy by external_ref or policy_no",
            code="policy_reference_required",
            detail={"field": "data.external_ref"},
        )
    query = select(Policy).where(Policy.partner_code == partner_code)
    if external_ref:
        query = query.where(Policy.external_ref == external_ref)
    if policy_no:
        query = query.where(Policy.policy_no == policy_no.strip().upper())
    if lock:
        query = query.with_for_update()
    policy = db.scalar(query)
    if policy is None:
        raise NotFound(
            "you have no such policy",
            code="unknown_policy",
            detail={"field": "data.external_ref" if external_ref else "data.policy_no"},
        )
    return policy
