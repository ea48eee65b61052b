"""Red envelope pages (phone first): ``/e/{id}`` shows the greeting, the cover and a grab
button; after the grab, the activation form (name, ID number, each document confirmed
by the hash of the text shown, R13); the sender sees who grabbed and what was refunded.
Server-rendered forms, no JavaScript needed; the same service calls as the JSON routes."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from covernet.catalog import service as catalog
from covernet.core import i18n
from covernet.core.errors import CovernetError, Forbidden
from covernet.core.money import format_fen
from covernet.identity.access import Db, Principal, Public, client_ip
from covernet.identity.models import Role
from covernet.policies import applications
from covernet.social import activation_form, service
from covernet.social.models import RedEnvelope
from covernet.web.csrf import PostedForm
from covernet.web.render import error_message, mark_page, render

router = APIRouter(dependencies=[Depends(mark_page)], include_in_schema=False)


def _customer(who: Principal) -> None:
    if who.role is not Role.customer:
        raise Forbidden("only a customer account can take a gift", code="customer_only")


def _page(
    request: Request,
    db: Session,
    who: Principal,
    envelope_id: str,
    *,
    error: str | None = None,
    message: str | None = None,
    posted: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    view = service.view(db, who, envelope_id)
    envelope = db.get(RedEnvelope, envelope_id)
    assert envelope is not None
    product, _ = catalog.product_at_version(db, envelope.product_version_id)
    docs = applications.documents_for(db, product)
    mine = view["my_grab"]
    return render(
        request,
        "red_envelope.html",
        status,
        toggle_path=f"/e/{envelope_id}",
        envelope=view,
        cover=format_fen(view["sum_insured_fen"]),
        mine=mine,
        mine_cover=format_fen(mine["sum_insured_fen"]) if mine else None,
        grabs=[{**g, "cover": format_fen(g["sum_insured_fen"])} for g in view.get("grabs", [])],
        refunded=format_fen(view.get("refunded_fen", 0)),
        docs=activation_form.documents(docs),
        csrf_token=who.csrf_token if who.method == "cookie" else None,
        error=error,
        message=message,
        posted=posted or {},
    )


@router.get("/e/{envelope_id}", response_class=HTMLResponse)
def show_envelope(envelope_id: str, request: Request, db: Db, who: Public) -> Response:
    return _page(request, db, who, envelope_id)


@router.post("/e/{envelope_id}/grab", response_class=HTMLResponse)
def grab_envelope(
    envelope_id: str, request: Request, form: PostedForm, db: Db, who: Public
) -> Response:
    if not who.is_authenticated:
        return RedirectResponse(f"/login?next=/e/{envelope_id}", status_code=303)
    _customer(who)
    lang = i18n.negotiate_lang(request)
    try:
        service.grab(db, who, envelope_id)
    except CovernetError as exc:
        if exc.status == 404:
            raise
        db.rollback()
        return _page(
            request, db, who, envelope_id, error=error_message(exc, lang), status=exc.status
        )
    return RedirectResponse(f"/e/{envelope_id}", status_code=303)


@router.post("/e/{envelope_id}/activate", response_class=HTMLResponse)
def activate_envelope(
    envelope_id: str, request: Request, form: PostedForm, db: Db, who: Public
) -> Response:
    if not who.is_authenticated:
        return RedirectResponse(f"/login?next=/e/{envelope_id}", status_code=303)
    _customer(who)
    lang = i18n.negotiate_lang(request)
    mine = service.view(db, who, envelope_id)["my_grab"]
    posted = activation_form.posted(form)
    try:
        if mine is None:
            raise Forbidden("grab a share first", code="unknown_grab")
        data = activation_form.activation_input(form)
        service.activate(
            db,
            who,
            mine["grab_id"],
            data,
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent", ""),
        )
    except CovernetError as exc:
        db.rollback()
        return _page(
            request,
            db,
            who,
            envelope_id,
            error=error_message(exc, lang),
            posted=posted,
            status=exc.status,
        )
    except ValueError:  # a name or number the form model refuses
        db.rollback()
        return _page(
            request,
            db,
            who,
            envelope_id,
            error=i18n.translate("envelope.bad_input", lang),
            posted=posted,
            status=400,
        )
    return _page(request, db, who, envelope_id, message=i18n.translate("envelope.activated", lang))
