"""JSON routes for buying and owning a policy: documents, applications, the sale's trace,
policies and the underwriters' referral queue."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from covernet.catalog import service as catalog
from covernet.catalog.disclosures import UNCERTAINTY_STATEMENT
from covernet.core import idempotency
from covernet.core.bodies import parse_json_body
from covernet.core.fastlane import Lane
from covernet.identity.access import (
    Caller,
    Customer,
    Db,
    LaterCustomer,
    Principal,
    Public,
    allow,
    allow_later,
    client_ip,
    has_credentials,
)
from covernet.identity.models import Role
from covernet.payments import service as payments
from covernet.payments.models import Payment
from covernet.policies import (
    applications,
    epolicy,
    lifecycle,
    policies,
    renewal,
    surrender,
    trace,
)
from covernet.policies.api import QuoteOut, quote_body
from covernet.policies.models import Application, Policy, TraceEvent

router = APIRouter(prefix="/api/v1", tags=["buying"])

Reader = Annotated[Principal, allow(Role.customer, *applications.READERS)]
# The same audience, identified in the route's own unit of work (hot reads).
APPLICATION_READERS = frozenset({Role.customer, *applications.READERS})
LaterReader = Annotated[Caller, allow_later(*APPLICATION_READERS)]
CUSTOMERS = frozenset({Role.customer})
Underwriter = Annotated[Principal, allow(*applications.UNDERWRITERS)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=idempotency.HEADER,
        description="repeat a request with the same key to get the first answer back",
    ),
]


class DocumentOut(BaseModel):
    code: str
    title: dict[str, str | None]
    paragraphs: list[dict[str, str | None]]
    content_hash: str


class DocumentsOut(BaseModel):
    product_code: str
    product_version: int
    documents: list[DocumentOut]
    uncertainty_statement: str | None = Field(
        description="the statement to type before buying (R7), for uncertain-benefit products"
    )


@router.get("/products/{code}/documents", response_model=DocumentsOut, tags=["catalog"])
def product_documents(code: str, db: Db, _: Public) -> DocumentsOut:
    """What a buyer reads and confirms (by its ``content_hash``) before applying (R13)."""
    listed = catalog.snapshot(db).get(code)
    docs = applications.documents_for(db, listed.product)
    return DocumentsOut(
        product_code=code,
        product_version=listed.version,
        documents=[DocumentOut.model_validate(d.as_dict()) for d in docs],
        uncertainty_statement=(
            UNCERTAINTY_STATEMENT if listed.product.uncertain_benefits else None
        ),
    )


class ApplicationOut(BaseModel):
    application_id: str
    status: str
    product_code: str
    plan_code: str
    premium_fen: int
    sum_insured_fen: int
    decision_reason: str | None
    suitability_warnings: list[str]
    payment_id: str | None
    payment_status: str | None
    pay_url: str | None
    policy_id: str | None
    policy_no: str | None
    created_at: datetime


def application_body(
    db: Session,
    app: Application,
    *,
    payment: Payment | payments.PaymentState | None = None,
    policy: Policy | applications.PolicyRef | None = None,
    known: bool = False,
) -> dict[str, Any]:
    """The application as JSON.  ``known``: ``policy`` is all there is (None: none yet),
    and ``payment`` too when given; what is not known is read."""
    if not known:
        policy = applications.policy_of(db, app)
    if payment is None and app.payment_id:
        payment = payments.state_of(db, app.payment_id)
    return ApplicationOut(
        application_id=app.id,
        status=app.status,
        product_code=app.product_code,
        plan_code=app.plan_code,
        premium_fen=app.premium_fen,
        sum_insured_fen=app.sum_insured_fen,
        decision_reason=app.decision_reason,
        suitability_warnings=app.suitability_warnings,
        payment_id=app.payment_id,
        payment_status=payment.status if payment else None,
        pay_url=payments.pay_url(payment) if payment and payment.status == "pending" else None,
        policy_id=policy.id if policy else None,
        policy_no=policy.policy_no if policy else None,
        created_at=app.created_at,
    ).model_dump(mode="json")


@router.post("/applications", status_code=201, response_model=ApplicationOut)
async def submit_application(
    body: applications.ApplicationIn,
    request: Request,
    caller: LaterCustomer,
    key: IdempotencyKey = None,
) -> Response:
    """Apply from a quote; answers ``pending_payment`` with the payment to make.  The
    caller is identified, the key claimed and the application made in one unit of work."""
    ip = client_ip(request)
    agent = request.headers.get("user-agent", "")

    def scope(db: Session) -> str:
        return f"{caller.identify_in(db).user_id}:applications"

    def action(db: Session) -> tuple[int, Any]:
        made = applications.apply(db, caller.identify_in(db), body, ip=ip, user_agent=agent)
        db.flush()
        return 201, application_body(db, made.app, payment=made.payment, known=True)

    status, result, replayed = await idempotency.run_once_async(
        scope=scope,
        key=key,
        body=body.model_dump(mode="json"),
        action=action,
    )
    headers = {"Idempotency-Replayed": "true"} if replayed else None
    return JSONResponse(result, status_code=status, headers=headers)


@router.get("/applications/{application_id}", response_model=ApplicationOut)
async def read_application(application_id: str, caller: LaterReader) -> Response:
    """Polled while a payment is confirmed: one thread hop, one unit of work."""

    def read(db: Session, who: Principal) -> dict[str, Any]:
        app, policy = applications.get_with_policy(db, who, application_id)
        return application_body(db, app, policy=policy, known=True)

    body = await caller.run(read)
    return JSONResponse(body)  # already shaped by ApplicationOut


class TraceOut(BaseModel):
    at: datetime
    kind: str
    step: str
    document: str | None
    document_version: int | None
    content_hash: str | None
    detail: dict[str, Any]
    ip: str | None
    user_agent: str | None


class TimelineOut(BaseModel):
    application_id: str
    retention_until: date | None = Field(description="R14: kept at least until this date")
    events: list[TraceOut]


def _event(e: TraceEvent) -> TraceOut:
    return TraceOut(
        at=e.at,
        kind=e.kind,
        step=e.step,
        document=e.document,
        document_version=e.document_version,
        content_hash=e.content_hash,
        detail=e.detail,
        ip=e.ip,
        user_agent=e.user_agent,
    )


@router.get("/applications/{application_id}/trace", response_model=TimelineOut)
def read_trace(application_id: str, db: Db, who: Reader) -> TimelineOut:
    """The sale's record (R13) as a timeline; the customer sees their own."""
    app = applications.get(db, who, application_id)
    return TimelineOut(
        application_id=app.id,
        retention_until=policies.retention_of(db, app),
        events=[_event(e) for e in trace.timeline(db, app.id)],
    )


@router.get("/applications/{application_id}/trace.csv")
def export_trace(application_id: str, db: Db, who: Reader) -> Response:
    app = applications.get(db, who, application_id)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["at", "kind", "step", "document", "version", "content_hash", "ip", "detail"])
    for e in trace.timeline(db, app.id):
        writer.writerow(
            [
                e.at.isoformat(),
                e.kind,
                e.step,
                e.document or "",
                e.document_version or "",
                e.content_hash or "",
                e.ip or "",
                e.detail,
            ]
        )
    return Response(
        "\ufeff" + out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="trace-{app.id}.csv"'},
    )


class RefundOut(BaseModel):
    refund_id: str
    amount_fen: int
    status: str
    due_at: datetime
    completed_at: datetime | None


def _refunds(db: Session, refund_id: str | None) -> list[RefundOut]:
    """The policy's own refund (cancellation or surrender); a gifted policy shares the
    sender's payment, whose other refunds are not the recipient's business."""
    refund = payments.get_refund(db, refund_id) if refund_id else None
    if refund is None:
        return []
    return [
        RefundOut(
            refund_id=refund.id,
            amount_fen=refund.amount_fen,
            status=refund.status,
            due_at=refund.due_at,
            completed_at=refund.completed_at,
        )
    ]


class RenewalOut(BaseModel):
    open: bool = Field(description="a renewal quote can be asked for now")
    opens_on: date | None
    reminded: bool
    guaranteed: bool = Field(description="false: 不保证续保")
    reason: str | None = Field(description="why it cannot be renewed now")


class PolicyOut(BaseModel):
    policy_id: str
    policy_no: str
    status: str
    product_code: str
    product_name: str
    plan_code: str
    insurer_code: str
    premium_fen: int
    sum_insured_fen: int
    effective_date: date
    end_date: date | None
    waiting_period_end: date | None
    cooling_off_end: date | None
    renewal_guaranteed: bool
    verify_url: str
    document_url: str
    application_id: str | None
    issued_at: datetime
    ended_at: datetime | None
    refunds: list[RefundOut]
    renewal: RenewalOut


def policy_body(db: Session, policy: Policy) -> PolicyOut:
    product, _ = catalog.product_at_version(db, policy.product_version_id)
    return PolicyOut(
        policy_id=policy.id,
        policy_no=policy.policy_no,
        status=policies.effective_status(policy),
        product_code=policy.product_code,
        product_name=product.name.zh,
        plan_code=policy.plan_code,
        insurer_code=policy.insurer_code,
        premium_fen=policy.premium_fen,
        sum_insured_fen=policy.sum_insured_fen,
        effective_date=policy.effective_date,
        end_date=policy.end_date,
        waiting_period_end=policy.waiting_period_end,
        cooling_off_end=policy.cooling_off_end,
        renewal_guaranteed=product.renewal.guaranteed,
        verify_url=f"/verify/{policy.verification_code}",
        document_url=f"/api/v1/policies/{policy.id}/document",
        application_id=policy.application_id,
        issued_at=policy.issued_at,
        ended_at=policy.ended_at,
        refunds=_refunds(db, policy.refund_id),
        renewal=RenewalOut(**vars(renewal.state(db, policy))),
    )


@router.get("/policies", response_model=list[PolicyOut])
def my_policies(db: Db, who: Customer) -> list[PolicyOut]:
    return [policy_body(db, p) for p in policies.of_customer(db, who.user_id or "")]


@router.get("/policies/{policy_id}", response_model=PolicyOut)
async def read_policy(policy_id: str, caller: LaterReader) -> Response:
    """A policy in real time: one thread hop, one unit of work, serialised once."""
    body = await caller.run(lambda db, who: policy_body(db, policies.get(db, who, policy_id)))
    return Response(body.model_dump_json(), media_type="application/json")


@router.get(
    "/policies/{policy_id}/document",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}, "description": "the e-policy"}},
)
def policy_document(policy_id: str, db: Db, who: Reader) -> Response:
    """The e-policy as a PDF (R16); 503 ``pdf_font_missing`` when no Chinese font is set up."""
    policy = policies.get(db, who, policy_id)
    return Response(
        epolicy.document(db, policy),
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{policy.policy_no}.pdf"',
            "Cache-Control": "no-store",
        },
    )


class SurrenderOut(BaseModel):
    basis: str = Field(description="cooling_off | not_started | cash_value | unearned_premium")
    amount_fen: int
    fee_fen: int
    processing_days: int = Field(description="the refund is paid within this many days (R18)")
    conditions: dict[str, str | None]
    documents: list[dict[str, str | None]]
    executed: bool
    policy: PolicyOut


def _surrender_body(
    db: Session, policy: Policy, quote: surrender.SurrenderQuote, executed: bool
) -> SurrenderOut:
    return SurrenderOut(
        basis=quote.basis,
        amount_fen=quote.amount_fen,
        fee_fen=quote.fee_fen,
        processing_days=quote.processing_days,
        conditions=quote.conditions.model_dump(),
        documents=[d.model_dump() for d in quote.documents],
        executed=executed,
        policy=policy_body(db, policy),
    )


@router.post("/policies/{policy_id}/cancel", response_model=SurrenderOut)
def cancel_policy(policy_id: str, db: Db, who: Customer) -> SurrenderOut:
    """Inside the 犹豫期: the premium back less the product's fee (R17)."""
    policy, quote = lifecycle.cancel(db, who, policy_id)
    return _surrender_body(db, policy, quote, True)


@router.post("/policies/{policy_id}/surrender", response_model=SurrenderOut)
def surrender_policy(
    policy_id: str, body: lifecycle.SurrenderIn, db: Db, who: Customer
) -> SurrenderOut:
    """Without ``confirm``: the amount, documents and time limit, all at once (R18).
    With ``confirm`` and the amount shown: the policy ends and the refund starts."""
    policy, quote, executed = lifecycle.surrender(db, who, policy_id, body)
    return _surrender_body(db, policy, quote, executed)


@router.post("/policies/{policy_id}/renewal-quote", status_code=201, response_model=QuoteOut)
def renewal_quote(policy_id: str, db: Db, who: Customer) -> Response:
    """A quote for the next period, starting the day after cover ends; renewing is then an
    application with ``renewal_of`` that the customer confirms and pays (R8)."""
    return JSONResponse(
        jsonable_encoder(quote_body(renewal.renewal_quote(db, who, policy_id))), status_code=201
    )


@router.get("/underwriting/referrals", response_model=list[ApplicationOut])
def referral_queue(db: Db, who: Underwriter) -> list[dict[str, Any]]:
    """Paid applications the rules referred to a human, oldest first."""
    return [application_body(db, a) for a in applications.referrals(db, who)]


@router.post("/underwriting/referrals/{application_id}/decision", response_model=ApplicationOut)
def decide_referral(
    application_id: str, body: applications.ReferralDecisionIn, db: Db, who: Underwriter
) -> dict[str, Any]:
    """Accept (the policy is issued) or decline (the premium is refunded in full)."""
    return application_body(db, applications.decide_referral(db, who, application_id, body))


# Fast lanes (covernet.core.fastlane): the purchase flow's hot routes, served before
# FastAPI's routing by the routes' own functions.  Without a credential the request goes
# on to its route (401).


async def _apply_lane(request: Request, _found: re.Match[str]) -> Response | None:
    if not has_credentials(request):
        return None
    body = parse_json_body(applications.ApplicationIn, await request.body())
    key = request.headers.get(idempotency.HEADER)
    return await submit_application(body, request, Caller(request, CUSTOMERS), key)


async def _poll_lane(request: Request, found: re.Match[str]) -> Response | None:
    if not has_credentials(request):
        return None
    return await read_application(found.group(1), Caller(request, APPLICATION_READERS))


async def _policy_lane(request: Request, found: re.Match[str]) -> Response | None:
    if not has_credentials(request):
        return None
    return await read_policy(found.group(1), Caller(request, APPLICATION_READERS))


LANES = (
    Lane("POST", re.compile(r"^/api/v1/applications$"), _apply_lane),
    Lane("GET", re.compile(r"^/api/v1/applications/([^/]+)$"), _poll_lane),
    Lane("GET", re.compile(r"^/api/v1/policies/([^/]+)$"), _policy_lane),
)
