"""The customer's claim pages: file a claim from a policy, 我的理赔, and one claim's
tracker with its documents.  Server-rendered and working without JavaScript
(``claim.js`` refreshes the tracker while the claim is open).

The form calls the same :func:`covernet.claims.service.file_claim` as
``POST /api/v1/claims``, through :func:`covernet.core.idempotency.run_once` keyed by the
form's hidden token (the JSON route's scope), so a double tap files one claim.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from covernet.catalog import service as catalog
from covernet.claims import rules, service, views
from covernet.claims.api import claim_body
from covernet.claims.models import Claim
from covernet.core import clock, i18n, idempotency
from covernet.core.config import get_settings
from covernet.core.errors import CovernetError, Forbidden, NotFound, ValidationFailed
from covernet.core.ids import new_token
from covernet.core.money import format_fen, parse_yuan
from covernet.identity.access import Db, Principal, Public
from covernet.identity.models import Role
from covernet.policies import policies
from covernet.policies.models import Policy
from covernet.web.csrf import PostedForm
from covernet.web.render import error_message, mark_page, render

router = APIRouter(dependencies=[Depends(mark_page)], include_in_schema=False)

IDEMPOTENCY_SCOPE = "claims"  # the JSON route's scope: a key counts once for both
CLAIMABLE = frozenset({"in_force", "expired", "surrendered"})
FIELDS = (
    "coverage_code",
    "cause",
    "incident_date",
    "description",
    "amount",
    "payee_name",
    "payee_account",
)
FIELD_OF = {
    "amount_claimed_fen": "amount",
    "payee.name": "payee_name",
    "payee.account": "payee_account",
    "payee": "payee_name",
    "policy_id": "form",
}
OPEN_STAGES = frozenset({"reported", "accepted", "documents", "investigating", "assessed"})


def _to_login(path: str) -> RedirectResponse:
    return RedirectResponse(f"/login?next={path}", status_code=303)


def _customer(who: Principal) -> None:
    if who.role is not Role.customer:
        raise Forbidden("claims are filed from a customer account", code="customer_only")


def _own_policy(db: Session, who: Principal, policy_id: str) -> Policy:
    policy = policies.get(db, who, policy_id)
    if policy.customer_id != who.user_id:
        raise NotFound("no such policy", detail={"field": "policy_id"})
    return policy


def claimable(db: Session, policy: Policy) -> bool:
    """In force or ended (an incident while it was in force may still be claimed)."""
    return policies.effective_status(policy) in CLAIMABLE


# Filing -----------------------------------------------------------------------------------


def _form_page(
    request: Request,
    db: Session,
    who: Principal,
    policy: Policy,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    lang = i18n.negotiate_lang(request)
    product, _ = catalog.product_at_version(db, policy.product_version_id)
    plan = product.plan(policy.plan_code)
    coverages = [
        {"code": c.code, "name": i18n.text_in(c.name, lang), "sum": format_fen(c.sum_insured_fen)}
        for c in (plan.coverages if plan else [])
    ]
    values = values or {"form_token": new_token(18)}
    if len(coverages) == 1:
        values.setdefault("coverage_code", coverages[0]["code"])
    errors = errors or {}
    return render(
        request,
        "claim_form.html",
        status=status,
        toggle_path=f"/policies/{policy.id}/claim",
        policy_id=policy.id,
        policy_no=policy.policy_no,
        product_name=i18n.text_in(product.name, lang),
        coverages=coverages,
        causes=[
            ("accident", views.t("claim.cause.accident", lang)),
            ("illness", views.t("claim.cause.illness", lang)),
        ],
        values=values,
        errors=errors,
        error_summary=bool(errors),
        today=clock.today().isoformat(),
        csrf_token=who.csrf_token if who.method == "cookie" else None,
        can_claim=claimable(db, policy),
    )


@router.get("/policies/{policy_id}/claim", response_class=HTMLResponse)
def claim_form(policy_id: str, request: Request, db: Db, who: Public) -> Response:
    """申请理赔: the form for one of the customer's policies."""
    if not who.is_authenticated:
        return _to_login(f"/policies/{policy_id}/claim")
    _customer(who)
    return _form_page(request, db, who, _own_policy(db, who, policy_id))


def _read(form: Any) -> dict[str, str]:
    values = {name: str(form.get(name, "") or "").strip() for name in (*FIELDS, "form_token")}
    values["form_token"] = values["form_token"][:64]
    return values


class _FormProblems(Exception):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("form problems")
        self.errors = errors


def _claim_input(policy_id: str, values: dict[str, str], lang: str) -> service.ClaimIn:
    """The form as the service's input; each problem named by its form field."""
    errors: dict[str, str] = {}
    try:
        amount = parse_yuan(values["amount"])
    except ValueError:
        amount = 0
        errors["amount"] = views.t("claim.form.error.amount", lang)
    try:
        data = service.ClaimIn.model_validate(
            {
                "policy_id": policy_id,
                "coverage_code": values["coverage_code"],
                "cause": values["cause"],
                "incident_date": values["incident_date"] or None,
                "description": values["description"],
                "amount_claimed_fen": amount,
                "payee": {"name": values["payee_name"], "account": values["payee_account"]},
            }
        )
    except ValidationError as exc:
        for problem in exc.errors(include_url=False):
            path = ".".join(str(p) for p in problem["loc"])
            field = FIELD_OF.get(path, path)
            if field in FIELDS:
                errors.setdefault(field, views.t(f"claim.form.error.{field}", lang))
            else:
                errors.setdefault("form", problem["msg"])
    if errors:
        raise _FormProblems(errors)
    return data


@router.post("/policies/{policy_id}/claim", response_class=HTMLResponse)
def claim_submit(
    policy_id: str, request: Request, form: PostedForm, db: Db, who: Public
) -> Response:
    if not who.is_authenticated:
        return _to_login(f"/policies/{policy_id}/claim")
    _customer(who)
    lang = i18n.negotiate_lang(request)
    policy = _own_policy(db, who, policy_id)
    values = _read(form)
    try:
        data = _claim_input(policy_id, values, lang)
    except _FormProblems as problems:
        return _form_page(
            request, db, who, policy, values=values, errors=problems.errors, status=400
        )
    db.rollback()  # end this read before the claim's own unit of work writes

    def action(work: Session) -> tuple[int, Any]:
        claim = service.file_claim(work, who, data)
        work.flush()
        return 201, claim_body(work, claim, who)

    try:
        _, result, _ = idempotency.run_once(
            scope=f"{who.user_id}:{IDEMPOTENCY_SCOPE}",
            key=values["form_token"] or None,
            body=data.model_dump(mode="json"),
            action=action,
        )
    except CovernetError as exc:
        if exc.status == 404:
            raise
        detail = exc.detail if isinstance(exc.detail, dict) else {}
        field = FIELD_OF.get(str(detail.get("field", "")), str(detail.get("field", "")))
        message = i18n.translate_or(f"claim.refused.{exc.code}", lang, error_message(exc, lang))
        errors = {field if field in FIELDS else "form": message}
        return _form_page(request, db, who, policy, values=values, errors=errors, status=exc.status)
    return RedirectResponse(f"/claims/{result['claim_id']}?filed=1", status_code=303)


# 我的理赔 -------------------------------------------------------------------------------


@router.get("/claims", response_class=HTMLResponse)
def my_claims(request: Request, db: Db, who: Public) -> Response:
    if not who.is_authenticated:
        return _to_login("/claims")
    _customer(who)
    lang = i18n.negotiate_lang(request)
    ruleset = rules.current()
    found = service.of_customer(db, who.user_id or "")
    numbers = {p.id: p.policy_no for p in policies.of_customer(db, who.user_id or "")}
    rows = [
        {
            "id": c.id,
            "claim_no": c.claim_no,
            "policy_no": numbers.get(c.policy_id, ""),
            "stage": c.stage,
            "stage_name": views.stage_name(ruleset, c.stage, lang),
            "amount": format_fen(c.amount_claimed_fen),
            "reported_at": c.reported_at,
            "waiting": views.t(f"claim.waits.{service.waiting_on(db, c)}", lang),
        }
        for c in found
    ]
    owned = [
        {"id": p.id, "policy_no": p.policy_no}
        for p in policies.of_customer(db, who.user_id or "")
        if claimable(db, p)
    ]
    return render(request, "claims.html", claims=rows, policies=owned)


# One claim ---------------------------------------------------------------------------------


def claim_view(db: Session, claim: Claim, who: Principal, lang: str) -> dict[str, Any]:
    """Everything the tracker shows (the customer's page; the console adds to it)."""
    ruleset = rules.current()
    body = claim_body(db, claim, who)
    staff = who.role in service.READERS
    policy = db.get(Policy, claim.policy_id)
    product = catalog.product_at_version(db, policy.product_version_id)[0] if policy else None
    plan = product.plan(policy.plan_code) if product and policy else None
    coverage = (
        next((c for c in plan.coverages if c.code == claim.coverage_code), None) if plan else None
    )
    uploaded = {d.kind: d for d in service.documents_of(db, claim.id)}
    documents = []
    for need in body["documents"]:
        doc = uploaded.get(need["code"])
        documents.append(
            {
                "code": need["code"],
                "name": need["name"]["en" if lang == "en" else "zh"],
                "uploaded": need["uploaded"],
                "missing": need["code"] in body["missing_documents"],
                "requested": need["requested"],
                "filename": doc.filename if doc else None,
                "document_id": doc.id if doc else None,
                "size_kb": max(1, doc.size // 1024) if doc else None,
            }
        )
    clocks = views.clock_rows(body["clocks"], ruleset, lang)
    stage = ruleset.stage(claim.stage)
    return {
        "body": body,
        "id": claim.id,
        "claim_no": claim.claim_no,
        "stage": claim.stage,
        "stage_name": stage.en if lang == "en" else stage.zh,
        "stage_note": stage.note_en if lang == "en" else stage.note_zh,
        "next_step": views.t(
            "claim.next.upload"
            if body["waiting_on"] == "customer"
            else f"claim.next.{claim.stage}",
            lang,
        ),
        "waiting_on": body["waiting_on"],
        "waiting": views.t(f"claim.waiting.{body['waiting_on']}", lang),
        "waits": views.t(f"claim.waits.{body['waiting_on']}", lang),
        "track": views.tracker(body, lang),
        "timeline": views.timeline(body, ruleset, lang, staff=staff),
        "clocks": clocks,
        "worst": views.worst_clock(clocks),
        "documents": documents,
        "missing": body["missing_documents"],
        "can_upload": claim.stage in OPEN_STAGES,
        "policy_no": policy.policy_no if policy else "",
        "policy_id": claim.policy_id,
        "product_name": i18n.text_in(product.name, lang) if product else "",
        "coverage_name": i18n.text_in(coverage.name, lang) if coverage else claim.coverage_code,
        "cause": views.t(f"claim.cause.{claim.cause}", lang),
        "incident_date": claim.incident_date,
        "reported_at": claim.reported_at,
        "claimed": format_fen(claim.amount_claimed_fen),
        "assessed": (
            format_fen(claim.assessed_amount_fen) if claim.assessed_amount_fen is not None else None
        ),
        "steps": views.assessment_steps(claim.assessment, lang),
        "reasons": views.assessment_reasons(claim.assessment, lang),
        "decision_reason": claim.decision_reason,
        "payee_account": claim.payee_account_masked,
        "flags": [{"code": f, "label": views.t(f"claim.flag.{f}", lang)} for f in claim.fraud_flags]
        if staff
        else [],
        "live": claim.stage not in ("closed", "withdrawn"),
        "max_mb": get_settings().claim_upload_max_bytes // 1024 // 1024,
    }


def _claim_page(
    request: Request,
    db: Session,
    who: Principal,
    claim_id: str,
    *,
    error: str | None = None,
    error_kind: str | None = None,
    message: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    lang = i18n.negotiate_lang(request)
    claim = service.get(db, who, claim_id)
    if claim.customer_id != who.user_id:
        raise NotFound("no such claim", detail={"field": "claim_id"})
    return render(
        request,
        "claim.html",
        status=status,
        toggle_path=f"/claims/{claim_id}",
        claim=claim_view(db, claim, who, lang),
        error=error,
        error_kind=error_kind,
        message=message,
        csrf_token=who.csrf_token if who.method == "cookie" else None,
    )


@router.get("/claims/{claim_id}", response_class=HTMLResponse)
def claim_page(claim_id: str, request: Request, db: Db, who: Public) -> Response:
    """The tracker: stages, timeline, dates the law gives, documents, the amount."""
    if not who.is_authenticated:
        return _to_login(f"/claims/{claim_id}")
    _customer(who)
    lang = i18n.negotiate_lang(request)
    message = None
    if request.query_params.get("filed"):
        message = views.t("claim.filed", lang)
    elif request.query_params.get("uploaded"):
        message = views.t("claim.uploaded", lang)
    return _claim_page(request, db, who, claim_id, message=message)


@router.post("/claims/{claim_id}/documents", response_class=HTMLResponse)
def upload_document(
    claim_id: str, request: Request, form: PostedForm, db: Db, who: Public
) -> Response:
    """One document of the checklist (multipart), through ``service.add_document``."""
    if not who.is_authenticated:
        return _to_login(f"/claims/{claim_id}")
    _customer(who)
    lang = i18n.negotiate_lang(request)
    kind = str(form.get("kind", ""))[:48]
    upload = form.get("file")
    limit = get_settings().claim_upload_max_bytes
    try:
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise ValidationFailed("choose a file", code="no_file", detail={"field": "file"})
        data = upload.file.read(limit + 1)
        if len(data) > limit:
            raise ValidationFailed(
                "the file is too large", code="file_too_large", detail={"field": "file"}
            )
        service.add_document(
            db, who, claim_id, kind=kind, filename=upload.filename or "upload", data=data
        )
    except CovernetError as exc:
        if exc.status == 404:
            raise
        db.rollback()
        message = i18n.translate_or(
            f"claim.upload_error.{exc.code}",
            lang,
            error_message(exc, lang),
            {"mb": limit // 1024 // 1024},
        )
        return _claim_page(
            request, db, who, claim_id, error=message, error_kind=kind, status=exc.status
        )
    return RedirectResponse(f"/claims/{claim_id}?uploaded={kind}#documents", status_code=303)
