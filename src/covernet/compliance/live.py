"""Live sessions (R1, R2, R4): registered with a licensed host, the products to be
introduced and an approved live script; after the session its transcript is checked line
by line and compliance reviews the findings by their time offsets.

scheduled → live → ended → pending_review (transcript checked) → reviewed.  A transcript
may be uploaded again until it is reviewed.  Every transition takes the row lock, checks
the current state and is audited.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from covernet.audit import service as audit
from covernet.catalog import service as catalog
from covernet.catalog.service import ListedProduct
from covernet.compliance import checker, content, drafts, licenses, transcript
from covernet.compliance.models import ContentItem, ContentStatus, LiveSession, LiveStatus
from covernet.core import clock
from covernet.core.config import get_settings
from covernet.core.errors import Conflict, NotFound, ValidationFailed
from covernet.identity.access import Principal

Outcome = Literal["cleared", "violations"]
# A session may be registered for a moment a little in the past (clock skew, a form
# filled in slowly), never for one long gone.
SCHEDULE_GRACE = timedelta(minutes=10)
# Findings that concern the transcript as a whole rather than one line.
WHOLE_TEXT = ("says_insurance", "uncertainty_statement")


class LiveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=2, max_length=120)
    scheduled_at: AwareDatetime
    product_codes: list[str] = Field(min_length=1, max_length=20)
    script_id: str = Field(max_length=36)


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Outcome
    note: str | None = Field(default=None, max_length=500)


def _actor(who: Principal) -> audit.Actor:
    return audit.Actor("user", who.user_id, who.role.value if who.role else None)


def _approved_script(db: Session, host_id: str, script_id: str, codes: list[str]) -> ContentItem:
    script = db.get(ContentItem, script_id)
    if script is None or script.advisor_id != host_id:
        raise NotFound(
            "no such script among your content",
            code="unknown_script",
            detail={"field": "script_id"},
        )
    if script.kind != "live_script":
        raise ValidationFailed(
            "the script must be a live script (kind live_script)",
            code="not_a_live_script",
            detail={"field": "script_id"},
        )
    frozen = content.content_hash(script.kind, script.body, list(script.product_codes))
    approved = script.status in (ContentStatus.approved.value, ContentStatus.published.value)
    if not approved or script.approved_hash != frozen:
        raise Conflict(
            "the script has no current approval; submit it for review first",
            code="script_not_approved",
            detail={"field": "script_id"},
        )
    missing = sorted(set(codes) - set(script.product_codes))
    if missing:
        raise ValidationFailed(
            f"the approved script does not cover {', '.join(missing)}",
            code="script_lacks_products",
            detail={"field": "product_codes", "products": missing},
        )
    return script


def register(db: Session, who: Principal, data: LiveIn) -> LiveSession:
    assert who.user_id is not None
    codes = list(dict.fromkeys(data.product_codes))
    licenses.require_for_products(db, who.user_id, codes)
    scheduled = clock.as_utc(data.scheduled_at)
    if scheduled < clock.now() - SCHEDULE_GRACE:
        raise ValidationFailed(
            "the session cannot be scheduled in the past",
            code="scheduled_in_past",
            detail={"field": "scheduled_at"},
        )
    script = _approved_script(db, who.user_id, data.script_id, codes)
    row = LiveSession(
        host_id=who.user_id,
        title=data.title.strip(),
        scheduled_at=scheduled,
        product_codes=codes,
        script_id=script.id,
        script_hash=script.content_hash,
        status=LiveStatus.scheduled.value,
    )
    db.add(row)
    db.flush()
    audit.record(
        db,
        "live.register",
        actor=_actor(who),
        subject_type="live_session",
        subject_id=row.id,
        detail={"products": codes, "script_id": script.id, "script_hash": script.content_hash},
    )
    return row


def get(db: Session, who: Principal, session_id: str, *, lock: bool = False) -> LiveSession:
    """The host sees their own sessions; reviewers see all; anyone else gets 404."""
    row = db.get(LiveSession, session_id, with_for_update=lock)
    if row is None or (who.role not in content.REVIEWERS and row.host_id != who.user_id):
        raise NotFound("no such live session", detail={"field": "session_id"})
    return row


def listing(db: Session, who: Principal, status: LiveStatus | None = None) -> list[LiveSession]:
    stmt = select(LiveSession).order_by(LiveSession.scheduled_at.desc())
    if who.role not in content.REVIEWERS:
        stmt = stmt.where(LiveSession.host_id == who.user_id)
    if status is not None:
        stmt = stmt.where(LiveSession.status == status.value)
    return list(db.scalars(stmt.limit(200)))


def _own(db: Session, who: Principal, session_id: str) -> LiveSession:
    row = get(db, who, session_id, lock=True)
    if row.host_id != who.user_id:
        raise NotFound("no such live session", detail={"field": "session_id"})
    return row


def _expect(row: LiveSession, *states: LiveStatus) -> None:
    if row.status not in {s.value for s in states}:
        raise Conflict(f"the live session is {row.status}", code="wrong_live_state")


def _move(db: Session, who: Principal, row: LiveSession, to: LiveStatus, **detail: object) -> None:
    previous, row.status, row.updated_at = row.status, to.value, clock.now()
    audit.record(
        db,
        f"live.{to.value}",
        actor=_actor(who),
        subject_type="live_session",
        subject_id=row.id,
        detail={"from": previous, **detail},
    )


def start(db: Session, who: Principal, session_id: str) -> LiveSession:
    """Go live: the host's license and the script's approval are checked again now."""
    row = _own(db, who, session_id)
    _expect(row, LiveStatus.scheduled)
    licenses.require_for_products(db, row.host_id, row.product_codes)
    script = _approved_script(db, row.host_id, row.script_id, row.product_codes)
    if script.content_hash != row.script_hash:
        raise Conflict(
            "the script changed after the session was registered", code="script_not_approved"
        )
    row.started_at = clock.now()
    _move(db, who, row, LiveStatus.live)
    return row


def end(db: Session, who: Principal, session_id: str) -> LiveSession:
    row = _own(db, who, session_id)
    _expect(row, LiveStatus.live)
    row.ended_at = clock.now()
    _move(db, who, row, LiveStatus.ended)
    return row


def own_hosts() -> frozenset[str]:
    """Hosts whose links count as the platform's own pages (R4)."""
    host = urlsplit(get_settings().public_url).hostname or ""
    return frozenset({host.lower().removeprefix("www."), "localhost", "127.0.0.1"} - {""})


def check_transcript(
    db: Session, raw: str, product_codes: list[str]
) -> tuple[str, list[transcript.TimedFinding]]:
    """Parse and check a transcript (pure apart from the catalog and the rule set)."""
    lines = transcript.parse(raw)
    rules = drafts.marketing_rules()
    whole_ids = {r.id for name in WHOLE_TEXT if (r := rules.structural(name)) is not None}

    def run(text: str) -> checker.CheckResult:
        return drafts.check_draft(
            db, text, kind="live_script", product_codes=product_codes, advisor=None
        )

    def per_line(text: str) -> checker.CheckResult:
        result = run(text)
        kept = [f for f in result.findings if f.rule_id not in whole_ids]
        return checker.CheckResult(verdict=result.verdict, findings=kept)

    whole = [f for f in run("\n".join(x.text for x in lines)).findings if f.rule_id in whole_ids]
    return transcript.review(lines, per_line, own_hosts(), whole=whole)


def upload_transcript(db: Session, who: Principal, session_id: str, raw: str) -> LiveSession:
    """The host (or compliance) uploads the transcript after the session; it is checked
    at once and waits for review.  Until reviewed, a corrected upload replaces it."""
    row = get(db, who, session_id, lock=True)
    _expect(row, LiveStatus.ended, LiveStatus.pending_review)
    verdict, found = check_transcript(db, raw, list(row.product_codes))
    row.transcript = raw
    row.transcript_hash = hashlib.sha256(raw.encode()).hexdigest()
    row.transcript_verdict = verdict
    row.transcript_findings = [f.as_dict() for f in found]
    row.transcript_at = clock.now()
    _move(
        db,
        who,
        row,
        LiveStatus.pending_review,
        hash=row.transcript_hash,
        verdict=verdict,
        findings=len(found),
    )
    return row


def review(db: Session, who: Principal, session_id: str, data: ReviewIn) -> LiveSession:
    """Compliance records the outcome; violations, and clearing a failing transcript,
    need a note saying why."""
    row = get(db, who, session_id, lock=True)
    if who.role not in content.REVIEWERS:
        raise NotFound("no such live session", detail={"field": "session_id"})
    _expect(row, LiveStatus.pending_review)
    note = (data.note or "").strip() or None
    if note is None and (data.outcome == "violations" or row.transcript_verdict == "fail"):
        raise ValidationFailed(
            "say what was found (or why the findings are cleared)",
            code="note_required",
            detail={"field": "note"},
        )
    row.review_outcome, row.review_note = data.outcome, note
    row.reviewer_id, row.reviewed_at = who.user_id, clock.now()
    _move(db, who, row, LiveStatus.reviewed, outcome=data.outcome, note=note)
    return row


def public(
    db: Session, session_id: str
) -> tuple[LiveSession, checker.AdvisorIdentity, list[ListedProduct]]:
    """The viewers' page: the host's identity block (R2) and the products, each linking
    to the platform's own product page (R4)."""
    row = db.get(LiveSession, session_id)
    advisor = drafts.advisor_identity(db, row.host_id) if row is not None else None
    if row is None or advisor is None:
        raise NotFound("no such live session")
    snap = catalog.snapshot(db)
    return row, advisor, [snap.products[c] for c in row.product_codes if c in snap.products]


def awaiting_review(db: Session) -> list[LiveSession]:
    """Checked transcripts waiting for a compliance decision, oldest first."""
    return list(
        db.scalars(
            select(LiveSession)
            .where(LiveSession.status == LiveStatus.pending_review.value)
            .order_by(LiveSession.transcript_at)
        )
    )
