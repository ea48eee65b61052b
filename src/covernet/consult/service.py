"""Conversations: opening them from any channel, messages, the desk's state machine,
assignment, transfer, and what each side may see.

open / pending / snoozed / resolved (``models.TRANSITIONS``).  Every change of state is
one conditional ``UPDATE … WHERE state = :from`` after the row lock, so two concurrent
moves cannot both succeed on either database; each is audited.  Messages are written
first and then fanned out (``chat.announce``: delivered only after the commit).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from covernet.audit import service as audit
from covernet.catalog import service as catalog
from covernet.compliance import content, drafts, licenses
from covernet.compliance.models import ContentItem, ContentStatus
from covernet.consult import chat, priority, routing
from covernet.consult.models import (
    ACTIVE_STATES,
    PRIORITY_RANK,
    TRANSITIONS,
    AuthorKind,
    Availability,
    Channel,
    Conversation,
    ConversationMessage,
    DeskAgent,
    Kind,
    Priority,
    State,
)
from covernet.core import clock
from covernet.core.errors import Conflict, NotFound, ValidationFailed
from covernet.identity import service as identity
from covernet.identity.access import Principal
from covernet.identity.models import Role

MAX_BODY = 4000
DESK_ROLES = frozenset({Role.advisor, Role.ops, Role.admin})
SUPERVISING_ROLES = frozenset({Role.ops, Role.admin})  # see every conversation
CANNED_KIND = "canned_reply"


@dataclass(frozen=True)
class Caller:
    """The customer side of a conversation: a signed-in customer or an anonymous
    visitor known by the signed visitor token."""

    customer_id: str | None = None
    visitor_id: str | None = None

    @property
    def known(self) -> bool:
        return bool(self.customer_id or self.visitor_id)


@dataclass(frozen=True)
class Summary:
    id: str
    channel: str
    kind: str
    state: str
    priority: str
    subject: str
    product_line: str | None
    last_message_at: datetime | None
    assignee_id: str | None
    assignee_name: str | None
    created_at: datetime


def actor_of(who: Principal) -> audit.Actor:
    return audit.Actor("user", who.user_id, who.role.value if who.role else None)


def _clean(body: str) -> str:
    text = (body or "").strip()
    if not text:
        raise ValidationFailed(
            "write a message first", code="empty_message", detail={"field": "body"}
        )
    if len(text) > MAX_BODY:
        raise ValidationFailed(
            f"a message has at most {MAX_BODY} characters",
            code="message_too_long",
            detail={"field": "body", "max": MAX_BODY},
        )
    return text


def _channel(value: str) -> Channel:
    try:
        return Channel(value)
    except ValueError:
        raise ValidationFailed(
            f"no channel '{value}'",
            code="unknown_channel",
            detail={"field": "channel", "allowed": [c.value for c in Channel]},
        ) from None


def _product_line(db: Session, product_code: str | None) -> tuple[str | None, str | None]:
    if not product_code:
        return None, None
    listed = catalog.snapshot(db).products.get(product_code)
    if listed is None:
        return None, None  # a page of a product no longer listed: no line to route by
    return listed.product.code, listed.product.line.value


# Opening ---------------------------------------------------------------------------


def start(
    db: Session,
    caller: Caller,
    *,
    channel: str,
    body: str,
    subject: str | None = None,
    product_code: str | None = None,
    live_session_id: str | None = None,
) -> tuple[Conversation, ConversationMessage]:
    """Open a conversation with the customer's first message, set its priority and
    line from the rules, and assign it if an agent can take it now."""
    if not caller.known:
        raise ValidationFailed("sign in or start a visitor chat first", code="visitor_required")
    text = _clean(body)
    conv = _new(
        db,
        caller,
        channel=_channel(channel),
        subject=subject or text,
        product_code=product_code,
        live_session_id=live_session_id,
    )
    message = _customer_message(db, conv, text, conv.channel)
    _route(db, conv)
    return conv, message


def _new(
    db: Session,
    caller: Caller,
    *,
    channel: Channel,
    subject: str,
    product_code: str | None = None,
    live_session_id: str | None = None,
) -> Conversation:
    code, line = _product_line(db, product_code)
    now = clock.now()
    conv = Conversation(
        customer_id=caller.customer_id,
        visitor_id=None if caller.customer_id else caller.visitor_id,
        channel=channel.value,
        kind=Kind.consultation.value,
        state=State.open.value,
        priority=Priority.normal.value,
        subject=subject.strip()[:200] or "-",
        product_code=code,
        product_line=line,
        live_session_id=live_session_id,
        created_at=now,
        updated_at=now,
    )
    db.add(conv)
    db.flush()
    return conv


def open_handoff(
    db: Session,
    *,
    customer_id: str | None,
    channel: str,
    transcript: list[tuple[str, str]],
    subject: str,
    visitor_id: str | None = None,
) -> str:
    """A conversation handed over by the assistant with its transcript ("customer" and
    "bot" lines, oldest first).  Returns the conversation's id."""
    if not transcript:
        raise ValidationFailed("a hand-off needs the transcript", code="empty_transcript")
    caller = Caller(customer_id=customer_id, visitor_id=visitor_id)
    conv = _new(db, caller, channel=_channel(channel), subject=subject)
    for role, text in transcript:
        if role == "customer":
            _customer_message(db, conv, _clean(text), conv.channel)
        elif role == "bot":
            _add(db, conv, AuthorKind.bot, None, _clean(text), channel=conv.channel)
        else:
            raise ValidationFailed(
                f"a transcript line is 'customer' or 'bot', not '{role}'",
                code="bad_transcript_role",
                detail={"field": "transcript"},
            )
    _add(db, conv, AuthorKind.system, None, "handoff", channel=conv.channel, purpose="handoff")
    _route(db, conv)
    return conv.id


def _route(db: Session, conv: Conversation) -> None:
    chosen = routing.choose(db, conv.product_line)
    if chosen is not None:
        conv.assignee_id, conv.assigned_at = chosen, clock.now()
        audit.record(
            db,
            "conversation.assigned",
            subject_type="conversation",
            subject_id=conv.id,
            detail={"to": chosen, "by": "routing", "line": conv.product_line},
        )
    chat.announce(db, {"type": "conversation", "conversation_id": conv.id})


# Messages --------------------------------------------------------------------------


def _add(
    db: Session,
    conv: Conversation,
    kind: AuthorKind,
    author_id: str | None,
    body: str,
    *,
    channel: str,
    private: bool = False,
    purpose: str = "text",
    identity_block: tuple[str, str | None, str | None] | None = None,
) -> ConversationMessage:
    now = clock.now()
    message = ConversationMessage(
        conversation_id=conv.id,
        author_kind=kind.value,
        author_id=author_id,
        channel=channel,
        body=body,
        private=private,
        purpose=purpose,
        created_at=now,
    )
    if identity_block is not None:
        message.advisor_name, message.advisor_institution, message.advisor_license_no = (
            identity_block
        )
    db.add(message)
    if not private:
        conv.last_message_at = now
    conv.updated_at = now
    db.flush()
    chat.announce(db, {"type": "message", "conversation_id": conv.id, "message_id": message.id})
    return message


def _classify(conv: Conversation, text: str) -> None:
    rules = priority.current()
    verdict = priority.classify(text, rules, Priority(conv.priority))
    if verdict.priority.value != conv.priority:
        conv.priority, conv.priority_reason = verdict.priority.value, verdict.reason
    if verdict.kind is Kind.complaint and conv.kind != Kind.complaint.value:
        conv.kind = Kind.complaint.value
        conv.complaint_due_at = clock.now() + timedelta(days=rules.complaint_days)
    if conv.product_line is None:
        line = priority.detect_line(text, rules)
        conv.product_line = line.value if line else None


def _customer_message(
    db: Session, conv: Conversation, text: str, channel: str
) -> ConversationMessage:
    _classify(conv, text)
    conv.last_customer_message_at = clock.now()
    return _add(db, conv, AuthorKind.customer, conv.customer_id, text, channel=channel)


def customer_message(
    db: Session, caller: Caller, conversation_id: str, body: str, *, channel: str = "web"
) -> ConversationMessage:
    """The customer writes in their conversation; a pending, snoozed or resolved one
    opens again (a resolved one goes back to routing if its advisor is gone)."""
    text = _clean(body)
    conv = _own(db, caller, conversation_id, lock=True)
    if conv.merged_into_id:
        conv = _own(db, caller, conv.merged_into_id, lock=True)
    message = _customer_message(db, conv, text, _channel(channel).value)
    if conv.state != State.open.value:
        _move(db, conv, State.open, actor=audit.SYSTEM, reason="customer_wrote")
    if conv.assignee_id is None:
        _route(db, conv)
    return message


def _identity_block(db: Session, who: Principal) -> tuple[str, str | None, str | None]:
    """Name, institution and 执业证编号 at the moment of sending (R2)."""
    found = drafts.advisor_identity(db, who.user_id or "")
    if found is not None:
        return found.name, found.institution, found.license_no
    user = identity.get_user(db, who.user_id)
    return (user.name if user else who.name or "-"), None, None


def reply(
    db: Session, who: Principal, conversation_id: str, body: str, *, private: bool = False
) -> ConversationMessage:
    """An advisor answers (or writes a private note).  Advice in a consultation is a
    sale: it needs an active license covering the conversation's line (R1), and it
    carries the advisor's name, institution and 执业证编号 (R2)."""
    text = _clean(body)
    conv = get_for_staff(db, who, conversation_id, lock=True)
    if conv.state == State.resolved.value and not private:
        raise Conflict(
            "the conversation is resolved; reopen it to write", code="conversation_resolved"
        )
    if not private and conv.kind == Kind.consultation.value:
        problem = routing.license_problem(db, who.user_id or "", conv.product_line)
        if problem is not None:
            raise licenses.LicenseRefused(
                f"sales advice needs an active license"
                f"{' covering ' + conv.product_line if conv.product_line else ''}: "
                f"{problem.message}",
                code=problem.code,
                detail={"line": conv.product_line, **(problem.detail or {})},
            )
    if conv.assignee_id is None and who.role is Role.advisor:
        _assign(db, conv, who.user_id or "", by=who, reason="claimed")
    message = _add(
        db,
        conv,
        AuthorKind.advisor,
        who.user_id,
        text,
        channel=conv.channel,
        private=private,
        identity_block=_identity_block(db, who),
    )
    if not private and conv.first_response_at is None:
        conv.first_response_at = message.created_at
    return message


def _approved_text(item: ContentItem) -> bool:
    frozen = content.content_hash(item.kind, item.body, list(item.product_codes))
    return (
        item.kind == CANNED_KIND
        and item.status in (ContentStatus.approved.value, ContentStatus.published.value)
        and item.approved_hash == frozen
    )


def canned_replies(db: Session, who: Principal) -> list[ContentItem]:
    """The advisor's canned replies that compliance approved (R3), unchanged since."""
    return [i for i in content.listing(db, who, None) if _approved_text(i)]


def send_canned(
    db: Session, who: Principal, conversation_id: str, item_id: str
) -> ConversationMessage:
    """Send an approved canned reply: exactly the approved text, under the same license
    check as any reply."""
    item = content.get(db, who, item_id)
    if not _approved_text(item):
        raise Conflict(
            "only a compliance-approved canned reply, unchanged, can be sent",
            code="canned_not_approved",
            detail={"field": "item_id"},
        )
    return reply(db, who, conversation_id, item.body)


def add_system_message(
    db: Session, conv: Conversation, body: str, *, purpose: str = "text"
) -> ConversationMessage:
    return _add(db, conv, AuthorKind.system, None, body, channel=conv.channel, purpose=purpose)


# State machine ---------------------------------------------------------------------


def _move(
    db: Session,
    conv: Conversation,
    to: State,
    *,
    actor: audit.Actor,
    reason: str | None = None,
    snooze_until: datetime | None = None,
) -> None:
    current = State(conv.state)
    if to not in TRANSITIONS[current]:
        raise Conflict(
            f"a {current.value} conversation cannot become {to.value}",
            code="bad_transition",
            detail={"from": current.value, "to": to.value},
        )
    now = clock.now()
    values: dict[str, Any] = {"state": to.value, "updated_at": now, "snooze_until": snooze_until}
    if to is State.resolved:
        values["resolved_at"] = now
    result = db.execute(
        update(Conversation)
        .where(Conversation.id == conv.id, Conversation.state == current.value)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        raise Conflict("the conversation changed meanwhile; reload", code="state_changed")
    db.refresh(conv)
    audit.record(
        db,
        f"conversation.{to.value}",
        actor=actor,
        subject_type="conversation",
        subject_id=conv.id,
        detail={"from": current.value, "reason": reason},
    )
    chat.announce(db, {"type": "conversation", "conversation_id": conv.id})


def move(
    db: Session,
    who: Principal,
    conversation_id: str,
    to: State,
    *,
    snooze_until: datetime | None = None,
) -> Conversation:
    """The desk changes a conversation's state; snoozing needs a moment in the future
    (at most ``max_snooze_days`` ahead)."""
    conv = get_for_staff(db, who, conversation_id, lock=True)
    if to is State.snoozed:
        now = clock.now()
        limit = timedelta(days=priority.current().max_snooze_days)
        if snooze_until is None or snooze_until <= now or snooze_until > now + limit:
            raise ValidationFailed(
                f"snooze until a moment in the future (at most {limit.days} days ahead)",
                code="bad_snooze_until",
                detail={"field": "snooze_until"},
            )
    else:
        snooze_until = None
    if to is State.resolved and conv.kind == Kind.complaint.value and not conv.outcome:
        raise Conflict(
            "record the complaint's outcome before resolving it",
            code="outcome_required",
            detail={"field": "outcome"},
        )
    _move(db, conv, to, actor=actor_of(who), snooze_until=snooze_until)
    if to is State.resolved:
        from covernet.consult import csat

        csat.ask(db, conv)
    return conv


def wake_snoozed(db: Session) -> int:
    """Snoozed conversations whose time has come are open again."""
    due = list(
        db.scalars(
            select(Conversation.id).where(
                Conversation.state == State.snoozed.value,
                Conversation.snooze_until <= clock.now(),
            )
        )
    )
    for conversation_id in due:
        conv = db.get(Conversation, conversation_id, with_for_update=True, populate_existing=True)
        if conv is not None and conv.state == State.snoozed.value:
            _move(db, conv, State.open, actor=audit.SYSTEM, reason="snooze_ended")
    return len(due)


def record_outcome(db: Session, who: Principal, conversation_id: str, outcome: str) -> Conversation:
    """A complaint's outcome: what was decided and told to the customer (kept with the
    time, so the answer deadline can be judged)."""
    conv = get_for_staff(db, who, conversation_id, lock=True)
    if conv.kind != Kind.complaint.value:
        raise Conflict("only complaints have an outcome record", code="not_a_complaint")
    text = (outcome or "").strip()
    if not text or len(text) > 1000:
        raise ValidationFailed(
            "say what was decided (at most 1000 characters)",
            code="outcome_required",
            detail={"field": "outcome"},
        )
    conv.outcome, conv.outcome_at, conv.updated_at = text, clock.now(), clock.now()
    audit.record(
        db,
        "conversation.outcome",
        actor=actor_of(who),
        subject_type="conversation",
        subject_id=conv.id,
        detail={"late": bool(conv.complaint_due_at and conv.outcome_at > conv.complaint_due_at)},
    )
    chat.announce(db, {"type": "conversation", "conversation_id": conv.id})
    return conv


def merge(db: Session, who: Principal, source_id: str, target_id: str) -> Conversation:
    """Fold ``source`` into ``target`` (same customer): its messages move over in time
    order, it is resolved and points at the target; the target keeps the higher priority."""
    if source_id == target_id:
        raise ValidationFailed(
            "a conversation cannot be merged into itself",
            code="merge_into_itself",
            detail={"field": "target_id"},
        )
    first, second = sorted((source_id, target_id))  # lock in one order: no deadlock
    locked = {cid: get_for_staff(db, who, cid, lock=True) for cid in (first, second)}
    source, target = locked[source_id], locked[target_id]
    same = (source.customer_id or None, source.visitor_id if not source.customer_id else None)
    other = (target.customer_id or None, target.visitor_id if not target.customer_id else None)
    if same != other or source.merged_into_id or target.merged_into_id:
        raise Conflict(
            "only two conversations of the same customer, neither merged already, merge",
            code="merge_not_allowed",
        )
    db.execute(
        update(ConversationMessage)
        .where(ConversationMessage.conversation_id == source.id)
        .values(conversation_id=target.id)
        .execution_options(synchronize_session=False)
    )
    if PRIORITY_RANK[Priority(source.priority)] < PRIORITY_RANK[Priority(target.priority)]:
        target.priority, target.priority_reason = source.priority, source.priority_reason
    if source.kind == Kind.complaint.value and target.kind != Kind.complaint.value:
        target.kind, target.complaint_due_at = source.kind, source.complaint_due_at
    times = [t for t in (source.last_message_at, target.last_message_at) if t]
    target.last_message_at = max(times) if times else None
    source.merged_into_id = target.id
    if source.state != State.resolved.value:
        _move(db, source, State.resolved, actor=actor_of(who), reason="merged")
    add_system_message(db, target, "merged", purpose="merge")
    audit.record(
        db,
        "conversation.merged",
        actor=actor_of(who),
        subject_type="conversation",
        subject_id=target.id,
        detail={"from": source.id},
    )
    return target


# Assignment ------------------------------------------------------------------------


def _assign(db: Session, conv: Conversation, user_id: str, *, by: Principal, reason: str) -> None:
    routing.reserve_for_transfer(db, user_id, conv.product_line)
    previous = conv.assignee_id
    conv.assignee_id, conv.assigned_at, conv.updated_at = user_id, clock.now(), clock.now()
    audit.record(
        db,
        "conversation.assigned",
        actor=actor_of(by),
        subject_type="conversation",
        subject_id=conv.id,
        detail={"from": previous, "to": user_id, "by": reason},
    )
    chat.announce(db, {"type": "conversation", "conversation_id": conv.id})


def transfer(db: Session, who: Principal, conversation_id: str, to_user_id: str) -> Conversation:
    """Hand the conversation to another desk agent (licensed for its line, with room)."""
    conv = get_for_staff(db, who, conversation_id, lock=True)
    if to_user_id == conv.assignee_id:
        raise Conflict(
            "the conversation is already theirs",
            code="already_assigned",
            detail={"field": "to_user_id"},
        )
    _assign(db, conv, to_user_id, by=who, reason="transfer")
    add_system_message(db, conv, "transferred", purpose="transfer")
    return conv


# Reading ---------------------------------------------------------------------------


def _own(db: Session, caller: Caller, conversation_id: str, *, lock: bool = False) -> Conversation:
    conv = db.get(Conversation, conversation_id, with_for_update=lock, populate_existing=lock)
    mine = conv is not None and (
        (caller.customer_id is not None and conv.customer_id == caller.customer_id)
        or (
            caller.visitor_id is not None
            and conv.customer_id is None
            and conv.visitor_id == caller.visitor_id
        )
    )
    if conv is None or not mine:
        raise NotFound("no such conversation", detail={"field": "conversation_id"})
    return conv


def get_for_caller(db: Session, caller: Caller, conversation_id: str) -> Conversation:
    return _own(db, caller, conversation_id)


def agent(db: Session, user_id: str | None) -> DeskAgent | None:
    return db.get(DeskAgent, user_id) if user_id else None


def visible_to(
    assignee_id: str | None, product_line: str | None, who: Principal, skills: list[str] | None
) -> bool:
    """Supervising roles see everything; an advisor sees their own conversations and
    the unassigned ones of the lines they take (``skills``; None: not at the desk)."""
    if who.role in SUPERVISING_ROLES:
        return True
    if who.role is not Role.advisor:
        return False
    if assignee_id == who.user_id:
        return True
    return (
        assignee_id is None
        and skills is not None
        and (product_line is None or product_line in skills)
    )


def get_for_staff(
    db: Session, who: Principal, conversation_id: str, *, lock: bool = False
) -> Conversation:
    if who.role not in DESK_ROLES:
        raise NotFound("no such conversation", detail={"field": "conversation_id"})
    conv = db.get(Conversation, conversation_id, with_for_update=lock, populate_existing=lock)
    found = agent(db, who.user_id)
    if conv is None or not visible_to(
        conv.assignee_id, conv.product_line, who, found.skills if found else None
    ):
        raise NotFound("no such conversation", detail={"field": "conversation_id"})
    return conv


def inbox(
    db: Session,
    who: Principal,
    *,
    state: State | None = State.open,
    mine_only: bool = False,
    limit: int = 200,
) -> list[Conversation]:
    """The desk's inbox: most urgent first, then the longest waiting."""
    if who.role not in DESK_ROLES:
        return []
    stmt = select(Conversation).where(Conversation.merged_into_id.is_(None))
    if state is not None:
        stmt = stmt.where(Conversation.state == state.value)
    if who.role not in SUPERVISING_ROLES or mine_only:
        found = agent(db, who.user_id)
        queue = Conversation.assignee_id.is_(None) & (
            Conversation.product_line.is_(None)
            | Conversation.product_line.in_(found.skills if found else [])
        )
        own = Conversation.assignee_id == who.user_id
        stmt = stmt.where(own if mine_only or found is None else or_(own, queue))
    rank = {p.value: n for p, n in PRIORITY_RANK.items()}
    rows = list(db.scalars(stmt.order_by(Conversation.created_at).limit(limit)))
    return sorted(
        rows,
        key=lambda c: (rank.get(c.priority, 9), c.last_customer_message_at or c.created_at),
    )


def counts_by_state(db: Session, who: Principal) -> dict[str, int]:
    return {s.value: len(inbox(db, who, state=s)) for s in State}


def messages(db: Session, conv: Conversation, *, staff: bool) -> list[ConversationMessage]:
    stmt = select(ConversationMessage).where(ConversationMessage.conversation_id == conv.id)
    if not staff:
        stmt = stmt.where(ConversationMessage.private.is_(False))
    return list(db.scalars(stmt.order_by(ConversationMessage.created_at, ConversationMessage.id)))


def of_caller(db: Session, caller: Caller, limit: int = 50) -> list[Conversation]:
    if caller.customer_id:
        where = Conversation.customer_id == caller.customer_id
    elif caller.visitor_id:
        where = (Conversation.visitor_id == caller.visitor_id) & Conversation.customer_id.is_(None)
    else:
        return []
    return list(
        db.scalars(
            select(Conversation)
            .where(where, Conversation.merged_into_id.is_(None))
            .order_by(Conversation.created_at.desc())
            .limit(limit)
        )
    )


def names_of(db: Session, user_ids: set[str]) -> dict[str, str]:
    if not user_ids:
        return {}
    from covernet.identity.models import User

    return {
        row[0]: row[1]
        for row in db.execute(select(User.id, User.name).where(User.id.in_(user_ids)))
    }


def summaries(db: Session, rows: list[Conversation]) -> list[Summary]:
    names = names_of(db, {c.assignee_id for c in rows if c.assignee_id})
    return [
        Summary(
            id=c.id,
            channel=c.channel,
            kind=c.kind,
            state=c.state,
            priority=c.priority,
            subject=c.subject,
            product_line=c.product_line,
            last_message_at=c.last_message_at,
            assignee_id=c.assignee_id,
            assignee_name=names.get(c.assignee_id) if c.assignee_id else None,
            created_at=c.created_at,
        )
        for c in rows
    ]


def conversations_of_customer(db: Session, customer_id: str) -> list[Summary]:
    """Every conversation of a customer across channels, newest first (customer 360)."""
    return summaries(db, of_caller(db, Caller(customer_id=customer_id), limit=200))


# Agents ----------------------------------------------------------------------------


def set_agent(
    db: Session,
    user_id: str,
    *,
    skills: list[str],
    availability: Availability = Availability.offline,
    max_open: int = 5,
    by: audit.Actor = audit.SYSTEM,
) -> DeskAgent:
    """Make a staff account a desk agent (or change its skills, availability, limit)."""
    user = identity.get_user(db, user_id)
    if user is None or Role(user.role) not in DESK_ROLES:
        raise ValidationFailed(
            "only advisors, ops and admins work at the desk",
            code="not_desk_staff",
            detail={"field": "user_id"},
        )
    from covernet.catalog.spec import Line

    bad = [s for s in skills if s not in {line.value for line in Line}]
    if bad:
        raise ValidationFailed(
            f"unknown product lines {bad}", code="unknown_line", detail={"field": "skills"}
        )
    if not 1 <= max_open <= 100:
        raise ValidationFailed(
            "max_open is between 1 and 100", code="bad_max_open", detail={"field": "max_open"}
        )
    row = db.get(DeskAgent, user_id)
    if row is None:
        row = DeskAgent(user_id=user_id)
        db.add(row)
    row.skills, row.availability, row.max_open = sorted(set(skills)), availability.value, max_open
    row.updated_at = clock.now()
    db.flush()
    audit.record(
        db,
        "desk.agent",
        actor=by,
        subject_type="user",
        subject_id=user_id,
        detail={"skills": row.skills, "availability": row.availability, "max_open": max_open},
    )
    return row


def set_availability(db: Session, who: Principal, availability: Availability) -> DeskAgent:
    row = routing.lock_agent(db, who.user_id or "")
    if row is None:
        raise NotFound("you do not work at the desk", code="not_a_desk_agent")
    row.availability, row.updated_at = availability.value, clock.now()
    return row


def agents(db: Session) -> list[tuple[DeskAgent, str, int]]:
    """Every desk agent with their name and active conversations."""
    rows = list(db.scalars(select(DeskAgent)))
    names = names_of(db, {r.user_id for r in rows})
    load = {
        row[0]: row[1]
        for row in db.execute(
            select(Conversation.assignee_id, func.count())
            .where(Conversation.state.in_(ACTIVE_STATES), Conversation.assignee_id.is_not(None))
            .group_by(Conversation.assignee_id)
        )
    }
    return [(r, names.get(r.user_id, "-"), int(load.get(r.user_id, 0))) for r in rows]
