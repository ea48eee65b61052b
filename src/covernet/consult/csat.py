"""Customer satisfaction: once a conversation is resolved the customer is asked for a
score from 1 to 5 and a comment, in the chat and by notification; one answer per
conversation, only after resolution."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import update
from sqlalchemy.orm import Session

from covernet.audit import service as audit
from covernet.consult import chat
from covernet.consult.models import Conversation, State
from covernet.core import clock
from covernet.core.errors import Conflict
from covernet.notify import service as notify


class CsatIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    score: int = Field(ge=1, le=5, description="1 (very unhappy) to 5 (very happy)")
    comment: str | None = Field(default=None, max_length=1000)


def ask(db: Session, conv: Conversation) -> None:
    """Put the survey in the chat and tell the customer (no second survey once answered)."""
    from covernet.consult import service

    if conv.csat_at is not None:
        return
    service.add_system_message(db, conv, "csat", purpose="csat_request")
    if conv.customer_id:
        notify.send(
            db,
            user_id=conv.customer_id,
            topic="desk.csat",
            subject_type="conversation",
            subject_id=conv.id,
            title="请为本次咨询服务评分",
            body="您的咨询已处理完毕，欢迎在咨询窗口为本次服务打分（1–5分）并留下意见。",
            title_en="Please rate our service",
            body_en="Your conversation is resolved. Rate it from 1 to 5 in the chat window.",
            channels=("inbox",),
        )


def submit(db: Session, conv: Conversation, data: CsatIn) -> Conversation:
    """Record the customer's answer: once, and only for a resolved conversation."""
    if conv.state != State.resolved.value and conv.resolved_at is None:
        raise Conflict("the survey opens when the conversation is resolved", code="csat_not_open")
    comment = (data.comment or "").strip() or None
    result = db.execute(
        update(Conversation)
        .where(Conversation.id == conv.id, Conversation.csat_at.is_(None))
        .values(csat_score=data.score, csat_comment=comment, csat_at=clock.now())
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        raise Conflict("this conversation has been rated already", code="csat_already_given")
    db.refresh(conv)
    audit.record(
        db,
        "conversation.csat",
        subject_type="conversation",
        subject_id=conv.id,
        detail={"score": data.score},
    )
    chat.announce(db, {"type": "conversation", "conversation_id": conv.id})
    return conv
