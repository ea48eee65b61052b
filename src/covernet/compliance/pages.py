"""The compliance console's license page: the registry, expiries, changes, CSV import."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from covernet.audit.api import actor_of
from covernet.catalog import service as catalog
from covernet.catalog.spec import LINE_LABELS, Line
from covernet.compliance import checker, content, drafts, licenses
from covernet.compliance.models import ContentStatus, LicenseStatus
from covernet.core import clock, i18n
from covernet.core.errors import CovernetError
from covernet.identity.access import Db, Principal, Public
from covernet.identity.models import Role
from covernet.web.console import console_guard
from covernet.web.csrf import PostedForm
from covernet.web.render import error_message, render

router = APIRouter()

OFFICERS = frozenset({Role.compliance, Role.admin})
EXPIRY_WARNING_DAYS = 30


def _guard(who: Principal) -> Response | None:
    return console_guard(
        who,
        OFFICERS,
        "/console/licenses",
        "the license registry is for compliance and administrators",
    )


def _page(
    request: Request,
    db: Db,
    who: Principal,
    *,
    status: int = 200,
    message: str | None = None,
    error: str | None = None,
    values: dict[str, Any] | None = None,
    expiring: bool = False,
) -> HTMLResponse:
    today = clock.today()
    rows = licenses.expiring(db, EXPIRY_WARNING_DAYS) if expiring else licenses.all_licenses(db)
    soon = today.toordinal() + EXPIRY_WARNING_DAYS
    items = [
        {
            "row": row,
            "status": licenses.effective_status(row, today),
            "soon": row.valid_until.toordinal() <= soon,
        }
        for row in rows
    ]
    return render(
        request,
        "licenses_console.html",
        status=status,
        items=items,
        message=message,
        error=error,
        values=values or {},
        expiring=expiring,
        lines=[(line.value, LINE_LABELS[line]) for line in Line],
        csrf_token=who.csrf_token,
        warning_days=EXPIRY_WARNING_DAYS,
    )


@router.get("/console/licenses", response_class=HTMLResponse)
def licenses_console(
    request: Request,
    db: Db,
    who: Public,
    expiring: Annotated[bool, Query(description="only those expiring soon")] = False,
) -> Response:
    return _guard(who) or _page(request, db, who, expiring=expiring)


@router.post("/console/licenses", response_class=HTMLResponse)
def register_from_console(request: Request, form: PostedForm, db: Db, who: Public) -> Response:
    if (guard := _guard(who)) is not None:
        return guard
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    lang = i18n.negotiate_lang(request)
    try:
        data = licenses.LicenseIn(
            license_no=values.get("license_no", ""),
            advisor_username=values.get("advisor_username", ""),
            institution=values.get("institution", ""),
            valid_until=values.get("valid_until") or None,
            lines=form.getlist("lines"),
            grade=values.get("grade") or None,
        )
        row = licenses.register(db, data, by=actor_of(who))
    except ValidationError as exc:
        db.rollback()
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"])
        return _page(request, db, who, status=422, error=f"{field}: {first['msg']}", values=values)
    except CovernetError as exc:
        db.rollback()
        return _page(
            request, db, who, status=exc.status, error=error_message(exc, lang), values=values
        )
    return _page(
        request,
        db,
        who,
        message=i18n.translate("licenses.registered", lang, license_no=row.license_no),
    )


@router.post("/console/licenses/{license_id}/status", response_class=HTMLResponse)
def status_from_console(
    license_id: str, request: Request, form: PostedForm, db: Db, who: Public
) -> Response:
    if (guard := _guard(who)) is not None:
        return guard
    lang = i18n.negotiate_lang(request)
    try:
        status = LicenseStatus(str(form.get("status", "")))
        licenses.set_status(
            db, license_id, status, reason=str(form.get("reason", "")), by=actor_of(who)
        )
    except ValueError:
        return _page(
            request, db, who, status=422, error=i18n.translate("licenses.bad_status", lang)
        )
    except CovernetError as exc:
        db.rollback()
        return _page(request, db, who, status=exc.status, error=error_message(exc, lang))
    return _page(request, db, who, message=i18n.translate("licenses.changed", lang))


WRITERS = frozenset({Role.advisor, Role.compliance, Role.ops, Role.admin})
KINDS = ("moments", "post", "group_message", "live_script", "canned_reply")


def highlight(text: str, findings: list[checker.Finding]) -> list[dict[str, Any]]:
    """The text cut into plain and flagged segments (overlapping spans merge)."""
    marks: list[tuple[int, int, list[int]]] = []
    for number, finding in enumerate(findings, start=1):
        start, end = finding.span
        if end <= start or (start, end) == (0, len(text)):
            continue  # whole-text findings (missing statements) are listed, not marked
        if marks and start < marks[-1][1]:
            s0, e0, nums = marks[-1]
            marks[-1] = (s0, max(e0, end), [*nums, number])
        else:
            marks.append((start, end, [number]))
    segments: list[dict[str, Any]] = []
    cursor = 0
    for start, end, numbers in sorted(marks):
        if start > cursor:
            segments.append({"text": text[cursor:start], "marks": []})
        segments.append({"text": text[start:end], "marks": numbers})
        cursor = end
    if cursor < len(text):
        segments.append({"text": text[cursor:], "marks": []})
    return segments


def _check_guard(who: Principal) -> Response | None:
    return console_guard(
        who, WRITERS, "/console/check", "the content checker is for advisors and compliance"
    )


def _check_page(request: Request, who: Principal, **context: Any) -> HTMLResponse:
    return render(
        request,
        "check_console.html",
        kinds=KINDS,
        csrf_token=who.csrf_token,
        can_submit=who.role is Role.advisor,
        **context,
    )


@router.get("/console/check", response_class=HTMLResponse)
def check_console(request: Request, db: Db, who: Public) -> Response:
    if (guard := _check_guard(who)) is not None:
        return guard
    snap = catalog.snapshot(db)
    return _check_page(
        request,
        who,
        text="",
        kind="moments",
        result=None,
        chosen=[],
        segments=[],
        products=[(p.product.code, p.product.name) for p in snap.products.values()],
    )


@router.post("/console/check", response_class=HTMLResponse)
def check_from_console(request: Request, form: PostedForm, db: Db, who: Public) -> Response:
    if (guard := _check_guard(who)) is not None:
        return guard
    text = str(form.get("text", ""))[:20_000]
    kind = str(form.get("kind", "moments"))
    kind = kind if kind in KINDS else "moments"
    codes = [str(c) for c in form.getlist("product_codes") if c]
    snap = catalog.snapshot(db)
    advisor = (
        drafts.advisor_identity(db, who.user_id)
        if who.role is Role.advisor and who.user_id
        else None
    )
    result = (
        drafts.check_draft(db, text, kind=kind, product_codes=codes, advisor=advisor)
        if text.strip()
        else None
    )
    return _check_page(
        request,
        who,
        text=text,
        kind=kind,
        result=result,
        chosen=codes,
        segments=highlight(text, result.findings) if result else [],
        products=[(p.product.code, p.product.name) for p in snap.products.values()],
    )


@router.get("/c/{content_id}", response_class=HTMLResponse)
def published_content(content_id: str, request: Request, db: Db, _: Public) -> HTMLResponse:
    """Published content, always with the advisor's name, institution and license (R2)."""
    item, advisor = content.published(db, content_id)
    snap = catalog.snapshot(db)
    products = [snap.products[c] for c in item.product_codes if c in snap.products]
    return render(request, "content_public.html", item=item, advisor=advisor, products=products)


CONTENT_ROLES = frozenset({Role.advisor, Role.compliance, Role.admin})


def _content_guard(who: Principal) -> Response | None:
    return console_guard(
        who, CONTENT_ROLES, "/console/content", "content approval is for advisors and compliance"
    )


def _content_page(
    request: Request,
    db: Db,
    who: Principal,
    *,
    status: int = 200,
    message: str | None = None,
    error: str | None = None,
) -> HTMLResponse:
    reviewer = who.role in content.REVIEWERS
    items = content.listing(db, who, ContentStatus.pending_review if reviewer else None)
    return render(
        request,
        "content_console.html",
        status=status,
        items=items,
        reviewer=reviewer,
        message=message,
        error=error,
        csrf_token=who.csrf_token,
    )


@router.get("/console/content", response_class=HTMLResponse)
def content_console(request: Request, db: Db, who: Public) -> Response:
    return _content_guard(who) or _content_page(request, db, who)


@router.post("/console/content", response_class=HTMLResponse)
def submit_from_console(request: Request, form: PostedForm, db: Db, who: Public) -> Response:
    if (guard := _content_guard(who)) is not None:
        return guard
    lang = i18n.negotiate_lang(request)
    try:
        data = content.ContentIn(
            kind=str(form.get("kind", "moments")),
            body=str(form.get("text", "")),
            product_codes=[str(c) for c in form.getlist("product_codes") if c],
        )
        item = content.submit(db, who, data)
    except ValidationError:
        db.rollback()
        return _content_page(
            request, db, who, status=422, error=i18n.translate("content.bad_draft", lang)
        )
    except CovernetError as exc:
        db.rollback()
        return _content_page(request, db, who, status=exc.status, error=error_message(exc, lang))
    return _content_page(
        request,
        db,
        who,
        message=i18n.translate(
            "content.submitted", lang, verdict=i18n.translate(f"check.verdict.{item.verdict}", lang)
        ),
    )


@router.post("/console/content/{content_id}/review", response_class=HTMLResponse)
def review_from_console(
    content_id: str, request: Request, form: PostedForm, db: Db, who: Public
) -> Response:
    if (guard := _content_guard(who)) is not None:
        return guard
    lang = i18n.negotiate_lang(request)
    try:
        content.review(
            db,
            who,
            content_id,
            approve=form.get("action") == "approve",
            note=str(form.get("note", "")),
        )
    except CovernetError as exc:
        db.rollback()
        return _content_page(request, db, who, status=exc.status, error=error_message(exc, lang))
    return _content_page(request, db, who, message=i18n.translate("content.reviewed", lang))


@router.post("/console/content/{content_id}/publish", response_class=HTMLResponse)
def publish_from_console(
    content_id: str, request: Request, form: PostedForm, db: Db, who: Public
) -> Response:
    if (guard := _content_guard(who)) is not None:
        return guard
    try:
        item = content.publish(db, who, content_id)
    except CovernetError as exc:
        db.rollback()
        lang = i18n.negotiate_lang(request)
        return _content_page(request, db, who, status=exc.status, error=error_message(exc, lang))
    return RedirectResponse(f"/c/{item.id}", status_code=303)
