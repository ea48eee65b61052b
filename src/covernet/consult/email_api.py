"""The mail provider's inbound webhook (``consult.channels.email``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from covernet.consult.channels import email
from covernet.core.bodies import json_body_doc
from covernet.identity.access import open_route

router = APIRouter(prefix="/api/v1", tags=["desk"])


@router.post(
    "/channels/email/inbound",
    status_code=200,
    openapi_extra=json_body_doc(email.InboundMail),
)
@open_route
async def inbound_email(request: Request) -> dict[str, Any]:
    """One inbound mail from the provider, authenticated by its signature
    (``X-Covernet-Timestamp``, ``X-Covernet-Signature``) and kept once per Message-ID.
    Answers the conversation it landed in and whether it continued a thread."""
    raw = await request.body()
    return await run_in_threadpool(email.receive_signed, request.headers, raw)
