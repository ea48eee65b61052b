"""JSON routes for share links and referral rewards, and the middleware that carries a
visitor's share code (signed cookie, or an explicit ``X-Share-Code`` header) to the
attribution hooks of the request it came with."""

from __future__ import annotations

import json
import logging

import anyio
from fastapi import APIRouter
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from covernet.core.config import get_settings
from covernet.core.db import unit_of_work
from covernet.identity.access import AnyUser, Db, Public
from covernet.social import attribution, links, rewards
from covernet.social.link_models import EventKind

log = logging.getLogger("covernet.social")
router = APIRouter(prefix="/api/v1", tags=["share links"])
HEADER = "x-share-code"
QUOTES_PATH = "/api/v1/quotes"


class FunnelOut(BaseModel):
    counts: dict[str, int]
    rates: dict[str, float | None]
    chain: dict[str, int]


class ShareLinkOut(BaseModel):
    id: str
    code: str
    url: str
    target: str
    target_id: str
    target_path: str
    parent_id: str | None
    depth: int
    shared_on: int
    funnel: FunnelOut


def share_url(code: str) -> str:
    return get_settings().public_url.rstrip("/") + f"/s/{code}"


def link_out(stats: links.LinkStats) -> ShareLinkOut:
    link = stats.link
    return ShareLinkOut(
        id=link.id,
        code=link.code,
        url=share_url(link.code),
        target=link.target_kind,
        target_id=link.target_id,
        target_path=links.target_path(link.target_kind, link.target_id),
        parent_id=link.parent_id,
        depth=link.depth,
        shared_on=stats.children,
        funnel=FunnelOut(
            counts=stats.funnel.counts, rates=stats.funnel.rates, chain=stats.funnel.chain
        ),
    )


@router.post("/share-links", status_code=201, response_model=ShareLinkOut)
def create_link(body: links.ShareLinkIn, db: Db, who: AnyUser) -> ShareLinkOut:
    row = links.create(db, who, body, arrived_with=attribution.current_code())
    return link_out(links.stats(db, who, row.id))


@router.get("/share-links", response_model=list[ShareLinkOut])
def list_links(db: Db, who: AnyUser) -> list[ShareLinkOut]:
    return [link_out(s) for s in links.own_links(db, who)]


@router.get("/share-links/{link_id}", response_model=ShareLinkOut)
def get_link(link_id: str, db: Db, who: AnyUser) -> ShareLinkOut:
    return link_out(links.stats(db, who, link_id))


@router.get("/referral-rewards", response_model=list[rewards.Reward])
def referral_rewards(_: Public) -> list[rewards.Reward]:
    """The referral rewards the rules allow (R4, R12), as configured."""
    return rewards.current().rewards


def _code_of(scope: Scope) -> str | None:
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
    explicit = headers.get(HEADER)
    if explicit:
        return explicit.strip()[:24] or None
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == attribution.COOKIE:
            return attribution.verify(value.strip('"'))
    return None


def _record_quote(code: str, body: bytes) -> None:
    try:
        quote_id = json.loads(body).get("quote_id")
    except (ValueError, AttributeError):
        return
    if isinstance(quote_id, str):
        with unit_of_work() as db:
            attribution.record(db, EventKind.quote, quote_id, code=code)


class ShareAttribution:
    """Pure ASGI middleware: the request's share code is current while it is handled.
    Quotes are written by the group commit outside any unit of work, so a quote made
    with a code is credited in a short transaction of its own once it is committed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        code = _code_of(scope)
        if code is None:
            await self.app(scope, receive, send)
            return
        quoting = scope["method"] == "POST" and scope["path"] == QUOTES_PATH
        status, body = 0, bytearray()

        async def watching_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and status == 201:
                body.extend(message.get("body", b""))
            await send(message)

        with attribution.using(code):
            await self.app(scope, receive, watching_send if quoting else send)
        if quoting and status == 201:
            try:
                await anyio.to_thread.run_sync(_record_quote, code, bytes(body))
            except Exception as exc:  # attribution never fails the quote itself
                log.warning("quote attribution failed: %s", type(exc).__name__)
