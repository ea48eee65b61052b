"""Compliance maintains the advisor license registry (R1)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from covernet.audit.api import actor_of
from covernet.compliance import checker, content, drafts, licenses, live, transcript
from covernet.compliance.models import AdvisorLicense, ContentStatus, LicenseStatus, LiveStatus
from covernet.core import clock
from covernet.core.db import unit_of_work
from covernet.core.errors import NotFound, ValidationFailed
from covernet.identity.access import Db, Principal, allow
from covernet.identity.models import Role

router = APIRouter(prefix="/api/v1", tags=["compliance"])

Officer = Annotated[Principal, allow(Role.compliance, Role.admin)]
Advisor = Annotated[Principal, allow(Role.advisor)]
MAX_CSV_BYTES = 1_000_000


class LicenseOut(BaseModel):
    id: str
    license_no: str
    advisor_id: str
    institution: str
    status: str
    effective_status: str
    valid_until: date
    lines: list[str]
    grade: str | None
    updated_at: datetime


class StatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: LicenseStatus
    reason: str = Field(max_length=500)


def _out(row: AdvisorLicense) -> LicenseOut:
    return LicenseOut(
        id=row.id,
        license_no=row.license_no,
        advisor_id=row.advisor_id,
        institution=row.institution,
        status=row.status,
        effective_status=licenses.effective_status(row, clock.today()),
        valid_until=row.valid_until,
        lines=row.lines,
        grade=row.grade,
        updated_at=row.updated_at,
    )


@router.post("/compliance/licenses", status_code=201, response_model=LicenseOut)
def register_license(body: licenses.LicenseIn, db: Db, who: Officer) -> LicenseOut:
    return _out(licenses.register(db, body, by=actor_of(who)))


@router.get("/compliance/licenses", response_model=list[LicenseOut])
def list_licenses(
    db: Db,
    who: Officer,
    expiring_within: Annotated[
        int | None, Query(ge=0, le=366, description="only active licenses expiring this soon")
    ] = None,
) -> list[LicenseOut]:
    if expiring_within is not None:
        return [_out(r) for r in licenses.expiring(db, expiring_within)]
    return [_out(r) for r in licenses.all_licenses(db)]


@router.post("/compliance/licenses/{license_id}/status", response_model=LicenseOut)
def change_status(license_id: str, body: StatusIn, db: Db, who: Officer) -> LicenseOut:
    return _out(
        licenses.set_status(db, license_id, body.status, reason=body.reason, by=actor_of(who))
    )


@router.post(
    "/compliance/licenses/import",
    status_code=201,
    openapi_extra={
        "requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}
    },
)
async def import_licenses(request: Request, who: Officer) -> dict[str, Any]:
    """CSV with columns license_no, advisor_username, institution, valid_until (YYYY-MM-DD),
    lines (separated by |) and optionally grade: all rows are registered, or none."""
    raw = await request.body()
    if len(raw) > MAX_CSV_BYTES:
        raise ValidationFailed("the CSV is larger than 1 MB", code="csv_too_large")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationFailed("the CSV is not UTF-8", code="invalid_csv") from None

    def run() -> int:
        with unit_of_work() as db:
            return len(licenses.import_csv(db, text, by=actor_of(who)))

    return {"imported": await run_in_threadpool(run)}


class CheckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=20_000)
    product_codes: list[str] = Field(default_factory=list, max_length=20)
    advisor_id: str | None = Field(default=None, max_length=36)
    kind: Literal["post", "moments", "live_script", "group_message", "canned_reply"] = "post"


Writer = Annotated[Principal, allow(Role.advisor, Role.compliance, Role.ops, Role.admin)]


@router.post("/compliance/check", response_model=checker.CheckResult)
def check_text(body: CheckIn, db: Db, who: Writer) -> checker.CheckResult:
    """Check a marketing draft against the regulations (R2, R4, R7, R12, R23–R27).

    An advisor checks as themselves; compliance may name any advisor.
    """
    advisor_id = who.user_id if who.role is Role.advisor else body.advisor_id
    advisor = None
    if advisor_id:
        advisor = drafts.advisor_identity(db, advisor_id)
        if advisor is None:
            raise NotFound(
                "no licensed advisor with this id",
                code="unlicensed",
                detail={"field": "advisor_id"},
            )
    return drafts.check_draft(
        db, body.text, kind=body.kind, product_codes=body.product_codes, advisor=advisor
    )


@router.get("/me/license", response_model=LicenseOut)
def my_license(db: Db, who: Advisor) -> LicenseOut:
    found = licenses.license_of(db, who.user_id or "")
    if found is None:
        raise NotFound("no license is registered for this account", code="unlicensed")
    return _out(found)


# Content approval (R3) ------------------------------------------------------------------

ContentAuthor = Annotated[Principal, allow(Role.advisor)]
ContentReader = Annotated[Principal, allow(Role.advisor, Role.compliance, Role.admin)]
Reviewer = Annotated[Principal, allow(Role.compliance, Role.admin)]


class ContentOut(BaseModel):
    id: str
    advisor_id: str
    kind: str
    body: str
    product_codes: list[str]
    version: int
    content_hash: str
    status: str
    verdict: str
    findings: list[dict[str, Any]]
    approved_hash: str | None
    review_note: str | None
    published_at: datetime | None
    public_url: str | None


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(default=None, max_length=500)


def _content_out(item: Any) -> ContentOut:
    return ContentOut(
        id=item.id,
        advisor_id=item.advisor_id,
        kind=item.kind,
        body=item.body,
        product_codes=item.product_codes,
        version=item.version,
        content_hash=item.content_hash,
        status=item.status,
        verdict=item.verdict,
        findings=item.findings,
        approved_hash=item.approved_hash,
        review_note=item.review_note,
        published_at=item.published_at,
        public_url=f"/c/{item.id}" if item.status == "published" else None,
    )


@router.post("/content", status_code=201, response_model=ContentOut)
def submit_content(body: content.ContentIn, db: Db, who: ContentAuthor) -> ContentOut:
    return _content_out(content.submit(db, who, body))


@router.get("/content", response_model=list[ContentOut])
def list_content(
    db: Db, who: ContentReader, status: Annotated[ContentStatus | None, Query()] = None
) -> list[ContentOut]:
    return [_content_out(i) for i in content.listing(db, who, status)]


@router.get("/content/{content_id}", response_model=ContentOut)
def read_content(content_id: str, db: Db, who: ContentReader) -> ContentOut:
    return _content_out(content.get(db, who, content_id))


@router.put("/content/{content_id}", response_model=ContentOut)
def edit_content(
    content_id: str, body: content.ContentIn, db: Db, who: ContentAuthor
) -> ContentOut:
    return _content_out(content.edit(db, who, content_id, body))


@router.post("/content/{content_id}/approve", response_model=ContentOut)
def approve_content(content_id: str, body: ReviewIn, db: Db, who: Reviewer) -> ContentOut:
    return _content_out(content.review(db, who, content_id, approve=True, note=body.note))


@router.post("/content/{content_id}/reject", response_model=ContentOut)
def reject_content(content_id: str, body: ReviewIn, db: Db, who: Reviewer) -> ContentOut:
    return _content_out(content.review(db, who, content_id, approve=False, note=body.note))


@router.post("/content/{content_id}/publish", response_model=ContentOut)
def publish_content(content_id: str, db: Db, who: ContentAuthor) -> ContentOut:
    return _content_out(content.publish(db, who, content_id))


# Live sessions (R1, R2, R4) -------------------------------------------------------------

LiveReader = Annotated[Principal, allow(Role.advisor, Role.compliance, Role.admin)]


class LiveOut(BaseModel):
    id: str
    host_id: str
    title: str
    scheduled_at: datetime
    product_codes: list[str]
    product_links: list[str] = Field(description="the platform's own product pages (R4)")
    script_id: str
    script_hash: str
    status: str
    started_at: datetime | None
    ended_at: datetime | None
    transcript_hash: str | None
    transcript_verdict: str | None
    transcript_findings: list[dict[str, Any]] = Field(
        description="each with offset (seconds), at (HH:MM:SS), line and the checker's finding"
    )
    review_outcome: str | None
    review_note: str | None
    public_url: str


class TranscriptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transcript: str = Field(
        min_length=1,
        max_length=transcript.MAX_TRANSCRIPT_CHARS,
        description="one '[HH:MM:SS] text' line per utterance, or SubRip (.srt)",
    )


def _live_out(row: Any) -> LiveOut:
    return LiveOut(
        id=row.id,
        host_id=row.host_id,
        title=row.title,
        scheduled_at=row.scheduled_at,
        product_codes=row.product_codes,
        product_links=[f"/products/{code}" for code in row.product_codes],
        script_id=row.script_id,
        script_hash=row.script_hash,
        status=row.status,
        started_at=row.started_at,
        ended_at=row.ended_at,
        transcript_hash=row.transcript_hash,
        transcript_verdict=row.transcript_verdict,
        transcript_findings=row.transcript_findings or [],
        review_outcome=row.review_outcome,
        review_note=row.review_note,
        public_url=f"/live/{row.id}",
    )


@router.post("/live-sessions", status_code=201, response_model=LiveOut)
def register_live(body: live.LiveIn, db: Db, who: ContentAuthor) -> LiveOut:
    """Register a live session: a licensed host, the products and an approved live script."""
    return _live_out(live.register(db, who, body))


@router.get("/live-sessions", response_model=list[LiveOut])
def list_live(
    db: Db, who: LiveReader, status: Annotated[LiveStatus | None, Query()] = None
) -> list[LiveOut]:
    return [_live_out(r) for r in live.listing(db, who, status)]


@router.get("/live-sessions/{session_id}", response_model=LiveOut)
def read_live(session_id: str, db: Db, who: LiveReader) -> LiveOut:
    return _live_out(live.get(db, who, session_id))


@router.post("/live-sessions/{session_id}/start", response_model=LiveOut)
def start_live(session_id: str, db: Db, who: ContentAuthor) -> LiveOut:
    return _live_out(live.start(db, who, session_id))


@router.post("/live-sessions/{session_id}/end", response_model=LiveOut)
def end_live(session_id: str, db: Db, who: ContentAuthor) -> LiveOut:
    return _live_out(live.end(db, who, session_id))


@router.post("/live-sessions/{session_id}/transcript", response_model=LiveOut)
def upload_transcript(session_id: str, body: TranscriptIn, db: Db, who: LiveReader) -> LiveOut:
    """Upload the transcript after the session; it is checked at once, line by line."""
    return _live_out(live.upload_transcript(db, who, session_id, body.transcript))


@router.post("/live-sessions/{session_id}/review", response_model=LiveOut)
def review_live(session_id: str, body: live.ReviewIn, db: Db, who: Reviewer) -> LiveOut:
    return _live_out(live.review(db, who, session_id, body))
