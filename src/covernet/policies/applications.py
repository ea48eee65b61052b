"""Applications: from a quote to a payment (R7, R8, R9, R13, R28, R29).

:func:`apply` checks everything the customer must give and confirm — nothing is assumed
or pre-ticked (R8) — records the sale's trace (R13), stores the application with its
personal data encrypted and opens the premium payment with the insurer's premium account
as payee (R11).  When the payment succeeds, :func:`on_premium_paid` underwrites at once
(R16): accept issues the policy in the same transaction, decline refunds in full, refer
puts it in the underwriters' queue (:func:`decide_referral`).
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from covernet.audit import service as audit
from covernet.catalog import service as catalog
from covernet.catalog.disclosures import UNCERTAINTY_STATEMENT, disclosures_for
from covernet.catalog.documents import SaleDocument, sale_documents
from covernet.catalog.pricing import is_on_sale
from covernet.catalog.spec import Product
from covernet.compliance import licenses
from covernet.core import clock
from covernet.core.cn_identity import IdCardInfo, age_on, parse_id_number
from covernet.core.config import get_settings
from covernet.core.crypto import get_blind_index, get_cipher
from covernet.core.errors import Conflict, NotFound, ValidationFailed
from covernet.core.ids import new_id
from covernet.crm import pool
from covernet.identity.access import Principal
from covernet.identity.models import Role
from covernet.payments import service as payments
from covernet.payments.models import Payment
from covernet.policies import issuance, policies, trace
from covernet.policies.models import Application, ApplicationStatus, Policy, PolicyStatus, Quote
from covernet.policies.quotes import ID_INDEX_CONTEXT
from covernet.social import attribution
from covernet.underwriting import rules

PURPOSE = "premium"
SUBJECT = "application"
NAME_CONTEXT = "application.name"
ID_CONTEXT = "application.id_number"
BENEFICIARY_CONTEXT = "application.beneficiaries"
HEALTH_CONTEXT = "application.health"
ADULT_AGE = 18
GUARDIAN_AGE = 14  # under 14: the guardian consents (R29)
# Staff who may read any application (review, service); others see only their own.
READERS = frozenset({Role.advisor, Role.compliance, Role.ops, Role.admin})
UNDERWRITERS = frozenset({Role.ops, Role.admin, Role.insurer})

Relationship = Literal["self", "spouse", "child", "parent"]


class PersonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=2, max_length=40)
    id_number: str = Field(min_length=15, max_length=20, description="居民身份证号")


class BeneficiaryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=2, max_length=40)
    relationship: Literal["spouse", "child", "parent", "sibling"]
    share_percent: int = Field(ge=1, le=100)


class ShownIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    document: str = Field(max_length=48)
    shown_at: str = Field(max_length=40, description="ISO time the page was shown")


class ApplicationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quote_id: str = Field(max_length=36)
    applicant: PersonIn
    relationship: Relationship = Field(description="who the insured is to the applicant")
    insured: PersonIn | None = Field(default=None, description="omit when relationship is self")
    beneficiaries: list[BeneficiaryIn] | None = Field(
        default=None, max_length=5, description="omit for the statutory heirs (法定)"
    )
    health_answers: dict[str, bool] = Field(default_factory=dict)
    acknowledgements: dict[str, str] = Field(
        default_factory=dict,
        description="document code -> the content_hash of the version read and confirmed",
    )
    uncertainty_statement: str | None = Field(default=None, max_length=200)
    suitability_confirmed: list[str] = Field(default_factory=list, max_length=10)
    shown: list[ShownIn] = Field(default_factory=list, max_length=50)
    renewal_of: str | None = Field(
        default=None, max_length=36, description="the policy this renews (from its renewal quote)"
    )
    advisor_id: str | None = Field(
        default=None,
        max_length=36,
        description="the advisor who advised this sale; must be licensed for its line (R1)",
    )


def _bad(code: str, message: str, field: str, **extra: object) -> ValidationFailed:
    return ValidationFailed(message, code=code, detail={"field": field, **extra})


def _limits() -> rules.Limits:
    path = get_settings().catalog_dir / "rules" / "underwriting.yaml"
    return _cached_limits(str(path), path.stat().st_mtime)


_limits_cache: dict[tuple[str, float], rules.Limits] = {}


def _cached_limits(path: str, mtime: float) -> rules.Limits:
    found = _limits_cache.get((path, mtime))
    if found is None:
        found = _limits_cache[(path, mtime)] = rules.load_limits(path)
    return found


def documents_for(db: Session, product: Product) -> list[SaleDocument]:
    insurer = catalog.snapshot(db).insurers[product.insurer]
    return sale_documents(product, tuple(disclosures_for(product, insurer)))


def _quote(db: Session, who: Principal, quote_id: str) -> Quote:
    quote = db.get(Quote, quote_id, with_for_update=True)
    if quote is None or quote.customer_id not in (None, who.user_id):
        raise NotFound("no such quote", code="unknown_quote", detail={"field": "quote_id"})
    if clock.as_utc(quote.valid_until) <= clock.now():
        raise _bad("quote_expired", "the quote has expired; ask for a new one", "quote_id")
    # After the lock, in a statement of its own: it sees an application a concurrent
    # twin committed while this one waited.
    used = db.scalar(select(Application.id).where(Application.quote_id == quote.id))
    if used is not None:
        raise Conflict(
            "an application was already made from this quote",
            code="quote_used",
            detail={"field": "quote_id", "application_id": used},
        )
    return quote


def _person(person: PersonIn, field: str) -> IdCardInfo:
    return parse_id_number(person.id_number, field=f"{field}.id_number")


def _check_people(data: ApplicationIn, quote: Quote, today: date) -> tuple[IdCardInfo, IdCardInfo]:
    applicant = _person(data.applicant, "applicant")
    if age_on(applicant.birth_date, today) < ADULT_AGE:
        raise _bad("applicant_minor", "the applicant must be an adult (18 or over)", "applicant")
    if data.relationship == "self":
        if data.insured is not None and data.insured.id_number.strip().upper() != applicant.number:
            raise _bad("insured_is_applicant", "for 'self' leave out the insured", "insured")
        insured = applicant
    else:
        if data.insured is None:
            raise _bad("insured_required", "give the insured's name and ID number", "insured")
        insured = _person(data.insured, "insured")
        if insured.number == applicant.number:
            raise _bad("relationship_mismatch", "the insured is the applicant", "relationship")
    birth, gender = quote.insured_birth_date, quote.insured_gender
    index = get_blind_index().digest(insured.number, context=ID_INDEX_CONTEXT)
    if (quote.insured_id_index and quote.insured_id_index != index) or (
        birth is not None and (birth != insured.birth_date or gender != insured.sex)
    ):
        raise _bad(
            "insured_mismatch",
            "the insured's ID number does not match the quote's birth date and sex; "
            "ask for a new quote",
            "insured.id_number",
        )
    insured_age = age_on(insured.birth_date, today)
    if insured_age < GUARDIAN_AGE and data.relationship != "child":
        raise _bad(
            "guardian_required",
            "an insured under 14 is insured by a parent (relationship 'child')",
            "relationship",
        )
    return applicant, insured


def _check_answers(product: Product, answers: dict[str, bool]) -> None:
    known = {q.code for q in product.health_questions}
    unknown = sorted(set(answers) - known)
    if unknown:
        raise _bad(
            "unknown_health_question",
            f"this product asks no question {unknown[0]}",
            f"health_answers.{unknown[0]}",
        )
    for question in product.health_questions:
        if question.code not in answers:
            raise _bad(
                "health_answer_required",
                f"answer the health question {question.code} (yes or no)",
                f"health_answers.{question.code}",
                question=question.text.zh,
            )


def check_confirmed(acknowledgements: dict[str, str], docs: list[SaleDocument]) -> None:
    """Every document confirmed by the hash of the version shown, and no other (R13)."""
    for doc in docs:
        sent = acknowledgements.get(doc.code)
        if not sent:
            raise _bad(
                "acknowledgement_required",
                f"read and confirm '{doc.title.zh}' ({doc.code}) first",
                f"acknowledgements.{doc.code}",
                content_hash=doc.content_hash,
            )
        if sent != doc.content_hash:
            raise _bad(
                "document_changed",
                f"'{doc.title.zh}' has changed since it was shown; read it again",
                f"acknowledgements.{doc.code}",
                content_hash=doc.content_hash,
            )
    extra = sorted(set(acknowledgements) - {d.code for d in docs})
    if extra:
        raise _bad("unknown_document", f"no document '{extra[0]}'", f"acknowledgements.{extra[0]}")


def _check_acknowledgements(
    data: ApplicationIn, product: Product, docs: list[SaleDocument]
) -> None:
    check_confirmed(data.acknowledgements, docs)
    if product.uncertain_benefits:
        typed = re.sub(r"\s+", "", data.uncertainty_statement or "")
        if typed.rstrip("。.") != UNCERTAINTY_STATEMENT:
            raise _bad(
                "uncertainty_statement_required",
                "type the statement exactly: " + UNCERTAINTY_STATEMENT,
                "uncertainty_statement",
                statement=UNCERTAINTY_STATEMENT,
            )


def _check_beneficiaries(data: ApplicationIn) -> None:
    if data.beneficiaries is not None:
        total = sum(b.share_percent for b in data.beneficiaries)
        if not data.beneficiaries or total != 100:
            raise _bad(
                "beneficiary_shares",
                f"the beneficiaries' shares add up to {total}%, not 100%",
                "beneficiaries",
            )


def _referred_holdings(db: Session, insured_index: str, but: str) -> list[rules.Holding]:
    """Paid applications waiting for an underwriter: they count towards the limits, so
    splitting cover into many applications cannot get round them."""
    rows = db.execute(
        select(
            Application.product_code, Application.product_version_id, Application.sum_insured_fen
        ).where(
            Application.insured_id_index == insured_index,
            Application.status == ApplicationStatus.referred.value,
            Application.id != but,
        )
    )
    held = []
    for code, version_id, sum_insured in rows:
        product, _ = catalog.product_at_version(db, version_id)
        held.append(rules.Holding(code, product.line, product.kind, sum_insured))
    return held


def holdings_of(db: Session, insured_index: str, on: date) -> list[rules.Holding]:
    """Policies the insured holds in force on ``on`` (for limits and suitability)."""
    rows = db.execute(
        select(
            Policy.product_code,
            Policy.product_version_id,
            Policy.sum_insured_fen,
            Policy.end_date,
            Policy.gifted,
        ).where(
            Policy.insured_id_index == insured_index,
            Policy.status == PolicyStatus.in_force.value,
        )
    )
    held = []
    for code, version_id, sum_insured, end, gifted in rows:
        if end is not None and end < on:
            continue
        product, _ = catalog.product_at_version(db, version_id)
        held.append(rules.Holding(code, product.line, product.kind, sum_insured, gifted))
    return held


class Applied(NamedTuple):
    """An application just made, and the payment opened for it."""

    app: Application
    payment: Payment


def apply(db: Session, who: Principal, data: ApplicationIn, *, ip: str, user_agent: str) -> Applied:
    assert who.user_id is not None
    today = clock.today()
    quote = _quote(db, who, data.quote_id)
    product, version = catalog.product_at_version(db, quote.product_version_id)
    if not is_on_sale(product, today):
        raise _bad("product_not_on_sale", "this product is no longer on sale", "quote_id")
    advisor = (
        licenses.require_license(db, data.advisor_id, product.line) if data.advisor_id else None
    )
    if data.renewal_of is not None:
        from covernet.policies import renewal  # renewal builds on this module

        renewal.check_renewal(db, who, data.renewal_of, quote)
    applicant, insured = _check_people(data, quote, today)
    _check_answers(product, data.health_answers)
    docs = documents_for(db, product)
    _check_acknowledgements(data, product, docs)
    _check_beneficiaries(data)
    insured_index = get_blind_index().digest(insured.number, context=ID_INDEX_CONTEXT)
    holdings = holdings_of(db, insured_index, quote.effective_date)  # cover that overlaps
    warnings = rules.suitability(
        product,
        age=quote.insured_age,
        premium_fen=quote.premium_fen,
        long_term=policies.long_term(product, quote.term_code),
        holdings=holdings,
    )
    unconfirmed = [w for w in warnings if w not in data.suitability_confirmed]
    if unconfirmed:
        raise _bad(
            "suitability_confirmation_required",
            "read the suitability warnings and confirm that you want to go on",
            "suitability_confirmed",
            warnings=unconfirmed,
        )
    cipher = get_cipher()
    insured_name = (data.insured or data.applicant).name.strip()
    app = Application(
        id=new_id(),  # known before the flush: the trace and the payment name it
        payment_id=new_id(),
        customer_id=who.user_id,
        quote_id=quote.id,
        product_code=product.code,
        product_version_id=quote.product_version_id,
        insurer_code=product.insurer,
        line=product.line.value,
        plan_code=quote.plan_code,
        term_code=quote.term_code,
        payment_code=quote.payment_code,
        premium_fen=quote.premium_fen,
        sum_insured_fen=quote.sum_insured_fen,
        applicant_name_enc=cipher.encrypt(data.applicant.name.strip(), context=NAME_CONTEXT),
        applicant_id_enc=cipher.encrypt(applicant.number, context=ID_CONTEXT),
        relationship=data.relationship,
        insured_name_enc=cipher.encrypt(insured_name, context=NAME_CONTEXT),
        insured_id_enc=cipher.encrypt(insured.number, context=ID_CONTEXT),
        insured_id_index=insured_index,
        insured_birth_date=insured.birth_date,
        insured_gender=insured.sex,
        beneficiaries_enc=(
            cipher.encrypt(
                json.dumps([b.model_dump() for b in data.beneficiaries], ensure_ascii=False),
                context=BENEFICIARY_CONTEXT,
            )
            if data.beneficiaries is not None
            else None
        ),
        health_answers_enc=(
            cipher.encrypt(json.dumps(data.health_answers, sort_keys=True), context=HEALTH_CONTEXT)
            if data.health_answers
            else None
        ),
        acknowledgements={
            "documents": {d.code: d.content_hash for d in docs},
            "uncertainty_statement": product.uncertain_benefits,
            "product_version": version,
        },
        suitability_warnings=warnings,
        status=ApplicationStatus.pending_payment.value,
        advisor_id=data.advisor_id,
        renewal_of=data.renewal_of,
    )
    if quote.customer_id is None:
        quote.customer_id = who.user_id
    db.add(app)
    trace.record_application(
        db, app, docs, version=version, data=data, warnings=warnings, ip=ip, user_agent=user_agent
    )
    if advisor is not None:  # R2: who advised, as the customer was shown it
        trace.system(
            db,
            app,
            "advisor",
            license_no=advisor.license_no,
            institution=advisor.institution,
            advisor_id=advisor.advisor_id,
        )
    payment, _ = payments.create_payment(  # everything above is inserted with it
        db,
        purpose=PURPOSE,
        subject_type=SUBJECT,
        subject_id=app.id,
        payer_id=who.user_id,
        insurer_code=product.insurer,
        amount_fen=app.premium_fen,
        description=f"{product.name.zh} {quote.plan_code}",
        return_path=f"/applications/{app.id}",
        new_subject=True,
        payment_id=app.payment_id,
    )
    audit.record(
        db,
        "application.submit",
        actor=audit.Actor("user", who.user_id, Role.customer.value),
        subject_type="application",
        subject_id=app.id,
        detail={"product": product.code, "version": version, "premium_fen": app.premium_fen},
    )
    # The share link it came through, if any: a purchase once issued (issuance.issue).
    attribution.record(db, "application", app.id)
    pool.on_sale(db, app.customer_id, app.advisor_id)  # the advisor's pool (crm)
    return Applied(app, payment)


def get(db: Session, who: Principal, application_id: str) -> Application:
    app = db.get(Application, application_id)
    if app is None or (who.role not in READERS and app.customer_id != who.user_id):
        raise NotFound("no such application", detail={"field": "application_id"})
    return app


class PolicyRef(NamedTuple):
    """An issued policy's id and number."""

    id: str
    policy_no: str


def get_with_policy(
    db: Session, who: Principal, application_id: str
) -> tuple[Application, PolicyRef | None]:
    """:func:`get`, with its policy's id and number read in the same statement."""
    row = db.execute(
        select(Application, Policy.id, Policy.policy_no)
        .outerjoin(Policy, Policy.application_id == Application.id)
        .where(Application.id == application_id)
    ).first()
    if row is None or (who.role not in READERS and row[0].customer_id != who.user_id):
        raise NotFound("no such application", detail={"field": "application_id"})
    return row[0], PolicyRef(row[1], row[2]) if row[1] is not None else None


def policy_of(db: Session, app: Application) -> Policy | None:
    return db.scalar(select(Policy).where(Policy.application_id == app.id))


# After payment --------------------------------------------------------------------------


def _underwrite(db: Session, app: Application, quote: Quote | None) -> rules.Decision:
    product, _ = catalog.product_at_version(db, app.product_version_id)
    effective = issuance.effective_date(product, clock.today())
    answers = (
        json.loads(get_cipher().decrypt(app.health_answers_enc, context=HEALTH_CONTEXT))
        if app.health_answers_enc
        else {}
    )
    case = rules.Case(
        product=product,
        plan_code=app.plan_code,
        sum_insured_fen=app.sum_insured_fen,
        premium_fen=app.premium_fen,
        age=age_on(app.insured_birth_date, effective),
        occupation_class=quote.occupation_class if quote else 1,
        health_answers=answers,
        holdings=[
            *holdings_of(db, app.insured_id_index, effective),
            *_referred_holdings(db, app.insured_id_index, app.id),
        ],
    )
    return rules.decide(case, _limits())


def _decline(db: Session, app: Application, reason: str, by: audit.Actor) -> None:
    payment = payments.get_payment(db, app.payment_id or "")
    app.status, app.decision_reason = ApplicationStatus.declined.value, reason
    app.updated_at = clock.now()
    refundable = payments.refundable_fen(db, payment)
    if refundable > 0:
        payments.request_refund(db, payment.id, refundable, f"declined: {reason}")
    trace.system(db, app, "declined", reason=reason, refund_fen=refundable)
    audit.record(
        db,
        "application.decline",
        actor=by,
        subject_type="application",
        subject_id=app.id,
        detail={"reason": reason, "refund_fen": refundable},
    )


def _settle(
    db: Session,
    app: Application,
    decision: rules.Decision,
    by: audit.Actor,
    quote: Quote | None = None,
) -> None:
    trace.system(db, app, "underwriting", outcome=decision.outcome, reason=decision.reason)
    if decision.outcome == "accept":
        issuance.issue(db, app, by=by, quote=quote)
    elif decision.outcome == "decline":
        _decline(db, app, decision.reason or "declined", by)
    else:
        app.status, app.decision_reason = ApplicationStatus.referred.value, decision.reason
        app.updated_at = clock.now()
        audit.record(
            db,
            "application.refer",
            actor=by,
            subject_type="application",
            subject_id=app.id,
            detail={"reason": decision.reason},
        )


@payments.on_succeeded(PURPOSE)
def on_premium_paid(db: Session, payment: Payment) -> None:
    """Underwrite at once (R16), in the payment callback's transaction."""
    app = db.get(Application, payment.subject_id, with_for_update=True)
    if app is None or app.status != ApplicationStatus.pending_payment.value:
        return  # already settled: a duplicate or late callback changes nothing
    quote = db.get(Quote, app.quote_id)  # held here: underwriting and issue both read it
    trace.system(db, app, "paid", payment_id=payment.id, amount_fen=payment.amount_fen)
    _settle(db, app, _underwrite(db, app, quote), audit.SYSTEM, quote)


@payments.on_failed(PURPOSE)
def on_premium_failed(db: Session, payment: Payment) -> None:
    app = db.get(Application, payment.subject_id, with_for_update=True)
    if app is None or app.status != ApplicationStatus.pending_payment.value:
        return
    app.status, app.decision_reason = ApplicationStatus.abandoned.value, payment.status
    app.updated_at = clock.now()
    trace.system(db, app, "payment_" + payment.status)


def referrals(db: Session, who: Principal) -> list[Application]:
    stmt = select(Application).where(Application.status == ApplicationStatus.referred.value)
    if who.role is Role.insurer:
        stmt = stmt.where(Application.insurer_code == who.insurer_code)
    return list(db.scalars(stmt.order_by(Application.updated_at).limit(200)))


class ReferralDecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["accept", "decline"]
    note: str = Field(min_length=2, max_length=500)


def decide_referral(
    db: Session, who: Principal, application_id: str, data: ReferralDecisionIn
) -> Application:
    """A human underwriter (or the insurer's system) decides a referred application."""
    app = db.get(Application, application_id, with_for_update=True)
    if app is None or (who.role is Role.insurer and app.insurer_code != who.insurer_code):
        raise NotFound("no such application", detail={"field": "application_id"})
    if app.status != ApplicationStatus.referred.value:
        raise Conflict(f"the application is {app.status}, not referred", code="not_referred")
    by = audit.Actor(
        "api_key" if who.role is Role.insurer else "user",
        who.api_key_id if who.role is Role.insurer else who.user_id,
        who.role.value if who.role else None,
    )
    app.decided_by = by.id
    trace.system(db, app, "manual_decision", decision=data.decision, note=data.note)
    decision = rules.Decision(data.decision, None if data.decision == "accept" else "underwriter")
    _settle(db, app, decision, by)
    return app


def rotate_field_keys(db: Session) -> int:
    """Re-encrypt this domain's personal data under the active key."""
    from covernet.core.rotation import rotate_column

    columns = (
        (Application.applicant_name_enc, NAME_CONTEXT),
        (Application.applicant_id_enc, ID_CONTEXT),
        (Application.insured_name_enc, NAME_CONTEXT),
        (Application.insured_id_enc, ID_CONTEXT),
        (Application.beneficiaries_enc, BENEFICIARY_CONTEXT),
        (Application.health_answers_enc, HEALTH_CONTEXT),
    )
    return sum(rotate_column(db, Application.id, col, context=ctx) for col, ctx in columns)


def advised_sales(db: Session, *, limit: int = 5000) -> list[tuple[str, str, datetime]]:
    """(customer, advisor, when) of the applications an advisor advised, oldest first."""
    rows = db.execute(
        select(Application.customer_id, Application.advisor_id, Application.created_at)
        .where(Application.advisor_id.is_not(None))
        .order_by(Application.created_at, Application.id)
        .limit(limit)
    )
    return [(c, a, at) for c, a, at in rows if a is not None]


def customers_of(db: Session, application_ids: list[str]) -> dict[str, str]:
    """Application id -> its customer, for the given ids."""
    if not application_ids:
        return {}
    rows = db.execute(
        select(Application.id, Application.customer_id).where(Application.id.in_(application_ids))
    )
    return {i: c for i, c in rows}


def applicant_id_number(db: Session, customer_id: str) -> str | None:
    """The customer's own ID number as last given on an application (decrypted: callers
    mask it unless an unmasked view was granted)."""
    enc = db.scalar(
        select(Application.applicant_id_enc)
        .where(Application.customer_id == customer_id)
        .order_by(Application.created_at.desc(), Application.id.desc())
        .limit(1)
    )
    return get_cipher().decrypt(enc, context=ID_CONTEXT) if enc else None
