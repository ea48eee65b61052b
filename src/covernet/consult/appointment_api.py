"""Appointment routes (``consult.appointments``): advisors' hours and free slots,
booking by customers, cancel/reschedule by either side, the advisor's call records."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, Field
from sqlalchemy.orm import Session

from covernet.catalog.spec import Line
from covernet.consult import appointments
from covernet.consult.appointment_models import Appointment, CallRecord
from covernet.core import clock
from covernet.identity import service as identity
from covernet.identity.access import Customer, Db, Principal, Public, allow
from covernet.identity.models import Role

router = APIRouter(prefix="/api/v1", tags=["appointments"])

Advisor = Annotated[Principal, allow(Role.advisor)]
Party = Annotated[Principal, allow(Role.customer, Role.advisor)]


class SlotOut(BaseModel):
    start: datetime
    end: datetime
    local_start: str = Field(description="Asia/Shanghai wall clock, YYYY-MM-DDTHH:MM")


class SlotsOut(BaseModel):
    advisor_id: str
    advisor_name: str
    bookable_for_line: bool
    slots: list[SlotOut]


class WindowOut(BaseModel):
    weekday: int
    start: str
    end: str
    slot_minutes: int


class WeeklyIn(BaseModel):
    windows: list[appointments.WindowIn] = Field(max_length=50)


class AppointmentOut(BaseModel):
    id: str
    advisor_id: str
    advisor_name: str
    customer_id: str
    conversation_id: str | None
    kind: str
    topic: str
    product_line: str | None
    slot_start: datetime
    slot_end: datetime
    local_start: str
    status: str
    rescheduled_to_id: str | None
    cancelled_by: str | None


class CancelIn(BaseModel):
    reason: str | None = Field(default=None, max_length=500)


class RescheduleIn(BaseModel):
    slot_start: AwareDatetime


class CallRecordOut(BaseModel):
    id: str
    appointment_id: str
    notes: str | None
    recording_ref: str | None
    recording_seconds: int | None
    recording_sha256: str | None
    retain_until: date | None
    created_at: datetime


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _local(moment: datetime) -> str:
    return clock.to_local(moment).strftime("%Y-%m-%dT%H:%M")


def appointment_out(db: Session, row: Appointment) -> AppointmentOut:
    advisor = identity.get_user(db, row.advisor_id)
    return AppointmentOut(
        id=row.id,
        advisor_id=row.advisor_id,
        advisor_name=advisor.name if advisor else "-",
        customer_id=row.customer_id,
        conversation_id=row.conversation_id,
        kind=row.kind,
        topic=row.topic,
        product_line=row.product_line,
        slot_start=row.slot_start,
        slot_end=row.slot_end,
        local_start=_local(row.slot_start),
        status=row.status,
        rescheduled_to_id=row.rescheduled_to_id,
        cancelled_by=row.cancelled_by,
    )


def record_out(row: CallRecord) -> CallRecordOut:
    return CallRecordOut(
        id=row.id,
        appointment_id=row.appointment_id,
        notes=row.notes,
        recording_ref=row.recording_ref,
        recording_seconds=row.recording_seconds,
        recording_sha256=row.recording_sha256,
        retain_until=row.retain_until,
        created_at=row.created_at,
    )


@router.get("/advisors/{advisor_id}/slots", response_model=SlotsOut)
def advisor_slots(
    advisor_id: str,
    db: Db,
    _: Public,
    from_: Annotated[date | None, Query(alias="from", description="local date")] = None,
    to: Annotated[date | None, Query(description="local date, inclusive")] = None,
    line: Annotated[Line | None, Query()] = None,
) -> SlotsOut:
    """The advisor's free slots (30 minutes' notice, at most 31 days per query); with
    ``line``, whether they may take a sales appointment on it (R1)."""
    slots = appointments.free_slots(db, advisor_id, from_, to)
    advisor = identity.get_user(db, advisor_id)
    return SlotsOut(
        advisor_id=advisor_id,
        advisor_name=advisor.name if advisor else "-",
        bookable_for_line=appointments.bookable(db, advisor_id, line.value if line else None),
        slots=[SlotOut(start=s.start, end=s.end, local_start=_local(s.start)) for s in slots],
    )


@router.get("/desk/availability", response_model=list[WindowOut])
def my_hours(db: Db, who: Advisor) -> list[WindowOut]:
    """Your weekly appointment hours."""
    return [
        WindowOut(
            weekday=w.weekday,
            start=_hhmm(w.start_minute),
            end=_hhmm(w.end_minute),
            slot_minutes=w.slot_minutes,
        )
        for w in appointments.weekly(db, who.user_id or "")
    ]


@router.put("/desk/availability", response_model=list[WindowOut])
def set_my_hours(body: WeeklyIn, db: Db, who: Advisor) -> list[WindowOut]:
    """Replace your weekly hours (local Asia/Shanghai times, business hours only)."""
    appointments.set_weekly(db, who, body.windows)
    return my_hours(db, who)


@router.post("/desk/availability/exceptions", status_code=201)
def add_exception(body: appointments.ExceptionIn, db: Db, who: Advisor) -> dict[str, str]:
    """A day off, or other hours that day."""
    row = appointments.set_exception(db, who, body)
    return {"id": row.id, "day": row.day.isoformat()}


@router.post("/appointments", response_model=AppointmentOut, status_code=201)
def book(body: appointments.BookingIn, db: Db, who: Customer) -> AppointmentOut:
    """Book a free slot (409 ``slot_taken`` if someone was quicker)."""
    return appointment_out(db, appointments.book(db, who, body))


@router.get("/me/appointments", response_model=list[AppointmentOut])
def my_appointments(db: Db, who: Customer) -> list[AppointmentOut]:
    """Your appointments, newest slot first."""
    return [appointment_out(db, r) for r in appointments.of_customer(db, who.user_id or "")]


@router.get("/desk/appointments", response_model=list[AppointmentOut])
def desk_appointments(db: Db, who: Advisor) -> list[AppointmentOut]:
    """Your upcoming appointments (and today's past ones), soonest first."""
    return [appointment_out(db, r) for r in appointments.of_advisor(db, who.user_id or "")]


@router.get("/appointments/{appointment_id}", response_model=AppointmentOut)
def get_appointment(appointment_id: str, db: Db, who: Party) -> AppointmentOut:
    return appointment_out(db, appointments.get_for(db, who, appointment_id))


@router.post("/appointments/{appointment_id}/cancel", response_model=AppointmentOut)
def cancel(appointment_id: str, body: CancelIn, db: Db, who: Party) -> AppointmentOut:
    """Cancel (either side); the other side is notified."""
    return appointment_out(db, appointments.cancel(db, who, appointment_id, body.reason))


@router.post(
    "/appointments/{appointment_id}/reschedule", response_model=AppointmentOut, status_code=201
)
def reschedule(appointment_id: str, body: RescheduleIn, db: Db, who: Party) -> AppointmentOut:
    """Move to another free slot of the same advisor: answers the new booking."""
    return appointment_out(db, appointments.reschedule(db, who, appointment_id, body.slot_start))


@router.post(
    "/desk/appointments/{appointment_id}/call-records",
    response_model=CallRecordOut,
    status_code=201,
)
def record_call(
    appointment_id: str, body: appointments.CallRecordIn, db: Db, who: Advisor
) -> CallRecordOut:
    """After the call: notes and the recording's reference (key/URL, seconds, SHA-256)."""
    return record_out(appointments.record_call(db, who, appointment_id, body))


@router.get("/desk/appointments/{appointment_id}/call-records", response_model=list[CallRecordOut])
def call_records(appointment_id: str, db: Db, who: Advisor) -> list[CallRecordOut]:
    row = appointments.get_for(db, who, appointment_id)
    return [record_out(r) for r in appointments.records_of(db, row.id)]
