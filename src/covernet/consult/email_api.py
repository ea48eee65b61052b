"""The mail provider's inbound webhook (``consult.channels.email``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from covernet.consult import service
from covernet.consult.channels import email
from covernet.core.bodies import json_body_doc
from covernet.core.errors import NotFound
from covernet.identity.access import Db, Principal, allow, open_route

router = APIRouter(prefix="/api/v1", tags=["desk"])

DeskStaff = Annotated[Principal, allow(*service.DESK_ROLES)]


class EmailContactOut(BaseModel):
    conversation_id: str
    address: str  # masked: a***@example.com
    tag: str  # what a customer's subject carries to continue the thread


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


@router.get("/desk/conversations/{conversation_id}/email", response_model=EmailContactOut)
def email_contact(conversation_id: str, db: Db, who: DeskStaff) -> EmailContactOut:
    """The e-mail conversation's customer address, masked, for the desk."""
    conv = service.get_for_staff(db, who, conversation_id)
    address = email.masked_address(db, conv.id)
    if address is None:
        raise NotFound("this conversation has no e-mail address", code="not_an_email_conversation")
    return EmailContactOut(conversation_id=conv.id, address=address, tag=email.tag_of(conv.id))
