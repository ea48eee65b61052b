"""Live-session pages: the viewers' page and the console (hosts register and run their
sessions and upload transcripts; compliance reviews the findings by time offset)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from covernet.catalog import service as catalog
from covernet.compliance import content, live, transcript
from covernet.compliance.models import ContentItem, ContentStatus, LiveStatus
from covernet.core import clock, i18n
from covernet.core.errors import CovernetError, NotFound, ValidationFailed
from covernet.identity.access import Db, Principal, Public
from covernet.identity.models import Role
from covernet.web.console import console_guard
from covernet.web.csrf import PostedForm
from covernet.web.render import error_message, mark_page, render

router = APIRouter(dependencies=[Depends(mark_page)], include_in_schema=False)

LIVE_ROLES = frozenset({Role.advisor, Role.compliance, Role.admin})
PATH = "/console/live"


@router.get("/live/{session_id}", response_class=HTMLResponse)
def live_public(session_id: str, request: Request, db: Db, _: Public) -> HTMLResponse:
    """What viewers see: the host's name, institution and 执业证编号 (R2) and links to the
    platform's own product pages only (R4)."""
    row, advisor, products = live.public(db, session_id)
    return render(request, "live_public.html", row=row, advisor=advisor, products=products)


def _guard(who: Principal) -> Response | None:
    return console_guard(who, LIVE_ROLES, PATH, "live sessions are for advisors and compliance")


def _scripts(db: Db, who: Principal) -> list[ContentItem]:
    if who.role is not Role.advisor:
        return []
    return [
        item
        for item in content.listing(db, who, None)
        if item.kind == "live_script"
        and item.status in (ContentStatus.approved.value, ContentStatus.published.value)
    ]


def _page(
    request: Request,
    db: Db,
    who: Principal,
    *,
    status: int = 200,
    message: str | None = None,
    error: str | None = None,
    values: dict[str, Any] | None = None,
) -> HTMLResponse:
    reviewer = who.role in content.REVIEWERS
    rows = live.listing(db, who)
    if reviewer:  # transcripts waiting for a decision first, oldest first
        waiting = live.awaiting_review(db)
        rows = waiting + [r for r in rows if r.status != LiveStatus.pending_review.value]
    snap = catalog.snapshot(db)
    return render(
        request,
        "live_console.html",
        status=status,
        toggle_path=PATH,
        rows=rows,
        reviewer=reviewer,
        scripts=_scripts(db, who),
        products=[(p.product.code, p.product.name) for p in snap.products.values()],
        names={code: p.product.name for code, p in snap.products.items()},
        message=message,
        error=error,
        values=values or {},
        csrf_token=who.csrf_token,
    )


@router.get(PATH, response_class=HTMLResponse)
def live_console(request: Request, db: Db, who: Public) -> Response:
    return _guard(who) or _page(request, db, who)


def _local_time(value: str) -> datetime:
    """A ``datetime-local`` field, in Beijing time."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationFailed(
            "give the start time as YYYY-MM-DDTHH:MM",
            code="invalid_time",
            detail={"field": "scheduled_at"},
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=clock.SHANGHAI)


def _failed(request: Request, db: Db, who: Principal, exc: Exception, **kw: Any) -> HTMLResponse:
    db.rollback()
    lang = i18n.negotiate_lang(request)
    if isinstance(exc, ValidationError):
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"])
        return _page(request, db, who, status=422, error=f"{field}: {first['msg']}", **kw)
    assert isinstance(exc, CovernetError)
    return _page(request, db, who, status=exc.status, error=error_message(exc, lang), **kw)


@router.post(PATH, response_class=HTMLResponse)
def register_from_console(request: Request, form: PostedForm, db: Db, who: Public) -> Response:
    if (guard := _guard(who)) is not None:
        return guard
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        data = live.LiveIn(
            title=values.get("title", ""),
            scheduled_at=_local_time(values.get("scheduled_at", "")),
            product_codes=[str(c) for c in form.getlist("product_codes") if c],
            script_id=values.get("script_id", ""),
        )
        live.register(db, who, data)
    except (ValidationError, CovernetError) as exc:
        return _failed(request, db, who, exc, values=values)
    lang = i18n.negotiate_lang(request)
    return _page(request, db, who, message=i18n.translate("live.registered", lang))


@router.post(PATH + "/{session_id}/{action}", response_class=HTMLResponse)
def act_from_console(
    session_id: str, action: str, request: Request, form: PostedForm, db: Db, who: Public
) -> Response:
    """start / end / transcript / review: the same service calls as the API's."""
    if (guard := _guard(who)) is not None:
        return guard
    lang = i18n.negotiate_lang(request)
    try:
        if action == "start":
            live.start(db, who, session_id)
        elif action == "end":
            live.end(db, who, session_id)
        elif action == "transcript":
            live.upload_transcript(db, who, session_id, _transcript_of(form))
        elif action == "review":
            outcome = str(form.get("outcome", ""))
            note = str(form.get("note", "")) or None
            live.review(
                db,
                who,
                session_id,
                live.ReviewIn.model_validate({"outcome": outcome, "note": note}),
            )
        else:
            raise NotFound("no such action")
    except (ValidationError, CovernetError) as exc:
        return _failed(request, db, who, exc)
    return _page(request, db, who, message=i18n.translate(f"live.done.{action}", lang))


def _transcript_of(form: Any) -> str:
    """The pasted transcript, or the uploaded file (UTF-8 text or .srt) when one is sent."""
    upload = form.get("file")
    if isinstance(upload, UploadFile) and upload.filename:
        data = upload.file.read(transcript.MAX_TRANSCRIPT_CHARS * 4 + 1)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationFailed(
                "the transcript file is not UTF-8 text",
                code="invalid_transcript",
                detail={"field": "transcript"},
            ) from None
    return str(form.get("transcript", ""))
