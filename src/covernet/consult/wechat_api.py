"""The official-account platform's callback (``consult.channels.wechat``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from covernet.consult import service
from covernet.consult.channels import wechat
from covernet.core.errors import NotFound
from covernet.identity.access import Db, Principal, allow, open_route

router = APIRouter(prefix="/api/v1", tags=["desk"])

DeskStaff = Annotated[Principal, allow(*service.DESK_ROLES)]
Signature = Annotated[str, Query(max_length=64)]
Stamp = Annotated[str, Query(max_length=16)]
Nonce = Annotated[str, Query(max_length=64)]


class WechatContactOut(BaseModel):
    conversation_id: str
    openid: str  # masked: oUpF****eS6o


@router.get("/channels/wechat/callback", response_class=PlainTextResponse)
@open_route
def wechat_verify(
    signature: Signature = "",
    timestamp: Stamp = "",
    nonce: Nonce = "",
    echostr: Annotated[str, Query(max_length=128)] = "",
) -> PlainTextResponse:
    """The platform's URL verification: ``echostr`` back when the signature (SHA-1 of
    the sorted token, timestamp and nonce) holds; 401 otherwise, 403 when unconfigured."""
    return PlainTextResponse(wechat.verify_url(signature, timestamp, nonce, echostr))


@router.post("/channels/wechat/callback", response_class=PlainTextResponse)
@open_route
async def wechat_callback(
    request: Request,
    signature: Signature = "",
    timestamp: Stamp = "",
    nonce: Nonce = "",
) -> PlainTextResponse:
    """One message from the platform (XML), signed in the query and kept once per
    MsgId; answers ``success``."""
    raw = await request.body()
    answer = await run_in_threadpool(wechat.receive_signed, signature, timestamp, nonce, raw)
    return PlainTextResponse(answer)


@router.get("/desk/conversations/{conversation_id}/wechat", response_model=WechatContactOut)
def wechat_contact(conversation_id: str, db: Db, who: DeskStaff) -> WechatContactOut:
    """The official-account conversation's customer openid, masked, for the desk."""
    conv = service.get_for_staff(db, who, conversation_id)
    openid = wechat.masked_openid(db, conv.id)
    if openid is None:
        raise NotFound(
            "this conversation has no official-account sender", code="not_a_wechat_conversation"
        )
    return WechatContactOut(conversation_id=conv.id, openid=openid)
