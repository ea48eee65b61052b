"""The sandbox insurer's routes (mounted only while some insurer is sent to the sandbox):
``POST /sandbox/insurer/{insurer_code}/events`` takes signed deliveries (an open route:
it authenticates by signature), ``…/fail`` makes it refuse the next N, and ``GET …/events``
lists what it kept (policy facts only; no personal data is ever sent)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from covernet.core.db import unit_of_work
from covernet.identity.access import Db, open_route
from covernet.integration import sandbox

router = APIRouter(tags=["sandbox"])


class ReceivedOut(BaseModel):
    event_id: str
    duplicate: bool
    deliveries: int


class FailOut(BaseModel):
    insurer_code: str
    fail_next: int


class SandboxEventOut(BaseModel):
    event_id: str
    topic: str
    deliveries: int
    received_at: datetime
    body: str


@router.post("/sandbox/insurer/{insurer_code}/events", response_model=ReceivedOut)
@open_route
async def receive(insurer_code: str, request: Request) -> JSONResponse:
    """An outbox delivery to the sandbox insurer: verified (signature, timestamp window,
    event id), kept once per event id, or refused with 503 while told to fail."""
    body = await request.body()
    if len(body) > sandbox.MAX_BODY_BYTES:
        return JSONResponse({"error": "payload_too_large"}, status_code=413)
    event = sandbox.verify(insurer_code, request.headers, body)

    def run() -> sandbox.Received | None:
        with unit_of_work() as db:
            if sandbox.take_failure(db, insurer_code):
                return None
            return sandbox.receive(db, insurer_code, event, body)

    received = await run_in_threadpool(run)
    if received is None:
        return JSONResponse(
            {"error": "sandbox_failure", "message": "the sandbox insurer was told to fail"},
            status_code=503,
        )
    return JSONResponse(
        ReceivedOut(
            event_id=received.event_id,
            duplicate=received.duplicate,
            deliveries=received.deliveries,
        ).model_dump()
    )


@router.post("/sandbox/insurer/{insurer_code}/fail", response_model=FailOut)
@open_route
def fail(
    insurer_code: str,
    db: Db,
    count: Annotated[int, Query(ge=0, le=1000, description="deliveries to refuse")] = 1,
) -> FailOut:
    """Make the sandbox insurer refuse its next ``count`` deliveries (503)."""
    return FailOut(insurer_code=insurer_code, fail_next=sandbox.fail_next(db, insurer_code, count))


@router.get("/sandbox/insurer/{insurer_code}/events", response_model=list[SandboxEventOut])
@open_route
def events(
    insurer_code: str, db: Db, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[SandboxEventOut]:
    """What the sandbox insurer received, newest first, each event once."""
    return [
        SandboxEventOut(
            event_id=e.event_id,
            topic=e.topic,
            deliveries=e.deliveries,
            received_at=e.received_at,
            body=e.body,
        )
        for e in sandbox.received(db, insurer_code, limit=limit)
    ]
