"""Content approval and publishing (R1, R2, R3).

An advisor with an active license covering the products submits a draft; the checker
runs at once; compliance approves (only a draft the checker does not fail) or rejects
with a note; approval freezes the exact text by its hash.  Any edit is a new version
that needs a new approval; only the approved version can be published, by a still
licensed advisor, and published content carries the advisor's identity block (R2).
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from covernet.audit import service as audit
from covernet.compliance import checker, drafts, licenses
from covernet.compliance.models import ContentItem, ContentStatus
from covernet.core import clock
from covernet.core.errors import Conflict, NotFound, ValidationFailed
from covernet.identity.access import Principal
from covernet.identity.models import Role

Kind = Literal["post", "moments", "live_script", "group_message", "canned_reply"]
REVIEWERS = frozenset({Role.compliance, Role.admin})


class ContentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Kind = "moments"
    body: str = Field(min_length=1, max_length=20_000)
    product_codes: list[str] = Field(default_factory=list, max_length=20)


def content_hash(kind: str, body: str, product_codes: list[str]) -> str:
    canonical = json.dumps([kind, body, sorted(product_codes)], ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _run_check(db: Session, advisor_id: str, data: ContentIn) -> checker.CheckResult:
    licenses.require_for_products(db, advisor_id, data.product_codes)
    return drafts.check_draft(
        db,
        data.body,
        kind=data.kind,
        product_codes=data.product_codes,
        advisor=drafts.advisor_identity(db, advisor_id),
    )


def _apply(item: ContentItem, data: ContentIn, result: checker.CheckResult) -> None:
    item.kind, item.body, item.product_codes = data.kind, data.body, list(data.product_codes)
    item.content_hash = content_hash(data.kind, data.body, item.product_codes)
    item.verdict = result.verdict
    item.findings = [f.model_dump(mode="json") for f in result.findings]
    item.status = ContentStatus.pending_review.value
    item.approved_hash = item.reviewer_id = item.review_note = None
    item.reviewed_at = None
    item.updated_at = clock.now()


def submit(db: Session, who: Principal, data: ContentIn) -> ContentItem:
    assert who.user_id is not None
    result = _run_check(db, who.user_id, data)
    item = ContentItem(advisor_id=who.user_id, version=1)
    _apply(item, data, result)
    db.add(item)
    db.flush()
    audit.record(
        db,
        "content.submit",
        actor=_actor(who),
        subject_type="content",
        subject_id=item.id,
        detail={"verdict": item.verdict, "hash": item.content_hash},
    )
    return item


def _actor(who: Principal) -> audit.Actor:
    return audit.Actor("user", who.user_id, who.role.value if who.role else None)


def get(db: Session, who: Principal, item_id: str) -> ContentItem:
    """An advisor sees their own items; reviewers see all; anyone else gets 404."""
    item = db.get(ContentItem, item_id)
    if item is None or (who.role not in REVIEWERS and item.advisor_id != who.user_id):
        raise NotFound("no such content", detail={"field": "content_id"})
    return item


def listing(db: Session, who: Principal, status: ContentStatus | None) -> list[ContentItem]:
    stmt = select(ContentItem).order_by(ContentItem.updated_at.desc())
    if who.role not in REVIEWERS:
        stmt = stmt.where(ContentItem.advisor_id == who.user_id)
    if status is not None:
        stmt = stmt.where(ContentItem.status == status.value)
    return list(db.scalars(stmt.limit(200)))


def edit(db: Session, who: Principal, item_id: str, data: ContentIn) -> ContentItem:
    item = get(db, who, item_id)
    if item.advisor_id != who.user_id:
        raise NotFound("no such content", detail={"field": "content_id"})
    result = _run_check(db, item.advisor_id, data)
    _apply(item, data, result)
    item.version += 1
    audit.record(
        db,
        "content.edit",
        actor=_actor(who),
        subject_type="content",
        subject_id=item.id,
        detail={"version": item.version, "hash": item.content_hash},
    )
    return item


def review(
    db: Session, who: Principal, item_id: str, *, approve: bool, note: str | None
) -> ContentItem:
    item = get(db, who, item_id)
    if item.status != ContentStatus.pending_review.value:
        raise Conflict(f"this content is {item.status}, not waiting for review", code="not_pending")
    if approve and item.verdict == "fail":
        raise Conflict(
            "the checker fails this text; it cannot be approved", code="content_fails_check"
        )
    if not approve and not (note or "").strip():
        raise ValidationFailed(
            "say why the content is rejected", code="note_required", detail={"field": "note"}
        )
    item.status = (ContentStatus.approved if approve else ContentStatus.rejected).value
    item.approved_hash = item.content_hash if approve else None
    item.reviewer_id, item.review_note = who.user_id, (note or "").strip() or None
    item.reviewed_at = item.updated_at = clock.now()
    audit.record(
        db,
        "content.approve" if approve else "content.reject",
        actor=_actor(who),
        subject_type="content",
        subject_id=item.id,
        detail={"hash": item.content_hash, "note": item.review_note},
    )
    return item


def publish(db: Session, who: Principal, item_id: str) -> ContentItem:
    item = get(db, who, item_id)
    if item.advisor_id != who.user_id:
        raise NotFound("no such content", detail={"field": "content_id"})
    frozen = content_hash(item.kind, item.body, list(item.product_codes))
    if item.status != ContentStatus.approved.value or item.approved_hash != frozen:
        raise Conflict("only the approved version can be published", code="not_approved")
    licenses.require_for_products(db, item.advisor_id, item.product_codes)
    item.status = ContentStatus.published.value
    item.published_at = item.updated_at = clock.now()
    audit.record(
        db,
        "content.publish",
        actor=_actor(who),
        subject_type="content",
        subject_id=item.id,
        detail={"hash": frozen},
    )
    return item


def published(db: Session, item_id: str) -> tuple[ContentItem, checker.AdvisorIdentity]:
    """Published content with its advisor's identity block (R2), for the public page."""
    item = db.get(ContentItem, item_id)
    if item is None or item.status != ContentStatus.published.value:
        raise NotFound("no such content")
    advisor = drafts.advisor_identity(db, item.advisor_id)
    if advisor is None:
        raise NotFound("no such content")
    return item, advisor
