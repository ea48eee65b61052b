"""Claims: filing, documents, the stage transitions, and what the customer sees.

Every transition is one function here: it checks who may do it, moves the claim with a
compare-and-set on its stage (``UPDATE … WHERE stage = <the stage it was read in>``), so
of two concurrent transitions on one claim exactly one succeeds on SQLite and
PostgreSQL alike; it writes a timeline entry with a note the customer understands, an
audit entry, and a notification to the customer.  Payouts go through the payment
provider, once per claim (``payments.request_payout`` is idempotent per claim).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import date, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from covernet.audit import service as audit
from covernet.catalog import service as catalog
from covernet.catalog.spec import Line, Product
from covernet.claims import adjudication, clocks, fraud, rules
from covernet.claims.models import Claim, ClaimDocument, ClaimEvent
from covernet.core import clock
from covernet.core.config import get_settings
from covernet.core.crypto import get_blind_index, get_cipher
from covernet.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from covernet.core.storage import get_storage
from covernet.identity.access import Principal
from covernet.identity.models import Role
from covernet.notify import service as notify
from covernet.payments import service as payments
from covernet.policies import policies
from covernet.policies.issuance import ALPHABET
from covernet.policies.models import Policy

PURPOSE = "claim"
DESCRIPTION_CONTEXT = "claim.description"
PAYEE_CONTEXT = "claim.payee"
PAYEE_INDEX_CONTEXT = "claim.payee_account"
HANDLERS = frozenset({Role.claims, Role.admin})
READERS = frozenset({Role.claims, Role.compliance, Role.admin})
ALLOWED_TYPES = {"image/jpeg", "image/png", "image/heic", "application/pdf"}
_MAGIC = {
    b"\xff\xd8\xff": "image/jpeg",
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"%PDF-": "application/pdf",
}
Cause = Literal["accident", "illness"]


class PayeeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=2, max_length=40)
    account: str = Field(description="bank card number, 12 to 19 digits")

    @field_validator("account")
    @classmethod
    def _digits(cls, value: str) -> str:
        digits = re.sub(r"[\s-]", "", value)
        if not re.fullmatch(r"\d{12,19}", digits):
            raise ValueError("a bank card number has 12 to 19 digits")
        return digits


class ClaimIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policy_id: str = Field(max_length=36)
    coverage_code: str = Field(max_length=64, description="one of the policy's coverages")
    cause: Cause = Field(description="accident, or illness (waiting periods apply to illness)")
    incident_date: date
    description: str = Field(min_length=5, max_length=2000)
    amount_claimed_fen: int = Field(ge=1, le=10**11)
    payee: PayeeIn


def mask_account(digits: str) -> str:
    """``6222021234567890123`` → ``6222 **** **** 0123``."""
    return f"{digits[:4]} **** **** {digits[-4:]}"


def claim_number(on: date) -> str:
    return f"CL{on:%Y%m%d}-" + "".join(secrets.choice(ALPHABET) for _ in range(8))


def _bad(code: str, message: str, field: str, **extra: object) -> ValidationFailed:
    return ValidationFailed(message, code=code, detail={"field": field, **extra})


def _product(db: Session, policy: Policy) -> Product:
    product, _ = catalog.product_at_version(db, policy.product_version_id)
    return product


def terms_of(db: Session, policy: Policy) -> adjudication.PolicyTerms:
    ended = clock.to_local(policy.ended_at).date() if policy.ended_at else None
    return adjudication.PolicyTerms(
        product=_product(db, policy),
        plan_code=policy.plan_code,
        effective_date=policy.effective_date,
        end_date=policy.end_date,
        waiting_period_end=policy.waiting_period_end,
        status=adjudication.PolicyState(policy.status),
        ended_on=ended,
    )


def _refuse_cover(db: Session, policy: Policy, data: ClaimIn) -> None:
    """The refusals the customer hears at once: no coverage, outside the period, in the
    waiting period, a cancelled policy (adjudication decides amounts later)."""
    product = _product(db, policy)
    plan = product.plan(policy.plan_code)
    codes = [c.code for c in plan.coverages] if plan else []
    if data.coverage_code not in codes:
        raise _bad(
            "coverage_not_in_policy",
            "this policy has no such coverage",
            "coverage_code",
            allowed=codes,
        )
    if data.incident_date > clock.today():
        raise _bad("incident_in_future", "the incident date is in the future", "incident_date")
    facts = adjudication.ClaimFacts(
        coverage_code=data.coverage_code,
        incident_date=data.incident_date,
        report_date=clock.today(),
        cause=adjudication.Cause(data.cause),
        amount_claimed_fen=data.amount_claimed_fen,
    )
    found = adjudication.assess(terms_of(db, policy), facts)
    refused = [r for r in found.reasons if r in REFUSED_AT_FILING]
    # the specific reason (before the start, after the end …) over the general one
    refusal = next((r for r in refused if r != "not_in_force_on_incident"), None) or next(
        iter(refused), None
    )
    if refusal is not None:
        raise _bad(refusal, REFUSED_AT_FILING[refusal], "incident_date")


REFUSED_AT_FILING = {
    "before_effective_date": "the incident happened before the cover started",
    "after_end_date": "the incident happened after the cover ended",
    "not_in_force_on_incident": "the policy was not in force on the incident date",
    "policy_cancelled_before_incident": "the policy was cancelled before the incident",
    "policy_surrendered_before_incident": "the policy was surrendered before the incident",
    "cause_not_covered": "this coverage does not cover that cause",
    "coverage_ended": "this coverage has already paid out and ended",
    "in_waiting_period": "an illness in the waiting period is not covered",
    "unknown_coverage": "this policy has no such coverage",
}


def file_claim(
    db: Session, who: Principal, data: ClaimIn, *, device_id: str | None = None
) -> Claim:
    policy = policies.get(db, who, data.policy_id, lock=True)
    if policy.customer_id != who.user_id:
        raise NotFound("no such policy", detail={"field": "policy_id"})
    _refuse_cover(db, policy, data)
    product = _product(db, policy)
    ruleset = rules.current()
    cipher, index = get_cipher(), get_blind_index()
    payee_index = index.digest(data.payee.account, context=PAYEE_INDEX_CONTEXT)
    year_ago = clock.now() - timedelta(days=365)
    insured_claims = (
        db.scalar(
            select(func.count())
            .select_from(Claim)
            .join(Policy, Policy.id == Claim.policy_id)
            .where(
                Policy.insured_id_index == policy.insured_id_index, Claim.reported_at >= year_ago
            )
        )
        if policy.insured_id_index
        else 0
    ) or 0
    others = Claim.customer_id != who.user_id
    device_others = (
        db.scalar(
            select(func.count()).select_from(Claim).where(Claim.device_id == device_id, others)
        )
        if device_id
        else 0
    ) or 0
    payee_others = (
        db.scalar(
            select(func.count())
            .select_from(Claim)
            .where(Claim.payee_account_index == payee_index, others)
        )
        or 0
    )
    flags = fraud.at_filing(
        incident=data.incident_date,
        effective=policy.effective_date,
        insured_claims_last_year=insured_claims,
        device_other_customers=device_others,
        payee_other_customers=payee_others,
    )
    claim = Claim(
        claim_no=claim_number(clock.today()),
        policy_id=policy.id,
        customer_id=who.user_id,
        insurer_code=policy.insurer_code,
        line=product.line.value,
        coverage_code=data.coverage_code,
        cause=data.cause,
        incident_date=data.incident_date,
        description_enc=cipher.encrypt(data.description, context=DESCRIPTION_CONTEXT),
        amount_claimed_fen=data.amount_claimed_fen,
        payee_name_enc=cipher.encrypt(data.payee.name.strip(), context=PAYEE_CONTEXT),
        payee_account_enc=cipher.encrypt(data.payee.account, context=PAYEE_CONTEXT),
        payee_account_index=payee_index,
        payee_account_masked=mask_account(data.payee.account),
        stage="reported",
        required_documents=[
            d.code for d in ruleset.documents_for(product.line, data.coverage_code)
        ],
        requested_documents=[],
        fraud_flags=flags,
        device_id=device_id,
    )
    db.add(claim)
    db.flush()
    _event(db, claim, None, "reported", ("customer", who.user_id), None, None)
    _announce(db, claim, "reported")
    audit.record(
        db,
        "claim.report",
        actor=audit.Actor("user", who.user_id, "customer"),
        subject_type="claim",
        subject_id=claim.id,
        detail={"policy_id": policy.id, "coverage": data.coverage_code, "flags": flags},
    )
    return claim


# Reading -----------------------------------------------------------------------------


def get(db: Session, who: Principal, claim_id: str) -> Claim:
    claim = db.get(Claim, claim_id)
    if claim is None or (who.role not in READERS and claim.customer_id != who.user_id):
        raise NotFound("no such claim", detail={"field": "claim_id"})
    return claim


def of_customer(db: Session, customer_id: str) -> list[Claim]:
    return list(
        db.scalars(
            select(Claim).where(Claim.customer_id == customer_id).order_by(Claim.reported_at.desc())
        )
    )


def timeline(db: Session, claim_id: str) -> list[ClaimEvent]:
    return list(
        db.scalars(
            select(ClaimEvent).where(ClaimEvent.claim_id == claim_id).order_by(ClaimEvent.id)
        )
    )


def documents_of(db: Session, claim_id: str) -> list[ClaimDocument]:
    return list(
        db.scalars(
            select(ClaimDocument)
            .where(ClaimDocument.claim_id == claim_id)
            .order_by(ClaimDocument.uploaded_at)
        )
    )


def missing_documents(db: Session, claim: Claim) -> list[str]:
    have = {d.kind for d in documents_of(db, claim.id)}
    wanted = claim.requested_documents or claim.required_documents
    return [code for code in wanted if code not in have]


def moments(claim: Claim) -> clocks.Moments:
    return clocks.Moments(
        documents_complete_at=claim.documents_complete_at,
        decided_at=claim.decided_at,
        agreed_at=claim.agreed_at,
        denial_notice_at=claim.denial_notice_at,
        paid_at=claim.paid_at,
        declined=claim.stage in ("declined", "closed")
        and claim.decision_reason is not None
        and claim.paid_at is None,
    )


def clocks_of(claim: Claim, today: date | None = None) -> list[clocks.ClockState]:
    return clocks.clocks_of(moments(claim), rules.current().clocks, today or clock.today())


WAITING_ON = {
    "reported": "insurer",
    "accepted": "customer",
    "documents": "insurer",
    "investigating": "insurer",
    "assessed": "insurer",
    "approved": "insurer",
    "declined": "nobody",
    "paid": "nobody",
    "closed": "nobody",
    "withdrawn": "nobody",
}


def waiting_on(db: Session, claim: Claim) -> str:
    if claim.stage in ("accepted", "documents") and missing_documents(db, claim):
        return "customer"
    return WAITING_ON.get(claim.stage, "insurer")


# Documents ----------------------------------------------------------------------------


def _sniff(data: bytes) -> str | None:
    for magic, kind in _MAGIC.items():
        if data.startswith(magic):
            return kind
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1"):
        return "image/heic"
    return None


def add_document(
    db: Session, who: Principal, claim_id: str, *, kind: str, filename: str, data: bytes
) -> ClaimDocument:
    claim = get(db, who, claim_id)
    if claim.customer_id != who.user_id and who.role not in HANDLERS:
        raise NotFound("no such claim", detail={"field": "claim_id"})
    if claim.stage in ("paid", "closed", "withdrawn", "declined"):
        raise Conflict(f"the claim is {claim.stage}; no more documents", code="claim_closed")
    wanted = set(claim.required_documents) | set(claim.requested_documents)
    if kind not in wanted:
        raise _bad(
            "unknown_document_kind", f"this claim needs no '{kind}'", "kind", allowed=sorted(wanted)
        )
    limit = get_settings().claim_upload_max_bytes
    if len(data) > limit:
        raise _bad("file_too_large", f"a file may be at most {limit // 1024 // 1024} MB", "file")
    if not data:
        raise _bad("empty_file", "the file is empty", "file")
    content_type = _sniff(data)
    if content_type not in ALLOWED_TYPES:
        raise _bad(
            "unsupported_file_type",
            "upload a photo (JPEG, PNG, HEIC) or a PDF",
            "file",
            allowed=sorted(ALLOWED_TYPES),
        )
    digest = hashlib.sha256(data).hexdigest()
    doc = ClaimDocument(
        claim_id=claim.id,
        kind=kind,
        filename=re.sub(r"[^\w.\- ]", "_", filename)[-200:] or "upload",
        content_type=content_type,
        size=len(data),
        sha256=digest,
        storage_key="",
    )
    doc.storage_key = f"claims/{claim.id}/{doc.id}"
    get_storage().put(doc.storage_key, data)  # outside the database; the row points at it
    db.add(doc)
    reused = db.scalar(
        select(func.count())
        .select_from(ClaimDocument)
        .where(ClaimDocument.sha256 == digest, ClaimDocument.claim_id != claim.id)
    )
    if reused and "duplicate_document" not in claim.fraud_flags:
        claim.fraud_flags = [*claim.fraud_flags, "duplicate_document"]
    claim.updated_at = clock.now()
    db.flush()
    return doc


def read_document(
    db: Session, who: Principal, claim_id: str, doc_id: str
) -> tuple[ClaimDocument, bytes]:
    claim = get(db, who, claim_id)
    doc = db.get(ClaimDocument, doc_id)
    if doc is None or doc.claim_id != claim.id:
        raise NotFound("no such document", detail={"field": "document_id"})
    return doc, get_storage().get(doc.storage_key)


# Transitions ----------------------------------------------------------------------------


def _event(
    db: Session,
    claim: Claim,
    source: str | None,
    target: str,
    actor: tuple[str, str | None],
    note: str | None,
    internal: str | None,
) -> None:
    db.add(
        ClaimEvent(
            claim_id=claim.id,
            stage_from=source,
            stage_to=target,
            actor_type=actor[0],
            actor_id=actor[1],
            note=note,
            internal_note=internal,
            at=clock.now(),
        )
    )


def _announce(db: Session, claim: Claim, stage: str, extra: str | None = None) -> None:
    """Tell the customer at every stage (stored, then sent by the notifier)."""
    if claim.customer_id is None:
        return
    info = rules.current().stage(stage)
    body = info.note_zh + (f" {extra}" if extra else "")
    notify.send(
        db,
        user_id=claim.customer_id,
        topic="claim.stage",
        subject_type="claim",
        subject_id=claim.id,
        title=f"理赔{claim.claim_no}：{info.zh}",
        body=body,
    )


def _move(
    db: Session,
    claim: Claim,
    target: str,
    actor: tuple[str, str | None],
    *,
    note: str | None = None,
    internal: str | None = None,
    values: dict[str, Any] | None = None,
) -> Claim:
    source = claim.stage
    if not rules.current().allows(source, target):
        raise Conflict(f"a claim that is {source} cannot become {target}", code="wrong_claim_stage")
    now = clock.now()
    moved = db.execute(
        update(Claim)
        .where(Claim.id == claim.id, Claim.stage == source)
        .values(stage=target, updated_at=now, **(values or {}))
        .execution_options(synchronize_session=False)
    )
    if getattr(moved, "rowcount", 0) != 1:
        raise Conflict("the claim changed meanwhile; reload it", code="claim_changed")
    db.refresh(claim)
    _event(db, claim, source, target, actor, note, internal)
    _announce(db, claim, target, note)
    audit.record(
        db,
        f"claim.{target}",
        actor=audit.Actor(actor[0] if actor[0] != "staff" else "user", actor[1], None),
        subject_type="claim",
        subject_id=claim.id,
        detail={"from": source, "to": target},
    )
    return claim


def _staff(who: Principal) -> tuple[str, str | None]:
    if who.role not in HANDLERS:
        raise Forbidden("claims handlers only", code="forbidden")
    return ("staff", who.user_id)


def _lock(db: Session, who: Principal, claim_id: str) -> Claim:
    claim = db.get(Claim, claim_id, with_for_update=True)
    if claim is None:
        raise NotFound("no such claim", detail={"field": "claim_id"})
    return claim


def accept(db: Session, who: Principal, claim_id: str, note: str | None = None) -> Claim:
    actor = _staff(who)
    claim = _lock(db, who, claim_id)
    return _move(db, claim, "accepted", actor, note=note or "已受理，请按清单上传材料。")


def request_documents(
    db: Session, who: Principal, claim_id: str, missing: list[str], note: str | None = None
) -> Claim:
    """补充材料: everything still missing, in one list, at once (R21)."""
    actor = _staff(who)
    claim = _lock(db, who, claim_id)
    ruleset = rules.current()
    known = {d.code for d in ruleset.documents_for(Line(claim.line), claim.coverage_code)}
    unknown = [m for m in missing if m not in known]
    if not missing or unknown:
        raise _bad(
            "documents_to_request",
            "name the documents still missing (from the claim's list)",
            "missing",
            allowed=sorted(known),
        )
    names = {d.code: d.zh for d in ruleset.documents_for(Line(claim.line), claim.coverage_code)}
    listing = "、".join(names[m] for m in missing)
    return _move(
        db,
        claim,
        "documents",
        actor,
        note=f"请补充以下材料（一次列明）：{listing}。" + (f"{note}" if note else ""),
        values={"requested_documents": list(dict.fromkeys(missing)), "documents_complete_at": None},
    )


def documents_complete(db: Session, who: Principal, claim_id: str) -> Claim:
    """All documents in: the 30-day decision clock starts (R21)."""
    actor = _staff(who)
    claim = _lock(db, who, claim_id)
    missing = missing_documents(db, claim)
    if missing:
        raise Conflict(
            "documents are still missing", code="documents_missing", detail={"missing": missing}
        )
    return _move(
        db,
        claim,
        "documents",
        actor,
        note="材料已齐全，我们将在30日内作出核定。",
        values={"documents_complete_at": clock.now(), "requested_documents": []},
    )


def investigate(db: Session, who: Principal, claim_id: str, internal: str) -> Claim:
    actor = _staff(who)
    claim = _lock(db, who, claim_id)
    return _move(db, claim, "investigating", actor, internal=internal)


def paid_so_far(db: Session, claim: Claim, policy: Policy) -> tuple[adjudication.PaidSoFar, int]:
    """What other claims on the same policy already paid, and how much of this policy
    year's deductible they used (from their stored assessments)."""
    rows = db.execute(
        select(
            Claim.coverage_code, Claim.assessed_amount_fen, Claim.incident_date, Claim.assessment
        ).where(
            Claim.policy_id == claim.policy_id,
            Claim.id != claim.id,
            Claim.paid_at.is_not(None),
        )
    ).all()
    paid = adjudication.paid_in_year(
        [(r[0], r[1], r[2]) for r in rows], policy.effective_date, claim.incident_date
    )
    year = adjudication.policy_year(policy.effective_date, claim.incident_date).index
    used = 0
    for row in rows:
        found = row[3] or {}
        if (found.get("policy_year") or {}).get("index") != year:
            continue
        used += sum(
            s.get("reduction_fen", 0)
            for s in found.get("steps", [])
            if s.get("code") == "deductible"
        )
    return paid, used


def assess(db: Session, who: Principal, claim_id: str, note: str | None = None) -> Claim:
    """核定: the amount from the pure adjudication over the policy and what was paid."""
    actor = _staff(who)
    claim = _lock(db, who, claim_id)
    if claim.documents_complete_at is None and not claim.auto:
        raise Conflict("confirm the documents are complete first", code="documents_not_complete")
    policy = db.get(Policy, claim.policy_id)
    assert policy is not None
    paid, deductible_used = paid_so_far(db, claim, policy)
    found = adjudication.assess(
        terms_of(db, policy),
        adjudication.ClaimFacts(
            coverage_code=claim.coverage_code,
            incident_date=claim.incident_date,
            report_date=clock.to_local(claim.reported_at).date(),
            cause=adjudication.Cause(claim.cause),
            amount_claimed_fen=claim.amount_claimed_fen,
            paid=paid,
            deductible_used_fen=deductible_used,
        ),
    )
    return _move(
        db,
        claim,
        "assessed",
        actor,
        note=f"核定赔付金额{found.payable_fen / 100:.2f}元。" + (note or ""),
        values={
            "assessed_amount_fen": found.payable_fen,
            "assessment": found.as_dict(),
            "assessed_by": who.user_id,
        },
    )


def approve(db: Session, who: Principal, claim_id: str) -> Claim:
    """审批: four eyes above the limit; agreement starts the 10-day payment clock and the
    payout goes out through the provider."""
    actor = _staff(who)
    claim = _lock(db, who, claim_id)
    amount = claim.assessed_amount_fen or 0
    if amount <= 0:
        raise Conflict(
            "nothing is payable; decline with the reason instead", code="nothing_payable"
        )
    if amount > rules.current().four_eyes_above_fen and claim.assessed_by == who.user_id:
        raise Forbidden(
            "above the four-eyes limit a second handler approves", code="four_eyes_required"
        )
    now = clock.now()
    _move(
        db,
        claim,
        "approved",
        actor,
        note=f"赔付{amount / 100:.2f}元已批准，正在打款。",
        values={"approved_by": who.user_id, "agreed_at": now, "decided_at": now},
    )
    _pay(db, claim)
    return claim


def _pay(db: Session, claim: Claim) -> None:
    cipher = get_cipher()
    payout = payments.request_payout(
        db,
        purpose=PURPOSE,
        subject_type="claim",
        subject_id=claim.id,
        insurer_code=claim.insurer_code,
        amount_fen=claim.assessed_amount_fen or 0,
        payee_name=cipher.decrypt(claim.payee_name_enc or "", context=PAYEE_CONTEXT),
        payee_account=cipher.decrypt(claim.payee_account_enc or "", context=PAYEE_CONTEXT),
        by=audit.SYSTEM,
    )
    claim.payout_id = payout.id


def decline(db: Session, who: Principal, claim_id: str, reason: str) -> Claim:
    """拒赔 with the reasons; the notice goes to the customer at once (3-day clock)."""
    actor = _staff(who)
    claim = _lock(db, who, claim_id)
    reason = reason.strip()
    if len(reason) < 5:
        raise _bad("reason_required", "give the customer the reasons for the denial", "reason")
    now = clock.now()
    return _move(
        db,
        claim,
        "declined",
        actor,
        note=f"拒赔原因：{reason}",
        values={"decision_reason": reason, "decided_at": now, "denial_notice_at": now},
    )


def close(db: Session, who: Principal, claim_id: str) -> Claim:
    actor = _staff(who)
    claim = _lock(db, who, claim_id)
    return _move(db, claim, "closed", actor, values={"closed_at": clock.now()})


def reopen(db: Session, who: Principal, claim_id: str, note: str) -> Claim:
    actor = _staff(who)
    claim = _lock(db, who, claim_id)
    if claim.stage not in ("closed", "withdrawn"):
        raise Conflict("only a closed or withdrawn claim is reopened", code="wrong_claim_stage")
    return _move(
        db,
        claim,
        "accepted",
        actor,
        note=note,
        values={"closed_at": None, "documents_complete_at": None},
    )


def withdraw(db: Session, who: Principal, claim_id: str) -> Claim:
    claim = _lock(db, who, claim_id)
    if claim.customer_id != who.user_id:
        raise NotFound("no such claim", detail={"field": "claim_id"})
    return _move(db, claim, "withdrawn", ("customer", who.user_id), note="您已撤回本次理赔。")


@payments.on_payout_succeeded(PURPOSE)
def on_paid(db: Session, payout: Any) -> None:
    claim = db.get(Claim, payout.subject_id, with_for_update=True)
    if claim is None or claim.stage != "approved":
        return
    _move(
        db,
        claim,
        "paid",
        ("system", None),
        note=f"赔款{payout.amount_fen / 100:.2f}元已支付至{claim.payee_account_masked}。",
        values={"paid_at": clock.now()},
    )


@payments.on_payout_failed(PURPOSE)
def on_payout_failed(db: Session, payout: Any) -> None:
    claim = db.get(Claim, payout.subject_id)
    if claim is None:
        return
    _event(
        db,
        claim,
        claim.stage,
        claim.stage,
        ("system", None),
        "打款未成功，我们会尽快与您联系核对收款账户。",
        f"payout failed: {payout.failure or ''}",
    )


# Automatic (parametric) claims ----------------------------------------------------------


def auto_claim_of(db: Session, policy_id: str, coverage_code: str) -> Claim | None:
    """The policy's automatic claim on the coverage that still stands (not declined or
    withdrawn), if any: parametric cover pays once per trigger (one flight, one return)."""
    return db.scalar(
        select(Claim)
        .where(
            Claim.policy_id == policy_id,
            Claim.coverage_code == coverage_code,
            Claim.auto.is_(True),
            Claim.stage.not_in(("declined", "withdrawn")),
        )
        .order_by(Claim.reported_at)
        .limit(1)
    )


def file_auto_claim(
    db: Session,
    policy: Policy,
    *,
    coverage_code: str,
    incident_date: date,
    amount_claimed_fen: int,
    payee_name: str,
    payee_account: str,
    external_event_id: str,
    reporter: tuple[str, str | None],
    reported_by: audit.Actor,
    report_note: str,
    basis_note: str = "",
) -> tuple[Claim | None, adjudication.Assessment]:
    """A claim reported by a trusted event (a partner's signed flight or return data) and
    settled by the system in the caller's transaction: reported → accepted → documents
    (none needed) → assessed (the pure adjudication) → approved → payout requested.  The
    payout callback then makes it paid (:func:`on_paid`).

    The assessment comes first: if it pays nothing (outside the cover, limit used up) no
    claim is made and (None, assessment) is returned.  Above the four-eyes limit the
    claim stops at assessed for a handler.  ``external_event_id`` is unique, so one event
    never makes two claims; the caller holds the policy's row lock, so that
    :func:`auto_claim_of` and this do not race another event about the same policy."""
    from covernet.core.ids import new_id

    product = _product(db, policy)
    plan = product.plan(policy.plan_code)
    if plan is None or coverage_code not in [c.code for c in plan.coverages]:
        raise _bad("coverage_not_in_policy", "this policy has no such coverage", "coverage_code")
    cipher, index = get_cipher(), get_blind_index()
    claim = Claim(
        id=new_id(),
        claim_no=claim_number(clock.today()),
        policy_id=policy.id,
        customer_id=policy.customer_id,
        insurer_code=policy.insurer_code,
        line=product.line.value,
        coverage_code=coverage_code,
        cause="event",
        incident_date=incident_date,
        description_enc=cipher.encrypt(report_note, context=DESCRIPTION_CONTEXT),
        amount_claimed_fen=amount_claimed_fen,
        payee_name_enc=cipher.encrypt(payee_name.strip(), context=PAYEE_CONTEXT),
        payee_account_enc=cipher.encrypt(payee_account, context=PAYEE_CONTEXT),
        payee_account_index=index.digest(payee_account, context=PAYEE_INDEX_CONTEXT),
        payee_account_masked=mask_account(payee_account),
        stage="reported",
        required_documents=[],
        requested_documents=[],
        fraud_flags=[],
        auto=True,
        external_event_id=external_event_id,
        reported_at=clock.now(),
    )
    paid, deductible_used = paid_so_far(db, claim, policy)
    found = adjudication.assess(
        terms_of(db, policy),
        adjudication.ClaimFacts(
            coverage_code=coverage_code,
            incident_date=incident_date,
            report_date=max(clock.today(), incident_date),
            cause=adjudication.Cause.event,
            amount_claimed_fen=amount_claimed_fen,
            paid=paid,
            deductible_used_fen=deductible_used,
        ),
    )
    if not found.covered or found.payable_fen <= 0:
        return None, found
    db.add(claim)
    db.flush()
    _event(db, claim, None, "reported", reporter, report_note, None)
    _announce(db, claim, "reported")
    audit.record(
        db,
        "claim.report",
        actor=reported_by,
        subject_type="claim",
        subject_id=claim.id,
        detail={
            "policy_id": policy.id,
            "coverage": coverage_code,
            "auto": True,
            "event": external_event_id,
        },
    )
    system: tuple[str, str | None] = ("system", None)
    _move(db, claim, "accepted", system, note="自动理赔已受理，无需您提交任何材料。")
    _move(
        db,
        claim,
        "documents",
        system,
        note="按合作方提供的数据自动核实，无需材料。",
        values={"documents_complete_at": clock.now(), "requested_documents": []},
    )
    amount = found.payable_fen
    capped = amount < amount_claimed_fen
    _move(
        db,
        claim,
        "assessed",
        system,
        note=f"核定赔付金额{amount / 100:.2f}元。"
        + (basis_note or "")
        + ("（已按保险金额上限赔付）" if capped and not basis_note else ""),
        values={"assessed_amount_fen": amount, "assessment": found.as_dict()},
    )
    if amount > rules.current().four_eyes_above_fen:
        return claim, found  # a claims handler approves amounts above the limit
    now = clock.now()
    _move(
        db,
        claim,
        "approved",
        system,
        note=f"赔付{amount / 100:.2f}元已自动批准，"
        f"正在打款至您的账户{claim.payee_account_masked}。",
        values={"agreed_at": now, "decided_at": now},
    )
    _pay(db, claim)
    db.flush()
    return claim, found


def rotate_field_keys(db: Session) -> int:
    """Re-encrypt this domain's personal data under the active key."""
    from covernet.core.rotation import rotate_column

    columns = (
        (Claim.description_enc, DESCRIPTION_CONTEXT),
        (Claim.payee_name_enc, PAYEE_CONTEXT),
        (Claim.payee_account_enc, PAYEE_CONTEXT),
    )
    return sum(rotate_column(db, Claim.id, col, context=ctx) for col, ctx in columns)
