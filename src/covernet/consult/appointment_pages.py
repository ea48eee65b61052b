"""Appointment pages: the customer books on ``/advisors/{id}/book`` (a server-rendered
slot picker, a week at a time) and sees ``/me/appointments``; the advisor sees
``/console/desk/appointments`` (upcoming calls, cancel, notes and recording reference
after the call).  The same service calls as the JSON routes."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from covernet.catalog.spec import LINE_LABELS, Line
from covernet.compliance import drafts
from covernet.consult import appointments
from covernet.consult.appointment_models import Appointment, AppointmentKind
from covernet.core import clock, i18n
from covernet.core.errors import CovernetError, Forbidden, ValidationFailed
from covernet.core.masking import mask_name
from covernet.identity import service as identity
from covernet.identity.access import Db, Principal, Public
from covernet.identity.models import Role
from covernet.web.console import console_guard
from covernet.web.csrf import PostedForm
from covernet.web.render import error_message, mark_page, render

router = APIRouter(dependencies=[Depends(mark_page)], include_in_schema=False)

DESK_PATH = "/console/desk/appointments"
MINE_PATH = "/me/appointments"


def _customer_guard(who: Principal, path: str) -> Response | None:
    if not who.is_authenticated:
        return RedirectResponse(f"/login?next={path}", status_code=303)
    if who.role is not Role.customer:
        raise Forbidden("appointments are booked by customers", code="customer_only")
    return None


def _day(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _days(slots: list[appointments.Slot]) -> list[dict[str, Any]]:
    grouped: dict[date, list[dict[str, str]]] = {}
    for s in slots:
        local = s.local_start
        grouped.setdefault(local.date(), []).append(
            {"value": s.start.isoformat(), "label": local.strftime("%H:%M")}
        )
    return [{"day": d, "slots": items} for d, items in grouped.items()]


def _book_page(
    request: Request,
    db: Session,
    who: Principal,
    advisor_id: str,
    *,
    start: date | None,
    values: dict[str, str],
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    lang = i18n.negotiate_lang(request)
    first = max(start or clock.today(), clock.today())
    slots = appointments.free_slots(db, advisor_id, first, first + timedelta(days=6))
    advisor = identity.get_user(db, advisor_id)
    ident = drafts.advisor_identity(db, advisor_id)
    return render(
        request,
        "appointment_book.html",
        status=status,
        toggle_path=f"/advisors/{advisor_id}/book",
        advisor_id=advisor_id,
        advisor_name=ident.name if ident else (advisor.name if advisor else "-"),
        institution=ident.institution if ident else None,
        license_no=ident.license_no if ident else None,
        days=_days(slots),
        first=first,
        prev_week=(first - timedelta(days=7)) if first > clock.today() else None,
        next_week=first + timedelta(days=7),
        kinds=[k.value for k in AppointmentKind],
        lines=[(line.value, LINE_LABELS[line].get(lang)) for line in Line],
        values=values,
        error=error,
        csrf_token=who.csrf_token,
    )


@router.get("/advisors/{advisor_id}/book", response_class=HTMLResponse)
def book_page(
    advisor_id: str,
    request: Request,
    db: Db,
    who: Public,
    start: str | None = None,
    conversation: str | None = None,
    line: str | None = None,
) -> Response:
    path = f"/advisors/{advisor_id}/book"
    if (guard := _customer_guard(who, path)) is not None:
        return guard
    values = {"conversation_id": conversation or "", "product_line": line or "", "kind": "phone"}
    return _book_page(request, db, who, advisor_id, start=_day(start), values=values)


@router.post("/advisors/{advisor_id}/book", response_class=HTMLResponse)
def book_submit(
    advisor_id: str, request: Request, form: PostedForm, db: Db, who: Public
) -> Response:
    path = f"/advisors/{advisor_id}/book"
    if (guard := _customer_guard(who, path)) is not None:
        return guard
    values = {
        k: str(form.get(k, "") or "")
        for k in ("slot_start", "kind", "topic", "product_line", "conversation_id", "start")
    }
    try:
        if not values["slot_start"]:
            raise ValidationFailed(
                "choose a time", code="slot_required", detail={"field": "slot_start"}
            )
        try:
            data = appointments.BookingIn(
                advisor_id=advisor_id,
                slot_start=datetime.fromisoformat(values["slot_start"]),
                kind=AppointmentKind(values["kind"] or "phone"),
                topic=values["topic"].strip(),
                product_line=Line(values["product_line"]) if values["product_line"] else None,
                conversation_id=values["conversation_id"] or None,
            )
        except (ValueError, ValidationError):
            raise ValidationFailed(
                "write what the call is about and choose a time and a kind",
                code="bad_booking",
                detail={"field": "topic"},
            ) from None
        row = appointments.book(db, who, data)
    except CovernetError as exc:
        if exc.status == 404:
            raise
        db.rollback()
        return _book_page(
            request,
            db,
            who,
            advisor_id,
            start=_day(values["start"]),
            values=values,
            error=error_message(exc, i18n.negotiate_lang(request)),
            status=exc.status,
        )
    return RedirectResponse(f"{MINE_PATH}?booked={row.id}", status_code=303)


def _view(db: Session, row: Appointment, *, staff: bool) -> dict[str, Any]:
    other = identity.get_user(db, row.customer_id if staff else row.advisor_id)
    name = other.name if other else "-"
    return {
        "id": row.id,
        "kind": row.kind,
        "topic": row.topic,
        "line": row.product_line,
        "start": row.slot_start,
        "end": row.slot_end,
        "status": row.status,
        "who": mask_name(name) if staff else name,
        "conversation_id": row.conversation_id,
        "started": clock.as_utc(row.slot_start) <= clock.now(),
        "records": [
            {"notes": r.notes, "ref": r.recording_ref, "seconds": r.recording_seconds}
            for r in appointments.records_of(db, row.id)
        ]
        if staff
        else [],
    }


@router.get(MINE_PATH, response_class=HTMLResponse)
def my_appointments(request: Request, db: Db, who: Public, booked: str | None = None) -> Response:
    if (guard := _customer_guard(who, MINE_PATH)) is not None:
        return guard
    rows = appointments.of_customer(db, who.user_id or "")
    return render(
        request,
        "appointments.html",
        toggle_path=MINE_PATH,
        rows=[_view(db, r, staff=False) for r in rows],
        booked=booked,
        csrf_token=who.csrf_token,
    )


@router.post(MINE_PATH + "/{appointment_id}/cancel", response_class=HTMLResponse)
def my_cancel(
    appointment_id: str, request: Request, form: PostedForm, db: Db, who: Public
) -> Response:
    if (guard := _customer_guard(who, MINE_PATH)) is not None:
        return guard
    appointments.cancel(db, who, appointment_id, str(form.get("reason", "") or ""))
    return RedirectResponse(MINE_PATH, status_code=303)


def _desk_guard(who: Principal) -> Response | None:
    return console_guard(
        who, frozenset({Role.advisor}), DESK_PATH, "appointments are an advisor's own"
    )


def _desk_page(
    request: Request, db: Session, who: Principal, *, error: str | None = None, status: int = 200
) -> HTMLResponse:
    rows = appointments.of_advisor(db, who.user_id or "")
    return render(
        request,
        "desk_appointments.html",
        status=status,
        toggle_path=DESK_PATH,
        rows=[_view(db, r, staff=True) for r in rows],
        hours=[
            {
                "weekday": w.weekday,
                "start": f"{w.start_minute // 60:02d}:{w.start_minute % 60:02d}",
                "end": f"{w.end_minute // 60:02d}:{w.end_minute % 60:02d}",
                "slot": w.slot_minutes,
            }
            for w in appointments.weekly(db, who.user_id or "")
        ],
        book_link=f"/advisors/{who.user_id}/book",
        error=error,
        csrf_token=who.csrf_token,
    )


@router.get(DESK_PATH, response_class=HTMLResponse)
def desk_appointments(request: Request, db: Db, who: Public) -> Response:
    if (guard := _desk_guard(who)) is not None:
        return guard
    return _desk_page(request, db, who)


@router.post(DESK_PATH + "/{appointment_id}/{action}", response_class=HTMLResponse)
def desk_act(
    appointment_id: str, action: str, request: Request, form: PostedForm, db: Db, who: Public
) -> Response:
    """record (notes, recording reference) / cancel."""
    if (guard := _desk_guard(who)) is not None:
        return guard
    try:
        if action == "record":
            seconds = str(form.get("recording_seconds", "") or "").strip()
            try:
                data = appointments.CallRecordIn(
                    notes=str(form.get("notes", "") or "") or None,
                    recording_ref=str(form.get("recording_ref", "") or "") or None,
                    recording_seconds=int(seconds) if seconds else None,
                    recording_sha256=str(form.get("recording_sha256", "") or "") or None,
                )
            except (ValueError, ValidationError):
                raise ValidationFailed(
                    "the recording's duration is whole seconds, its checksum 64 hex digits",
                    code="recording_incomplete",
                    detail={"field": "recording_seconds"},
                ) from None
            appointments.record_call(db, who, appointment_id, data)
        elif action == "cancel":
            appointments.cancel(db, who, appointment_id, str(form.get("reason", "") or ""))
        else:
            raise ValidationFailed("no such action", code="unknown_action")
    except CovernetError as exc:
        if exc.status == 404:
            raise
        db.rollback()
        lang = i18n.negotiate_lang(request)
        return _desk_page(request, db, who, error=error_message(exc, lang), status=exc.status)
    return RedirectResponse(f"{DESK_PATH}#a-{appointment_id}", status_code=303)
