"""Insurance red envelopes (R12, R13): a customer pays for gifted cover in shares, friends
grab one each and activate it into a gifted policy in their own name.

- **Create** checks R12 against the catalog (accident or health, at most a year, at most
  100 yuan per recipient), splits the cover (:mod:`covernet.social.split`), stores one
  row per share and opens the payment (purpose ``gift``); the envelope opens when it
  succeeds (:func:`on_gift_paid`, in the callback's transaction).
- **Grab** (:mod:`covernet.social.grabs`) claims free shares with conditional
  ``UPDATE … RETURNING`` statements, many grabs at a time; the unique (envelope,
  grabber) index makes one grab per person whatever the concurrency, and ``sold_out``
  on the envelope answers later grabs without touching the shares.
- **Activate** checks the recipient, the documents they confirmed and underwriting
  (``gifted=True``) and issues the policy through ``issuance.issue``.
- **Expire** (:mod:`covernet.social.tasks`) refunds shares never grabbed or never
  activated, each exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import exists, false, select, update
from sqlalchemy.orm import Session

from covernet.audit import service as audit
from covernet.catalog import service as catalog
from covernet.catalog.pricing import end_date, is_on_sale
from covernet.catalog.spec import HEALTH_LINES, Line, Plan, Product, Term
from covernet.core import clock
from covernet.core.cn_identity import age_on, parse_id_number
from covernet.core.config import get_settings
from covernet.core.crypto import get_blind_index, get_cipher
from covernet.core.errors import Conflict, NotFound, ValidationFailed
from covernet.core.masking import mask_name
from covernet.identity.access import Principal
from covernet.identity.models import Role, User
from covernet.payments import service as payments
from covernet.payments.models import Payment
from covernet.policies import applications, issuance, trace
from covernet.policies.models import Application, ApplicationStatus, Policy, Quote
from covernet.policies.quotes import ID_INDEX_CONTEXT
from covernet.social import split
from covernet.social.models import EnvelopeStatus, RedEnvelope, RedEnvelopeShare, ShareStatus
from covernet.underwriting import rules

PURPOSE = "gift"
SUBJECT = "red_envelope"
GIFT_LINES = frozenset({Line.accident, *HEALTH_LINES})
MAX_GIFT_PREMIUM_FEN = 10_000  # R12: 100 yuan per person per gift
MAX_SHARES = 100
FLOOR_DIVISOR = 5  # a random share gets at least a fifth of the mean premium


def hours(name: str) -> timedelta:
    return timedelta(hours=int(getattr(get_settings(), name, 24)))


class EnvelopeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_code: str = Field(max_length=64)
    plan_code: str = Field(max_length=64)
    term_code: str | None = Field(default=None, max_length=64)
    shares: int = Field(ge=1, le=MAX_SHARES)
    split: Literal["equal", "random"] = "equal"
    greeting: str = Field(default="恭喜发财，平安健康", min_length=1, max_length=60)


class ActivateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=2, max_length=40)
    id_number: str = Field(min_length=15, max_length=20, description="居民身份证号")
    acknowledgements: dict[str, str] = Field(
        default_factory=dict, description="document code -> content_hash confirmed"
    )
    health_answers: dict[str, bool] = Field(default_factory=dict)
    shown: list[applications.ShownIn] = Field(default_factory=list, max_length=50)


def _bad(code: str, message: str, field: str, **extra: object) -> ValidationFailed:
    return ValidationFailed(message, code=code, detail={"field": field, **extra})


# R12 from the catalog -----------------------------------------------------------------


def _term_days_max(term: Term) -> int | None:
    if term.days is not None:
        return term.days
    if term.months is not None:
        return term.months * 31
    if term.years is not None:
        return term.years * 366
    return None  # to an age or whole life


def gift_premium(product: Product, plan: Plan, term_code: str, payment_code: str) -> int:
    """The most any recipient's cover can cost (the recipient's age is not known yet)."""
    rows = [
        r.premium_fen
        for r in plan.premiums
        if r.term in (None, term_code) and r.payment in (None, payment_code)
    ]
    if not rows:
        raise _bad("plan_not_priced", "this plan has no premium for that term", "term_code")
    return max(rows)


@dataclass(frozen=True)
class GiftTerms:
    product: Product
    version_id: int
    plan: Plan
    term: Term
    payment_code: str
    premium_fen: int  # per share, before splitting


def gift_terms(db: Session, data: EnvelopeIn) -> GiftTerms:
    """The product, plan and term as R12 allows them, or a refusal naming the problem."""
    listed = catalog.snapshot(db).get(data.product_code)
    product = listed.product
    if product.line not in GIFT_LINES:
        raise _bad(
            "gift_line_not_allowed",
            f"only accident or health cover may be gifted, not {product.line.value} (R12)",
            "product_code",
            line=product.line.value,
        )
    plan = next((p for p in product.plans if p.code == data.plan_code), None)
    if plan is None:
        raise _bad("unknown_plan", f"no plan '{data.plan_code}'", "plan_code")
    term = next(
        (t for t in product.terms_options if data.term_code in (None, t.code)),
        None,
    )
    if term is None:
        raise _bad("unknown_term", f"no term '{data.term_code}'", "term_code")
    days = _term_days_max(term)
    if days is None or days > 366:
        raise _bad(
            "gift_term_too_long",
            "gifted cover lasts at most one year (R12)",
            "term_code",
            term=term.code,
        )
    payment = product.payment_options[0]
    premium = gift_premium(product, plan, term.code, payment.code)
    if premium > MAX_GIFT_PREMIUM_FEN:
        raise _bad(
            "gift_premium_too_high",
            "a gift may cost at most 100 yuan per recipient (R12)",
            "plan_code",
            premium_fen=premium,
            max_fen=MAX_GIFT_PREMIUM_FEN,
        )
    if not product.giftable:
        raise _bad("product_not_giftable", "this product is not offered as a gift", "product_code")
    if not is_on_sale(product, clock.today()):
        raise _bad("product_not_on_sale", "this product is no longer on sale", "product_code")
    return GiftTerms(product, listed.version_id, plan, term, payment.code, premium)


def plan_shares(terms: GiftTerms, n: int, how: str) -> list[tuple[int, int]]:
    """(premium, cover) per share: equal ones, or random ones adding up exactly."""
    total_premium = terms.premium_fen * n
    total_cover = terms.plan.sum_insured_fen * n
    if how == "equal" or n == 1:
        return [(terms.premium_fen, terms.plan.sum_insured_fen)] * n
    premiums = split.random_split(
        total_premium,
        n,
        floor=max(1, terms.premium_fen // FLOOR_DIVISOR),
        cap=min(MAX_GIFT_PREMIUM_FEN, total_premium),
    )
    covers = split.allocate(total_cover, premiums)
    return list(zip(premiums, covers, strict=True))


# Create and pay ----------------------------------------------------------------------


def add_envelope(
    db: Session,
    terms: GiftTerms,
    shares: list[tuple[int, int]],
    *,
    sender_id: str,
    split: str,
    greeting: str,
    status: EnvelopeStatus,
    sold_out: bool = False,
    opened_at: datetime | None = None,
    expires_at: datetime | None = None,
) -> RedEnvelope:
    """The envelope row for ``shares`` ((premium, cover) each) of ``terms`` (R12 checked);
    the caller adds the share rows.  Used by :func:`create` and by a scenario offer's
    one-share gift (:func:`covernet.social.offers.redeem`)."""
    envelope = RedEnvelope(
        sender_id=sender_id,
        product_code=terms.product.code,
        product_version_id=terms.version_id,
        insurer_code=terms.product.insurer,
        line=terms.product.line.value,
        plan_code=terms.plan.code,
        term_code=terms.term.code,
        payment_code=terms.payment_code,
        split=split,
        greeting=greeting,
        shares_total=len(shares),
        sold_out=sold_out,
        premium_fen=sum(p for p, _ in shares),
        sum_insured_fen=sum(c for _, c in shares),
        refunded_fen=0,
        status=status.value,
        opened_at=opened_at,
        expires_at=expires_at,
    )
    db.add(envelope)
    db.flush()
    return envelope


def create(db: Session, who: Principal, data: EnvelopeIn) -> tuple[RedEnvelope, str]:
    assert who.user_id is not None
    terms = gift_terms(db, data)
    shares = plan_shares(terms, data.shares, data.split)
    envelope = add_envelope(
        db,
        terms,
        shares,
        sender_id=who.user_id,
        split=data.split,
        greeting=data.greeting.strip(),
        status=EnvelopeStatus.pending_payment,
    )
    db.add_all(
        RedEnvelopeShare(
            envelope_id=envelope.id,
            seq=i,
            premium_fen=p,
            sum_insured_fen=c,
            status=ShareStatus.available.value,
        )
        for i, (p, c) in enumerate(shares)
    )
    payment, url = payments.create_payment(
        db,
        purpose=PURPOSE,
        subject_type=SUBJECT,
        subject_id=envelope.id,
        payer_id=who.user_id,
        insurer_code=envelope.insurer_code,
        amount_fen=envelope.premium_fen,
        description=f"红包赠险 {terms.product.name.zh} ×{data.shares}",
        return_path=f"/e/{envelope.id}",
    )
    envelope.payment_id = payment.id
    audit.record(
        db,
        "red_envelope.create",
        actor=audit.Actor("user", who.user_id, Role.customer.value),
        subject_type=SUBJECT,
        subject_id=envelope.id,
        detail={
            "product": envelope.product_code,
            "shares": data.shares,
            "premium_fen": envelope.premium_fen,
        },
    )
    db.flush()
    return envelope, url


@payments.on_succeeded(PURPOSE)
def on_gift_paid(db: Session, payment: Payment) -> None:
    envelope = db.get(RedEnvelope, payment.subject_id, with_for_update=True)
    if envelope is None or envelope.status != EnvelopeStatus.pending_payment.value:
        return
    now = clock.now()
    envelope.status, envelope.opened_at = EnvelopeStatus.open.value, now
    envelope.expires_at = now + hours("red_envelope_open_hours")


@payments.on_failed(PURPOSE)
def on_gift_failed(db: Session, payment: Payment) -> None:
    envelope = db.get(RedEnvelope, payment.subject_id, with_for_update=True)
    if envelope is not None and envelope.status == EnvelopeStatus.pending_payment.value:
        envelope.status = EnvelopeStatus.failed.value


# Grab ----------------------------------------------------------------------------------


def _envelope(db: Session, envelope_id: str) -> RedEnvelope:
    envelope = db.get(RedEnvelope, envelope_id)
    if envelope is None:
        raise NotFound("no such red envelope", code="unknown_envelope")
    return envelope


# Activate ------------------------------------------------------------------------------


def _check_documents(data: ActivateIn, product: Product, db: Session) -> list[Any]:
    docs = applications.documents_for(db, product)
    applications.check_confirmed(data.acknowledgements, docs)
    return docs


def activate(
    db: Session, who: Principal, grab_id: str, data: ActivateIn, *, ip: str, user_agent: str
) -> tuple[RedEnvelopeShare, Policy]:
    share = db.get(RedEnvelopeShare, grab_id, with_for_update=True)
    if share is None or share.grabbed_by != who.user_id:
        raise NotFound("no such grab", code="unknown_grab")
    if share.status == ShareStatus.activated.value:
        raise Conflict("this gift is already activated", code="already_activated")
    now = clock.now()
    if share.status != ShareStatus.held.value or (
        share.hold_until is not None and clock.as_utc(share.hold_until) <= now
    ):
        raise Conflict("the time to activate this gift has passed", code="grab_expired")
    envelope = _envelope(db, share.envelope_id)
    product, version = catalog.product_at_version(db, envelope.product_version_id)
    person = parse_id_number(data.id_number, field="id_number")
    docs = _check_documents(data, product, db)
    today = clock.today()
    effective = issuance.effective_date(product, today)
    index = get_blind_index().digest(person.number, context=ID_INDEX_CONTEXT)
    age = age_on(person.birth_date, effective)
    case = rules.Case(
        product=product,
        plan_code=envelope.plan_code,
        sum_insured_fen=share.sum_insured_fen,
        premium_fen=share.premium_fen,
        age=age,
        occupation_class=1,
        health_answers=data.health_answers,
        holdings=applications.holdings_of(db, index, effective),
        gifted=True,
    )
    decision = rules.decide(case, applications._limits())
    if decision.outcome != "accept":
        raise Conflict(
            f"this gift cannot be activated for you: {decision.reason}",
            code="gift_declined",
            detail={"reason": decision.reason, **decision.detail},
        )
    assert who.user_id is not None
    cipher = get_cipher()
    term = next(t for t in product.terms_options if t.code == envelope.term_code)
    payment = next(p for p in product.payment_options if p.code == envelope.payment_code)
    quote = Quote(
        product_code=product.code,
        product_version_id=envelope.product_version_id,
        plan_code=envelope.plan_code,
        term_code=envelope.term_code,
        payment_code=envelope.payment_code,
        frequency=payment.frequency.value,
        premium_fen=share.premium_fen,
        sum_insured_fen=share.sum_insured_fen,
        insured_birth_date=person.birth_date,
        insured_gender=person.sex,
        insured_age=age,
        insured_id_index=index,
        region=person.area_code[:6],
        occupation_class=1,
        effective_date=effective,
        end_date=end_date(term, effective, person.birth_date),
        customer_id=who.user_id,
        valid_until=now,
    )
    db.add(quote)
    db.flush()
    name = data.name.strip()
    app = Application(
        customer_id=who.user_id,
        quote_id=quote.id,
        product_code=product.code,
        product_version_id=envelope.product_version_id,
        insurer_code=envelope.insurer_code,
        line=envelope.line,
        plan_code=envelope.plan_code,
        term_code=envelope.term_code,
        payment_code=envelope.payment_code,
        premium_fen=share.premium_fen,
        sum_insured_fen=share.sum_insured_fen,
        applicant_name_enc=cipher.encrypt(name, context=applications.NAME_CONTEXT),
        applicant_id_enc=cipher.encrypt(person.number, context=applications.ID_CONTEXT),
        relationship="self",
        insured_name_enc=cipher.encrypt(name, context=applications.NAME_CONTEXT),
        insured_id_enc=cipher.encrypt(person.number, context=applications.ID_CONTEXT),
        insured_id_index=index,
        insured_birth_date=person.birth_date,
        insured_gender=person.sex,
        acknowledgements={
            "documents": {d.code: d.content_hash for d in docs},
            "uncertainty_statement": False,
            "product_version": version,
            "gift": {"envelope_id": envelope.id, "share_id": share.id},
        },
        suitability_warnings=[],
        status=ApplicationStatus.pending_payment.value,
        payment_id=envelope.payment_id,
    )
    db.add(app)
    db.flush()
    trace.record_application(
        db,
        app,
        docs,
        version=version,
        data=applications.ApplicationIn(
            quote_id=quote.id,
            applicant=applications.PersonIn(name=name, id_number=person.number),
            relationship="self",
            acknowledgements=data.acknowledgements,
            shown=data.shown,
        ),
        warnings=[],
        ip=ip,
        user_agent=user_agent,
    )
    trace.system(db, app, "gift", envelope_id=envelope.id, sender_id=envelope.sender_id)
    trace.system(db, app, "underwriting", outcome=decision.outcome, reason=decision.reason)
    by = audit.Actor("user", who.user_id, Role.customer.value)
    policy = issuance.issue(db, app, by=by)
    policy.gifted = True
    share.status, share.activated_at = ShareStatus.activated.value, now
    share.application_id, share.policy_id = app.id, policy.id
    db.flush()
    return share, policy


# Reading -------------------------------------------------------------------------------


def _masked_name(db: Session, user_id: str | None) -> str | None:
    user = db.get(User, user_id) if user_id else None
    return mask_name(user.name) if user is not None and user.name else None


def _share_body(db: Session, share: RedEnvelopeShare) -> dict[str, Any]:
    return {
        "grab_id": share.id,
        "grabbed_by": _masked_name(db, share.grabbed_by),
        "status": share.status,
        "premium_fen": share.premium_fen,
        "sum_insured_fen": share.sum_insured_fen,
        "grabbed_at": share.grabbed_at.isoformat() if share.grabbed_at else None,
        "hold_until": share.hold_until.isoformat() if share.hold_until else None,
        "activated_at": share.activated_at.isoformat() if share.activated_at else None,
        "policy_id": share.policy_id,
    }


def shares_of(db: Session, envelope_id: str) -> list[RedEnvelopeShare]:
    return list(
        db.scalars(
            select(RedEnvelopeShare)
            .where(RedEnvelopeShare.envelope_id == envelope_id)
            .order_by(RedEnvelopeShare.seq)
        )
    )


def view(db: Session, who: Principal, envelope_id: str) -> dict[str, Any]:
    """The public face of an envelope; the sender sees every share, a grabber their own."""
    envelope = _envelope(db, envelope_id)
    product, _ = catalog.product_at_version(db, envelope.product_version_id)
    shares = shares_of(db, envelope.id)
    grabbed = [s for s in shares if s.grabbed_by is not None]
    body: dict[str, Any] = {
        "envelope_id": envelope.id,
        "share_url": f"/e/{envelope.id}",
        "status": envelope.status,
        "greeting": envelope.greeting,
        "product_code": envelope.product_code,
        "product_name": {"zh": product.name.zh, "en": product.name.en},
        "plan_code": envelope.plan_code,
        "split": envelope.split,
        "shares_total": envelope.shares_total,
        "shares_left": sum(1 for s in shares if s.status == ShareStatus.available.value),
        "sum_insured_fen": envelope.sum_insured_fen,
        "expires_at": envelope.expires_at.isoformat() if envelope.expires_at else None,
        "is_sender": who.user_id is not None and who.user_id == envelope.sender_id,
        "my_grab": None,
    }
    mine = next((s for s in grabbed if who.user_id and s.grabbed_by == who.user_id), None)
    if mine is not None:
        body["my_grab"] = _share_body(db, mine)
    if body["is_sender"]:
        payment = payments.get_payment(db, envelope.payment_id) if envelope.payment_id else None
        body.update(
            premium_fen=envelope.premium_fen,
            refunded_fen=envelope.refunded_fen,
            payment_id=envelope.payment_id,
            payment_status=payment.status if payment else None,
            pay_url=payments.pay_url(payment) if payment and payment.status == "pending" else None,
            grabs=[_share_body(db, s) for s in grabbed],
            activated=sum(1 for s in shares if s.status == ShareStatus.activated.value),
            expired=sum(1 for s in shares if s.status == ShareStatus.expired.value),
        )
    return body


# Expiry --------------------------------------------------------------------------------


def expire_envelope(db: Session, envelope: RedEnvelope, now: datetime) -> int:
    """Expire the shares due and refund their premium to the sender once; returns fen."""
    open_over = envelope.expires_at is not None and clock.as_utc(envelope.expires_at) <= now
    due = RedEnvelopeShare.status == ShareStatus.held.value
    stmt = (
        update(RedEnvelopeShare)
        .where(
            RedEnvelopeShare.envelope_id == envelope.id,
            (due & (RedEnvelopeShare.hold_until <= now))
            | ((RedEnvelopeShare.status == ShareStatus.available.value) if open_over else false()),
        )
        .values(status=ShareStatus.expired.value, expired_at=now)
        .returning(RedEnvelopeShare.premium_fen)
    )
    amount = sum(db.scalars(stmt).all())
    if amount:
        assert envelope.payment_id is not None
        payments.request_refund(
            db, envelope.payment_id, amount, f"red envelope {envelope.id}: shares unclaimed"
        )
        envelope.refunded_fen += amount
        audit.record(
            db,
            "red_envelope.refund",
            actor=audit.SYSTEM,
            subject_type=SUBJECT,
            subject_id=envelope.id,
            detail={"refund_fen": amount},
        )
    left = db.scalar(
        select(
            exists().where(
                RedEnvelopeShare.envelope_id == envelope.id,
                RedEnvelopeShare.status.in_([ShareStatus.available.value, ShareStatus.held.value]),
            )
        )
    )
    if not left:
        envelope.status = EnvelopeStatus.closed.value
    return amount


def envelopes_sent_by(db: Session, sender_id: str, *, limit: int = 100) -> list[RedEnvelope]:
    return list(
        db.scalars(
            select(RedEnvelope)
            .where(RedEnvelope.sender_id == sender_id)
            .order_by(RedEnvelope.created_at.desc(), RedEnvelope.id.desc())
            .limit(limit)
        )
    )


def grabs_by(db: Session, user_id: str, *, limit: int = 100) -> list[RedEnvelopeShare]:
    return list(
        db.scalars(
            select(RedEnvelopeShare)
            .where(RedEnvelopeShare.grabbed_by == user_id)
            .order_by(RedEnvelopeShare.grabbed_at.desc(), RedEnvelopeShare.id.desc())
            .limit(limit)
        )
    )
