"""Questions from live-session viewers: each viewer's questions about one session
form one conversation (channel ``live``), about the session's first product, so it is
routed to an advisor licensed for that line.  Answers reach the viewer in the same
chat widget (the fan-out), like web chat."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from covernet.compliance.models import LiveSession, LiveStatus
from covernet.consult import service
from covernet.consult.channels import base
from covernet.consult.models import ACTIVE_STATES, Channel, Conversation, ConversationMessage
from covernet.core.errors import Conflict

OPEN_FOR_QUESTIONS = (LiveStatus.scheduled.value, LiveStatus.live.value)


class LiveChannel:
    name = Channel.live.value

    def send(self, db: Session, conversation: Conversation, message: ConversationMessage) -> None:
        return None  # viewers read answers in the chat widget (the socket fan-out)


def receive(db: Session, caller: service.Caller, session: LiveSession, body: str) -> Conversation:
    """Add the viewer's question to their conversation about ``session`` or open one."""
    if session.status not in OPEN_FOR_QUESTIONS:
        raise Conflict(
            "questions are taken before and during the live session",
            code="live_not_taking_questions",
        )
    found = _open_of(db, caller, session.id)
    if found is not None:
        service.customer_message(db, caller, found.id, body, channel=Channel.live.value)
        return found
    conv, _ = service.start(
        db,
        caller,
        channel=Channel.live.value,
        body=body,
        subject=session.title,
        product_code=session.product_codes[0] if session.product_codes else None,
        live_session_id=session.id,
    )
    return conv


def _open_of(db: Session, caller: service.Caller, session_id: str) -> Conversation | None:
    stmt = select(Conversation).where(
        Conversation.live_session_id == session_id,
        Conversation.state.in_(ACTIVE_STATES),
        Conversation.merged_into_id.is_(None),
    )
    if caller.customer_id:
        stmt = stmt.where(Conversation.customer_id == caller.customer_id)
    else:
        stmt = stmt.where(
            Conversation.customer_id.is_(None), Conversation.visitor_id == caller.visitor_id
        )
    return db.scalars(stmt.order_by(Conversation.created_at.desc()).limit(1)).first()


base.register(LiveChannel())
