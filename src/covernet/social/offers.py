"""Scenario offers: a partner's signed event becomes an offer to the person it names.

Each offer event type (``hospital.payment``, ``order.placed``, ``flight.booked``,
``steps.milestone``, ``points.earned``) has a handler registered with the partner event
registry (:func:`covernet.partners.events.handles`; one handler per type, so the offer
types are distinct from the claims domain's ``flight.delayed`` and ``order.returned``).
The handler runs in the event's transaction, after the event id was claimed, so a
forged, stale or replayed event never reaches it and a refused one leaves nothing.

For every rule in force for the type (:func:`offer_rules.effective`), in order:

1. the funnel counts an ``event`` for the rule; conditions that do not hold end there;
2. the person is the registered customer whose mobile has the event's blind index
   (the number itself is never stored or logged), else ``suppressed: unknown_person``;
3. marketing consent (:func:`covernet.crm.consents.has_consent`), else
   ``suppressed: no_marketing_consent``;
4. under the person's lock row (``offer_people``, ``FOR UPDATE`` on PostgreSQL, the
   write lock on SQLite) the rule's cap per person and the daily cap over all rules
   are counted, else ``suppressed: frequency_cap`` / ``daily_cap`` — two events for one
   person at once queue on that lock, so neither cap can be passed;
5. the offer (an unguessable token for ``/o/{token}``, the quote's inputs from the event,
   an expiry) and its notification; in quiet hours the notification is queued to be
   sent when they end (``notify.send(send_after=…)``).

The partner's answer says only ``accepted``: whether someone is a customer, agreed to
offers or was capped is not the partner's to learn.

Conversion (``offer_funnel_events``, each step once per offer): ``shown`` when the
landing page is opened, ``quote`` when its one tap makes the quote, ``purchase`` when a
policy is issued — for a quote, by the premium payment of an application made from the
offer's quote (the ``premium`` payment handler, after the policies domain issued it);
for a gift, when the redeemed share is activated through the red envelope path.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from covernet.audit import service as audit
from covernet.catalog import service as catalog
from covernet.catalog.spec import Product
from covernet.core import clock
from covernet.core.cn_identity import normalize_mobile
from covernet.core.config import get_settings
from covernet.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from covernet.crm import consents
from covernet.crm.consent_models import Purpose
from covernet.identity import service as identity
from covernet.identity.access import Principal
from covernet.identity.models import Role, User
from covernet.notify import service as notify
from covernet.partners.events import Outcome, Received, handles
from covernet.payments import service as payments
from covernet.payments.models import Payment
from covernet.policies import applications
from covernet.policies.models import Application, Policy
from covernet.social import offer_rules as rules
from covernet.social import service as envelopes
from covernet.social.models import EnvelopeStatus, RedEnvelopeShare, ShareStatus
from covernet.social.offer_models import (
    FunnelKind,
    Offer,
    OfferFunnelEvent,
    OfferKind,
    OfferPerson,
    OfferStatus,
    SuppressReason,
)

SUBJECT = "offer"
TOPIC = "offer"


# Time rules (pure) -----------------------------------------------------------------


def quiet_until(now: datetime, quiet: rules.QuietHours) -> datetime | None:
    """When the quiet hours that ``now`` falls in end (UTC), or ``None`` outside them."""
    zone = ZoneInfo(quiet.timezone)
    local = now.astimezone(zone)
    start, end, at = quiet.start, quiet.end, local.time().replace(tzinfo=None)
    if start == end:
        return None
    if start < end:
        inside, next_day = start <= at < end, False
    else:  # overnight, e.g. 21:00-08:00
        inside, next_day = at >= start or at < end, at >= start
    if not inside:
        return None
    day = local.date() + timedelta(days=1 if next_day else 0)
    return datetime.combine(day, end, tzinfo=zone).astimezone(UTC)


def trip_term(product: Product, days: int) -> str | None:
    """The shortest term of fixed days covering a trip of ``days``."""
    fitting = sorted(
        (t for t in product.terms_options if t.days is not None and t.days >= days),
        key=lambda t: t.days or 0,
    )
    return fitting[0].code if fitting else None


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def quote_inputs(rule: rules.Rule, product: Product, data: BaseModel) -> dict[str, str]:
    """The quote form's values pre-filled from the event (the person's facts only as the
    partner sent them; never the mobile)."""
    offer = rule.offer
    assert isinstance(offer, rules.QuoteOffer)
    values = rules.attributes(rule.event, data)
    term = offer.term
    if term == "trip":
        term = trip_term(product, int(values["trip_days"]))
    out: dict[str, str] = {"plan_code": offer.plan}
    if term:
        out["term"] = term
    if offer.payment:
        out["payment"] = offer.payment
    if offer.order_amount_from:
        out["order_amount"] = _yuan(int(values[offer.order_amount_from]))
    for name in ("birth_date", "gender", "region"):
        if values.get(name) is not None:
            out[name] = str(values[name])
    if isinstance(data, rules.FlightBooked):
        out["start_date"] = data.departure_date.isoformat()
    return out


# Receiving events ----------------------------------------------------------------------


def customer_by_mobile(db: Session, mobile: str) -> User | None:
    """The registered customer with this mobile, found by its blind index."""
    try:
        number = normalize_mobile(mobile, field="data.mobile")
    except ValidationFailed:  # a number that is no mainland mobile names nobody
        return None
    return db.scalar(
        select(User).where(
            User.mobile_index == identity.mobile_index(number),
            User.role == Role.customer.value,
        )
    )


def _funnel(
    db: Session,
    rule_code: str,
    kind: FunnelKind,
    *,
    offer_id: str | None = None,
    reason: SuppressReason | None = None,
    event_key: str | None = None,
) -> None:
    db.add(
        OfferFunnelEvent(
            rule_code=rule_code,
            kind=kind.value,
            reason=reason.value if reason else None,
            offer_id=offer_id,
            event_key=event_key,
            at=clock.now(),
        )
    )


def _step(db: Session, offer: Offer, kind: FunnelKind) -> bool:
    """Count ``kind`` for the offer once (the caller holds the offer's row lock)."""
    done = db.scalar(
        select(OfferFunnelEvent.id).where(
            OfferFunnelEvent.offer_id == offer.id, OfferFunnelEvent.kind == kind.value
        )
    )
    if done is not None:
        return False
    _funnel(db, offer.rule_code, kind, offer_id=offer.id)
    return True


def _lock_person(db: Session, user_id: str) -> None:
    """Take the person's lock row (made on first use), so caps are counted alone."""
    dialect = db.get_bind().dialect.name
    maker = pg_insert if dialect == "postgresql" else sqlite_insert
    db.execute(maker(OfferPerson).values(user_id=user_id).on_conflict_do_nothing())
    db.execute(select(OfferPerson).where(OfferPerson.user_id == user_id).with_for_update())


def _count(db: Session, user_id: str, since: datetime, rule_code: str | None = None) -> int:
    stmt = (
        select(func.count())
        .select_from(Offer)
        .where(Offer.user_id == user_id, Offer.created_at >= since)
    )
    if rule_code is not None:
        stmt = stmt.where(Offer.rule_code == rule_code)
    return int(db.scalar(stmt) or 0)


def _capped(
    db: Session, user_id: str, rule: rules.Rule, config: rules.OffersConfig, now: datetime
) -> SuppressReason | None:
    if _count(db, user_id, now - timedelta(days=rule.cap.days), rule.code) >= rule.cap.max:
        return SuppressReason.frequency_cap
    local_midnight = datetime.combine(clock.to_local(now).date(), datetime.min.time())
    day_start = local_midnight.replace(tzinfo=clock.SHANGHAI).astimezone(UTC)
    if _count(db, user_id, day_start) >= config.daily_cap:
        return SuppressReason.daily_cap
    return None


@dataclass
class Considered:
    """What one event did, per rule."""

    offers: list[Offer] = field(default_factory=list)
    suppressed: dict[str, str] = field(default_factory=dict)  # rule -> reason
    unmatched: list[str] = field(default_factory=list)


def consider(db: Session, received: Received, data: BaseModel) -> Considered:
    """Every rule in force for the event's type, as the module's docstring says."""
    config = rules.file_config()
    values = rules.attributes(received.type, data)
    mobile = str(values.get("mobile", ""))
    person: User | None = None
    looked_up = False
    result = Considered()
    now = clock.now()
    for found in rules.effective(db, config):
        rule = found.rule
        if rule.event != received.type or not rule.enabled:
            continue
        _funnel(db, rule.code, FunnelKind.event, event_key=received.key)
        if not rule.matches(values):
            result.unmatched.append(rule.code)
            continue
        if not looked_up:
            person, looked_up = customer_by_mobile(db, mobile), True
        reason: SuppressReason | None = None
        if person is None:
            reason = SuppressReason.unknown_person
        elif not consents.has_consent(db, person.id, Purpose.marketing_offers):
            reason = SuppressReason.no_marketing_consent
        else:
            _lock_person(db, person.id)
            reason = _capped(db, person.id, rule, config, now)
        if reason is not None or person is None:
            assert reason is not None
            _funnel(db, rule.code, FunnelKind.suppressed, reason=reason, event_key=received.key)
            result.suppressed[rule.code] = reason.value
            continue
        offer = _make_offer(db, received, data, found, person, config, now)
        result.offers.append(offer)
    db.flush()
    return result


def _make_offer(
    db: Session,
    received: Received,
    data: BaseModel,
    found: rules.Effective,
    person: User,
    config: rules.OffersConfig,
    now: datetime,
) -> Offer:
    rule = found.rule
    product = catalog.snapshot(db).get(rule.offer.product).product
    gift = isinstance(rule.offer, rules.GiftOffer)
    quiet = quiet_until(now, rules.quiet_hours_of(rule, config))
    offer = Offer(
        token=secrets.token_urlsafe(24),
        rule_code=rule.code,
        rule_version=found.version,
        kind=(OfferKind.gift if gift else OfferKind.quote).value,
        user_id=person.id,
        partner_code=received.partner_code,
        event_key=received.key,
        event_type=received.type,
        product_code=product.code,
        plan_code=rule.offer.plan,
        inputs={} if gift else quote_inputs(rule, product, data),
        redeem_with=rule.offer.redeem_with if isinstance(rule.offer, rules.GiftOffer) else None,
        redeem_cost=rule.offer.cost if isinstance(rule.offer, rules.GiftOffer) else None,
        status=OfferStatus.created.value,
        expires_at=now + timedelta(hours=rule.expires_hours),
        notify_after=quiet,
        created_at=now,
    )
    db.add(offer)
    db.flush()
    _funnel(db, rule.code, FunnelKind.offer, offer_id=offer.id, event_key=received.key)
    db.execute(
        OfferPerson.__table__.update()  # type: ignore[attr-defined]
        .where(OfferPerson.user_id == person.id)
        .values(last_offer_at=now)
    )
    url = get_settings().public_url.rstrip("/") + f"/o/{offer.token}"
    until = clock.to_local(offer.expires_at).strftime("%m-%d %H:%M")
    notify.send(
        db,
        user_id=person.id,
        topic=TOPIC,
        subject_type=SUBJECT,
        subject_id=offer.id,
        title=rule.title.zh,
        body=f"{rule.title.zh}：{url} （{until}前有效；不想再收到可在“我的账户”撤回同意）",
        title_en=rule.title.en,
        body_en=f"{rule.title.en}: {url} (until {until}; withdraw consent under My account)",
        send_after=quiet,
    )
    return offer


def _handle(db: Session, received: Received, data: BaseModel) -> Outcome:
    """The registered handler of every offer event type.  No audit entry per event: the
    funnel rows are the record, and every event appending to the one audit chain would
    serialise all partners' events on its head row."""
    consider(db, received, data)
    return Outcome(result="accepted")


for _type, _model in rules.EVENT_TYPES.items():
    handles(_type, _model)(_handle)


# The landing page ------------------------------------------------------------------------


def by_token(db: Session, token: str, *, lock: bool = False) -> Offer:
    offer = None
    if 16 <= len(token) <= 40:
        stmt = select(Offer).where(Offer.token == token)
        if lock:
            stmt = stmt.with_for_update()
        offer = db.scalar(stmt)
    if offer is None:
        raise NotFound("no such offer", code="unknown_offer")
    return offer


def is_expired(offer: Offer, now: datetime | None = None) -> bool:
    return clock.as_utc(offer.expires_at) <= (now or clock.now())


def mark_shown(db: Session, offer: Offer) -> None:
    """The landing page was opened: counted once per offer."""
    if offer.shown_at is not None:
        return
    locked = by_token(db, offer.token, lock=True)
    if locked.shown_at is None:
        locked.shown_at = clock.now()
        if locked.status == OfferStatus.created.value:
            locked.status = OfferStatus.shown.value
        _step(db, locked, FunnelKind.shown)
        db.flush()


def _open(db: Session, token: str) -> Offer:
    offer = by_token(db, token, lock=True)
    if is_expired(offer):
        raise Conflict("this offer has expired", code="offer_expired")
    return offer


def quote_start(offer: Offer) -> date | None:
    raw = offer.inputs.get("start_date")
    return date.fromisoformat(raw) if raw else None


def record_quote(db: Session, token: str, quote_id: str) -> Offer:
    """The one tap made ``quote_id`` from the offer (the caller made the quote)."""
    offer = _open(db, token)
    if offer.kind != OfferKind.quote.value:
        raise Conflict("this offer is a gift, not a quote", code="offer_is_gift")
    offer.quote_id, offer.quoted_at = quote_id, clock.now()
    if offer.status in (OfferStatus.created.value, OfferStatus.shown.value):
        offer.status = OfferStatus.quoted.value
    _step(db, offer, FunnelKind.quote)
    db.flush()
    return offer


@payments.on_succeeded(applications.PURPOSE)
def on_premium_paid(db: Session, payment: Payment) -> None:
    """A purchase from an offer's quote: counted once its policy is issued (this runs
    after the policies domain's own handler in the same callback)."""
    if payment.subject_type != applications.SUBJECT:
        return
    offer = db.scalar(  # the offer whose quote the application was made from, if any
        select(Offer)
        .join(Application, Application.quote_id == Offer.quote_id)
        .where(Application.id == payment.subject_id)
        .with_for_update(of=Offer)
    )
    if offer is None:
        return
    app = db.get(Application, payment.subject_id)
    policy = applications.policy_of(db, app) if app is not None else None
    if policy is None:  # declined or referred: not bought (yet)
        return
    _purchased(db, offer, policy)


def _purchased(db: Session, offer: Offer, policy: Policy) -> None:
    offer.status, offer.policy_id, offer.purchased_at = (
        OfferStatus.purchased.value,
        policy.id,
        clock.now(),
    )
    _step(db, offer, FunnelKind.purchase)
    db.flush()


# Gifts: redeemed with points or steps, activated as a red envelope share --------------


def _own(offer: Offer, who: Principal) -> None:
    if who.user_id != offer.user_id:
        raise Forbidden("this gift was offered to someone else", code="offer_not_yours")


def redeem(db: Session, who: Principal, token: str) -> RedEnvelopeShare:
    """Take the gift: R12 checked against the catalog as for a red envelope
    (:func:`covernet.social.service.gift_terms`), then a one-share envelope held for the
    person until the offer expires, activated by :func:`activate`.  The sponsor (the
    partner whose points or steps are redeemed) prepays the premium to the insurer, as
    partners do for embedded micro-policies (R11): nothing is collected here."""
    offer = _open(db, token)
    _own(offer, who)
    if offer.kind != OfferKind.gift.value:
        raise Conflict("this offer is a quote, not a gift", code="offer_not_gift")
    if offer.share_id is not None:
        share = db.get(RedEnvelopeShare, offer.share_id)
        assert share is not None
        return share
    terms = envelopes.gift_terms(
        db,
        envelopes.EnvelopeIn(product_code=offer.product_code, plan_code=offer.plan_code, shares=1),
    )
    ((premium, cover),) = envelopes.plan_shares(terms, 1, "equal")
    now = clock.now()
    envelope = envelopes.add_envelope(
        db,
        terms,
        [(premium, cover)],
        sender_id=offer.user_id,  # sponsored: the recipient's own single-share envelope
        split="equal",
        greeting=terms.product.name.zh[:60],
        status=EnvelopeStatus.closed,  # nothing to grab or refund
        sold_out=True,
        opened_at=now,
        expires_at=offer.expires_at,
    )
    share = RedEnvelopeShare(
        envelope_id=envelope.id,
        seq=0,
        premium_fen=premium,
        sum_insured_fen=cover,
        status=ShareStatus.held.value,
        grabbed_by=offer.user_id,
        grabbed_at=now,
        hold_until=offer.expires_at,
    )
    db.add(share)
    db.flush()
    offer.share_id, offer.status = share.id, OfferStatus.redeemed.value
    audit.record(
        db,
        "offer.gift_redeemed",
        actor=audit.Actor("user", offer.user_id, Role.customer.value),
        subject_type=SUBJECT,
        subject_id=offer.id,
        detail={
            "rule": offer.rule_code,
            "sponsor": offer.partner_code,
            "insurer": envelope.insurer_code,
            "product": envelope.product_code,
            "premium_fen": premium,
            "redeem_with": offer.redeem_with,
            "redeem_cost": offer.redeem_cost,
        },
    )
    db.flush()
    return share


def activate(
    db: Session,
    who: Principal,
    token: str,
    data: envelopes.ActivateIn,
    *,
    ip: str,
    user_agent: str,
) -> Policy:
    """Activate a redeemed gift exactly as a red envelope share is activated."""
    offer = by_token(db, token, lock=True)
    _own(offer, who)
    if offer.share_id is None:
        raise Conflict("redeem the gift first", code="offer_not_redeemed")
    _, policy = envelopes.activate(db, who, offer.share_id, data, ip=ip, user_agent=user_agent)
    _purchased(db, offer, policy)
    return policy


# Conversion per rule --------------------------------------------------------------------


@dataclass
class RuleFunnel:
    code: str
    counts: dict[str, int]
    suppressed: dict[str, int]

    @property
    def conversion(self) -> float | None:
        offers = self.counts.get("offer", 0)
        return round(100 * self.counts.get("purchase", 0) / offers, 1) if offers else None


def funnel(db: Session) -> dict[str, RuleFunnel]:
    out: dict[str, RuleFunnel] = {}
    rows = db.execute(
        select(
            OfferFunnelEvent.rule_code,
            OfferFunnelEvent.kind,
            OfferFunnelEvent.reason,
            func.count(),
        ).group_by(OfferFunnelEvent.rule_code, OfferFunnelEvent.kind, OfferFunnelEvent.reason)
    )
    for code, kind, reason, n in rows:
        item = out.setdefault(code, RuleFunnel(code, {k.value: 0 for k in FunnelKind}, {}))
        item.counts[kind] = item.counts.get(kind, 0) + int(n)
        if kind == FunnelKind.suppressed.value and reason:
            item.suppressed[reason] = item.suppressed.get(reason, 0) + int(n)
    return out


def recent(db: Session, limit: int = 20) -> list[dict[str, Any]]:
    """The newest offers for the console, the person's mobile masked."""
    rows = db.execute(
        select(Offer, User)
        .join(User, User.id == Offer.user_id)
        .order_by(Offer.created_at.desc())
        .limit(limit)
    )
    return [
        {
            "rule_code": o.rule_code,
            "rule_version": o.rule_version,
            "status": o.status,
            "person": identity.masked_mobile(u),
            "created_at": o.created_at,
            "notify_after": o.notify_after,
            "expires_at": o.expires_at,
        }
        for o, u in rows
    ]
