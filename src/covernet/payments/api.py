"""Payment routes: provider callbacks (machines, by signature), the payer's view, the
refund monitor."""

from __future__ import annotations

import logging
import re
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from covernet.core import clock
from covernet.core.db import unit_of_work_async
from covernet.core.errors import NotFound
from covernet.core.fastlane import Lane
from covernet.identity.access import Db, Principal, allow, open_route
from covernet.identity.models import STAFF_ROLES, Role
from covernet.payments import monitors as _monitors  # noqa: F401 - registers the R18 monitor
from covernet.payments import providers, service
from covernet.payments.models import Payment, Refund

log = logging.getLogger("covernet.payments")

router = APIRouter(prefix="/api/v1", tags=["payments"])

Reader = Annotated[Principal, allow(Role.customer, *STAFF_ROLES)]
Monitor = Annotated[Principal, allow(Role.compliance, Role.ops, Role.admin)]
MAX_CALLBACK_BYTES = 64_000


class RefundOut(BaseModel):
    id: str
    amount_fen: int
    reason: str
    status: str
    due_at: datetime
    due_date: date
    completed_at: datetime | None
    overdue: bool


class PaymentOut(BaseModel):
    id: str
    purpose: str
    subject_type: str
    subject_id: str
    status: str
    amount_fen: int
    currency: str
    description: str
    insurer_code: str
    provider: str
    pay_url: str | None
    expires_at: datetime
    paid_at: datetime | None
    refundable_fen: int
    refunds: list[RefundOut]


class OverdueOut(RefundOut):
    payment_id: str


def _refund_out(row: Refund, today: date | None = None) -> dict[str, Any]:
    due_date = clock.to_local(row.due_at).date()
    return {
        "id": row.id,
        "amount_fen": row.amount_fen,
        "reason": row.reason,
        "status": row.status,
        "due_at": row.due_at,
        "due_date": due_date,
        "completed_at": row.completed_at,
        "overdue": row.status != "succeeded" and due_date < (today or clock.today()),
    }


def payment_out(db: Db, payment: Payment) -> PaymentOut:
    return PaymentOut(
        id=payment.id,
        purpose=payment.purpose,
        subject_type=payment.subject_type,
        subject_id=payment.subject_id,
        status=payment.status,
        amount_fen=payment.amount_fen,
        currency=payment.currency,
        description=payment.description,
        insurer_code=payment.insurer_code,
        provider=payment.provider,
        pay_url=payment.pay_url if payment.status == "pending" else None,
        expires_at=payment.expires_at,
        paid_at=payment.paid_at,
        refundable_fen=service.refundable_fen(db, payment),
        refunds=[RefundOut(**_refund_out(r)) for r in service.refunds_of(db, payment.id)],
    )


@router.post("/payments/notify/{provider}", include_in_schema=True)
@open_route
async def notify(provider: str, request: Request) -> JSONResponse:
    """A payment provider's callback.  Authenticated by its signature (and timestamp
    window), deduplicated by event id, never trusted for the amount.  Answers the body
    the provider expects; a rejected callback changes nothing (an amount mismatch is
    recorded in the audit log)."""
    adapter = providers.get(provider)
    body = await request.body()
    if len(body) > MAX_CALLBACK_BYTES:
        return JSONResponse({"error": "payload_too_large"}, status_code=413)
    event = adapter.verify_callback(request.headers, body)

    handled = await unit_of_work_async(lambda db: service.handle_event(db, adapter.name, event))
    if not handled.accepted:
        log.warning("payment callback %s refused: %s", event.event_id, handled.outcome.value)
        return JSONResponse(
            {
                "error": handled.outcome.value,
                "message": "the callback's amount does not match the payment",
            },
            status_code=400,
        )
    return JSONResponse(adapter.acknowledge())


@router.get("/payments/refunds/overdue", response_model=list[OverdueOut])
def overdue(
    db: Db, who: Monitor, today: Annotated[date | None, Query()] = None
) -> list[OverdueOut]:
    """Refunds past their due date and not completed (R18: standard 5 days, statutory 30)."""
    today = today or clock.today()
    return [
        OverdueOut(payment_id=r.payment_id, **_refund_out(r, today))
        for r in service.overdue_refunds(db, today)
    ]


@router.get("/payments/{payment_id}", response_model=PaymentOut)
def read_payment(payment_id: str, db: Db, who: Reader) -> PaymentOut:
    """A payment with its refunds: the payer only (others get 404); staff may read."""
    try:
        payment = service.get_payment(db, payment_id)
    except NotFound:
        raise NotFound("no such payment", code="unknown_payment") from None
    if who.role is Role.customer and payment.payer_id != who.user_id:
        raise NotFound("no such payment", code="unknown_payment")
    return payment_out(db, payment)


async def _notify_lane(request: Request, found: re.Match[str]) -> Response | None:
    answer: Response = await notify(found.group(1), request)
    return answer


# Provider callbacks served before FastAPI's routing (covernet.core.fastlane).
LANES = (Lane("POST", re.compile(r"^/api/v1/payments/notify/([^/]+)$"), _notify_lane),)
