"""The desk's service levels: first response, next response and resolution clocks per
conversation in business hours (``catalog/rules/desk.yaml`` ``sla``), complaints'
answer deadline, the ``desk_sla`` service-standard monitor, and escalation of breached
conversations to the assignee's supervisors.

Business minutes are counted by :func:`covernet.crm.desk_reports.business_minutes`, the
same calendar arithmetic the desk reports use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from covernet.audit import service as audit
from covernet.compliance import monitors
from covernet.consult import priority
from covernet.consult.models import (
    ACTIVE_STATES,
    AuthorKind,
    Conversation,
    ConversationMessage,
    Kind,
    State,
)
from covernet.core import clock
from covernet.crm import desk_reports
from covernet.notify import service as notify

KEY = "desk_sla"
HREF = "/console/desk"
ClockState = Literal["met", "missed", "running", "near", "breached"]


@dataclass(frozen=True)
class SlaClock:
    name: str  # first_response | next_response | resolution | complaint
    state: ClockState
    used_minutes: float
    allowed_minutes: float


def _calendar(rules: priority.DeskRules) -> desk_reports.Calendar:
    hours = rules.sla.business_hours
    return desk_reports.Calendar(
        days=frozenset(hours.days),
        start=time.fromisoformat(hours.start),
        end=time.fromisoformat(hours.end),
    )


def _clock(
    name: str, start: datetime, end: datetime | None, allowed: float, now: datetime, rules: Any
) -> SlaClock:
    used = desk_reports.business_minutes(start, end or now, _calendar(rules))
    if end is not None:
        state: ClockState = "met" if used <= allowed else "missed"
    elif used > allowed:
        state = "breached"
    elif used >= allowed * rules.sla.near_breach_ratio:
        state = "near"
    else:
        state = "running"
    return SlaClock(name, state, round(used, 1), allowed)


def clocks_of(
    conv: Conversation, last_reply_at: datetime | None, now: datetime | None = None
) -> list[SlaClock]:
    """The conversation's clocks (pure, given the time of the last public reply)."""
    rules = priority.current()
    now = now or clock.now()
    sla = rules.sla
    done = conv.resolved_at if conv.state == State.resolved.value else None
    out = [
        _clock(
            "first_response",
            conv.created_at,
            conv.first_response_at,
            sla.first_response_minutes,
            now,
            rules,
        ),
        _clock("resolution", conv.created_at, done, sla.resolution_hours * 60, now, rules),
    ]
    waiting_since = conv.last_customer_message_at
    if (
        conv.first_response_at is not None
        and waiting_since is not None
        and conv.state == State.open.value
        and (last_reply_at is None or last_reply_at < waiting_since)
    ):
        out.append(
            _clock("next_response", waiting_since, None, sla.next_response_minutes, now, rules)
        )
    if conv.kind == Kind.complaint.value and conv.complaint_due_at is not None:
        allowed = (conv.complaint_due_at - conv.created_at).total_seconds() / 60
        answered = conv.outcome_at
        used = ((answered or now) - conv.created_at).total_seconds() / 60
        if answered is not None:
            state: ClockState = "met" if answered <= conv.complaint_due_at else "missed"
        elif now > conv.complaint_due_at:
            state = "breached"
        elif used >= allowed * sla.near_breach_ratio:
            state = "near"
        else:
            state = "running"
        out.append(SlaClock("complaint", state, round(used, 1), round(allowed, 1)))
    return out


def last_replies(db: Session, conversation_ids: list[str]) -> dict[str, datetime]:
    if not conversation_ids:
        return {}
    rows = db.execute(
        select(ConversationMessage.conversation_id, func.max(ConversationMessage.created_at))
        .where(
            ConversationMessage.conversation_id.in_(conversation_ids),
            ConversationMessage.author_kind == AuthorKind.advisor.value,
            ConversationMessage.private.is_(False),
        )
        .group_by(ConversationMessage.conversation_id)
    )
    return {row[0]: clock.as_utc(row[1]) for row in rows}


def clocks_for(db: Session, conv: Conversation) -> list[SlaClock]:
    return clocks_of(conv, last_replies(db, [conv.id]).get(conv.id))


def _active(db: Session) -> list[Conversation]:
    return list(
        db.scalars(
            select(Conversation)
            .where(Conversation.state.in_(ACTIVE_STATES), Conversation.merged_into_id.is_(None))
            .order_by(Conversation.created_at)
            .limit(5000)
        )
    )


@monitors.register(KEY, order=90, regulation="seed", href=HREF)
def desk_sla(db: Session, today: date) -> monitors.Figure:
    """Active conversations past a service level (or a complaint past its answer
    deadline) are a breach; near ones a warning.  Items name the conversation's kind,
    short id and advisor, never the customer."""
    rows = _active(db)
    replies = last_replies(db, [c.id for c in rows])
    names = _names(db, {c.assignee_id for c in rows if c.assignee_id})
    breached = near = 0
    items: list[monitors.Item] = []
    now = clock.now()
    for conv in rows:
        urgent = [
            c for c in clocks_of(conv, replies.get(conv.id), now) if c.state in ("breached", "near")
        ]
        if not urgent:
            continue
        worst = min(urgent, key=lambda c: c.state != "breached")
        if worst.state == "breached":
            breached += 1
        else:
            near += 1
        if len(items) < monitors.MAX_ITEMS:
            items.append(
                monitors.Item(
                    label=f"#{conv.id[-8:]} · {names.get(conv.assignee_id or '', '-')}",
                    href=f"{HREF}/{conv.id}",
                    due=clock.to_local(conv.complaint_due_at).date()
                    if worst.name == "complaint" and conv.complaint_due_at
                    else None,
                    state=f"sla_{worst.state}",
                    detail=f"monitors.desk_sla.clock.{worst.name}",
                )
            )
    items.sort(key=lambda i: i.state != "sla_breached")
    sla = priority.current().sla
    return monitors.Figure(
        key=KEY,
        regulation="seed",
        value=breached,
        total=len(rows),
        status="breach" if breached else "warning" if near else "ok",
        thresholds={
            "first_response_minutes": sla.first_response_minutes,
            "next_response_minutes": sla.next_response_minutes,
            "resolution_hours": sla.resolution_hours,
            "complaint_days": priority.current().complaint_days,
        },
        href=HREF,
        items=items,
    )


def _names(db: Session, user_ids: set[str]) -> dict[str, str]:
    from covernet.consult import service

    return service.names_of(db, user_ids)


def clocks_out(clocks: list[SlaClock]) -> list[dict[str, Any]]:
    return [
        {
            "name": c.name,
            "state": c.state,
            "used_minutes": c.used_minutes,
            "allowed_minutes": c.allowed_minutes,
        }
        for c in clocks
    ]


def escalate_breaches(db: Session) -> int:
    """Tell the supervisors of each assignee about their conversations with a breached
    clock, once per conversation (``escalated_at``).  Returns how many were escalated."""
    from covernet.crm import teams

    rows = [c for c in _active(db) if c.assignee_id and c.escalated_at is None]
    replies = last_replies(db, [c.id for c in rows])
    escalated = 0
    for conv in rows:
        breached = [c.name for c in clocks_of(conv, replies.get(conv.id)) if c.state == "breached"]
        if not breached:
            continue
        supervisors = teams.supervisors_of(db, conv.assignee_id or "")
        for supervisor in supervisors:
            notify.send(
                db,
                user_id=supervisor,
                topic="desk.escalation",
                subject_type="conversation",
                subject_id=conv.id,
                title="坐席会话超出服务时限",
                body=f"会话 #{conv.id[-8:]} 已超出服务时限（{'、'.join(breached)}），请跟进。",
                title_en="A desk conversation is past its service level",
                body_en=f"Conversation #{conv.id[-8:]} is past {', '.join(breached)}.",
                channels=("inbox",),
            )
        conv.escalated_at = clock.now()
        audit.record(
            db,
            "conversation.escalated",
            subject_type="conversation",
            subject_id=conv.id,
            detail={"clocks": breached, "to": supervisors},
        )
        escalated += 1
    return escalated
