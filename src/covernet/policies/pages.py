"""The customer's purchase pages: apply from a quote, follow the application, read the
policies.  Server-rendered, working without JavaScript (``apply.js`` shows the apply
form one step at a time and records when each step was shown; ``application.js``
refreshes the status page while the payment is pending).

The apply form calls the same :func:`covernet.policies.applications.apply` as
``POST /api/v1/applications``, through :func:`covernet.core.idempotency.run_once` keyed
by the form's own hidden token, so a double tap never makes two applications.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from covernet.catalog import service as catalog
from covernet.catalog.disclosures import disclosures_for
from covernet.catalog.pricing import is_on_sale
from covernet.core import clock, i18n, idempotency
from covernet.core.config import get_settings
from covernet.core.errors import Conflict, CovernetError, Forbidden, NotFound
from covernet.core.ids import new_token
from covernet.core.money import format_fen, format_fen_compact
from covernet.identity.access import Db, Principal, Public, client_ip
from covernet.identity.models import Role
from covernet.payments import service as payments
from covernet.policies import applications, lifecycle, policies, purchase, renewal, trace
from covernet.policies.buying_api import application_body, policy_body
from covernet.policies.models import Application, ApplicationStatus, Policy
from covernet.web.csrf import PostedForm
from covernet.web.render import error_message, mark_page, render

router = APIRouter(dependencies=[Depends(mark_page)], include_in_schema=False)

IDEMPOTENCY_SCOPE = "applications"  # the same scope as the JSON route's keys


def _to_login(path: str) -> RedirectResponse:
    return RedirectResponse(f"/login?next={path}", status_code=303)


def _customer(who: Principal) -> None:
    if who.role is not Role.customer:
        raise Forbidden("only a customer account can apply", code="customer_only")


# Apply -----------------------------------------------------------------------------------


def _apply_page(
    request: Request,
    db: Session,
    who: Principal,
    state: purchase.QuoteState,
    *,
    posted: purchase.Posted | None = None,
    error: CovernetError | None = None,
    status: int = 200,
    renewal_of: str | None = None,
) -> HTMLResponse:
    lang = i18n.negotiate_lang(request)
    quote = state.quote
    product, _ = catalog.product_at_version(db, quote.product_version_id)
    insurer = catalog.snapshot(db).insurers[product.insurer]
    docs = applications.documents_for(db, product)
    steps = purchase.steps_for(product)
    posted = posted or purchase.Posted(form_token=new_token(18))
    field = None
    warnings: list[str] = []
    if error is not None:
        detail = error.detail if isinstance(error.detail, dict) else {}
        field = purchase.form_field(detail.get("field"))
        if error.code == "suitability_confirmation_required":
            warnings = [w for w in detail.get("warnings", []) if w in purchase.SUITABILITY_WARNINGS]
    error_step = purchase.step_of(field, steps) if field else None
    return render(
        request,
        "apply.html",
        status=status,
        toggle_path=f"/apply/{quote.id}",
        quote_id=quote.id,
        product=product,
        product_name=product.name.get(lang),
        insurer_name=insurer.legal_name.get(lang),
        summary=purchase.quote_summary(quote, product, lang),
        steps=steps,
        docs=purchase.document_view(docs, disclosures_for(product, insurer), lang),
        health_questions=[
            {"code": q.code, "text": q.text.get(lang)} for q in product.health_questions
        ],
        statement=purchase.statement() if product.uncertain_benefits else None,
        relationships=purchase.RELATIONSHIPS,
        beneficiary_relationships=purchase.BENEFICIARY_RELATIONSHIPS,
        posted=posted,
        shown_at=purchase.shown_now(),
        warnings=warnings,
        error=error_message(error, lang) if error else None,
        error_field=field,
        error_step=error_step,
        expired=state.expired,
        on_sale=is_on_sale(product, clock.today()),
        renewal_guaranteed=product.renewal.guaranteed,
        form_csrf=who.csrf_token if who.method == "cookie" else None,
        renewal_of=renewal_of,
    )


@router.get("/apply/{quote_id}", response_class=HTMLResponse)
def apply_page(quote_id: str, request: Request, db: Db, who: Public) -> Response:
    """The apply form for a quote; anonymous callers sign in first and come back."""
    if not who.is_authenticated:
        return _to_login(f"/apply/{quote_id}")
    _customer(who)
    state = purchase.quote_for_page(db, who, quote_id)
    if state.application_id is not None:
        return RedirectResponse(f"/applications/{state.application_id}", status_code=303)
    renewal_of = request.query_params.get("renewal_of", "")[:36] or None
    return _apply_page(request, db, who, state, renewal_of=renewal_of)


@router.post("/apply/{quote_id}", response_class=HTMLResponse)
def apply_submit(
    quote_id: str, request: Request, form: PostedForm, db: Db, who: Public
) -> Response:
    if not who.is_authenticated:
        return _to_login(f"/apply/{quote_id}")
    _customer(who)
    # An application already made from this quote (a second tap) is answered by
    # run_once's replay, or by the service's quote_used conflict: not refused here.
    state = purchase.quote_for_page(db, who, quote_id)
    product, _ = catalog.product_at_version(db, state.quote.product_version_id)
    docs = applications.documents_for(db, product)
    posted = purchase.read_form(form, product, docs)
    db.rollback()  # end this read before the application's own unit of work writes
    ip, agent = client_ip(request), request.headers.get("user-agent", "")
    try:
        data = purchase.application_input(quote_id, form, posted, docs)

        def action(work: Session) -> tuple[int, Any]:
            made = applications.apply(work, who, data, ip=ip, user_agent=agent)
            work.flush()
            return 201, application_body(work, made.app, payment=made.payment, known=True)

        _, result, replayed = idempotency.run_once(
            scope=f"{who.user_id}:{IDEMPOTENCY_SCOPE}",
            key=posted.form_token or None,
            body=data.model_dump(mode="json"),
            action=action,
        )
    except CovernetError as error:
        detail = error.detail if isinstance(error.detail, dict) else {}
        if isinstance(error, Conflict) and isinstance(detail.get("application_id"), str):
            return RedirectResponse(f"/applications/{detail['application_id']}", status_code=303)
        if error.status == 404:
            raise
        return _apply_page(
            request,
            db,
            who,
            state,
            posted=posted,
            error=error,
            status=error.status,
            renewal_of=str(form.get("renewal_of") or "")[:36] or None,
        )
    target = result.get("pay_url") or f"/applications/{result['application_id']}"
    if replayed:  # a second tap, or the form sent again later: where it stands now
        app = applications.get(db, who, result["application_id"])
        if app.status != ApplicationStatus.pending_payment.value:
            target = f"/applications/{app.id}"
    return RedirectResponse(target, status_code=303)


# Application status ------------------------------------------------------------------


def _application_view(db: Session, app: Application, lang: str) -> dict[str, Any]:
    payment = payments.get_payment(db, app.payment_id) if app.payment_id else None
    policy = applications.policy_of(db, app)
    product, _ = catalog.product_at_version(db, app.product_version_id)
    plan = product.plan(app.plan_code)
    progress = purchase.progress_of(app.status, payment.status if payment else None)
    return {
        "app": app,
        "product_name": product.name.get(lang),
        "product_code": product.code,
        "plan": plan.name.get(lang) if plan else app.plan_code,
        "premium": format_fen(app.premium_fen),
        "sum_insured": format_fen_compact(app.sum_insured_fen, lang=lang),
        "progress": progress.steps,
        "current": progress.current,
        "pending": app.status == ApplicationStatus.pending_payment.value,
        "pay_url": (
            payments.pay_url(payment)
            if payment is not None and payment.status == "pending"
            else None
        ),
        "payment_status": payment.status if payment else None,
        "policy": policy,
        "reason": purchase.reason_code(app.status, app.decision_reason),
        "refund_days": get_settings().refund_due_days,
        "referral_days": purchase.REFERRAL_DECISION_WORKING_DAYS,
        "submitted_at": i18n.format_datetime(app.created_at, lang),
    }


@router.get("/applications/{application_id}", response_class=HTMLResponse)
def application_page(application_id: str, request: Request, db: Db, who: Public) -> Response:
    """Where an application stands (the payment's return page); the script refreshes it."""
    if not who.is_authenticated:
        return _to_login(f"/applications/{application_id}")
    app = applications.get(db, who, application_id)
    return render(
        request,
        "application.html",
        **_application_view(db, app, i18n.negotiate_lang(request)),
    )


@router.get("/applications/{application_id}/trace", response_class=HTMLResponse)
def trace_page(application_id: str, request: Request, db: Db, who: Public) -> Response:
    """The sale's record (R13) as a readable timeline: the customer's own, or any for the
    staff who serve sales; exportable as CSV."""
    if not who.is_authenticated:
        return _to_login(f"/applications/{application_id}/trace")
    app = applications.get(db, who, application_id)
    lang = i18n.negotiate_lang(request)
    product, _ = catalog.product_at_version(db, app.product_version_id)
    events = [
        {
            "at": e.at,
            "kind": e.kind,
            "kind_label": i18n.translate_or(f"trace.kind.{e.kind}", lang, e.kind),
            "step": e.step,
            "step_label": i18n.translate_or(f"trace.step.{e.step}", lang, e.step),
            "content_hash": e.content_hash,
            "document_version": e.document_version,
            "detail": ", ".join(f"{k}: {v}" for k, v in e.detail.items()),
            "ip": e.ip,
            "user_agent": e.user_agent,
        }
        for e in trace.timeline(db, app.id)
    ]
    return render(
        request,
        "trace.html",
        app_id=app.id,
        product_name=product.name.get(lang),
        events=events,
        retention_until=policies.retention_of(db, app),
    )


# Policies ----------------------------------------------------------------------------


def _policy_view(db: Session, policy: Policy, lang: str) -> dict[str, Any]:
    body = policy_body(db, policy)
    product, _ = catalog.product_at_version(db, policy.product_version_id)
    plan = product.plan(policy.plan_code)
    term = product.term(policy.term_code)
    return {
        "id": policy.id,
        "policy_no": body.policy_no,
        "status": body.status,
        "product_name": product.name.get(lang),
        "product_code": product.code,
        "plan": plan.name.get(lang) if plan else policy.plan_code,
        "term": term.label.get(lang) if term else policy.term_code,
        "premium": format_fen(body.premium_fen),
        "sum_insured": format_fen_compact(body.sum_insured_fen, lang=lang),
        "effective_date": body.effective_date,
        "end_date": body.end_date,
        "waiting_period_end": body.waiting_period_end,
        "cooling_off_end": body.cooling_off_end,
        "renewal_guaranteed": body.renewal_guaranteed,
        "renewal_note": product.renewal.note.get(lang) if product.renewal.note else "",
        "verify_url": body.verify_url,
        "document_url": body.document_url,
        "application_id": body.application_id,
        "issued_at": body.issued_at,
        "renewal": body.renewal,
        "refunds": [
            {"amount": format_fen(r.amount_fen), "status": r.status, "due_at": r.due_at}
            for r in body.refunds
        ],
        "leave": _leave_view(db, policy, body.status, lang),
    }


def _leave_view(db: Session, policy: Policy, status: str, lang: str) -> dict[str, Any] | None:
    """What leaving would pay, shown at once with its documents and time limit (R18)."""
    if status not in ("in_force", "pending") or policy.customer_id is None:
        return None
    _, quote = lifecycle.facts_of(db, policy)
    return {
        "basis": quote.basis,
        "amount_fen": quote.amount_fen,
        "amount": format_fen(quote.amount_fen),
        "fee": format_fen(quote.fee_fen),
        "processing_days": quote.processing_days,
        "conditions": quote.conditions.get(lang),
        "documents": [d.get(lang) for d in quote.documents],
    }


@router.get("/policies", response_class=HTMLResponse)
def policies_page(request: Request, db: Db, who: Public) -> Response:
    """我的保单: the signed-in customer's policies, newest first."""
    if not who.is_authenticated:
        return _to_login("/policies")
    lang = i18n.negotiate_lang(request)
    found = policies.of_customer(db, who.user_id or "")
    return render(request, "policies.html", policies=[_policy_view(db, p, lang) for p in found])


def _show_policy(
    request: Request,
    db: Session,
    who: Principal,
    policy_id: str,
    *,
    message: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    policy = policies.get(db, who, policy_id)
    return render(
        request,
        "policy.html",
        status=status,
        toggle_path=f"/policies/{policy_id}",
        policy=_policy_view(db, policy, i18n.negotiate_lang(request)),
        message=message,
        error=error,
        csrf_token=who.csrf_token if who.method == "cookie" else None,
        owner=policy.customer_id == who.user_id,
    )


@router.get("/policies/{policy_id}", response_class=HTMLResponse)
def policy_page(policy_id: str, request: Request, db: Db, who: Public) -> Response:
    if not who.is_authenticated:
        return _to_login(f"/policies/{policy_id}")
    return _show_policy(request, db, who, policy_id)


@router.post("/policies/{policy_id}/{action}", response_class=HTMLResponse)
def policy_action(
    policy_id: str, action: str, request: Request, form: PostedForm, db: Db, who: Public
) -> Response:
    """cancel (犹豫期, R17), surrender (confirmed with the amount shown, R18), renew (R8):
    the same service calls as the API's."""
    if not who.is_authenticated:
        return _to_login(f"/policies/{policy_id}")
    _customer(who)
    lang = i18n.negotiate_lang(request)
    try:
        if action == "cancel":
            lifecycle.cancel(db, who, policy_id)
        elif action == "surrender":
            amount = str(form.get("amount_fen", ""))
            lifecycle.surrender(
                db,
                who,
                policy_id,
                lifecycle.SurrenderIn(
                    confirm=True, amount_fen=int(amount) if amount.isdigit() else None
                ),
            )
        elif action == "renew":
            offered = renewal.renewal_quote(db, who, policy_id)
            return RedirectResponse(
                f"/apply/{offered.quote.id}?renewal_of={policy_id}", status_code=303
            )
        else:
            raise NotFound("no such action")
    except CovernetError as exc:
        if exc.status == 404:
            raise
        db.rollback()
        return _show_policy(
            request, db, who, policy_id, error=error_message(exc, lang), status=exc.status
        )
    return _show_policy(
        request, db, who, policy_id, message=i18n.translate(f"policy.done.{action}", lang)
    )
