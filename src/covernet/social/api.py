"""JSON routes for red envelopes: create (and pay), read, grab, activate."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from covernet.core import idempotency
from covernet.core.coalesce import Coalescer
from covernet.core.db import unit_of_work_async
from covernet.core.errors import CovernetError
from covernet.core.fastlane import Lane
from covernet.identity.access import (
    Caller,
    Customer,
    Db,
    LaterCustomer,
    Principal,
    Public,
    client_ip,
    has_credentials,
    identify_all,
)
from covernet.identity.models import Role
from covernet.social import grabs, service

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
GrabOutcome = tuple[int, dict[str, Any]] | CovernetError


def _answer(outcome: grabs.Outcome) -> GrabOutcome:
    if isinstance(outcome, CovernetError):
        return outcome
    if outcome is None:  # an answer, not an error: the sold-out flag commits with it
        return 409, SOLD_OUT_BODY
    return 201, {
        "grab_id": outcome.id,
        "envelope_id": outcome.envelope_id,
        "premium_fen": outcome.premium_fen,
        "sum_insured_fen": outcome.sum_insured_fen,
        "hold_until": outcome.hold_until.isoformat() if outcome.hold_until else None,
    }


async def _grab_batch(batch: Sequence[tuple[Caller, str]]) -> list[GrabOutcome]:
    """The grabs that reached this process together: callers identified and shares
    claimed in one unit of work.  If the database refuses the batch (a person's grab in
    another process won the race), each grab is made again on its own."""
    try:
        return await unit_of_work_async(lambda db: _grab_all(db, batch))
    except (IntegrityError, OperationalError):
        return [await _grab_alone(caller, env) for caller, env in batch]


def _grab_all(db: Session, batch: Sequence[tuple[Caller, str]]) -> list[GrabOutcome]:
    callers = identify_all(db, [caller for caller, _ in batch])
    admitted = [
        (i, who, env)
        for i, (who, (_, env)) in enumerate(zip(callers, batch, strict=True))
        if isinstance(who, Principal)
    ]
    claimed = grabs.grab_many(db, [(who, env) for _, who, env in admitted])
    answers: dict[int, GrabOutcome] = {
        i: who for i, who in enumerate(callers) if isinstance(who, CovernetError)
    }
    for (index, _, _), outcome in zip(admitted, claimed, strict=True):
        answers[index] = _answer(outcome)
    return [answers[i] for i in range(len(batch))]


async def _grab_alone(caller: Caller, envelope_id: str) -> GrabOutcome:
    def alone(db: Session) -> GrabOutcome:
        return _answer(grabs.try_grab(db, caller.identify_in(db), envelope_id))

    try:
        return await unit_of_work_async(alone)
    except CovernetError as error:
        return error


_grabber: Coalescer[tuple[Caller, str], GrabOutcome] = Coalescer(_grab_batch)
_SOLD_OUT_ANSWER = JSONResponse(SOLD_OUT_BODY, status_code=409)
GRABBERS = frozenset({Role.customer})


async def grab_answer(caller: Caller, envelope_id: str) -> Response:
    """The answer to a grab.  An envelope this process knows is sold out (for good: a
    share never goes back to the pool) is answered at once, before the caller is even
    identified (sold out is public on the envelope's page anyway); otherwise the grab
    joins the others this process is handling at the moment
    (:mod:`covernet.core.coalesce`): their callers are identified and their shares
    claimed together, in one unit of work."""
    if envelope_id in grabs.SOLD_OUT:
        return _SOLD_OUT_ANSWER
    outcome = await _grabber.submit((caller, envelope_id))
    if isinstance(outcome, CovernetError):
        raise outcome
    status, body = outcome
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


@router.post("/red-envelopes/{envelope_id}/grab", status_code=201)
async def grab_share(envelope_id: str, caller: LaterCustomer) -> Response:
    """Grab one share (one per person; 409 ``sold_out`` once none is left; 401 without
    a credential).  Served by a fast lane (:data:`LANES`) when a credential is
    presented; both answer with :func:`grab_answer`."""
    return await grab_answer(caller, envelope_id)


async def _grab_lane(request: Request, found: re.Match[str]) -> Response | None:
    if not has_credentials(request):
        return None  # the route answers 401
    return await grab_answer(Caller(request, GRABBERS), found.group(1))


# Hot routes served below the framework (covernet.core.fastlane).
LANES = (Lane("POST", re.compile(r"^/api/v1/red-envelopes/([^/]{1,64})/grab$"), _grab_lane),)


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
