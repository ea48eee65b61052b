"""Red envelope pages (phone first).

- ``/envelopes/new`` (a signed-in customer): choose a giftable plan (only those
  :func:`covernet.social.service.gift_terms` accepts, R12), the number of shares, an
  equal or random split and a greeting; the cover per share and the total premium are
  computed here before paying.  The form calls :func:`covernet.social.service.create`
  like ``POST /api/v1/red-envelopes``, through :func:`covernet.core.idempotency.run_once`
  keyed by the form's own hidden token (a double tap makes one envelope), and goes on to
  the payment, whose return is the envelope's page.
- ``/envelopes``: the customer's sent envelopes with their state.
- ``/e/{id}`` shows the greeting, the cover and a grab button; after the grab, the
  activation form (:mod:`covernet.social.activation_form`); the sender sees the share
  link (with a copy button), whether it is paid, who grabbed (masked), who activated,
  what expired and what was refunded.

Server-rendered forms, no JavaScript needed (``envelope.js`` only copies the link and
updates the preview as the form changes); the same service calls as the JSON routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from covernet.catalog import service as catalog
from covernet.core import i18n, idempotency
from covernet.core.errors import CovernetError, Forbidden, ValidationFailed
from covernet.core.ids import new_token
from covernet.core.money import format_fen
from covernet.identity.access import Db, Principal, Public, client_ip
from covernet.identity.models import Role
from covernet.payments.models import PaymentStatus
from covernet.policies import applications
from covernet.social import activation_form, grabs, service
from covernet.social.models import EnvelopeStatus, RedEnvelope
from covernet.web import csrf
from covernet.web.csrf import PostedForm
from covernet.web.render import error_field, error_message, mark_page, render

router = APIRouter(dependencies=[Depends(mark_page)], include_in_schema=False)


def _customer(who: Principal) -> None:
    if who.role is not Role.customer:
        raise Forbidden("only a customer account can take a gift", code="customer_only")


def payment_key(status: str | None) -> str:
    """The message key of the sender's payment state (``envelope.payment.<status>``)."""
    return f"envelope.payment.{status or PaymentStatus.pending.value}"


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
    lang = i18n.negotiate_lang(request)
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
        premium=format_fen(view.get("premium_fen", 0)),
        payment_label=i18n.translate(payment_key(view.get("payment_status")), lang),
        share_link=str(request.base_url).rstrip("/") + view["share_url"],
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
        grabs.grab(db, who, envelope_id)
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


# Sending -------------------------------------------------------------------------------

NEW = "/envelopes/new"
SENT = "/envelopes"
IDEMPOTENCY_SCOPE = "red-envelopes"  # the same scope as the JSON route's keys
DEFAULT_SHARES = 3
SPLITS = ("equal", "random")
_SCHEMA = service.EnvelopeIn.model_json_schema()["properties"]
DEFAULT_GREETING = str(_SCHEMA["greeting"]["default"])
GREETING_MAX = int(_SCHEMA["greeting"]["maxLength"])
FORM_FIELDS = ("option", "shares", "split", "greeting", "form_token")


def _to_login(path: str) -> RedirectResponse:
    return RedirectResponse(f"/login?next={quote(path, safe='/')}", status_code=303)


def _sender(who: Principal) -> None:
    if who.role is not Role.customer:
        raise Forbidden(
            "only a customer account can send a red envelope", code="envelope_customer_only"
        )


@dataclass(frozen=True)
class GiftOption:
    value: str  # the form's choice: "<product code>:<plan code>"
    terms: service.GiftTerms


def gift_options(db: Session) -> list[GiftOption]:
    """Every plan that may be given: exactly those the service's R12 check accepts."""
    found = []
    for code, listed in sorted(catalog.snapshot(db).products.items()):
        for plan in listed.product.plans:
            try:
                terms = service.gift_terms(
                    db, service.EnvelopeIn(product_code=code, plan_code=plan.code, shares=1)
                )
            except CovernetError:
                continue
            found.append(GiftOption(f"{code}:{plan.code}", terms))
    return found


def _bad(code: str, message: str, name: str, **extra: object) -> ValidationFailed:
    return ValidationFailed(message, code=code, detail={"field": name, **extra})


_BAD_FIELD = {
    "product_code": ("envelope_plan_required", "choose the cover to give"),
    "plan_code": ("envelope_plan_required", "choose the cover to give"),
    "shares": ("envelope_bad_shares", f"the number of shares is 1 to {service.MAX_SHARES}"),
    "split": ("envelope_bad_split", "the split is equal or random"),
    "greeting": ("envelope_bad_greeting", f"the greeting is 1 to {GREETING_MAX} characters"),
}


def envelope_input(values: dict[str, str]) -> service.EnvelopeIn:
    """The form as the service's input, or a refusal naming the field."""
    product_code, _, plan_code = values["option"].partition(":")
    if not product_code or not plan_code:
        raise _bad(*_BAD_FIELD["plan_code"], "plan_code")
    try:
        shares = int(values["shares"])
    except ValueError:
        raise _bad(*_BAD_FIELD["shares"], "shares", max=service.MAX_SHARES) from None
    try:
        return service.EnvelopeIn(
            product_code=product_code,
            plan_code=plan_code,
            shares=shares,
            split=values["split"],  # checked by the model
            greeting=values["greeting"] or DEFAULT_GREETING,
        )
    except ValidationError as exc:
        name = str(exc.errors()[0]["loc"][0])
        code, message = _BAD_FIELD.get(name, ("envelope_bad_input", "check the form"))
        raise _bad(code, message, name, max=service.MAX_SHARES, max_length=GREETING_MAX) from None


def _shares_or_default(text: str) -> int:
    try:
        shares = int(text)
    except ValueError:
        return DEFAULT_SHARES
    return shares if 1 <= shares <= service.MAX_SHARES else DEFAULT_SHARES


def preview(terms: service.GiftTerms, shares: int, how: str) -> dict[str, Any]:
    """What the sender pays and what each share covers, before paying (server-side)."""
    equal = service.plan_shares(terms, shares, "equal")
    total_premium = sum(p for p, _ in equal)
    total_cover = sum(c for _, c in equal)
    floor_premium = max(1, terms.premium_fen // service.FLOOR_DIVISOR)
    return {
        "shares": shares,
        "split": how if shares > 1 else "equal",
        "cover_each": format_fen(equal[0][1]),
        "cover_floor": format_fen(total_cover * floor_premium // total_premium),
        "premium_each": format_fen(equal[0][0]),
        "total_cover": format_fen(total_cover),
        "total_premium": format_fen(total_premium),
    }


def _option_view(option: GiftOption, lang: str) -> dict[str, Any]:
    terms = option.terms
    return {
        "value": option.value,
        "product": terms.product.name.get(lang),
        "plan": terms.plan.name.get(lang),
        "term": terms.term.label.get(lang),
        "cover": format_fen(terms.plan.sum_insured_fen),
        "premium": format_fen(terms.premium_fen),
        "premium_fen": terms.premium_fen,
        "cover_fen": terms.plan.sum_insured_fen,
        "floor_fen": max(1, terms.premium_fen // service.FLOOR_DIVISOR),
    }


def _new_page(
    request: Request,
    db: Session,
    who: Principal,
    values: dict[str, str],
    *,
    error: CovernetError | None = None,
    status: int = 200,
) -> HTMLResponse:
    lang = i18n.negotiate_lang(request)
    options = gift_options(db)
    chosen = next((o for o in options if o.value == values["option"]), None)
    if chosen is None and error is None and values["option"]:
        error = _refusal(db, values["option"])  # a link to cover that may not be given
    if chosen is None and error is None and options:
        chosen = options[0]
    return render(
        request,
        "envelope_new.html",
        status,
        toggle_path=NEW,
        options=[_option_view(o, lang) for o in options],
        chosen=chosen.value if chosen else "",
        preview=(
            preview(chosen.terms, _shares_or_default(values["shares"]), values["split"])
            if chosen
            else None
        ),
        values=values,
        max_shares=service.MAX_SHARES,
        greeting_max=GREETING_MAX,
        error=error_message(error, lang) if error else None,
        error_field=error_field(error) if error else None,
        csrf_token=csrf.form_token(request, who),
    )


def _refusal(db: Session, option: str) -> CovernetError | None:
    """Why the service would not gift the product (and plan) asked for in the link."""
    product_code, _, plan_code = option.partition(":")
    try:
        listed = catalog.snapshot(db).get(product_code)
        plan_code = plan_code or (listed.product.plans[0].code if listed.product.plans else "")
        service.gift_terms(
            db, service.EnvelopeIn(product_code=product_code, plan_code=plan_code, shares=1)
        )
    except CovernetError as exc:
        return exc
    except ValidationError:
        return _bad(*_BAD_FIELD["plan_code"], "plan_code")
    return None


def _form_values(source: FormData | dict[str, str]) -> dict[str, str]:
    values = {
        name: str(source.get(name) or "").strip()[:limit]
        for name, limit in zip(FORM_FIELDS, (140, 8, 10, GREETING_MAX * 4, 64), strict=True)
    }
    values["split"] = values["split"] or "equal"
    return values


@router.get(NEW, response_class=HTMLResponse)
def new_envelope(request: Request, db: Db, who: Public) -> Response:
    """The form to send a red envelope; ``?product=&plan=`` picks the cover to give."""
    query = request.query_params
    if not who.is_authenticated:
        return _to_login(str(request.url.path) + (f"?{query}" if query else ""))
    _sender(who)
    product, plan = query.get("product", "")[:64], query.get("plan", "")[:64]
    option = ""
    if product:
        option = f"{product}:{plan}" if plan else product
        if not plan:  # the product's first giftable plan
            option = next(
                (o.value for o in gift_options(db) if o.value.startswith(product + ":")), product
            )
    values = {
        "option": option,
        "shares": query.get("shares", str(DEFAULT_SHARES))[:8],
        "split": query.get("split", "equal") if query.get("split") in SPLITS else "equal",
        "greeting": DEFAULT_GREETING,
        "form_token": new_token(18),
    }
    return _new_page(request, db, who, values)


@router.post(NEW, response_class=HTMLResponse)
def send_envelope(request: Request, form: PostedForm, db: Db, who: Public) -> Response:
    """Create the envelope (the same service as the JSON route) and go on to pay it."""
    if not who.is_authenticated:
        return _to_login(NEW)
    _sender(who)
    values = _form_values(form)
    if not values["form_token"]:
        values["form_token"] = new_token(18)
    if form.get("intent") == "preview":  # the no-script way to see the figures first
        return _new_page(request, db, who, values)
    try:
        data = envelope_input(values)
        db.rollback()  # the envelope is written in run_once's own unit of work

        def action(work: Session) -> tuple[int, Any]:
            envelope, url = service.create(work, who, data)
            return 201, {"envelope_id": envelope.id, "pay_url": url}

        _, result, replayed = idempotency.run_once(
            scope=f"{who.user_id}:{IDEMPOTENCY_SCOPE}",
            key=values["form_token"],
            body=data.model_dump(mode="json"),
            action=action,
        )
    except CovernetError as exc:
        db.rollback()
        return _new_page(request, db, who, values, error=exc, status=exc.status)
    envelope_id = str(result["envelope_id"])
    target = str(result.get("pay_url") or f"/e/{envelope_id}")
    if replayed:  # a second tap: where the envelope stands now
        envelope = db.get(RedEnvelope, envelope_id)
        if envelope is None or envelope.status != EnvelopeStatus.pending_payment.value:
            target = f"/e/{envelope_id}"
    return RedirectResponse(target, status_code=303)


@router.get(SENT, response_class=HTMLResponse)
def sent_envelopes(request: Request, db: Db, who: Public) -> Response:
    """The customer's sent envelopes, newest first, each with its state and page."""
    if not who.is_authenticated:
        return _to_login(SENT)
    _sender(who)
    assert who.user_id is not None
    lang = i18n.negotiate_lang(request)
    products = catalog.snapshot(db).products
    rows = []
    for envelope in service.envelopes_sent_by(db, who.user_id):
        listed = products.get(envelope.product_code)
        rows.append(
            {
                "id": envelope.id,
                "product": listed.product.name.get(lang) if listed else envelope.product_code,
                "greeting": envelope.greeting,
                "status": envelope.status,
                "shares": envelope.shares_total,
                "premium": format_fen(envelope.premium_fen),
                "refunded": format_fen(envelope.refunded_fen),
                "refunded_fen": envelope.refunded_fen,
                "created_at": envelope.created_at,
            }
        )
    return render(request, "envelopes_sent.html", toggle_path=SENT, envelopes=rows)
