"""The desk's console pages: ``/console/desk`` (the inbox by state, most urgent first)
and ``/console/desk/{id}`` (the conversation with the masked customer, reply, private
note, state, snooze, transfer).  The same service calls as the JSON routes; new
messages appear through the desk's socket (``js/desk.js``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from covernet.consult import api, service
from covernet.consult.models import Availability, State
from covernet.core import clock, i18n
from covernet.core.errors import CovernetError, NotFound, ValidationFailed
from covernet.identity.access import Db, Principal, Public
from covernet.web.console import console_guard
from covernet.web.csrf import PostedForm
from covernet.web.render import error_message, mark_page, render

router = APIRouter(dependencies=[Depends(mark_page)], include_in_schema=False)

PATH = "/console/desk"
STATES = ("open", "pending", "snoozed", "resolved", "all")


def _guard(who: Principal, path: str = PATH) -> Response | None:
    return console_guard(who, service.DESK_ROLES, path, "the desk is for advisors and ops")


@router.get(PATH, response_class=HTMLResponse)
def desk_inbox(request: Request, db: Db, who: Public, state: str = "open") -> Response:
    if (guard := _guard(who)) is not None:
        return guard
    if state not in STATES:
        state = "open"
    service.wake_snoozed(db)
    rows = service.inbox(db, who, state=None if state == "all" else State(state))
    me = service.agent(db, who.user_id)
    return render(
        request,
        "desk.html",
        toggle_path=f"{PATH}?state={state}",
        state=state,
        states=STATES,
        counts=service.counts_by_state(db, who),
        rows=service.summaries(db, rows),
        me=me,
        availabilities=[a.value for a in Availability],
        csrf_token=who.csrf_token,
    )


def _conversation_page(
    request: Request,
    db: Session,
    who: Principal,
    conversation_id: str,
    *,
    error: str | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    conv = service.get_for_staff(db, who, conversation_id)
    view = api.desk_view(db, conv)
    agents = [
        (row.user_id, name, active, row.max_open)
        for row, name, active in service.agents(db)
        if row.user_id != conv.assignee_id
    ]
    return render(
        request,
        "desk_conversation.html",
        status=status,
        toggle_path=f"{PATH}/{conv.id}",
        conv=view,
        agents=agents,
        canned=service.canned_replies(db, who),
        error=error,
        values=values or {},
        now_local=clock.to_local(clock.now()).strftime("%Y-%m-%dT%H:%M"),
        csrf_token=who.csrf_token,
    )


@router.get(PATH + "/{conversation_id}", response_class=HTMLResponse)
def desk_conversation(conversation_id: str, request: Request, db: Db, who: Public) -> Response:
    if (guard := _guard(who, f"{PATH}/{conversation_id}")) is not None:
        return guard
    return _conversation_page(request, db, who, conversation_id)


def _local_time(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationFailed(
            "give the time as YYYY-MM-DDTHH:MM",
            code="bad_snooze_until",
            detail={"field": "snooze_until"},
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=clock.SHANGHAI)


def _act(db: Session, who: Principal, conversation_id: str, action: str, form: Any) -> None:
    text = str(form.get("body", "") or "")
    if action == "reply":
        service.reply(db, who, conversation_id, text)
    elif action == "note":
        service.reply(db, who, conversation_id, text, private=True)
    elif action == "canned":
        service.send_canned(db, who, conversation_id, str(form.get("item_id", "") or ""))
    elif action in ("open", "pending", "resolved"):
        service.move(db, who, conversation_id, State(action))
    elif action == "snooze":
        until = _local_time(str(form.get("snooze_until", "") or ""))
        service.move(db, who, conversation_id, State.snoozed, snooze_until=until)
    elif action == "outcome":
        service.record_outcome(db, who, conversation_id, str(form.get("outcome", "") or ""))
    elif action == "transfer":
        service.transfer(db, who, conversation_id, str(form.get("to_user_id", "") or ""))
    else:
        raise NotFound("no such action")


@router.post(PATH + "/availability", response_class=HTMLResponse)
def desk_availability(request: Request, form: PostedForm, db: Db, who: Public) -> Response:
    if (guard := _guard(who)) is not None:
        return guard
    try:
        availability = Availability(str(form.get("availability", "")))
    except ValueError:
        raise ValidationFailed(
            "choose online, away or offline",
            code="bad_availability",
            detail={"field": "availability"},
        ) from None
    service.set_availability(db, who, availability)
    return RedirectResponse(PATH, status_code=303)


@router.post(PATH + "/{conversation_id}/{action}", response_class=HTMLResponse)
def desk_act(
    conversation_id: str, action: str, request: Request, form: PostedForm, db: Db, who: Public
) -> Response:
    """reply / note / canned / open / pending / resolved / snooze / outcome / transfer."""
    if (guard := _guard(who, f"{PATH}/{conversation_id}")) is not None:
        return guard
    try:
        _act(db, who, conversation_id, action, form)
    except CovernetError as exc:
        if exc.status == 404:
            raise
        db.rollback()
        lang = i18n.negotiate_lang(request)
        values = {"body": str(form.get("body", "") or ""), "action": action}
        return _conversation_page(
            request,
            db,
            who,
            conversation_id,
            error=error_message(exc, lang),
            values=values,
            status=exc.status,
        )
    return RedirectResponse(f"{PATH}/{conversation_id}#latest", status_code=303)
