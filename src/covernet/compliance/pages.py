"""The compliance console's license page: the registry, expiries, changes, CSV import."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from covernet.audit.api import actor_of
from covernet.catalog.spec import LINE_LABELS, Line
from covernet.compliance import licenses
from covernet.compliance.models import LicenseStatus
from covernet.core import clock, i18n
from covernet.core.errors import CovernetError, Forbidden
from covernet.identity.access import Db, Principal, Public
from covernet.identity.models import Role
from covernet.web.csrf import PostedForm
from covernet.web.render import error_message, render

router = APIRouter()

OFFICERS = frozenset({Role.compliance, Role.admin})
EXPIRY_WARNING_DAYS = 30


def _guard(who: Principal) -> Response | None:
    if not who.is_authenticated:
        return RedirectResponse("/login?as=staff&next=/console/licenses", status_code=303)
    if who.role not in OFFICERS:
        raise Forbidden("the license registry is for compliance and administrators")
    return None


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
