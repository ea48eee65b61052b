"""Payout routes: staff read a payout (masked account only); the sandbox's test hook
``POST /sandbox/payouts/{payout_id}/fail`` (mounted only while the sandbox is the
configured provider)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel

from covernet.identity.access import Db, Principal, allow, open_route
from covernet.identity.models import Role
from covernet.payments import payouts
from covernet.payments.providers import sandbox_payouts

router = APIRouter(prefix="/api/v1", tags=["payments"])
sandbox_router = APIRouter(tags=["sandbox"])

PayoutReader = Annotated[Principal, allow(Role.claims, Role.compliance, Role.admin)]


class PayoutAttemptOut(BaseModel):
    number: int
    status: str
    provider_ref: str | None
    failure: str | None
    created_at: datetime
    completed_at: datetime | None


class PayoutOut(BaseModel):
    id: str
    purpose: str
    subject_type: str
    subject_id: str
    insurer_code: str
    amount_fen: int
    currency: str
    status: str
    payee_name_masked: str
    payee_account_masked: str
    provider: str
    provider_ref: str | None
    failure: str | None
    created_at: datetime
    paid_at: datetime | None
    failed_at: datetime | None
    attempts: list[PayoutAttemptOut]


@router.get("/payouts/{payout_id}", response_model=PayoutOut)
def read_payout(payout_id: str, db: Db, who: PayoutReader) -> PayoutOut:
    """A payout with its provider attempts; the payee's account and name masked."""
    payout = payouts.get_payout(db, payout_id)
    return PayoutOut(
        id=payout.id,
        purpose=payout.purpose,
        subject_type=payout.subject_type,
        subject_id=payout.subject_id,
        insurer_code=payout.insurer_code,
        amount_fen=payout.amount_fen,
        currency=payout.currency,
        status=payout.status,
        payee_name_masked=payouts.masked_payee_name(payout),
        payee_account_masked=payout.payee_account_masked,
        provider=payout.provider,
        provider_ref=payout.provider_ref,
        failure=payout.failure,
        created_at=payout.created_at,
        paid_at=payout.paid_at,
        failed_at=payout.failed_at,
        attempts=[
            PayoutAttemptOut.model_validate(a, from_attributes=True)
            for a in payouts.attempts_of(db, payout.id)
        ],
    )


@sandbox_router.post("/sandbox/payouts/{payout_id}/fail")
@open_route
def fail_payout(payout_id: str, db: Db) -> dict[str, Any]:
    """Make the sandbox fail this payout while its confirmation is undelivered (tests,
    demos): a ``payout.failed`` callback is queued instead.  (A payee account ending in
    ``0000`` always fails.)"""
    return sandbox_payouts.fail_payout(db, payout_id)
