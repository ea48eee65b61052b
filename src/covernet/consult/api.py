"""The desk's JSON routes: the customer's side (start a chat, write, read the history,
rate), the desk's side (inbox, reply, note, state, transfer, agents) and live-session
viewers' questions.

The customer's side is open to signed-in customers and to anonymous visitors holding
the signed visitor token (``POST /api/v1/chat/visitor``, sent back as
``X-Visitor-Token``); a visitor sees only the conversations started with their token.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from covernet.compliance import live
from covernet.consult import csat, service
from covernet.consult.models import Availability, Conversation, ConversationMessage, State
from covernet.core.config import get_settings
from covernet.core.errors import Forbidden, NotFound, Unauthenticated
from covernet.core.ids import new_id
from covernet.core.masking import mask_name
from covernet.identity import service as identity
from covernet.identity.access import Db, Principal, Public, allow
from covernet.identity.models import Role

router = APIRouter(prefix="/api/v1", tags=["desk"])

DeskStaff = Annotated[Principal, allow(*service.DESK_ROLES)]
DeskAdmin = Annotated[Principal, allow(Role.ops, Role.admin)]
VisitorToken = Annotated[
    str | None,
    Header(alias="X-Visitor-Token", description="the signed token of an anonymous visitor"),
]
VISITOR_HEADER = "x-visitor-token"


# Visitors ---------------------------------------------------------------------------


def _visitor_signature(visitor_id: str) -> str:
    key = get_settings().secret_key.encode()
    return hmac.new(key, f"visitor:{visitor_id}".encode(), hashlib.sha256).hexdigest()[:32]


def new_visitor_token() -> str:
    visitor_id = new_id()
    return f"{visitor_id}.{_visitor_signature(visitor_id)}"


def visitor_of(token: str | None) -> str | None:
    """The visitor id in a well-signed token, else None."""
    if not token:
        return None
    visitor_id, _, signature = token.partition(".")
    expected = _visitor_signature(visitor_id)
    if visitor_id and hmac.compare_digest(signature.encode(), expected.encode()):
        return visitor_id
    return None


def caller_of(who: Principal, token: str | None) -> service.Caller:
    """The customer side: a customer's account, else a visitor's valid token."""
    if who.is_customer:
        return service.Caller(customer_id=who.user_id)
    if who.is_authenticated:
        raise Forbidden("this is the customers' side of the chat", code="customers_only")
    visitor = visitor_of(token)
    if visitor is None:
        raise Unauthenticated(
            "sign in or start a visitor chat first (X-Visitor-Token)", code="visitor_required"
        )
    return service.Caller(visitor_id=visitor)


# Bodies -----------------------------------------------------------------------------


class VisitorOut(BaseModel):
    visitor_token: str


class StartIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(min_length=1, max_length=service.MAX_BODY)
    product_code: str | None = Field(default=None, max_length=64)
    subject: str | None = Field(default=None, max_length=200)


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(min_length=1, max_length=service.MAX_BODY)
    private: bool = Field(default=False, description="a note only the desk sees (staff only)")


class AdvisorBlock(BaseModel):
    """Who answered (R2): name, institution and 执业证编号 at the time of sending."""

    name: str
    institution: str | None
    license_no: str | None


class MessageOut(BaseModel):
    id: str
    conversation_id: str
    author_kind: str
    channel: str
    body: str
    private: bool
    purpose: str
    advisor: AdvisorBlock | None
    created_at: datetime


class ConversationOut(BaseModel):
    id: str
    channel: str
    kind: str
    state: str
    priority: str
    subject: str
    product_line: str | None
    product_code: str | None
    assignee_id: str | None
    assignee_name: str | None
    created_at: datetime
    last_message_at: datetime | None
    first_response_at: datetime | None
    resolved_at: datetime | None
    snooze_until: datetime | None
    complaint_due_at: datetime | None
    csat_given: bool
    csat_score: int | None


class CustomerBlock(BaseModel):
    """The customer as the desk sees them: masked."""

    name: str | None
    mobile: str | None
    visitor: bool


class SlaClockOut(BaseModel):
    name: str = Field(description="first_response, next_response, resolution or complaint")
    state: str = Field(description="met, missed, running, near or breached")
    used_minutes: float
    allowed_minutes: float


class DeskConversationOut(ConversationOut):
    priority_reason: str | None
    outcome: str | None
    outcome_at: datetime | None
    merged_into_id: str | None
    customer: CustomerBlock
    sla: list[SlaClockOut]
    messages: list[MessageOut]


class OutcomeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: str = Field(min_length=1, max_length=1000)


class MergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    into: str = Field(max_length=36, description="the conversation that stays")


class StateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: State
    snooze_until: AwareDatetime | None = None


class TransferIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to_user_id: str = Field(max_length=36)


class AgentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    skills: list[str] = Field(max_length=20)
    availability: Availability = Availability.offline
    max_open: int = Field(default=5, ge=1, le=100)


class AvailabilityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    availability: Availability


class AgentOut(BaseModel):
    user_id: str
    name: str
    skills: list[str]
    availability: str
    max_open: int
    active: int


class QuestionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(min_length=1, max_length=service.MAX_BODY)


def message_out(row: ConversationMessage) -> MessageOut:
    advisor = None
    if row.author_kind == "advisor":
        advisor = AdvisorBlock(
            name=row.advisor_name or "-",
            institution=row.advisor_institution,
            license_no=row.advisor_license_no,
        )
    return MessageOut(
        id=row.id,
        conversation_id=row.conversation_id,
        author_kind=row.author_kind,
        channel=row.channel,
        body=row.body,
        private=row.private,
        purpose=row.purpose,
        advisor=advisor,
        created_at=row.created_at,
    )


def conversation_out(db: Session, conv: Conversation) -> ConversationOut:
    summary = service.summaries(db, [conv])[0]
    return ConversationOut(
        id=conv.id,
        channel=conv.channel,
        kind=conv.kind,
        state=conv.state,
        priority=conv.priority,
        subject=conv.subject,
        product_line=conv.product_line,
        product_code=conv.product_code,
        assignee_id=conv.assignee_id,
        assignee_name=summary.assignee_name,
        created_at=conv.created_at,
        last_message_at=conv.last_message_at,
        first_response_at=conv.first_response_at,
        resolved_at=conv.resolved_at,
        snooze_until=conv.snooze_until,
        complaint_due_at=conv.complaint_due_at,
        csat_given=conv.csat_at is not None,
        csat_score=conv.csat_score,
    )


def conversation_event(db: Session, conv: Conversation) -> dict[str, Any]:
    """What a socket is told about a conversation (the desk filters by ``assignee_id``
    and ``product_line``)."""
    return conversation_out(db, conv).model_dump(mode="json")


def customer_block(db: Session, conv: Conversation) -> CustomerBlock:
    user = identity.get_user(db, conv.customer_id)
    if user is None:
        return CustomerBlock(name=None, mobile=None, visitor=True)
    return CustomerBlock(
        name=mask_name(user.name), mobile=identity.masked_mobile(user), visitor=False
    )


def desk_view(db: Session, conv: Conversation) -> DeskConversationOut:
    from covernet.consult import monitors

    base = conversation_out(db, conv).model_dump()
    return DeskConversationOut(
        **base,
        priority_reason=conv.priority_reason,
        outcome=conv.outcome,
        outcome_at=conv.outcome_at,
        merged_into_id=conv.merged_into_id,
        customer=customer_block(db, conv),
        sla=[SlaClockOut(**c) for c in monitors.clocks_out(monitors.clocks_for(db, conv))],
        messages=[message_out(m) for m in service.messages(db, conv, staff=True)],
    )


# The customer's side ----------------------------------------------------------------


@router.post("/chat/visitor", response_model=VisitorOut, status_code=201)
def start_visitor(_: Public) -> VisitorOut:
    """A signed visitor token for an anonymous chat (keep it; send it as X-Visitor-Token)."""
    return VisitorOut(visitor_token=new_visitor_token())


@router.post("/conversations", response_model=ConversationOut, status_code=201)
def start_conversation(
    body: StartIn, db: Db, who: Public, token: VisitorToken = None
) -> ConversationOut:
    """Start a web chat with a first message (from a product page: its ``product_code``)."""
    caller = caller_of(who, token)
    conv, _ = service.start(
        db,
        caller,
        channel="web",
        body=body.body,
        subject=body.subject,
        product_code=body.product_code,
    )
    return conversation_out(db, conv)


@router.get("/me/conversations", response_model=list[ConversationOut])
def my_conversations(db: Db, who: Public, token: VisitorToken = None) -> list[ConversationOut]:
    """Your conversations, newest first."""
    caller = caller_of(who, token)
    return [conversation_out(db, c) for c in service.of_caller(db, caller)]


@router.get("/conversations/{conversation_id}/messages", response_model=list[MessageOut])
def conversation_messages(
    conversation_id: str, db: Db, who: Public, token: VisitorToken = None
) -> list[MessageOut]:
    """The history, oldest first (the desk also sees private notes)."""
    if who.role in service.DESK_ROLES:
        conv = service.get_for_staff(db, who, conversation_id)
        return [message_out(m) for m in service.messages(db, conv, staff=True)]
    conv = service.get_for_caller(db, caller_of(who, token), conversation_id)
    return [message_out(m) for m in service.messages(db, conv, staff=False)]


@router.post(
    "/conversations/{conversation_id}/messages", response_model=MessageOut, status_code=201
)
def post_message(
    conversation_id: str, body: MessageIn, db: Db, who: Public, token: VisitorToken = None
) -> MessageOut:
    """The customer writes, or the desk replies (``private``: a note for the desk only)."""
    if who.role in service.DESK_ROLES:
        return message_out(service.reply(db, who, conversation_id, body.body, private=body.private))
    caller = caller_of(who, token)
    if body.private:
        raise Forbidden("only the desk writes private notes", code="private_notes_are_for_staff")
    return message_out(service.customer_message(db, caller, conversation_id, body.body))


@router.post("/conversations/{conversation_id}/csat", response_model=ConversationOut)
def rate(
    conversation_id: str, body: csat.CsatIn, db: Db, who: Public, token: VisitorToken = None
) -> ConversationOut:
    """Rate a resolved conversation from 1 to 5 (once)."""
    conv = service.get_for_caller(db, caller_of(who, token), conversation_id)
    return conversation_out(db, csat.submit(db, conv, body))


@router.post("/live/{session_id}/questions", response_model=ConversationOut, status_code=201)
def ask_live_question(
    session_id: str, body: QuestionIn, db: Db, who: Public, token: VisitorToken = None
) -> ConversationOut:
    """A viewer's question during a live session: it joins the viewer's conversation
    about that session (channel ``live``), or opens one."""
    from covernet.consult import channels

    caller = caller_of(who, token)
    session = live.public(db, session_id)[0]
    conv = channels.live.receive(db, caller, session, body.body)
    return conversation_out(db, conv)


# The desk -----------------------------------------------------------------------------


@router.get("/desk/conversations", response_model=list[ConversationOut])
def desk_inbox(
    db: Db,
    who: DeskStaff,
    state: Annotated[State | Literal["all"], Query()] = State.open,
    mine: bool = False,
) -> list[ConversationOut]:
    """The inbox: most urgent first; an advisor sees their own conversations and the
    unassigned ones of their lines."""
    service.wake_snoozed(db)
    rows = service.inbox(db, who, state=None if state == "all" else State(state), mine_only=mine)
    return [conversation_out(db, c) for c in rows]


@router.get("/desk/conversations/{conversation_id}", response_model=DeskConversationOut)
def desk_conversation(conversation_id: str, db: Db, who: DeskStaff) -> DeskConversationOut:
    return desk_view(db, service.get_for_staff(db, who, conversation_id))


@router.post("/desk/conversations/{conversation_id}/state", response_model=ConversationOut)
def change_state(conversation_id: str, body: StateIn, db: Db, who: DeskStaff) -> ConversationOut:
    """open / pending / snoozed (with ``snooze_until``) / resolved."""
    conv = service.move(db, who, conversation_id, body.state, snooze_until=body.snooze_until)
    return conversation_out(db, conv)


@router.post("/desk/conversations/{conversation_id}/transfer", response_model=ConversationOut)
def transfer(conversation_id: str, body: TransferIn, db: Db, who: DeskStaff) -> ConversationOut:
    """Hand over to another desk agent licensed for the conversation's line."""
    return conversation_out(db, service.transfer(db, who, conversation_id, body.to_user_id))


@router.post("/desk/conversations/{conversation_id}/outcome", response_model=DeskConversationOut)
def complaint_outcome(
    conversation_id: str, body: OutcomeIn, db: Db, who: DeskStaff
) -> DeskConversationOut:
    """Record a complaint's outcome (needed before it is resolved)."""
    return desk_view(db, service.record_outcome(db, who, conversation_id, body.outcome))


@router.post("/desk/conversations/{conversation_id}/merge", response_model=DeskConversationOut)
def merge(conversation_id: str, body: MergeIn, db: Db, who: DeskStaff) -> DeskConversationOut:
    """Fold this conversation into ``into`` (the same customer's); this one is resolved."""
    return desk_view(db, service.merge(db, who, conversation_id, body.into))


@router.get("/desk/agents", response_model=list[AgentOut])
def desk_agents(db: Db, _: DeskStaff) -> list[AgentOut]:
    return [
        AgentOut(
            user_id=row.user_id,
            name=name,
            skills=list(row.skills),
            availability=row.availability,
            max_open=row.max_open,
            active=active,
        )
        for row, name, active in service.agents(db)
    ]


@router.put("/desk/agents/{user_id}", response_model=AgentOut)
def put_agent(user_id: str, body: AgentIn, db: Db, who: DeskAdmin) -> AgentOut:
    """Make a staff account a desk agent, or change its skills, availability and limit."""
    row = service.set_agent(
        db,
        user_id,
        skills=body.skills,
        availability=body.availability,
        max_open=body.max_open,
        by=service.actor_of(who),
    )
    return _agent_out(db, row.user_id)


@router.post("/desk/me/availability", response_model=AgentOut)
def my_availability(body: AvailabilityIn, db: Db, who: DeskStaff) -> AgentOut:
    """Go online, away or offline."""
    row = service.set_availability(db, who, body.availability)
    return _agent_out(db, row.user_id)


def _agent_out(db: Session, user_id: str) -> AgentOut:
    for row, name, active in service.agents(db):
        if row.user_id == user_id:
            return AgentOut(
                user_id=row.user_id,
                name=name,
                skills=list(row.skills),
                availability=row.availability,
                max_open=row.max_open,
                active=active,
            )
    raise NotFound("no such desk agent")


def visitor_from_request(request: Request) -> str | None:
    return visitor_of(request.headers.get(VISITOR_HEADER))
