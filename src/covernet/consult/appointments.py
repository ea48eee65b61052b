"""Phone and video appointments with advisors.

* **Availability**: an advisor publishes weekly windows (weekday, local start/end in
  Asia/Shanghai minutes, slot length) inside business hours, and exceptions (a day off,
  or other hours that day).  Asia/Shanghai has no daylight saving, so a local
  wall-clock slot is always the same UTC instant + 8 hours; slots are computed with
  ``zoneinfo`` all the same.
* **Booking**: a customer books one free slot.  For a sales topic (a product line) only
  an advisor whose license is active and covers the line is bookable (R1, the same
  ``compliance.licenses`` check as the desk).  ``appointments.live_key`` is unique and
  holds ``advisor|slot`` while the booking is live, so two concurrent bookings of a
  slot cannot both commit on either database (the loser gets 409 ``slot_taken``).
  Every booking has a conversation (the given one, or a new ``phone`` conversation with
  the topic), where the appointment shows as a system message.
* **Changes**: either side cancels or reschedules (``booked`` → ``cancelled`` /
  ``rescheduled``, one conditional UPDATE after the row lock); the other side is
  notified (``notify.send``).  A reminder goes to both before the slot
  (:func:`remind`, a periodic job).
* **After the call** the advisor records notes and the recording's reference
  (storage key or URL, duration, SHA-256; never the audio): a ``call_records`` row kept
  ten years from the call (R15 with R14's longest period) and a private system message
  in the conversation's timeline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from pydantic import BaseModel, Field
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from covernet.audit import service as audit
from covernet.catalog.spec import Line
from covernet.consult import routing, service
from covernet.consult.appointment_models import (
    APPOINTMENT_TRANSITIONS,
    AdvisorAvailability,
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    AvailabilityException,
    CallRecord,
)
from covernet.consult.models import Channel, Conversation
from covernet.core import clock
from covernet.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from covernet.identity import service as identity
from covernet.identity.access import Principal
from covernet.identity.models import Role, User
from covernet.notify import service as notify

BUSINESS_START = 8 * 60  # 08:00 local
BUSINESS_END = 21 * 60  # 21:00 local
SLOT_LENGTHS = (15, 20, 30, 45, 60)
MIN_NOTICE = timedelta(minutes=30)  # a slot is bookable until 30 minutes before
HORIZON_DAYS = 60  # how far ahead slots are offered
MAX_RANGE_DAYS = 31  # one slots query
REMIND_BEFORE = timedelta(hours=2)
RETAIN_YEARS = 10  # R15 recordings kept with the sale: R14's longest period
SIDE_ZH = {"customer": "客户", "advisor": "顾问"}
SHA256 = re.compile(r"^[0-9a-f]{64}$")
REF = re.compile(r"^(?:[a-z][a-z0-9+.-]*://\S+|[A-Za-z0-9][A-Za-z0-9._/-]*)$")


class WindowIn(BaseModel):
    weekday: int = Field(ge=0, le=6, description="0 = Monday")
    start: str = Field(pattern=r"^\d{2}:\d{2}$", description="local HH:MM (Asia/Shanghai)")
    end: str = Field(pattern=r"^\d{2}:\d{2}$")
    slot_minutes: int = 30


class ExceptionIn(BaseModel):
    day: date
    available: bool = False
    start: str | None = Field(default=None, pattern=r"^\d{2}:\d{2}$")
    end: str | None = Field(default=None, pattern=r"^\d{2}:\d{2}$")
    reason: str | None = Field(default=None, max_length=200)


class BookingIn(BaseModel):
    advisor_id: str = Field(min_length=1, max_length=36)
    slot_start: datetime
    kind: AppointmentKind
    topic: str = Field(min_length=1, max_length=200)
    product_line: Line | None = None
    conversation_id: str | None = Field(default=None, max_length=36)


class CallRecordIn(BaseModel):
    notes: str | None = Field(default=None, max_length=8000)
    recording_ref: str | None = Field(default=None, max_length=500)
    recording_seconds: int | None = Field(default=None, ge=1, le=24 * 3600)
    recording_sha256: str | None = Field(default=None, max_length=64)


@dataclass(frozen=True)
class Slot:
    start: datetime  # UTC
    end: datetime

    @property
    def local_start(self) -> datetime:
        return clock.to_local(self.start)


# Availability ----------------------------------------------------------------------


def _minutes(value: str, field: str) -> int:
    hours, _, minutes = value.partition(":")
    h, m = int(hours), int(minutes)
    if h > 24 or m > 59 or h * 60 + m > 24 * 60:
        raise ValidationFailed(
            f"{value} is not a time of day", code="bad_time", detail={"field": field}
        )
    return h * 60 + m


def _business(start: int, end: int, field: str) -> None:
    if start >= end:
        raise ValidationFailed(
            "a window ends after it starts", code="bad_window", detail={"field": field}
        )
    if start < BUSINESS_START or end > BUSINESS_END:
        raise ValidationFailed(
            "appointments are within business hours, 08:00–21:00",
            code="outside_business_hours",
            detail={"field": field, "from": "08:00", "until": "21:00"},
        )


def _require_advisor(db: Session, who: Principal) -> User:
    user = identity.get_user(db, who.user_id)
    if user is None or who.role is not Role.advisor:
        raise Forbidden("only advisors publish appointment hours", code="advisor_only")
    return user


def set_weekly(db: Session, who: Principal, windows: list[WindowIn]) -> list[AdvisorAvailability]:
    """Replace the advisor's weekly windows (non-overlapping, in business hours)."""
    user = _require_advisor(db, who)
    parsed: list[tuple[int, int, int, int]] = []
    for i, w in enumerate(windows):
        field = f"windows.{i}"
        start, end = _minutes(w.start, field), _minutes(w.end, field)
        _business(start, end, field)
        if w.slot_minutes not in SLOT_LENGTHS:
            raise ValidationFailed(
                f"a slot is one of {', '.join(map(str, SLOT_LENGTHS))} minutes",
                code="bad_slot_length",
                detail={"field": f"{field}.slot_minutes"},
            )
        for other in parsed:
            if other[0] == w.weekday and start < other[2] and other[1] < end:
                raise ValidationFailed(
                    "two windows of the same day overlap",
                    code="overlapping_windows",
                    detail={"field": field},
                )
        parsed.append((w.weekday, start, end, w.slot_minutes))
    for row in db.scalars(
        select(AdvisorAvailability).where(AdvisorAvailability.advisor_id == user.id)
    ):
        db.delete(row)
    rows = [
        AdvisorAvailability(
            advisor_id=user.id, weekday=d, start_minute=s, end_minute=e, slot_minutes=n
        )
        for d, s, e, n in parsed
    ]
    db.add_all(rows)
    db.flush()
    audit.record(
        db,
        "appointment.hours_set",
        actor=service.actor_of(who),
        subject_type="user",
        subject_id=user.id,
        detail={"windows": len(rows)},
    )
    return rows


def weekly(db: Session, advisor_id: str) -> list[AdvisorAvailability]:
    return list(
        db.scalars(
            select(AdvisorAvailability)
            .where(AdvisorAvailability.advisor_id == advisor_id)
            .order_by(AdvisorAvailability.weekday, AdvisorAvailability.start_minute)
        )
    )


def set_exception(db: Session, who: Principal, data: ExceptionIn) -> AvailabilityException:
    """A day off (or other hours that day); replaces that day's exception."""
    user = _require_advisor(db, who)
    start = end = None
    if data.available:
        if not data.start or not data.end:
            raise ValidationFailed(
                "other hours need a start and an end", code="bad_window", detail={"field": "start"}
            )
        start, end = _minutes(data.start, "start"), _minutes(data.end, "end")
        _business(start, end, "start")
    found = db.scalar(
        select(AvailabilityException).where(
            AvailabilityException.advisor_id == user.id, AvailabilityException.day == data.day
        )
    )
    row = found or AvailabilityException(advisor_id=user.id, day=data.day)
    row.available, row.start_minute, row.end_minute = int(data.available), start, end
    row.reason = (data.reason or "").strip() or None
    if found is None:
        db.add(row)
    db.flush()
    return row


def _advisor(db: Session, advisor_id: str) -> User:
    user = identity.get_user(db, advisor_id)
    if user is None or user.role != Role.advisor.value:
        raise NotFound("no such advisor", code="unknown_advisor", detail={"field": "advisor_id"})
    return user


def _local(day: date, minute: int) -> datetime:
    return clock.as_utc(
        datetime.combine(day, time(0), tzinfo=clock.SHANGHAI) + timedelta(minutes=minute)
    )


def _generated(db: Session, advisor_id: str, first: date, last: date) -> list[Slot]:
    windows: dict[int, list[AdvisorAvailability]] = {}
    for w in weekly(db, advisor_id):
        windows.setdefault(w.weekday, []).append(w)
    exceptions = {
        e.day: e
        for e in db.scalars(
            select(AvailabilityException).where(
                AvailabilityException.advisor_id == advisor_id,
                AvailabilityException.day >= first,
                AvailabilityException.day <= last,
            )
        )
    }
    out: list[Slot] = []
    day = first
    while day <= last:
        spans = [
            (w.start_minute, w.end_minute, w.slot_minutes) for w in windows.get(day.weekday(), [])
        ]
        exc = exceptions.get(day)
        if exc is not None:
            length = spans[0][2] if spans else 30
            spans = [(exc.start_minute or 0, exc.end_minute or 0, length)] if exc.available else []
        for start, end, length in spans:
            minute = start
            while minute + length <= end:
                out.append(Slot(_local(day, minute), _local(day, minute + length)))
                minute += length
        day += timedelta(days=1)
    return out


def _booked(db: Session, advisor_id: str, since: datetime, until: datetime) -> set[datetime]:
    return {
        clock.as_utc(s)
        for s in db.scalars(
            select(Appointment.slot_start).where(
                Appointment.advisor_id == advisor_id,
                Appointment.status == AppointmentStatus.booked.value,
                Appointment.slot_start >= since,
                Appointment.slot_start < until,
            )
        )
    }


def free_slots(
    db: Session, advisor_id: str, first: date | None = None, last: date | None = None
) -> list[Slot]:
    """The advisor's free slots on local dates ``first``..``last`` (at most 31 days,
    within the booking horizon), from 30 minutes from now."""
    _advisor(db, advisor_id)
    today = clock.today()
    first = max(first or today, today)
    last = last or first + timedelta(days=6)
    if last < first:
        raise ValidationFailed("'to' is before 'from'", code="bad_range", detail={"field": "to"})
    if (last - first).days >= MAX_RANGE_DAYS:
        raise ValidationFailed(
            f"ask for at most {MAX_RANGE_DAYS} days of slots",
            code="range_too_long",
            detail={"field": "to", "max_days": MAX_RANGE_DAYS},
        )
    last = min(last, today + timedelta(days=HORIZON_DAYS))
    slots = _generated(db, advisor_id, first, last)
    if not slots:
        return []
    taken = _booked(db, advisor_id, slots[0].start, slots[-1].end)
    earliest = clock.now() + MIN_NOTICE
    return [s for s in slots if s.start >= earliest and s.start not in taken]


def bookable(db: Session, advisor_id: str, line: str | None) -> bool:
    return line is None or routing.license_problem(db, advisor_id, line) is None


# Booking ---------------------------------------------------------------------------


def _slot_of(db: Session, advisor_id: str, start: datetime) -> Slot:
    moment = clock.as_utc(start if start.tzinfo else start.replace(tzinfo=clock.SHANGHAI))
    day = clock.to_local(moment).date()
    for slot in _generated(db, advisor_id, day, day):
        if slot.start == moment:
            if slot.start < clock.now() + MIN_NOTICE:
                raise Conflict(
                    "this slot is too soon to book",
                    code="slot_too_soon",
                    detail={"field": "slot_start"},
                )
            if day > clock.today() + timedelta(days=HORIZON_DAYS):
                break
            return slot
    raise ValidationFailed(
        "the advisor offers no such slot", code="no_such_slot", detail={"field": "slot_start"}
    )


def _live_key(advisor_id: str, start: datetime) -> str:
    return f"{advisor_id}|{clock.as_utc(start).strftime('%Y%m%dT%H%M')}"


def _insert(db: Session, row: Appointment) -> None:
    """Add the booking in a savepoint: a slot someone else holds is 409 ``slot_taken``
    and leaves the caller's transaction usable."""
    try:
        with db.begin_nested():
            db.add(row)
            db.flush()
    except IntegrityError:
        raise Conflict(
            "this slot was just booked by someone else; choose another",
            code="slot_taken",
            detail={"field": "slot_start"},
        ) from None


def _when(moment: datetime) -> str:
    return clock.to_local(moment).strftime("%Y-%m-%d %H:%M")


def _line_refusal(db: Session, advisor_id: str, line: str | None) -> None:
    if line is None:
        return
    problem = routing.license_problem(db, advisor_id, line)
    if problem is not None:
        raise Conflict(
            f"this advisor cannot advise on {line}: {problem.message}",
            code="advisor_not_licensed",
            detail={"field": "advisor_id", "line": line, "reason": problem.code},
        )


def book(db: Session, who: Principal, data: BookingIn) -> Appointment:
    """The customer books a free slot (see the module docstring)."""
    if who.role is not Role.customer or not who.user_id:
        raise Forbidden("customers book appointments", code="customer_only")
    advisor = _advisor(db, data.advisor_id)
    line = data.product_line.value if data.product_line else None
    _line_refusal(db, advisor.id, line)
    slot = _slot_of(db, advisor.id, data.slot_start)
    caller = service.Caller(customer_id=who.user_id)
    conv: Conversation | None = None
    if data.conversation_id:
        conv = service.get_for_caller(db, caller, data.conversation_id)
    now = clock.now()
    row = Appointment(
        advisor_id=advisor.id,
        customer_id=who.user_id,
        kind=data.kind.value,
        topic=data.topic.strip(),
        product_line=line,
        slot_start=slot.start,
        slot_end=slot.end,
        status=AppointmentStatus.booked.value,
        live_key=_live_key(advisor.id, slot.start),
        created_at=now,
        updated_at=now,
    )
    _insert(db, row)
    if conv is None:
        conv, _ = service.start(
            db, caller, channel=Channel.phone.value, body=row.topic, subject=row.topic
        )
        if line and conv.product_line is None:
            conv.product_line = line
    row.conversation_id = conv.id
    service.add_system_message(
        db,
        conv,
        f"预约{_kind_zh(row.kind)}：{_when(row.slot_start)} · {advisor.name}",
        purpose="appointment",
    )
    _tell(db, advisor.id, row, "booked")
    audit.record(
        db,
        "appointment.booked",
        actor=service.actor_of(who),
        subject_type="appointment",
        subject_id=row.id,
        detail={"advisor": advisor.id, "slot": row.slot_start.isoformat(), "kind": row.kind},
    )
    return row


def _kind_zh(kind: str) -> str:
    return "电话咨询" if kind == AppointmentKind.phone.value else "视频咨询"


# What the other side (or both) is told: (title, body) in Chinese and in English, with
# {when} {kind} {kind_zh} {topic} of the appointment and the event's own values.
NOTICES: dict[str, tuple[str, str, str, str]] = {
    "booked": (
        "新的预约",
        "{when} {kind_zh}：{topic}",
        "New appointment",
        "{when} {kind}: {topic}",
    ),
    "cancelled": (
        "预约已取消",
        "{when} 的{kind_zh}已被{side_zh}取消。",
        "Appointment cancelled",
        "The {kind} appointment at {when} was cancelled by the {side}.",
    ),
    "rescheduled": (
        "预约已改期",
        "{kind_zh}从 {was} 改到 {when}。",
        "Appointment rescheduled",
        "The {kind} appointment moved from {was} to {when}.",
    ),
    "reminder": (
        "预约提醒",
        "{when} 的{kind_zh}即将开始：{topic}",
        "Appointment reminder",
        "Your {kind} appointment at {when} is coming up: {topic}",
    ),
}


def _tell(db: Session, user_id: str, row: Appointment, event: str, **extra: str) -> None:
    values = {
        "when": _when(row.slot_start),
        "kind": row.kind,
        "kind_zh": _kind_zh(row.kind),
        "topic": row.topic,
        **extra,
    }
    title, body, title_en, body_en = NOTICES[event]
    notify.send(
        db,
        user_id=user_id,
        topic=f"appointment.{event}",
        subject_type="appointment",
        subject_id=row.id,
        title=title,
        body=body.format(**values),
        title_en=title_en,
        body_en=body_en.format(**values),
    )


# Reading ---------------------------------------------------------------------------


def _side(who: Principal, row: Appointment) -> str | None:
    if who.user_id == row.customer_id and who.role is Role.customer:
        return "customer"
    if who.user_id == row.advisor_id and who.role is Role.advisor:
        return "advisor"
    return None


def get_for(db: Session, who: Principal, appointment_id: str, *, lock: bool = False) -> Appointment:
    """One appointment of the caller's own (customer or advisor); 404 for anyone else's."""
    row = db.get(Appointment, appointment_id, with_for_update=lock, populate_existing=lock)
    if row is None or _side(who, row) is None:
        raise NotFound("no such appointment", detail={"field": "appointment_id"})
    return row


def of_customer(db: Session, customer_id: str) -> list[Appointment]:
    return list(
        db.scalars(
            select(Appointment)
            .where(Appointment.customer_id == customer_id)
            .order_by(Appointment.slot_start.desc())
            .limit(100)
        )
    )


def of_advisor(db: Session, advisor_id: str, *, upcoming_only: bool = True) -> list[Appointment]:
    stmt = select(Appointment).where(Appointment.advisor_id == advisor_id)
    if upcoming_only:
        stmt = stmt.where(
            Appointment.slot_end >= clock.now() - timedelta(hours=12),
            Appointment.status.in_(
                (AppointmentStatus.booked.value, AppointmentStatus.completed.value)
            ),
        )
    return list(db.scalars(stmt.order_by(Appointment.slot_start).limit(200)))


def records_of(db: Session, appointment_id: str) -> list[CallRecord]:
    return list(
        db.scalars(
            select(CallRecord)
            .where(CallRecord.appointment_id == appointment_id)
            .order_by(CallRecord.created_at)
        )
    )


# Changes ---------------------------------------------------------------------------


def _move(db: Session, row: Appointment, to: AppointmentStatus, **values: object) -> None:
    current = AppointmentStatus(row.status)
    if to not in APPOINTMENT_TRANSITIONS[current]:
        raise Conflict(
            f"a {current.value} appointment cannot become {to.value}",
            code="bad_appointment_transition",
            detail={"from": current.value, "to": to.value},
        )
    done = db.execute(
        update(Appointment)
        .where(Appointment.id == row.id, Appointment.status == current.value)
        .values(status=to.value, updated_at=clock.now(), **values)
        .execution_options(synchronize_session=False)
    )
    if getattr(done, "rowcount", 0) != 1:
        raise Conflict("the appointment changed meanwhile", code="appointment_changed")
    db.refresh(row)


def _other(row: Appointment, side: str) -> str:
    return row.advisor_id if side == "customer" else row.customer_id


def _timeline(db: Session, row: Appointment, body: str) -> None:
    conv = db.get(Conversation, row.conversation_id) if row.conversation_id else None
    if conv is not None:
        service.add_system_message(db, conv, body, purpose="appointment")


def cancel(
    db: Session, who: Principal, appointment_id: str, reason: str | None = None
) -> Appointment:
    row = get_for(db, who, appointment_id, lock=True)
    side = _side(who, row) or ""
    if row.status == AppointmentStatus.booked.value and row.slot_start <= clock.now():
        raise Conflict("the appointment has started", code="appointment_started")
    _move(
        db,
        row,
        AppointmentStatus.cancelled,
        live_key=row.id,
        cancelled_by=side,
        cancel_reason=(reason or "").strip()[:500] or None,
    )
    _timeline(db, row, f"预约已取消：{_when(row.slot_start)}")
    _tell(db, _other(row, side), row, "cancelled", side=side, side_zh=SIDE_ZH.get(side, ""))
    audit.record(
        db,
        "appointment.cancelled",
        actor=service.actor_of(who),
        subject_type="appointment",
        subject_id=row.id,
        detail={"by": side},
    )
    return row


def reschedule(
    db: Session, who: Principal, appointment_id: str, new_start: datetime
) -> Appointment:
    """Move to another free slot of the same advisor: a new booking, the old one
    ``rescheduled`` (and its slot free) in the same transaction."""
    row = get_for(db, who, appointment_id, lock=True)
    side = _side(who, row) or ""
    if row.status != AppointmentStatus.booked.value:
        raise Conflict(
            f"a {row.status} appointment cannot be rescheduled",
            code="bad_appointment_transition",
            detail={"from": row.status, "to": AppointmentStatus.rescheduled.value},
        )
    if row.slot_start <= clock.now():
        raise Conflict("the appointment has started", code="appointment_started")
    _line_refusal(db, row.advisor_id, row.product_line)
    slot = _slot_of(db, row.advisor_id, new_start)
    _move(db, row, AppointmentStatus.rescheduled, live_key=row.id)
    now = clock.now()
    moved = Appointment(
        advisor_id=row.advisor_id,
        customer_id=row.customer_id,
        conversation_id=row.conversation_id,
        kind=row.kind,
        topic=row.topic,
        product_line=row.product_line,
        slot_start=slot.start,
        slot_end=slot.end,
        status=AppointmentStatus.booked.value,
        live_key=_live_key(row.advisor_id, slot.start),
        created_at=now,
        updated_at=now,
    )
    _insert(db, moved)
    row.rescheduled_to_id = moved.id
    _timeline(db, moved, f"预约改期：{_when(row.slot_start)} → {_when(moved.slot_start)}")
    _tell(db, _other(row, side), moved, "rescheduled", was=_when(row.slot_start))
    audit.record(
        db,
        "appointment.rescheduled",
        actor=service.actor_of(who),
        subject_type="appointment",
        subject_id=moved.id,
        detail={"from": row.id, "by": side},
    )
    return moved


def remind(db: Session) -> int:
    """Remind both sides of each booking starting within two hours (once)."""
    now = clock.now()
    due = list(
        db.scalars(
            select(Appointment).where(
                Appointment.status == AppointmentStatus.booked.value,
                Appointment.reminded_at.is_(None),
                Appointment.slot_start > now,
                Appointment.slot_start <= now + REMIND_BEFORE,
            )
        )
    )
    sent = 0
    for row in due:
        claimed = db.execute(
            update(Appointment)
            .where(Appointment.id == row.id, Appointment.reminded_at.is_(None))
            .values(reminded_at=now)
            .execution_options(synchronize_session=False)
        )
        if getattr(claimed, "rowcount", 0) != 1:
            continue  # another run reminded it
        for user_id in (row.customer_id, row.advisor_id):
            _tell(db, user_id, row, "reminder")
        sent += 1
    return sent


# After the call --------------------------------------------------------------------


def _private_note(db: Session, who: Principal, conversation_id: str, text: str) -> None:
    """A private note by the appointment's advisor in the appointment's conversation
    (with their R2 identity snapshot).  The booking gives them the right to annotate
    it even when the desk assigned the conversation to someone else: the note is then
    written under a supervising role, never public."""
    try:
        service.reply(db, who, conversation_id, text, private=True)
    except NotFound:
        elevated = Principal(role=Role.ops, user_id=who.user_id, name=who.name, method=who.method)
        service.reply(db, elevated, conversation_id, text, private=True)


def record_call(db: Session, who: Principal, appointment_id: str, data: CallRecordIn) -> CallRecord:
    """The advisor's notes and the recording's reference, once the slot has begun."""
    row = get_for(db, who, appointment_id, lock=True)
    if _side(who, row) != "advisor":
        raise NotFound("no such appointment", detail={"field": "appointment_id"})
    if row.status not in (AppointmentStatus.booked.value, AppointmentStatus.completed.value):
        raise Conflict(f"a {row.status} appointment has no call", code="appointment_not_held")
    if row.slot_start > clock.now():
        raise Conflict("the call has not started yet", code="call_not_started")
    notes = (data.notes or "").strip() or None
    ref = (data.recording_ref or "").strip() or None
    digest = (data.recording_sha256 or "").strip().lower() or None
    if notes is None and ref is None:
        raise ValidationFailed(
            "write notes or give the recording", code="empty_call_record", detail={"field": "notes"}
        )
    if ref is not None:
        if ref.lower().startswith("data:") or not REF.match(ref):
            raise ValidationFailed(
                "the recording is a storage key or URL, never the audio",
                code="bad_recording_ref",
                detail={"field": "recording_ref"},
            )
        if digest is None or not SHA256.match(digest) or data.recording_seconds is None:
            raise ValidationFailed(
                "a recording needs its duration and SHA-256 checksum",
                code="recording_incomplete",
                detail={
                    "field": "recording_sha256" if data.recording_seconds else "recording_seconds"
                },
            )
    if row.status == AppointmentStatus.booked.value:
        _move(db, row, AppointmentStatus.completed)
    call_day = clock.to_local(row.slot_start).date()
    record = CallRecord(
        appointment_id=row.id,
        author_id=who.user_id or "",
        notes=notes,
        recording_ref=ref,
        recording_seconds=data.recording_seconds if ref else None,
        recording_sha256=digest if ref else None,
        retain_until=call_day.replace(year=call_day.year + RETAIN_YEARS)
        if not (call_day.month == 2 and call_day.day == 29)
        else date(call_day.year + RETAIN_YEARS, 3, 1),
        created_at=clock.now(),
    )
    db.add(record)
    db.flush()
    conv = db.get(Conversation, row.conversation_id) if row.conversation_id else None
    if conv is not None:
        lines = [f"通话记录（{_kind_zh(row.kind)} {_when(row.slot_start)}）"]
        if notes:
            lines.append(f"备注：{notes}")
        if ref:
            minutes, seconds = divmod(data.recording_seconds or 0, 60)
            lines.append(f"录音：{ref}（{minutes}:{seconds:02d}，SHA-256 {digest}）")
            lines.append(
                f"保存至 {record.retain_until.isoformat() if record.retain_until else '-'}"
            )
        _private_note(db, who, conv.id, "\n".join(lines))
    audit.record(
        db,
        "appointment.call_recorded",
        actor=service.actor_of(who),
        subject_type="appointment",
        subject_id=row.id,
        detail={"record": record.id, "recording": bool(ref)},
    )
    return record
