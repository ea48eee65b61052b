"""JSON routes for claims: the customer reports and follows a claim; claims handlers
move it through its stages."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Header, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from covernet.claims import rules, service
from covernet.claims.models import Claim
from covernet.core import idempotency
from covernet.core.errors import ValidationFailed
from covernet.identity.access import Customer, Db, Principal, allow
from covernet.identity.models import Role

router = APIRouter(prefix="/api/v1", tags=["claims"])

Reader = Annotated[Principal, allow(Role.customer, *service.READERS)]
Handler = Annotated[Principal, allow(*service.HANDLERS)]
IdempotencyKey = Annotated[str | None, Header(alias=idempotency.HEADER)]


class DocumentNeed(BaseModel):
    code: str
    name: dict[str, str]
    uploaded: bool
    requested: bool


class EventOut(BaseModel):
    at: datetime
    stage: str
    stage_name: dict[str, str]
    note: str | None
    actor: str
    internal_note: str | None = None


class ClockOut(BaseModel):
    name: str = Field(description="decision | payment | denial_notice | advance_payment")
    started: date
    due: date
    state: str = Field(description="running | near | breached | met | met_late")
    done: date | None


class ClaimOut(BaseModel):
    claim_id: str
    claim_no: str
    policy_id: str
    coverage_code: str
    cause: str
    incident_date: date
    amount_claimed_fen: int
    stage: str
    stage_name: dict[str, str]
    stage_note: dict[str, str]
    next_step: str = Field(description="what happens next, in words")
    waiting_on: str = Field(description="customer | insurer | nobody")
    documents: list[DocumentNeed]
    missing_documents: list[str]
    assessed_amount_fen: int | None
    assessment: dict[str, Any] | None
    decision_reason: str | None
    payee_account: str | None = Field(description="masked")
    clocks: list[ClockOut]
    timeline: list[EventOut]
    fraud_flags: list[str] | None = Field(default=None, description="staff only")
    reported_at: datetime


NEXT_STEP = {
    "reported": "我们将在1个工作日内受理。",
    "accepted": "请按清单一次上传全部材料。",
    "documents": "材料齐全后30日内作出核定。",
    "investigating": "调查结束后作出核定，时限照常计算。",
    "assessed": "审批后10日内打款。",
    "approved": "打款中，到账后通知您。",
    "declined": "如有异议，可凭拒赔通知申请复核或投诉。",
    "paid": "赔款已到账，本次理赔即将结案。",
    "closed": "已结案。",
    "withdrawn": "已撤回。",
}


def claim_body(db: Session, claim: Claim, who: Principal) -> dict[str, Any]:
    ruleset = rules.current()
    staff = who.role in service.READERS
    from covernet.catalog.spec import Line

    needs = ruleset.documents_for(Line(claim.line), claim.coverage_code)
    uploaded = {d.kind for d in service.documents_of(db, claim.id)}
    missing = service.missing_documents(db, claim)
    stage = ruleset.stage(claim.stage)
    events = []
    for e in service.timeline(db, claim.id):
        info = ruleset.stage(e.stage_to)
        events.append(
            EventOut(
                at=e.at,
                stage=e.stage_to,
                stage_name={"zh": info.zh, "en": info.en},
                note=e.note,
                actor=e.actor_type,
                internal_note=e.internal_note if staff else None,
            )
        )
    return ClaimOut(
        claim_id=claim.id,
        claim_no=claim.claim_no,
        policy_id=claim.policy_id,
        coverage_code=claim.coverage_code,
        cause=claim.cause,
        incident_date=claim.incident_date,
        amount_claimed_fen=claim.amount_claimed_fen,
        stage=claim.stage,
        stage_name={"zh": stage.zh, "en": stage.en},
        stage_note={"zh": stage.note_zh, "en": stage.note_en},
        next_step=NEXT_STEP.get(claim.stage, ""),
        waiting_on=service.waiting_on(db, claim),
        documents=[
            DocumentNeed(
                code=d.code,
                name={"zh": d.zh, "en": d.en},
                uploaded=d.code in uploaded,
                requested=d.code in (claim.requested_documents or []),
            )
            for d in needs
        ],
        missing_documents=missing,
        assessed_amount_fen=claim.assessed_amount_fen,
        assessment=claim.assessment,
        decision_reason=claim.decision_reason,
        payee_account=claim.payee_account_masked,
        clocks=[
            ClockOut(name=c.name, started=c.started, due=c.due, state=c.state, done=c.done)
            for c in service.clocks_of(claim)
        ],
        timeline=events,
        fraud_flags=claim.fraud_flags if staff else None,
        reported_at=claim.reported_at,
    ).model_dump(mode="json")


@router.post("/claims", status_code=201, response_model=ClaimOut)
async def report_claim(
    body: service.ClaimIn,
    request: Request,
    who: Customer,
    key: IdempotencyKey = None,
) -> Response:
    """Report a claim on one of your policies; answers with every document needed."""
    device = (request.headers.get("x-device-id") or "")[:64] or None

    def action(db: Session) -> tuple[int, Any]:
        claim = service.file_claim(db, who, body, device_id=device)
        db.flush()
        return 201, claim_body(db, claim, who)

    status, result, replayed = await run_in_threadpool(
        idempotency.run_once,
        scope=f"{who.user_id}:claims",
        key=key,
        body=body.model_dump(mode="json"),
        action=action,
    )
    headers = {"Idempotency-Replayed": "true"} if replayed else None
    return JSONResponse(result, status_code=status, headers=headers)


@router.get("/claims", response_model=list[ClaimOut])
def my_claims(db: Db, who: Customer) -> list[dict[str, Any]]:
    return [claim_body(db, c, who) for c in service.of_customer(db, who.user_id or "")]


@router.get("/claims/{claim_id}", response_model=ClaimOut)
def read_claim(claim_id: str, db: Db, who: Reader) -> dict[str, Any]:
    return claim_body(db, service.get(db, who, claim_id), who)


class DocumentOut(BaseModel):
    document_id: str
    kind: str
    filename: str
    content_type: str
    size: int


@router.post("/claims/{claim_id}/documents", status_code=201, response_model=DocumentOut)
async def upload_document(
    claim_id: str,
    who: Reader,
    kind: Annotated[str, Form(max_length=48)],
    file: Annotated[UploadFile, File(description="JPEG, PNG, HEIC or PDF")],
) -> DocumentOut:
    from covernet.core.config import get_settings
    from covernet.core.db import unit_of_work

    limit = get_settings().claim_upload_max_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise ValidationFailed(
            f"a file may be at most {limit // 1024 // 1024} MB",
            code="file_too_large",
            detail={"field": "file"},
        )

    def store() -> DocumentOut:
        with unit_of_work() as db:
            doc = service.add_document(
                db, who, claim_id, kind=kind, filename=file.filename or "upload", data=data
            )
            return DocumentOut(
                document_id=doc.id,
                kind=doc.kind,
                filename=doc.filename,
                content_type=doc.content_type,
                size=doc.size,
            )

    return await run_in_threadpool(store)


@router.get("/claims/{claim_id}/documents/{document_id}")
def download_document(claim_id: str, document_id: str, db: Db, who: Reader) -> Response:
    doc, data = service.read_document(db, who, claim_id, document_id)
    return Response(
        data,
        media_type=doc.content_type,
        headers={
            "Content-Disposition": f'attachment; filename="{doc.id}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(default=None, max_length=1000)


class MissingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    missing: list[str] = Field(min_length=1, max_length=20)
    note: str | None = Field(default=None, max_length=500)


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(max_length=1000)


@router.post("/claims/{claim_id}/accept", response_model=ClaimOut)
def accept_claim(claim_id: str, body: NoteIn, db: Db, who: Handler) -> dict[str, Any]:
    return claim_body(db, service.accept(db, who, claim_id, body.note), who)


@router.post("/claims/{claim_id}/request-documents", response_model=ClaimOut)
def request_documents(claim_id: str, body: MissingIn, db: Db, who: Handler) -> dict[str, Any]:
    """补充材料: everything still missing, in one list (R21)."""
    return claim_body(
        db, service.request_documents(db, who, claim_id, body.missing, body.note), who
    )


@router.post("/claims/{claim_id}/documents-complete", response_model=ClaimOut)
def documents_complete(claim_id: str, db: Db, who: Handler) -> dict[str, Any]:
    """All documents are in: the 30-day decision clock starts (R21)."""
    return claim_body(db, service.documents_complete(db, who, claim_id), who)


@router.post("/claims/{claim_id}/investigate", response_model=ClaimOut)
def investigate(claim_id: str, body: NoteIn, db: Db, who: Handler) -> dict[str, Any]:
    return claim_body(db, service.investigate(db, who, claim_id, body.note or ""), who)


@router.post("/claims/{claim_id}/assess", response_model=ClaimOut)
def assess(claim_id: str, body: NoteIn, db: Db, who: Handler) -> dict[str, Any]:
    return claim_body(db, service.assess(db, who, claim_id, body.note), who)


@router.post("/claims/{claim_id}/approve", response_model=ClaimOut)
def approve(claim_id: str, db: Db, who: Handler) -> dict[str, Any]:
    return claim_body(db, service.approve(db, who, claim_id), who)


@router.post("/claims/{claim_id}/decline", response_model=ClaimOut)
def decline(claim_id: str, body: ReasonIn, db: Db, who: Handler) -> dict[str, Any]:
    return claim_body(db, service.decline(db, who, claim_id, body.reason), who)


@router.post("/claims/{claim_id}/close", response_model=ClaimOut)
def close(claim_id: str, db: Db, who: Handler) -> dict[str, Any]:
    return claim_body(db, service.close(db, who, claim_id), who)


@router.post("/claims/{claim_id}/reopen", response_model=ClaimOut)
def reopen(claim_id: str, body: NoteIn, db: Db, who: Handler) -> dict[str, Any]:
    return claim_body(db, service.reopen(db, who, claim_id, body.note or "已重新受理。"), who)


@router.post("/claims/{claim_id}/withdraw", response_model=ClaimOut)
def withdraw(claim_id: str, db: Db, who: Customer) -> dict[str, Any]:
    return claim_body(db, service.withdraw(db, who, claim_id), who)
