"""``POST /api/v1/assistant/ask``: the assistant's answer (with its source article) or a
hand-off to the desk.  Open to anyone; a signed-in customer's questions are linked to
the account."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from covernet.consult import assistant
from covernet.consult.api import visitor_from_request
from covernet.identity.access import Db, Public, client_ip

router = APIRouter(prefix="/api/v1", tags=["assistant"])


class AskIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(description="the customer's question, up to 500 characters")
    lang: Literal["zh", "en"] | None = Field(
        default=None, description="answer language; by default the question's own"
    )
    conversation_id: str | None = Field(
        default=None,
        description="the id an earlier answer gave, to keep the questions of one exchange "
        "together (a hand-off passes the whole exchange to the desk)",
    )


class SourceOut(BaseModel):
    id: str
    title: str
    url: str


class AskOut(BaseModel):
    answer: str = Field(description="the answer, or what happens next when handed off")
    source: SourceOut | None = Field(description="the article the answer comes from")
    confidence: float = Field(description="0 to 1; answers are given only above a threshold")
    handed_off: bool = Field(description="the question goes to a person")
    conversation_id: str | None = Field(
        description="answered: the exchange's id; handed off: the desk's conversation "
        "(null when the desk could not take it)"
    )


@router.post("/assistant/ask", response_model=AskOut)
def ask(body: AskIn, request: Request, db: Db, who: Public) -> AskOut:
    """An anonymous visitor of the web chat sends its ``X-Visitor-Token`` so that a
    hand-off lands in its own chat."""
    reply = assistant.ask(
        db,
        body.question,
        lang=body.lang,
        conversation_id=body.conversation_id,
        customer_id=who.user_id if who.is_customer else None,
        visitor_id=None if who.is_authenticated else visitor_from_request(request),
        client=client_ip(request),
    )
    lang = reply.lang
    source = (
        SourceOut(id=reply.article.id, title=reply.article.title.get(lang), url=reply.article.url)
        if reply.article is not None
        else None
    )
    return AskOut(
        answer=reply.answer,
        source=source,
        confidence=reply.confidence,
        handed_off=reply.handed_off,
        conversation_id=reply.conversation_id,
    )
