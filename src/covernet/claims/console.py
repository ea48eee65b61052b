"""The claims handlers' console: the board (breached clocks first), one claim with its
internal notes, documents and fraud flags and the actions of its stage, and the stage
report (median and p90 hours per stage, drawn server-side in SVG).

Every action is one call of :mod:`covernet.claims.service`, as the JSON routes make.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from covernet.catalog.spec import Line
from covernet.claims import board, rules, service, views
from covernet.claims.pages import claim_view
from covernet.core import clock, i18n
from covernet.core.crypto import get_cipher
from covernet.core.errors import CovernetError, NotFound
from covernet.core.money import format_fen
from covernet.identity.access import Db, Principal, Public
from covernet.web.console import console_guard
from covernet.web.csrf import PostedForm
from covernet.web.render import error_message, mark_page, render

router = APIRouter(dependencies=[Depends(mark_page)], include_in_schema=False)

PATH = "/console/claims"
REPORT_DAYS = (7, 30, 90, 365)
# The actions each stage offers (the transitions of catalog/rules/claims.yaml).
ACTIONS: dict[str, tuple[str, ...]] = {
    "reported": ("accept",),
    "accepted": ("request_documents", "documents_complete"),
    "documents": ("request_documents", "documents_complete", "investigate", "assess"),
    "investigating": ("assess",),
    "assessed": ("approve", "decline", "request_documents"),
    "approved": (),
    "declined": ("close",),
    "paid": ("close",),
    "closed": ("reopen",),
    "withdrawn": ("reopen",),
}
ALL_ACTIONS = (
    "accept",
    "request_documents",
    "documents_complete",
    "investigate",
    "assess",
    "approve",
    "decline",
    "close",
    "reopen",
)


def _guard(who: Principal, path: str = PATH) -> Response | None:
    return console_guard(who, service.READERS, path, "the claims console is for claims staff")


def _row(row: board.BoardRow, ruleset: rules.ClaimRules, lang: str) -> dict[str, Any]:
    claim = row.claim
    clock_rows = views.clock_rows(row.clocks, ruleset, lang)
    return {
        "id": claim.id,
        "claim_no": claim.claim_no,
        "stage": claim.stage,
        "stage_name": views.stage_name(ruleset, claim.stage, lang),
        "waiting": views.t(f"claim.waits.{row.waiting_on}", lang),
        "waiting_on": row.waiting_on,
        "amount": format_fen(claim.amount_claimed_fen),
        "reported_at": claim.reported_at,
        "worst": views.worst_clock(clock_rows),
        "flags": [
            {"code": f, "label": views.t(f"claim.flag.{f}", lang)} for f in claim.fraud_flags
        ],
    }


@router.get(PATH, response_class=HTMLResponse)
def claims_board(request: Request, db: Db, who: Public) -> Response:
    """理赔看板: open claims, breached statutory clocks first, then near, then soonest."""
    if (guard := _guard(who)) is not None:
        return guard
    lang = i18n.negotiate_lang(request)
    ruleset = rules.current()
    rows = [_row(r, ruleset, lang) for r in board.board(db)]
    counts = {
        state: sum(1 for r in rows if r["worst"] and r["worst"]["state"] == state)
        for state in ("breached", "near")
    }
    return render(request, "claims_board.html", rows=rows, counts=counts, today=clock.today())


@router.get(PATH + "/report", response_class=HTMLResponse)
def stage_report(request: Request, db: Db, who: Public) -> Response:
    """Median and p90 hours per stage for claims reported in the last ``days`` days."""
    if (guard := _guard(who, PATH + "/report")) is not None:
        return guard
    lang = i18n.negotiate_lang(request)
    raw = request.query_params.get("days", "30")
    days = int(raw) if raw.isdigit() and 1 <= int(raw) <= 366 else 30
    until = clock.now()
    rows = board.stage_report(db, until - timedelta(days=days), until)
    ruleset = rules.current()
    return render(
        request,
        "claims_report.html",
        toggle_path=f"{PATH}/report",
        days=days,
        choices=REPORT_DAYS,
        rows=[
            {
                "stage": r.stage,
                "name": views.stage_name(ruleset, r.stage, lang),
                "count": r.count,
                "median": r.median_hours,
                "p90": r.p90_hours,
            }
            for r in rows
        ],
        chart=views.report_chart(rows, ruleset, lang),
        since=until - timedelta(days=days),
        until=until,
    )


def _console_page(
    request: Request,
    db: Session,
    who: Principal,
    claim_id: str,
    *,
    error: str | None = None,
    error_action: str | None = None,
    message: str | None = None,
    values: dict[str, Any] | None = None,
    status: int = 200,
) -> HTMLResponse:
    lang = i18n.negotiate_lang(request)
    ruleset = rules.current()
    claim = service.get(db, who, claim_id)
    view = claim_view(db, claim, who, lang)
    description = ""
    if claim.description_enc:
        description = get_cipher().decrypt(
            claim.description_enc, context=service.DESCRIPTION_CONTEXT
        )
    handler = who.role in service.HANDLERS
    four_eyes = (claim.assessed_amount_fen or 0) > ruleset.four_eyes_above_fen
    return render(
        request,
        "claim_console.html",
        status=status,
        toggle_path=f"{PATH}/{claim.id}",
        claim=view,
        description=description,
        handler=handler,
        actions=[
            {"code": a, "label": views.t(f"claims.action.{a}", lang)}
            for a in (ACTIONS.get(claim.stage, ()) if handler else ())
        ],
        action_codes=ACTIONS.get(claim.stage, ()) if handler else (),
        requestable=[
            {
                "code": d.code,
                "name": d.en if lang == "en" else d.zh,
                "uploaded": d.code in {x["code"] for x in view["documents"] if x["uploaded"]},
            }
            for d in ruleset.documents_for(Line(claim.line), claim.coverage_code)
        ],
        four_eyes=four_eyes,
        four_eyes_limit=format_fen(ruleset.four_eyes_above_fen),
        assessed_by_me=claim.assessed_by is not None and claim.assessed_by == who.user_id,
        error=error,
        error_action=error_action,
        message=message,
        values=values or {},
        csrf_token=who.csrf_token,
    )


@router.get(PATH + "/{claim_id}", response_class=HTMLResponse)
def claim_console(claim_id: str, request: Request, db: Db, who: Public) -> Response:
    if (guard := _guard(who, f"{PATH}/{claim_id}")) is not None:
        return guard
    done = request.query_params.get("done", "")
    lang = i18n.negotiate_lang(request)
    message = views.t(f"claim.done.{done}", lang) if done in ALL_ACTIONS else None
    return _console_page(request, db, who, claim_id, message=message)


def _act(db: Session, who: Principal, claim_id: str, action: str, form: Any) -> None:
    note = str(form.get("note", "") or "").strip()[:500] or None
    if action == "accept":
        service.accept(db, who, claim_id, note)
    elif action == "request_documents":
        missing = [str(m) for m in form.getlist("missing") if m][:20]
        service.request_documents(db, who, claim_id, missing, note)
    elif action == "documents_complete":
        service.documents_complete(db, who, claim_id)
    elif action == "investigate":
        service.investigate(db, who, claim_id, note or "")
    elif action == "assess":
        service.assess(db, who, claim_id, note)
    elif action == "approve":
        service.approve(db, who, claim_id)
    elif action == "decline":
        service.decline(db, who, claim_id, str(form.get("reason", "") or "")[:1000])
    elif action == "close":
        service.close(db, who, claim_id)
    elif action == "reopen":
        service.reopen(db, who, claim_id, note or "已重新受理。")
    else:
        raise NotFound("no such action")


@router.post(PATH + "/{claim_id}/{action}", response_class=HTMLResponse)
def act_from_console(
    claim_id: str, action: str, request: Request, form: PostedForm, db: Db, who: Public
) -> Response:
    """accept / request_documents / documents_complete / investigate / assess / approve /
    decline / close / reopen: the same service calls as the JSON routes."""
    if (guard := _guard(who, f"{PATH}/{claim_id}")) is not None:
        return guard
    action = action.replace("-", "_")
    try:
        _act(db, who, claim_id, action, form)
    except CovernetError as exc:
        if exc.status == 404:
            raise
        db.rollback()
        lang = i18n.negotiate_lang(request)
        message = i18n.translate_or(
            f"claim.console_error.{exc.code}", lang, error_message(exc, lang)
        )
        values = {
            "note": str(form.get("note", "") or ""),
            "reason": str(form.get("reason", "") or ""),
            "missing": [str(m) for m in form.getlist("missing")],
        }
        return _console_page(
            request,
            db,
            who,
            claim_id,
            error=message,
            error_action=action,
            values=values,
            status=exc.status,
        )
    return RedirectResponse(f"{PATH}/{claim_id}?done={action}", status_code=303)
