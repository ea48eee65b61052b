"""JSON routes for red envelopes: create (and pay), read, grab, activate."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session

from covernet.core import idempotency
from covernet.identity.access import Customer, Db, LaterCustomer, Principal, Public, client_ip
from covernet.social import service

router = APIRouter(prefix="/api/v1", tags=["social"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=idempotency.HEADER,
        description="repeat a request with the same key to get the first answer back",
    ),
]


@router.post("/red-envelopes", status_code=201)
async def create_envelope(
    body: service.EnvelopeIn, who: Customer, key: IdempotencyKey = None
) -> Response:
    """Create an envelope of gifted cover (R12) and open its payment; it opens once paid."""

    def action(db: Session) -> tuple[int, Any]:
        envelope, url = service.create(db, who, body)
        return 201, {**service.view(db, who, envelope.id), "pay_url": url}

    status, result, replayed = await run_in_threadpool(
        idempotency.run_once,
        scope=f"{who.user_id}:red-envelopes",
        key=key,
        body=body.model_dump(mode="json"),
        action=action,
    )
    headers = {"Idempotency-Replayed": "true"} if replayed else None
    return JSONResponse(result, status_code=status, headers=headers)


@router.get("/red-envelopes/{envelope_id}")
def read_envelope(envelope_id: str, db: Db, who: Public) -> dict[str, Any]:
    """The sender sees every grab (masked names) and refunds; a grabber sees their own."""
    return service.view(db, who, envelope_id)


SOLD_OUT_BODY = {"error": "sold_out", "message": "every share of this envelope has been grabbed"}


def _grab(db: Session, who: Principal, envelope_id: str) -> tuple[int, dict[str, Any]]:
    share = service.try_grab(db, who, envelope_id)
    if share is None:  # an answer, not an error: the sold-out flag commits with it
        return 409, SOLD_OUT_BODY
    return 201, {
        "grab_id": share.id,
        "envelope_id": share.envelope_id,
        "premium_fen": share.premium_fen,
        "sum_insured_fen": share.sum_insured_fen,
        "hold_until": share.hold_until.isoformat() if share.hold_until else None,
    }


@router.post("/red-envelopes/{envelope_id}/grab", status_code=201)
async def grab_share(envelope_id: str, caller: LaterCustomer) -> Response:
    """Grab one share (one per person; 409 ``sold_out`` once none is left).

    A signed-in caller (401 without a credential) of an envelope this process knows is
    sold out for good is answered at once, with no query at all (sold out is public on
    the envelope's page anyway); otherwise the caller is identified in the grab's own
    unit of work: one thread hop, one transaction."""
    if envelope_id in service.SOLD_OUT:
        return JSONResponse(SOLD_OUT_BODY, status_code=409)
    status, body = await caller.run(lambda db, who: _grab(db, who, envelope_id))
    return JSONResponse(body, status_code=status)


@router.post("/red-envelope-grabs/{grab_id}/activate", status_code=201)
def activate_grab(
    grab_id: str, body: service.ActivateIn, request: Request, db: Db, who: Customer
) -> dict[str, Any]:
    """Activate a grabbed share into a gifted policy in the recipient's name (R12, R13)."""
    share, policy = service.activate(
        db,
        who,
        grab_id,
        body,
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent", ""),
    )
    return {
        "grab_id": share.id,
        "status": share.status,
        "policy_id": policy.id,
        "policy_no": policy.policy_no,
        "sum_insured_fen": policy.sum_insured_fen,
        "premium_fen": policy.premium_fen,
        "gifted": policy.gifted,
    }
