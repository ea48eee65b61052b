"""JSON route for partners' signed events (flight delays, returns, …)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict

from covernet.core.bodies import json_body_doc
from covernet.core.errors import CovernetError
from covernet.identity.access import Principal, allow
from covernet.identity.models import Role
from covernet.partners import events
from covernet.partners.events import EventIn

router = APIRouter(prefix="/api/v1/partner", tags=["partner"])

PartnerKey = Annotated[Principal, allow(Role.partner)]
MAX_BODY_BYTES = 64 * 1024


class EventOut(BaseModel):
    model_config = ConfigDict(extra="allow")  # each result adds its own fields

    event_id: str
    type: str
    result: str
    duplicate: bool


@router.post("/events", response_model=EventOut, openapi_extra=json_body_doc(EventIn))
async def post_event(request: Request, who: PartnerKey) -> Response:
    """Report an event (``flight.delayed``, ``order.returned``) about one of your policies.

    Sign the exact body: ``X-Covernet-Timestamp`` (Unix seconds) and
    ``X-Covernet-Signature`` (hex HMAC-SHA256 of ``"<timestamp>.<body>"`` with your
    signing secret); a timestamp more than 5 minutes off is refused.  Each ``event_id``
    counts once: sending it again answers the first result (``duplicate: true``).
    ``result`` is ``claim_approved`` (an automatic claim, its payout requested),
    ``not_triggered`` (the terms do not pay for it; ``reason`` says why),
    ``not_covered`` (outside the policy's cover; ``reasons``) or ``already_claimed``."""
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise CovernetError(
            f"an event body is at most {MAX_BODY_BYTES // 1024} KiB",
            code="payload_too_large",
            status=413,
        )
    body: dict[str, Any] = await run_in_threadpool(
        events.receive_now, who, dict(request.headers), raw
    )
    return Response(orjson.dumps(body), media_type="application/json")
