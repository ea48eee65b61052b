"""Payments: create, receive provider callbacks, refund, expire, monitor.

Other domains call only the functions here.  A payment is for a *subject* (an
application, an endorsement, …) named by ``purpose``, ``subject_type`` and
``subject_id``; whoever owns the subject learns of the outcome through handlers
registered with :func:`on_succeeded`, :func:`on_failed` and :func:`on_refunded`,
which run in the callback's transaction.  Payouts (``request_payout``,
``retry_payout``, ``on_payout_succeeded``, ``on_payout_failed``) live in
:mod:`covernet.payments.payouts` and are re-exported here.

Every state change of a payment takes the payment's row lock first (``SELECT … FOR
UPDATE`` on PostgreSQL; on SQLite a write that takes the database's write lock), so
duplicate and concurrent callbacks queue and each event is processed exactly once.
Callbacks are never trusted for the amount: it must equal the payment's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import NamedTuple

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from covernet.audit import service as audit
from covernet.catalog import service as catalog
from covernet.core import clock
from covernet.core.config import get_settings
from covernet.core.db import is_postgres
from covernet.core.errors import Conflict, NotFound, ValidationFailed
from covernet.core.ids import new_id
from covernet.payments import ledger, payouts, providers
from covernet.payments.errors import LedgerRefused
from covernet.payments.handlers import Handlers
from covernet.payments.models import (
    LIVE_STATUSES,
    Payment,
    PaymentStatus,
    ProviderEvent,
    Refund,
    RefundStatus,
)
from covernet.payments.payouts import attempts_of as attempts_of
from covernet.payments.payouts import get_payout as get_payout
from covernet.payments.payouts import on_payout_failed as on_payout_failed
from covernet.payments.payouts import on_payout_succeeded as on_payout_succeeded
from covernet.payments.payouts import payout_for as payout_for
from covernet.payments.payouts import request_payout as request_payout
from covernet.payments.payouts import retry_payout as retry_payout
from covernet.payments.providers.base import (
    PAYOUT_EVENT_KINDS,
    CallbackEvent,
    EventKind,
    RemoteStatus,
)

PaymentHandler = Callable[[Session, Payment], None]
RefundHandler = Callable[[Session, Payment, Refund], None]

_succeeded: Handlers[PaymentHandler] = Handlers()
_failed: Handlers[PaymentHandler] = Handlers()
_refunded: Handlers[RefundHandler] = Handlers()

LATE_PAYMENT_REASON = "late_payment"


def on_succeeded(purpose: str) -> Callable[[PaymentHandler], PaymentHandler]:
    """Register ``handler(db, payment)`` for payments of ``purpose`` that succeed."""
    return _succeeded.register(purpose)


def on_failed(purpose: str) -> Callable[[PaymentHandler], PaymentHandler]:
    """Register ``handler(db, payment)`` for payments that fail or expire
    (``payment.status`` says which)."""
    return _failed.register(purpose)


def on_refunded(purpose: str) -> Callable[[RefundHandler], RefundHandler]:
    """Register ``handler(db, payment, refund)`` for refunds the provider confirmed."""
    return _refunded.register(purpose)


# Reading ---------------------------------------------------------------------------------


def get_payment(db: Session, payment_id: str) -> Payment:
    payment = db.get(Payment, payment_id)
    if payment is None:
        raise NotFound("no such payment", code="unknown_payment", detail={"field": "payment_id"})
    return payment


def payment_for(db: Session, *, purpose: str, subject_type: str, subject_id: str) -> Payment | None:
    """The subject's latest payment for ``purpose`` (None if there is none)."""
    return db.scalar(
        select(Payment)
        .where(
            Payment.purpose == purpose,
            Payment.subject_type == subject_type,
            Payment.subject_id == subject_id,
        )
        .order_by(Payment.created_at.desc(), Payment.id.desc())
        .limit(1)
    )


def refunds_of(db: Session, payment_id: str) -> list[Refund]:
    return list(
        db.scalars(
            select(Refund).where(Refund.payment_id == payment_id).order_by(Refund.created_at)
        )
    )


def get_refund(db: Session, refund_id: str) -> Refund | None:
    return db.get(Refund, refund_id)


def refundable_fen(db: Session, payment: Payment) -> int:
    """Paid minus what is refunded or being refunded."""
    if payment.paid_at is None:
        return 0
    taken = db.scalar(
        select(func.coalesce(func.sum(Refund.amount_fen), 0)).where(
            Refund.payment_id == payment.id,
            Refund.status.in_([RefundStatus.requested.value, RefundStatus.succeeded.value]),
        )
    )
    return payment.amount_fen - int(taken or 0)


class PaymentState(NamedTuple):
    """A payment's status and pay page, read without loading the payment."""

    status: str
    pay_url: str | None


def state_of(db: Session, payment_id: str) -> PaymentState | None:
    row = db.execute(
        select(Payment.status, Payment.pay_url).where(Payment.id == payment_id)
    ).first()
    return PaymentState(row[0], row[1]) if row is not None else None


def pay_url(payment: Payment | PaymentState) -> str:
    """Where to send the payer (the provider's page)."""
    return payment.pay_url or ""


def payee_of(db: Session, payment: Payment) -> tuple[str, str]:
    """(insurer's legal name, its premium account) the money is paid to (R11)."""
    insurer = catalog.snapshot(db).insurers.get(payment.insurer_code)
    if insurer is None:
        return payment.insurer_code, ledger.premium_account(payment.insurer_code)
    return insurer.legal_name.zh, insurer.premium_account


# Creating --------------------------------------------------------------------------------


def create_payment(
    db: Session,
    *,
    purpose: str,
    subject_type: str,
    subject_id: str,
    payer_id: str,
    insurer_code: str,
    amount_fen: int,
    description: str,
    return_path: str | None = None,
    new_subject: bool = False,
    payment_id: str | None = None,
) -> tuple[Payment, str]:
    """Open a payment with the configured provider; returns it and the pay URL.

    Asking again for a subject whose payment is still payable returns that payment
    (same amount and payer) instead of a second one; a paid subject is refused.  A
    ``new_subject`` (made in this same transaction) has no payment yet, so nothing is
    looked up; ``payment_id`` is the id to give the payment (default: a new one).
    """
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int) or amount_fen <= 0:
        raise ValidationFailed(
            "the amount is a positive whole number of fen",
            code="invalid_amount",
            detail={"field": "amount_fen"},
        )
    if insurer_code not in catalog.snapshot(db).insurers:
        raise ValidationFailed(
            f"no insurer '{insurer_code}'",
            code="unknown_insurer",
            detail={"field": "insurer_code"},
        )
    if return_path is not None and (
        not return_path.startswith("/") or return_path.startswith("//")
    ):
        raise ValidationFailed(
            "return_path is a path on this site",
            code="invalid_return_path",
            detail={"field": "return_path"},
        )
    live = (
        None
        if new_subject
        else db.scalar(
            select(Payment).where(
                Payment.purpose == purpose,
                Payment.subject_type == subject_type,
                Payment.subject_id == subject_id,
                Payment.status.in_(LIVE_STATUSES),
            )
        )
    )
    if live is not None:
        live = _lock(db, live.id)
        if (
            live.status == PaymentStatus.pending.value
            and clock.as_utc(live.expires_at) <= clock.now()
        ):
            _expire(db, live)
        elif live.status == PaymentStatus.succeeded.value:
            raise Conflict(
                "this is already paid", code="already_paid", detail={"payment_id": live.id}
            )
        elif live.amount_fen != amount_fen or live.payer_id != payer_id:
            raise Conflict(
                "a different payment for this is still open",
                code="payment_pending",
                detail={"payment_id": live.id},
            )
        else:
            return live, pay_url(live)
    provider = providers.get()
    now = clock.now()
    payment = Payment(
        id=payment_id or new_id(),
        provider=provider.name,
        purpose=purpose,
        subject_type=subject_type,
        subject_id=subject_id,
        payer_id=payer_id,
        insurer_code=insurer_code,
        amount_fen=amount_fen,
        currency="CNY",
        description=description[:200],
        return_path=return_path,
        status=PaymentStatus.pending.value,
        expires_at=now + timedelta(minutes=get_settings().payment_valid_minutes),
        created_at=now,
        updated_at=now,
    )

    def open_with_provider() -> None:
        # The provider's order first: the payment row is written with its reference.
        created = provider.create(db, payment)
        payment.provider_ref, payment.pay_url = created.provider_ref, created.pay_url
        db.add(payment)

    if new_subject:
        open_with_provider()  # written with the subject, at the flush below
    else:
        try:
            with db.begin_nested():
                open_with_provider()
                db.flush()
        except IntegrityError:
            raise Conflict(
                "another payment for this was opened at the same moment", code="payment_pending"
            ) from None
    audit.record(
        db,
        "payment.create",
        actor=audit.Actor("user", payer_id),
        subject_type="payment",
        subject_id=payment.id,
        detail={
            "purpose": purpose,
            "subject_type": subject_type,
            "subject_id": subject_id,
            "amount_fen": amount_fen,
            "insurer_code": insurer_code,
            "provider": provider.name,
        },
    )
    return payment, pay_url(payment)


# Locking and transitions -----------------------------------------------------------------


def _lock(db: Session, payment_id: str) -> Payment:
    """The payment, row-locked for the rest of the transaction."""
    if not is_postgres(db):
        # SQLite: take the database's write lock now, before anything is read.
        db.execute(
            update(Payment)
            .where(Payment.id == payment_id)
            .values(updated_at=Payment.updated_at)
            .execution_options(synchronize_session=False)
        )
    payment = db.scalar(
        select(Payment)
        .where(Payment.id == payment_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if payment is None:
        raise NotFound("no such payment", code="unknown_payment", detail={"field": "payment_id"})
    return payment


def _status(db: Session, payment: Payment, status: PaymentStatus, **detail: object) -> None:
    previous = payment.status
    payment.status = status.value
    payment.updated_at = clock.now()
    if status is not PaymentStatus.pending:
        payment.closed_at = payment.closed_at or clock.now()
    db.flush()
    audit.record(
        db,
        f"payment.{status.value}",
        subject_type="payment",
        subject_id=payment.id,
        detail={"from": previous, "to": status.value, **detail},
    )


def _book_move(
    db: Session, reference: str, payment: Payment, amount_fen: int, *, to_premium: bool
) -> None:
    """Book ``amount_fen`` between the provider's clearing account and the insurer's
    premium account (into premium for a payment, out of it for a refund)."""
    premium, clearing = (
        ledger.premium_account(payment.insurer_code),
        ledger.clearing_account(payment.provider),
    )
    source, target = (clearing, premium) if to_premium else (premium, clearing)
    ledger.book(
        db,
        reference,
        [(source, -amount_fen), (target, amount_fen)],
        currency=payment.currency,
        payment_id=payment.id,
    )


def _book_premium(db: Session, payment: Payment) -> None:
    try:
        _book_move(db, f"payment:{payment.id}", payment, payment.amount_fen, to_premium=True)
    except LedgerRefused as refused:
        if refused.code != "ledger_duplicate":
            raise  # already booked: the money is on the books once


def _mark_paid(db: Session, payment: Payment, provider_ref: str | None) -> None:
    """Money arrived: book it; a pending payment succeeds, a closed one is refunded."""
    _book_premium(db, payment)  # first: the payment's row is then written once, below
    payment.paid_at = clock.now()
    if provider_ref:
        payment.provider_ref = provider_ref
    if payment.status == PaymentStatus.pending.value:
        _status(db, payment, PaymentStatus.succeeded)
        for handler in _succeeded.of(payment.purpose):
            handler(db, payment)
        return
    audit.record(
        db,
        "payment.paid_late",
        subject_type="payment",
        subject_id=payment.id,
        detail={"status": payment.status, "amount_fen": payment.amount_fen},
    )
    _start_refund(db, payment, payment.amount_fen, LATE_PAYMENT_REASON, audit.SYSTEM)


def _mark_failed(db: Session, payment: Payment, status: PaymentStatus, reason: str | None) -> None:
    _status(db, payment, status, **({"reason": reason} if reason else {}))
    for handler in _failed.of(payment.purpose):
        handler(db, payment)


def _expire(db: Session, payment: Payment) -> None:
    _mark_failed(db, payment, PaymentStatus.expired, None)


# Callbacks -------------------------------------------------------------------------------


class Outcome(StrEnum):
    processed = "processed"
    duplicate = "duplicate"
    ignored = "ignored"  # out of order or already in that state
    amount_mismatch = "amount_mismatch"


@dataclass(frozen=True)
class Handled:
    outcome: Outcome
    payment_id: str

    @property
    def accepted(self) -> bool:
        return self.outcome is not Outcome.amount_mismatch


def handle_event(db: Session, provider_name: str, event: CallbackEvent) -> Handled:
    """Apply a verified callback exactly once (see the module docstring).  Payout events
    go to :func:`covernet.payments.payouts.handle_event` (``payment_id`` then names the
    payout)."""
    if event.kind in PAYOUT_EVENT_KINDS:
        outcome = Outcome(payouts.handle_event(db, provider_name, event))
        return Handled(outcome, event.payout_id or "")
    payment = _lock(db, event.payment_id)
    if payment.provider != provider_name:
        raise NotFound("no such payment", code="unknown_payment")
    # Read after the lock (a statement of its own, so it sees what a concurrent twin
    # committed while this one waited).
    seen = db.scalar(
        select(ProviderEvent.id).where(
            ProviderEvent.provider == provider_name, ProviderEvent.event_id == event.event_id
        )
    )
    if seen is not None:
        return Handled(Outcome.duplicate, payment.id)
    outcome = _apply(db, payment, event)
    if outcome is Outcome.amount_mismatch:
        return Handled(outcome, payment.id)  # not remembered: a correct resend is still heard
    db.add(
        ProviderEvent(
            provider=provider_name,
            event_id=event.event_id,
            kind=event.kind.value,
            payment_id=payment.id,
            outcome=outcome.value,
        )
    )
    db.flush()
    return Handled(outcome, payment.id)


def _mismatch(db: Session, payment: Payment, event: CallbackEvent, expected: int) -> Outcome:
    audit.record(
        db,
        "payment.callback_rejected",
        subject_type="payment",
        subject_id=payment.id,
        detail={
            "reason": "amount_mismatch",
            "event_id": event.event_id,
            "kind": event.kind.value,
            "expected_fen": expected,
            "received_fen": event.amount_fen,
            "currency": event.currency,
        },
    )
    return Outcome.amount_mismatch


def _apply(db: Session, payment: Payment, event: CallbackEvent) -> Outcome:
    if event.kind in (EventKind.payment_succeeded, EventKind.payment_failed):
        if event.amount_fen != payment.amount_fen or event.currency != payment.currency:
            return _mismatch(db, payment, event, payment.amount_fen)
        if event.kind is EventKind.payment_succeeded:
            if payment.paid_at is not None:
                return Outcome.ignored
            _mark_paid(db, payment, event.provider_ref)
            return Outcome.processed
        if payment.status != PaymentStatus.pending.value:
            return Outcome.ignored  # a failure after success (or expiry) is out of order
        _mark_failed(db, payment, PaymentStatus.failed, event.reason)
        return Outcome.processed
    refund = db.get(Refund, event.refund_id or "")
    if refund is None or refund.payment_id != payment.id:
        raise NotFound("no such refund", code="unknown_refund")
    if event.amount_fen != refund.amount_fen or event.currency != payment.currency:
        return _mismatch(db, payment, event, refund.amount_fen)
    if refund.status != RefundStatus.requested.value:
        return Outcome.ignored
    if event.kind is EventKind.refund_succeeded:
        _refund_status(db, refund, RefundStatus.succeeded)
        _book_move(db, f"refund:{refund.id}", payment, refund.amount_fen, to_premium=False)
        for handler in _refunded.of(payment.purpose):
            handler(db, payment, refund)
    else:
        refund.failure = (event.reason or "provider_failed")[:200]
        _refund_status(db, refund, RefundStatus.failed)
    return Outcome.processed


# Refunds ---------------------------------------------------------------------------------


def _refund_status(db: Session, refund: Refund, status: RefundStatus) -> None:
    previous, refund.status = refund.status, status.value
    refund.updated_at = clock.now()
    if status is not RefundStatus.requested:
        refund.completed_at = clock.now()
    db.flush()
    audit.record(
        db,
        f"refund.{status.value}",
        subject_type="refund",
        subject_id=refund.id,
        detail={"payment_id": refund.payment_id, "from": previous, "to": status.value},
    )


def _start_refund(
    db: Session, payment: Payment, amount_fen: int, reason: str, by: audit.Actor
) -> Refund:
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int) or amount_fen <= 0:
        raise ValidationFailed(
            "a refund is a positive whole number of fen",
            code="invalid_amount",
            detail={"field": "amount_fen"},
        )
    if payment.paid_at is None:
        raise Conflict("nothing was paid, so nothing can be refunded", code="not_paid")
    available = refundable_fen(db, payment)
    if amount_fen > available:
        raise ValidationFailed(
            "a refund cannot exceed what was paid less what is already refunded",
            code="refund_exceeds_paid",
            detail={"field": "amount_fen", "refundable_fen": available},
        )
    now = clock.now()
    refund = Refund(
        payment_id=payment.id,
        amount_fen=amount_fen,
        reason=reason.strip()[:200] or "refund",
        status=RefundStatus.requested.value,
        due_at=now + timedelta(days=get_settings().refund_due_days),
        created_at=now,
        updated_at=now,
    )
    db.add(refund)
    db.flush()
    refund.provider_ref = providers.get(payment.provider).refund(db, refund, payment)
    db.flush()
    audit.record(
        db,
        "refund.requested",
        actor=by,
        subject_type="refund",
        subject_id=refund.id,
        detail={
            "payment_id": payment.id,
            "amount_fen": amount_fen,
            "reason": refund.reason,
            "due_at": refund.due_at.isoformat(),
        },
    )
    return refund


def request_refund(
    db: Session,
    payment_id: str,
    amount_fen: int,
    reason: str,
    *,
    by: audit.Actor = audit.SYSTEM,
) -> Refund:
    """Refund part or all of a paid payment through its provider (never more than paid
    less already refunded).  The provider confirms with a callback; the ledger moves the
    money back out of the insurer's premium account then."""
    payment = _lock(db, payment_id)
    return _start_refund(db, payment, amount_fen, reason, by)


def overdue_refunds(db: Session, today: date | None = None) -> list[Refund]:
    """Refunds not completed whose due date (Beijing) is before ``today`` (R18 monitor)."""
    today = today or clock.today()
    rows = db.scalars(
        select(Refund).where(Refund.status != RefundStatus.succeeded.value).order_by(Refund.due_at)
    )
    return [r for r in rows if clock.to_local(r.due_at).date() < today]


# Jobs ------------------------------------------------------------------------------------


def expire_stale(db: Session, *, limit: int = 500) -> dict[str, int]:
    """Close pending payments past their expiry, asking the provider first: one it
    reports paid is completed as if its callback had come, one it reports failed fails."""
    now = clock.now()
    ids = list(
        db.scalars(
            select(Payment.id)
            .where(Payment.status == PaymentStatus.pending.value, Payment.expires_at < now)
            .order_by(Payment.expires_at)
            .limit(limit)
        )
    )
    counts = {"expired": 0, "succeeded": 0, "failed": 0}
    for payment_id in ids:
        payment = _lock(db, payment_id)
        if payment.status != PaymentStatus.pending.value:
            continue
        provider = providers.get(payment.provider)
        remote = provider.query(db, payment.provider_ref) if payment.provider_ref else None
        if (
            remote is not None
            and remote.status is RemoteStatus.succeeded
            and remote.amount_fen == payment.amount_fen
        ):
            _mark_paid(db, payment, None)
            counts["succeeded"] += 1
            continue
        if remote is not None and remote.status is RemoteStatus.failed:
            _mark_failed(db, payment, PaymentStatus.failed, "provider_query")
            counts["failed"] += 1
            continue
        _expire(db, payment)
        counts["expired"] += 1
    return counts


def payments_of(db: Session, payer_id: str, *, limit: int = 200) -> list[Payment]:
    """A payer's payments, newest first (for the staff view of a customer)."""
    return list(
        db.scalars(
            select(Payment)
            .where(Payment.payer_id == payer_id)
            .order_by(Payment.created_at.desc(), Payment.id.desc())
            .limit(limit)
        )
    )
