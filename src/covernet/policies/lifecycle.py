"""Getting out of a policy as easily as getting in (R17, R18).

``cancel`` works inside the 犹豫期 and refunds the premium less the fee; ``surrender``
first answers with the amount, the basis, the documents and the time limit, all at once,
and executes only when confirmed with the amount the customer saw.  Both take the policy's
row lock, refund through the payment provider into the account that paid, end the cover
the same day and are audited and traced.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from covernet.audit import service as audit
from covernet.catalog import service as catalog
from covernet.core import clock
from covernet.core.errors import Conflict, Forbidden
from covernet.identity.access import Principal
from covernet.integration import outbox, payloads
from covernet.payments import service as payments
from covernet.policies import policies, trace
from covernet.policies.models import Application, Policy, PolicyStatus
from covernet.policies.surrender import PolicyFacts, SurrenderQuote, surrender_quote


class SurrenderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    confirm: bool = Field(default=False, description="false: only tell me what I would get")
    amount_fen: int | None = Field(
        default=None, ge=0, description="with confirm: the amount you were shown"
    )


def facts_of(db: Session, policy: Policy) -> tuple[PolicyFacts, SurrenderQuote]:
    product, _ = catalog.product_at_version(db, policy.product_version_id)
    payment = next(p for p in product.payment_options if p.code == policy.payment_code)
    facts = PolicyFacts(
        premium_fen=policy.premium_fen,
        frequency=payment.frequency,
        effective_date=policy.effective_date,
        end_date=policy.end_date,
        cooling_off_end=policy.cooling_off_end,
    )
    return facts, surrender_quote(product, facts, clock.today())


def _open(db: Session, who: Principal, policy_id: str) -> Policy:
    policy = policies.get(db, who, policy_id, lock=True)
    if policy.customer_id != who.user_id:
        raise Forbidden("only the policyholder can end this policy (R10)", code="not_policyholder")
    status = policies.effective_status(policy)
    if status not in (PolicyStatus.in_force.value, "pending"):
        raise Conflict(f"the policy is {status}", code="policy_not_in_force")
    return policy


def _end(
    db: Session, who: Principal, policy: Policy, quote: SurrenderQuote, to: PolicyStatus
) -> Policy:
    refund_id = None
    if quote.amount_fen > 0 and policy.payment_id:
        refund = payments.request_refund(
            db,
            policy.payment_id,
            quote.amount_fen,
            "犹豫期退保" if to is PolicyStatus.cancelled else "退保",
            by=audit.Actor("user", who.user_id, "customer"),
        )
        refund_id = refund.id
    policy.status, policy.refund_id = to.value, refund_id
    policy.ended_at = policy.updated_at = clock.now()
    app = db.get(Application, policy.application_id) if policy.application_id else None
    if app is not None:
        trace.system(
            db, app, to.value, basis=quote.basis, amount_fen=quote.amount_fen, fee_fen=quote.fee_fen
        )
    audit.record(
        db,
        f"policy.{to.value}",
        actor=audit.Actor("user", who.user_id, "customer"),
        subject_type="policy",
        subject_id=policy.id,
        detail={"basis": quote.basis, "amount_fen": quote.amount_fen, "refund_id": refund_id},
    )
    outbox.enqueue(  # R19: policy.cancelled / policy.surrendered to the insurer
        db,
        f"policy.{to.value}",
        insurer_code=policy.insurer_code,
        subject_id=policy.id,
        payload=payloads.policy_facts(
            policy, basis=quote.basis, refund_fen=quote.amount_fen, fee_fen=quote.fee_fen
        ),
    )
    return policy


def cancel(db: Session, who: Principal, policy_id: str) -> tuple[Policy, SurrenderQuote]:
    """R17: inside the 犹豫期, the premium back less the fee, no questions asked."""
    policy = _open(db, who, policy_id)
    _, quote = facts_of(db, policy)
    if quote.basis != "cooling_off":
        raise Conflict(
            "the 犹豫期 is over (or this product has none); surrender instead",
            code="cooling_off_over",
            detail={"cooling_off_end": str(policy.cooling_off_end)},
        )
    return _end(db, who, policy, quote, PolicyStatus.cancelled), quote


def surrender(
    db: Session, who: Principal, policy_id: str, data: SurrenderIn
) -> tuple[Policy, SurrenderQuote, bool]:
    """Without ``confirm``: the quote only.  With it: end the policy, if the amount is
    still the one the customer was shown (it changes at midnight)."""
    policy = _open(db, who, policy_id)
    _, quote = facts_of(db, policy)
    if not data.confirm:
        return policy, quote, False
    if data.amount_fen != quote.amount_fen:
        raise Conflict(
            "the amount has changed since it was shown; look again before confirming",
            code="surrender_amount_changed",
            detail={"amount_fen": quote.amount_fen},
        )
    to = PolicyStatus.cancelled if quote.basis == "cooling_off" else PolicyStatus.surrendered
    return _end(db, who, policy, quote, to), quote, True
