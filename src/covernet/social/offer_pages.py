"""Scenario offer pages: the phone landing page ``/o/{token}`` with one tap to quote (or
to redeem a gift and activate it), and the ops console ``/console/offers`` (rules with
their conversion, each rule's YAML edited, validated and versioned).

The quote is made by the same service as the product page's quote form
(:func:`covernet.web.pages.quote_input`, :func:`covernet.policies.quotes.create_quote`)
and the tap lands on the normal purchase flow (``/apply/{quote_id}``), so buying goes
through every confirmation of R13.  A gift is activated through the red envelope
activation (:func:`covernet.social.service.activate`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from covernet.audit import service as audit
from covernet.catalog import service as catalog
from covernet.catalog.loader import load_catalog
from covernet.core import i18n
from covernet.core.config import get_settings
from covernet.core.errors import CovernetError, Forbidden, NotFound
from covernet.core.money import format_fen
from covernet.identity import service as identity
from covernet.identity.access import Db, Principal, Public, client_ip
from covernet.identity.models import Role
from covernet.policies import applications
from covernet.policies.quotes import create_quote, prepare_quote
from covernet.social import activation_form, offer_rules, offers
from covernet.social.models import RedEnvelopeShare
from covernet.social.offer_models import (
    FunnelKind,
    Offer,
    OfferKind,
    OfferStatus,
    SuppressReason,
)
from covernet.web import csrf, views
from covernet.web.console import console_guard
from covernet.web.csrf import PostedForm
from covernet.web.pages import QUOTE_FIELDS, _result_view, field, quote_input
from covernet.web.render import error_message, mark_page, render

router = APIRouter(dependencies=[Depends(mark_page)], include_in_schema=False)

CONSOLE = "/console/offers"
OPS = frozenset({Role.ops, Role.admin})
FILLED_BY_HAND = ("birth_date", "gender", "region")  # asked when the partner did not send them
CHART_WIDTH, LABEL_WIDTH, BAR_WIDTH, ROW_HEIGHT, TOP = 360, 120, 200, 22, 8
CHART_STEPS = ("offer", "shown", "quote", "purchase")


# The landing page ------------------------------------------------------------------------


def _values(offer: Offer, form: Any = None) -> dict[str, str]:
    values = {name: str(offer.inputs.get(name, "")) for name in QUOTE_FIELDS}
    if form is not None:
        for name in FILLED_BY_HAND:
            if not values[name]:
                values[name] = field(form, name)
    return values


def _landing(
    request: Request,
    db: Session,
    who: Principal,
    offer: Offer,
    *,
    values: dict[str, str] | None = None,
    error: str | None = None,
    message: str | None = None,
    posted: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    lang = i18n.negotiate_lang(request)
    listed = catalog.snapshot(db).get(offer.product_code)
    product = listed.product
    rule = next((e.rule for e in offer_rules.effective(db) if e.rule.code == offer.rule_code), None)
    title = rule.title.get(lang) if rule is not None else product.name.get(lang)
    values = values if values is not None else _values(offer)
    context: dict[str, Any] = {
        "keys": {
            "badge": f"offer.badge.{offer.kind}",
            "cost": f"offer.cost.{offer.redeem_with}",
            "redeem": f"offer.redeem.{offer.redeem_with}",
        },
        "offer": offer,
        "title": title,
        "product": product,
        "expired": offers.is_expired(offer),
        "expires_at": offer.expires_at,
        "values": values,
        "missing": [n for n in FILLED_BY_HAND if not values.get(n)],
        "provinces": views.provinces_for(product, lang),
        "result": None,
        "docs": [],
        "share": None,
        "mine": who.user_id == offer.user_id,
        "csrf_token": csrf.form_token(request, who),
        "error": error,
        "message": message,
        "posted": posted or {},
    }
    plan = next((p for p in product.plans if p.code == offer.plan_code), None)
    context["cover"] = format_fen(plan.sum_insured_fen) if plan else ""
    context["plan_name"] = plan.name.get(lang) if plan else offer.plan_code
    if offer.kind == OfferKind.quote.value and not context["missing"]:
        try:
            result = prepare_quote(
                catalog.snapshot(db), quote_input(listed, values), who, offers.quote_start(offer)
            )
            context["result"] = {**_result_view(result, lang), "quote_id": None}
        except CovernetError as exc:
            context["error"] = context["error"] or error_message(exc, lang)
    if offer.kind == OfferKind.gift.value:
        share = db.get(RedEnvelopeShare, offer.share_id) if offer.share_id else None
        context["share"] = share
        if share is not None and share.status == "held":
            context["docs"] = activation_form.documents(applications.documents_for(db, product))
    response = render(request, "offer.html", status, toggle_path=f"/o/{offer.token}", **context)
    if who.method != "cookie":
        csrf.set_anonymous_cookie(response, context["csrf_token"])
    return response


@router.get("/o/{token}", response_class=HTMLResponse)
def landing(token: str, request: Request, db: Db, who: Public) -> Response:
    """The offer: product, pre-filled quote, price and disclosures, one tap to quote."""
    offer = offers.by_token(db, token)
    if not offers.is_expired(offer):
        offers.mark_shown(db, offer)
    return _landing(request, db, who, offer)


@router.post("/o/{token}/quote", response_class=HTMLResponse)
def quote(token: str, request: Request, form: PostedForm, db: Db, who: Public) -> Response:
    """The one tap: the pre-filled quote, then the normal purchase flow for it."""
    offer = offers.by_token(db, token)
    values = _values(offer, form)
    lang = i18n.negotiate_lang(request)
    try:
        listed = catalog.snapshot(db).get(offer.product_code)
        if offers.is_expired(offer):
            offers.record_quote(db, token, "")  # raises offer_expired
        result = create_quote(db, quote_input(listed, values), who, offers.quote_start(offer))
        offers.record_quote(db, token, result.quote.id)
    except CovernetError as exc:
        db.rollback()
        return _landing(
            request,
            db,
            who,
            offer,
            values=values,
            error=error_message(exc, lang),
            status=exc.status,
        )
    return RedirectResponse(f"/apply/{result.quote.id}", status_code=303)


def _signed_in(who: Principal, token: str) -> Response | None:
    if not who.is_authenticated:
        return RedirectResponse(f"/login?next=/o/{token}", status_code=303)
    if who.role is not Role.customer:
        raise Forbidden("only a customer account can take a gift", code="customer_only")
    return None


@router.post("/o/{token}/redeem", response_class=HTMLResponse)
def redeem(token: str, request: Request, form: PostedForm, db: Db, who: Public) -> Response:
    """One tap to redeem the points or steps; the activation form follows."""
    if (guard := _signed_in(who, token)) is not None:
        return guard
    try:
        offers.redeem(db, who, token)
    except CovernetError as exc:
        if exc.status == 404:
            raise
        db.rollback()
        lang = i18n.negotiate_lang(request)
        offer = offers.by_token(db, token)
        return _landing(request, db, who, offer, error=error_message(exc, lang), status=exc.status)
    return RedirectResponse(f"/o/{token}#activate", status_code=303)


@router.post("/o/{token}/activate", response_class=HTMLResponse)
def activate(token: str, request: Request, form: PostedForm, db: Db, who: Public) -> Response:
    if (guard := _signed_in(who, token)) is not None:
        return guard
    lang = i18n.negotiate_lang(request)
    posted = activation_form.posted(form)
    try:
        policy = offers.activate(
            db,
            who,
            token,
            activation_form.activation_input(form),
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent", ""),
        )
    except (CovernetError, ValueError) as exc:
        db.rollback()
        offer = offers.by_token(db, token)
        text = (
            error_message(exc, lang)
            if isinstance(exc, CovernetError)
            else i18n.translate("envelope.bad_input", lang)
        )
        status = exc.status if isinstance(exc, CovernetError) else 400
        return _landing(request, db, who, offer, error=text, posted=posted, status=status)
    return RedirectResponse(f"/policies/{policy.id}", status_code=303)


def message_keys() -> list[str]:
    """Every message key these pages build at run time (checked by the tests)."""
    keys = [f"offer.badge.{k.value}" for k in OfferKind]
    keys += [f"offer.{part}.{r}" for part in ("cost", "redeem") for r in ("points", "steps")]
    keys += [f"offers.step.{s}" for s in CHART_STEPS]
    keys += [f"offers.reason.{r.value}" for r in SuppressReason]
    return keys + [f"offers.status.{s.value}" for s in OfferStatus]


# The console ------------------------------------------------------------------------------


def _guard(who: Principal, path: str = CONSOLE) -> Response | None:
    return console_guard(who, OPS, path, "the offers console is for operations staff")


def chart(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per rule, one bar per funnel step (offers, shown, quoted, bought), for SVG."""
    top = max((r["counts"][s] for r in rows for s in CHART_STEPS), default=0) or 1
    groups = []
    y = TOP
    for row in rows:
        bars = []
        for step in CHART_STEPS:
            n = row["counts"][step]
            bars.append(
                {
                    "step": step,
                    "label": f"offers.step.{step}",
                    "y": y,
                    "width": max(1.0, round(BAR_WIDTH * n / top, 1)) if n else 0,
                    "value": n,
                    "text_y": y + 13,
                }
            )
            y += ROW_HEIGHT
        groups.append({"code": row["code"], "label_y": bars[0]["text_y"], "bars": bars})
        y += TOP
    return {
        "width": CHART_WIDTH + LABEL_WIDTH,
        "height": y + TOP,
        "label_width": LABEL_WIDTH,
        "bar_x": LABEL_WIDTH + 4,
        "value_x": LABEL_WIDTH + 8,
        "groups": groups,
    }


def console_rows(db: Session, lang: str) -> list[dict[str, Any]]:
    stats = offers.funnel(db)
    rows = []
    for found in offer_rules.effective(db):
        rule = found.rule
        funnel = stats.get(rule.code)
        counts = funnel.counts if funnel else {k.value: 0 for k in FunnelKind}
        rows.append(
            {
                "code": rule.code,
                "title": rule.title.get(lang),
                "event": rule.event,
                "kind": rule.offer.kind,
                "product": rule.offer.product,
                "enabled": rule.enabled,
                "version": found.version,
                "source": found.source,
                "superseded": found.superseded.version if found.superseded else None,
                "counts": counts,
                "suppressed": {
                    r.value: (funnel.suppressed.get(r.value, 0) if funnel else 0)
                    for r in SuppressReason
                },
                "conversion": funnel.conversion if funnel else None,
            }
        )
    return rows


@router.get(CONSOLE, response_class=HTMLResponse)
def console(request: Request, db: Db, who: Public) -> Response:
    """场景营销: each rule in force, its version and its funnel, drawn as bars."""
    if (guard := _guard(who)) is not None:
        return guard
    rows = console_rows(db, i18n.negotiate_lang(request))
    return render(
        request,
        "offers_console.html",
        rows=rows,
        chart=chart(rows),
        recent=[{**o, "status_key": f"offers.status.{o['status']}"} for o in offers.recent(db)],
        reasons=[(r.value, f"offers.reason.{r.value}") for r in SuppressReason],
        editing=None,
    )


def _edit_page(
    request: Request,
    db: Session,
    who: Principal,
    code: str,
    *,
    text: str | None = None,
    error: str | None = None,
    message: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    found = next((e for e in offer_rules.effective(db) if e.rule.code == code), None)
    versions = offer_rules.versions_of(db, code)
    if found is None and not versions:
        raise NotFound("no such offer rule", code="unknown_offer_rule")
    current = text
    if current is None:
        current = versions[0].yaml_text if found and found.source == "console" else ""
        if not current and found is not None:
            current = offer_rules.rule_yaml(found.rule)
    users = {v.created_by: identity.get_user(db, v.created_by) for v in versions}
    names = {k: (u.name if u is not None and u.name else k) for k, u in users.items()}
    return render(
        request,
        "offers_console.html",
        status,
        toggle_path=f"{CONSOLE}/{code}",
        rows=[],
        chart=None,
        recent=[],
        reasons=[],
        editing={
            "code": code,
            "text": current,
            "version": found.version if found else None,
            "source": found.source if found else None,
            "superseded": found.superseded.version if found and found.superseded else None,
            "versions": [
                {
                    "version": v.version,
                    "by": names[v.created_by],
                    "at": v.created_at,
                    "in_force": bool(found and found.version == f"db:{v.version}"),
                }
                for v in versions
            ],
        },
        csrf_token=csrf.form_token(request, who),
        error=error,
        message=message,
    )


@router.get(CONSOLE + "/{code}", response_class=HTMLResponse)
def edit_rule(code: str, request: Request, db: Db, who: Public) -> Response:
    if (guard := _guard(who, f"{CONSOLE}/{code}")) is not None:
        return guard
    saved = request.query_params.get("saved")
    lang = i18n.negotiate_lang(request)
    message = i18n.translate("offers.saved", lang, version=saved) if saved else None
    return _edit_page(request, db, who, code, message=message)


@router.post(CONSOLE + "/{code}", response_class=HTMLResponse)
def save_rule(code: str, request: Request, form: PostedForm, db: Db, who: Public) -> Response:
    """Validate the edited YAML as the file is validated and store it as a new version."""
    if (guard := _guard(who, f"{CONSOLE}/{code}")) is not None:
        return guard
    assert who.user_id is not None and who.role is not None
    text = str(form.get("yaml") or "")[:20_000]
    try:
        row = offer_rules.save_version(
            db, code, text, by=who.user_id, catalog=load_catalog(get_settings().catalog_dir)
        )
        audit.record(
            db,
            "offer_rule.save",
            actor=audit.Actor("user", who.user_id, who.role.value),
            subject_type="offer_rule",
            subject_id=code,
            detail={"version": row.version, "file_digest": row.file_digest[:12]},
        )
    except CovernetError as exc:
        db.rollback()
        lang = i18n.negotiate_lang(request)
        return _edit_page(
            request, db, who, code, text=text, error=error_message(exc, lang), status=exc.status
        )
    return RedirectResponse(f"{CONSOLE}/{code}?saved={row.version}", status_code=303)
