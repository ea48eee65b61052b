"""HTML routes: the catalog, the no-script quote form, signing in and out, the account.

Handlers are thin: they read the request, call one service and render a template.
Forms are posted the classic way and work without JavaScript; ``quote.js`` adds an
in-page quote over ``POST /api/v1/quotes`` on top.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from covernet.catalog import service as catalog
from covernet.catalog.service import ListedProduct
from covernet.core import clock, i18n
from covernet.core.config import get_settings
from covernet.core.errors import CovernetError, ValidationFailed
from covernet.core.money import format_fen, format_fen_compact, parse_yuan
from covernet.identity import service as identity
from covernet.identity.access import SESSION_COOKIE, Db, Principal, Public, client_ip
from covernet.identity.models import User
from covernet.policies.quotes import QuoteIn, QuoteResult, create_quote
from covernet.web import csrf, views
from covernet.web.csrf import PostedForm
from covernet.web.render import (
    error_field,
    error_headers,
    error_message,
    mark_page,
    principal_of,
    render,
)

router = APIRouter(dependencies=[Depends(mark_page)], include_in_schema=False)

QUOTE_FIELDS = (
    "plan_code",
    "term",
    "payment",
    "birth_date",
    "gender",
    "id_number",
    "region",
    "occupation_class",
    "order_amount",
)
LOGIN_FIELDS = ("mobile", "username")
REGISTER_FIELDS = ("mobile", "name")
_NEXT = re.compile(r"/(?![/\\])[\x21-\x7e]{0,500}")


def field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def safe_next(value: str | None) -> str:
    """Only a path on this site may follow a sign-in (no open redirects)."""
    if value and _NEXT.fullmatch(value) and "\\" not in value:
        return value
    return "/"


# Catalog -----------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def home(request: Request, db: Db, _: Public) -> HTMLResponse:
    lang = i18n.negotiate_lang(request)
    groups = views.line_groups(catalog.snapshot(db).products.values(), clock.today(), lang)
    return render(request, "home.html", groups=groups)


@router.get("/products/{code}", response_class=HTMLResponse)
def product(code: str, request: Request, db: Db, _: Public) -> HTMLResponse:
    return _product_page(request, catalog.snapshot(db).get(code))


@router.get("/products/{code}/quote")
def quote_again(code: str, db: Db, _: Public) -> RedirectResponse:
    """A quote result reloaded or bookmarked: back to the product's quote form."""
    listed = catalog.snapshot(db).get(code)
    return RedirectResponse(f"/products/{listed.product.code}#quote", status_code=303)


@router.post("/products/{code}/quote", response_class=HTMLResponse)
def quote(code: str, request: Request, form: PostedForm, db: Db, who: Public) -> HTMLResponse:
    """The quote form without JavaScript: the product page again, with the result."""
    listed = catalog.snapshot(db).get(code)
    values = {name: field(form, name) for name in QUOTE_FIELDS}
    try:
        result = create_quote(db, quote_input(listed, values), who)
    except CovernetError as error:
        db.rollback()  # nothing half-written stays behind
        return _product_page(request, listed, values=values, error=error, status=error.status)
    return _product_page(request, listed, values=values, result=result)


def quote_input(listed: ListedProduct, values: dict[str, str]) -> QuoteIn:
    """The posted quote form as the quote service's input, or the first thing wrong."""

    def wrong(code: str, message: str, name: str) -> ValidationFailed:
        return ValidationFailed(message, code=code, detail={"field": name})

    if not values["plan_code"]:
        raise wrong("plan_required", "choose a plan", "plan_code")
    if not values["region"]:
        raise wrong("region_required", "choose the insured's province", "region")
    data: dict[str, Any] = {
        "product_code": listed.product.code,
        "plan_code": values["plan_code"],
        "term": values["term"] or None,
        "payment": values["payment"] or None,
        "region": values["region"],
        "gender": values["gender"] if values["gender"] in ("M", "F") else None,
        "id_number": values["id_number"] or None,
    }
    if values["birth_date"]:
        try:
            data["birth_date"] = date.fromisoformat(values["birth_date"])
        except ValueError:
            raise wrong(
                "invalid_birth_date", "the birth date is not a date", "birth_date"
            ) from None
    if values["occupation_class"]:
        if not values["occupation_class"].isdigit():
            raise wrong(
                "invalid_occupation_class", "choose an occupation class", "occupation_class"
            )
        data["occupation_class"] = int(values["occupation_class"])
    if values["order_amount"]:
        try:
            data["order_amount_fen"] = parse_yuan(values["order_amount"])
        except ValueError:
            raise wrong(
                "invalid_order_amount", "the order amount is not an amount of yuan", "order_amount"
            ) from None
    try:
        return QuoteIn.model_validate(data)
    except ValidationError as exc:
        problem = exc.errors()[0]
        name = str(problem["loc"][-1]) if problem["loc"] else "form"
        raise wrong("malformed_request", f"{name}: {problem['msg']}", name) from None


def _result_view(result: QuoteResult, lang: str) -> dict[str, Any]:
    q, p = result.quote, result.product
    plan, term, payment = p.plan(q.plan_code), p.term(q.term_code), p.payment(q.payment_code)
    return {
        "quote_id": q.id,
        "premium": format_fen(q.premium_fen),
        "unit": views.unit_text(q.frequency, lang),
        "plan": plan.name.get(lang) if plan else q.plan_code,
        "sum_insured": format_fen_compact(q.sum_insured_fen, lang=lang),
        "term": term.label.get(lang) if term else q.term_code,
        "payment": payment.label.get(lang) if payment else q.payment_code,
        "effective_date": i18n.format_date(q.effective_date, lang),
        "end_date": (
            i18n.format_date(q.end_date, lang)
            if q.end_date
            else i18n.translate("quote.whole_life", lang)
        ),
        "age": (
            i18n.translate("quote.age_value", lang, age=q.insured_age)
            if q.insured_age is not None
            else ""
        ),
        "id_number": result.id_number_masked or "",
        "valid_until": i18n.format_datetime(q.valid_until, lang),
        "disclosures": [
            {"text": d.text.get(lang), "emphasis": d.emphasis} for d in result.disclosures
        ],
    }


def _product_page(
    request: Request,
    listed: ListedProduct,
    *,
    values: dict[str, str] | None = None,
    result: QuoteResult | None = None,
    error: CovernetError | None = None,
    status: int = 200,
) -> HTMLResponse:
    lang = i18n.negotiate_lang(request)
    who = principal_of(request)
    token = who.csrf_token if who is not None and who.method == "cookie" else None
    return render(
        request,
        "product.html",
        status=status,
        toggle_path=f"/products/{listed.product.code}",
        **views.product_page(listed, clock.today(), lang),
        values=values or {},
        result=_result_view(result, lang) if result else None,
        error=error_message(error, lang) if error else None,
        error_field=error_field(error) if error else None,
        form_csrf=token,
    )


# Signing in and out ------------------------------------------------------------------


def _session_response(
    request: Request, db: Session, who: Principal, user: User, next_url: str
) -> RedirectResponse:
    """Open a browser session for ``user`` (ending the one this browser had)."""
    if who.method == "cookie" and who.session_id:
        identity.revoke_session(db, who.session_id)
    issued = identity.open_session(
        db, user, kind="cookie", user_agent=request.headers.get("user-agent")
    )
    settings = get_settings()
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        issued.token,
        max_age=settings.session_hours * 3600,
        path="/",
        secure=settings.cookie_secure,
        httponly=True,
        samesite="lax",
    )
    return response


def _form_page(
    request: Request,
    who: Principal,
    template: str,
    *,
    status: int = 200,
    error: CovernetError | None = None,
    **context: Any,
) -> HTMLResponse:
    """A sign-in form, carrying the CSRF token that fits the caller."""
    lang = i18n.negotiate_lang(request)
    token = csrf.form_token(request, who)
    response = render(
        request,
        template,
        status=status,
        headers=error_headers(error) if error else None,
        csrf_token=token,
        error=error_message(error, lang) if error else None,
        error_field=error_field(error) if error else None,
        **context,
    )
    if who.method != "cookie":
        csrf.set_anonymous_cookie(response, token)
    return response


@router.get("/login", response_class=HTMLResponse)
def login_page(
    request: Request,
    who: Public,
    mode: Annotated[str, Query(alias="as")] = "customer",
    next_url: Annotated[str, Query(alias="next")] = "/",
) -> HTMLResponse:
    return _form_page(
        request,
        who,
        "login.html",
        mode="staff" if mode == "staff" else "customer",
        next_url=safe_next(next_url),
        values={},
    )


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, form: PostedForm, db: Db, who: Public) -> Response:
    mode = "staff" if field(form, "as") == "staff" else "customer"
    next_url = safe_next(field(form, "next"))
    password = form.get("password")
    password = password if isinstance(password, str) else ""
    try:
        csrf.check_anonymous(request, form, who)
        if mode == "staff":
            user = identity.authenticate_staff(
                db,
                username=field(form, "username"),
                password=password,
                totp=field(form, "totp") or None,
                ip=client_ip(request),
            )
        else:
            user = identity.authenticate_customer(
                db, mobile=field(form, "mobile"), password=password, ip=client_ip(request)
            )
    except CovernetError as error:
        db.rollback()  # nothing half-written stays behind
        return _form_page(
            request,
            who,
            "login.html",
            status=error.status,
            error=error,
            mode=mode,
            next_url=next_url,
            values={name: field(form, name) for name in LOGIN_FIELDS},
        )
    return _session_response(request, db, who, user, next_url)


@router.get("/register", response_class=HTMLResponse)
def register_page(
    request: Request, who: Public, next_url: Annotated[str, Query(alias="next")] = "/"
) -> HTMLResponse:
    return _form_page(request, who, "register.html", next_url=safe_next(next_url), values={})


@router.post("/register", response_class=HTMLResponse)
def register(request: Request, form: PostedForm, db: Db, who: Public) -> Response:
    next_url = safe_next(field(form, "next"))
    password = form.get("password")
    try:
        csrf.check_anonymous(request, form, who)
        user = identity.register_customer(
            db,
            mobile=field(form, "mobile"),
            name=field(form, "name"),
            password=password if isinstance(password, str) else "",
            ip=client_ip(request),
        )
    except CovernetError as error:
        db.rollback()  # nothing half-written stays behind
        return _form_page(
            request,
            who,
            "register.html",
            status=error.status,
            error=error,
            next_url=next_url,
            values={name: field(form, name) for name in REGISTER_FIELDS},
        )
    return _session_response(request, db, who, user, next_url)


@router.post("/logout")
def logout(form: PostedForm, db: Db, who: Public) -> RedirectResponse:
    """End this browser's session (the access layer checked the form's CSRF token)."""
    if who.method == "cookie" and who.session_id:
        identity.revoke_session(db, who.session_id)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(
        SESSION_COOKIE, path="/", secure=get_settings().cookie_secure, httponly=True, samesite="lax"
    )
    return response


# Account -----------------------------------------------------------------------------


@router.get("/account", response_class=HTMLResponse)
def account(request: Request, db: Db, who: Public) -> Response:
    if not who.is_authenticated:
        return RedirectResponse("/login?next=/account", status_code=303)
    user = identity.get_user(db, who.user_id)
    return render(
        request,
        "account.html",
        name=who.name,
        mobile=identity.masked_mobile(user) if user is not None else None,
        username=user.username if user is not None else None,
        role=who.role.value if who.role else None,
        csrf_token=csrf.form_token(request, who),
    )
