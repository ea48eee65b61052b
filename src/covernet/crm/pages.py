"""Staff console pages: customer search and the customer 360 (tags, notes, the
"显示完整信息" action with its reason), pool assignment, teams and the desk reports.

Each action is one call of :mod:`covernet.crm.service` (or ``pool``/``teams``), as the
JSON routes make. Pages are never cached (``Cache-Control: no-store`` on every page), so
a full value shown once is not kept by the browser.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from covernet.core import clock, i18n
from covernet.core.errors import CovernetError, NotFound
from covernet.crm import desk_reports, pool, service, teams
from covernet.identity.access import Db, Principal, Public
from covernet.web.console import console_guard
from covernet.web.csrf import PostedForm
from covernet.web.render import error_message, mark_page, render

router = APIRouter(dependencies=[Depends(mark_page)], include_in_schema=False)
# Included before the desk's pages, whose /console/desk/{conversation_id} would else
# take /console/desk/reports.
reports_router = APIRouter(dependencies=[Depends(mark_page)], include_in_schema=False)

PATH = "/console/customers"
TEAMS = "/console/teams"


def _guard(who: Principal, path: str) -> Response | None:
    return console_guard(who, service.READERS, path, "the customer pages are for staff")


def _text(form: Any, name: str, limit: int = 1200) -> str:
    return str(form.get(name, "") or "")[:limit]


def _search_page(request: Request, db: Session, who: Principal, q: str) -> HTMLResponse:
    lang = i18n.negotiate_lang(request)
    found: list[service.Found] = []
    error = None
    if q:
        try:
            found = service.search(db, who, q)
        except CovernetError as exc:
            error = error_message(exc, lang)
    mine = [] if q else service.pool_list(db, who)
    return render(
        request,
        "customers_console.html",
        toggle_path=PATH,  # the query never goes into links
        q=service.masked_query(q),
        found=found,
        pool=mine,
        error=error,
        csrf_token=who.csrf_token,
    )


@router.get(PATH, response_class=HTMLResponse)
def customers(request: Request, db: Db, who: Public) -> Response:
    """客户查询: without a query, the caller's pool (own, team's or everyone's)."""
    if (guard := _guard(who, PATH)) is not None:
        return guard
    return _search_page(request, db, who, request.query_params.get("q", "").strip()[:60])


@router.post(PATH, response_class=HTMLResponse)
def search_customers(request: Request, form: PostedForm, db: Db, who: Public) -> Response:
    """The search form posts, so a mobile number searched for stays out of the address,
    the browser history and the access logs."""
    if (guard := _guard(who, PATH)) is not None:
        return guard
    return _search_page(request, db, who, _text(form, "q", 60).strip())


def _page(
    request: Request,
    db: Session,
    who: Principal,
    customer_id: str,
    *,
    status: int = 200,
    error: str | None = None,
    error_action: str | None = None,
    message: str | None = None,
    revealed: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
) -> HTMLResponse:
    view = service.view(db, who, customer_id)
    can_assign = who.role in pool.ASSIGNERS or (
        who.user_id is not None and teams.is_supervisor(db, who.user_id)
    )
    return render(
        request,
        "customer_360.html",
        status=status,
        toggle_path=f"{PATH}/{customer_id}",
        c=view,
        revealed=revealed,
        error=error,
        error_action=error_action,
        message=message,
        values=values or {},
        vocabulary=service.TAG_VOCABULARY,
        reasons=service.UNMASK_REASONS,
        fields=service.UNMASK_FIELDS,
        reason_min=service.REASON_MIN,
        can_assign=can_assign,
        channels=CHANNELS,
        csrf_token=who.csrf_token,
    )


@router.get(PATH + "/{customer_id}", response_class=HTMLResponse)
def customer_360(customer_id: str, request: Request, db: Db, who: Public) -> Response:
    if (guard := _guard(who, f"{PATH}/{customer_id}")) is not None:
        return guard
    done = request.query_params.get("done", "")
    lang = i18n.negotiate_lang(request)
    message = i18n.translate(f"crm.done.{done}", lang) if done in ACTIONS else None
    return _page(request, db, who, customer_id, message=message)


ACTIONS = ("tag", "untag", "note", "assign")


def _act(db: Session, who: Principal, customer_id: str, action: str, form: Any) -> None:
    if action == "tag":
        tag = _text(form, "tag", 40).strip() or _text(form, "free_tag", 40)
        service.add_tag(db, who, customer_id, tag)
    elif action == "untag":
        service.remove_tag(db, who, customer_id, _text(form, "tag", 40))
    elif action == "note":
        service.add_note(db, who, customer_id, _text(form, "body"))
    else:
        pool.assign(db, who, customer_id, _text(form, "advisor_id", 36), _text(form, "reason", 400))


@router.post(PATH + "/{customer_id}/unmask", response_class=HTMLResponse)
def unmask(customer_id: str, request: Request, form: PostedForm, db: Db, who: Public) -> Response:
    """显示完整信息: the full value, shown once on this (uncached) answer."""
    if (guard := _guard(who, f"{PATH}/{customer_id}")) is not None:
        return guard
    field = _text(form, "field", 16)
    values = {
        "field": field,
        "reason_code": _text(form, "reason_code", 32),
        "reason": _text(form, "reason", 400),
    }
    try:
        value = service.unmask(db, who, customer_id, field, values["reason_code"], values["reason"])
    except CovernetError as exc:
        if exc.status in (403, 404) and exc.code != "field_empty":
            raise
        db.rollback()
        lang = i18n.negotiate_lang(request)
        return _page(
            request,
            db,
            who,
            customer_id,
            status=exc.status,
            error=error_message(exc, lang),
            error_action="unmask",
            values=values,
        )
    return _page(request, db, who, customer_id, revealed={"field": field, "value": value})


@router.post(PATH + "/{customer_id}/{action}", response_class=HTMLResponse)
def act(
    customer_id: str, action: str, request: Request, form: PostedForm, db: Db, who: Public
) -> Response:
    """tag / untag / note / assign."""
    if (guard := _guard(who, f"{PATH}/{customer_id}")) is not None:
        return guard
    if action not in ACTIONS:
        raise NotFound("no such action")
    try:
        _act(db, who, customer_id, action, form)
    except CovernetError as exc:
        if exc.code == "customer_not_found":
            raise
        db.rollback()
        lang = i18n.negotiate_lang(request)
        values = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
        return _page(
            request,
            db,
            who,
            customer_id,
            status=exc.status,
            error=error_message(exc, lang),
            error_action=action,
            values=values,
        )
    return RedirectResponse(f"{PATH}/{customer_id}?done={action}", status_code=303)


# Teams -------------------------------------------------------------------------------


def _teams_guard(who: Principal) -> Response | None:
    return console_guard(who, teams.MANAGERS, TEAMS, "teams are managed by ops and admin")


def _teams_page(
    request: Request,
    db: Session,
    who: Principal,
    *,
    status: int = 200,
    error: str | None = None,
    message: str | None = None,
    values: dict[str, str] | None = None,
) -> HTMLResponse:
    return render(
        request,
        "teams_console.html",
        status=status,
        toggle_path=TEAMS,
        teams=teams.teams(db),
        error=error,
        message=message,
        values=values or {},
        csrf_token=who.csrf_token,
    )


@router.get(TEAMS, response_class=HTMLResponse)
def teams_console(request: Request, db: Db, who: Public) -> Response:
    if (guard := _teams_guard(who)) is not None:
        return guard
    done = request.query_params.get("done", "")
    lang = i18n.negotiate_lang(request)
    message = i18n.translate(f"teams.done.{done}", lang) if done in TEAM_ACTIONS else None
    return _teams_page(request, db, who, message=message)


TEAM_ACTIONS = ("created", "member", "removed")


def _team_error(
    request: Request, db: Session, who: Principal, exc: Exception, values: dict[str, str]
) -> HTMLResponse:
    db.rollback()
    lang = i18n.negotiate_lang(request)
    if isinstance(exc, ValidationError):
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"])
        return _teams_page(
            request, db, who, status=422, error=f"{field}: {first['msg']}", values=values
        )
    assert isinstance(exc, CovernetError)
    return _teams_page(
        request, db, who, status=exc.status, error=error_message(exc, lang), values=values
    )


@router.post(TEAMS, response_class=HTMLResponse)
def create_team(request: Request, form: PostedForm, db: Db, who: Public) -> Response:
    if (guard := _teams_guard(who)) is not None:
        return guard
    values = {"code": _text(form, "code", 40), "name": _text(form, "name", 120)}
    try:
        teams.create_team(db, teams.TeamIn(**values), by=service.actor(who))
    except (ValidationError, CovernetError) as exc:
        return _team_error(request, db, who, exc, values)
    return RedirectResponse(f"{TEAMS}?done=created", status_code=303)


@router.post(TEAMS + "/{code}/members", response_class=HTMLResponse)
def set_member(code: str, request: Request, form: PostedForm, db: Db, who: Public) -> Response:
    if (guard := _teams_guard(who)) is not None:
        return guard
    values = {"username": _text(form, "username", 64)}
    try:
        data = teams.MemberIn(
            username=values["username"], is_supervisor=form.get("is_supervisor") == "on"
        )
        teams.set_member(db, code, data, by=service.actor(who))
    except (ValidationError, CovernetError) as exc:
        return _team_error(request, db, who, exc, values)
    return RedirectResponse(f"{TEAMS}?done=member", status_code=303)


@router.post(TEAMS + "/{code}/members/{user_id}/remove", response_class=HTMLResponse)
def remove_member(
    code: str, user_id: str, request: Request, form: PostedForm, db: Db, who: Public
) -> Response:
    if (guard := _teams_guard(who)) is not None:
        return guard
    try:
        teams.remove_member(db, code, user_id, by=service.actor(who))
    except CovernetError as exc:
        return _team_error(request, db, who, exc, {})
    return RedirectResponse(f"{TEAMS}?done=removed", status_code=303)


# Desk reports ------------------------------------------------------------------------

REPORTS = "/console/desk/reports"
REPORT_DAYS = (1, 7, 30, 90)
CHANNELS = ("web", "live", "assistant", "wechat", "email", "phone")


def window(raw: str | None) -> tuple[int, datetime, datetime]:
    """The report's period: the last ``days`` days (1–366, default 7) up to now."""
    days = int(raw) if raw and raw.isdigit() and 1 <= int(raw) <= 366 else 7
    until = clock.now()
    return days, until - timedelta(days=days), until


@reports_router.get(REPORTS, response_class=HTMLResponse)
def desk_reports_page(request: Request, db: Db, who: Public) -> Response:
    """坐席报表: volume by channel and hour, response and resolution times, SLA, CSAT,
    the assistant's rates and per-advisor figures, drawn as inline SVG."""
    if guard := console_guard(who, service.READERS, REPORTS, "the desk reports are for staff"):
        return guard
    days, since, until = window(request.query_params.get("days"))
    found = service.desk_report(db, who, since, until)
    return render(
        request,
        "desk_reports.html",
        r=found,
        days=days,
        choices=REPORT_DAYS,
        since=since,
        until=until,
        hours=desk_reports.hour_chart(found.by_hour),
        channels=desk_reports.channel_chart(found.by_channel),
        known_channels=CHANNELS,
    )
