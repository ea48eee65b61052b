"""Payouts: money paid out through the payment provider (a claim's indemnity, …).

Other domains call these through :mod:`covernet.payments.service` (which re-exports
them).  A payout is for a *subject* named by ``purpose``, ``subject_type`` and
``subject_id``, and there is at most one per subject and purpose, whatever retries and
callbacks happen:

* :func:`request_payout` creates it and its first provider *attempt*; asking again
  returns the same payout (a different amount or insurer is a Conflict
  ``payout_exists``), never a second one.
* The provider confirms each attempt asynchronously with a signed callback
  (``payout.succeeded`` / ``payout.failed``), handled by :func:`handle_event` under the
  payout's row lock, once per event id (``provider_events``).  On success the ledger
  books ``payout:<id>`` (the insurer's claims account → the provider's clearing
  account) exactly once; owners hear of the outcome through handlers registered with
  :func:`on_payout_succeeded` / :func:`on_payout_failed`, run in the callback's
  transaction.
* A failed payout is sent again only by an explicit :func:`retry_payout`: the same
  payout row gets a new attempt (``payout_attempts`` keeps every one, with its
  failure).  Only a failed payout can be retried, so at most one attempt is ever open.

The payee's account and name are stored encrypted (contexts ``payout.account`` and
``payout.payee_name``), with a masked account for display.  Audit entries carry no
personal data.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from covernet.audit import service as audit
from covernet.catalog import service as catalog
from covernet.core import clock
from covernet.core.crypto import get_cipher
from covernet.core.db import is_postgres
from covernet.core.errors import Conflict, NotFound, ValidationFailed
from covernet.core.masking import mask_bank_card, mask_name
from covernet.payments import ledger, providers
from covernet.payments.handlers import Handlers
from covernet.payments.models import ProviderEvent
from covernet.payments.payout_models import (
    ACCOUNT_CONTEXT,
    NAME_CONTEXT,
    Payout,
    PayoutAttempt,
    PayoutStatus,
)
from covernet.payments.providers.base import CallbackEvent, EventKind

PayoutHandler = Callable[[Session, Payout], None]

_succeeded: Handlers[PayoutHandler] = Handlers()
_failed: Handlers[PayoutHandler] = Handlers()

_ACCOUNT = re.compile(r"\d{8,32}")
_SEPARATORS = re.compile(r"[\s\-]")


def on_payout_succeeded(purpose: str) -> Callable[[PayoutHandler], PayoutHandler]:
    """Register ``handler(db, payout)`` for payouts of ``purpose`` the provider confirmed
    (called once per payout, in the callback's transaction)."""
    return _succeeded.register(purpose)


def on_payout_failed(purpose: str) -> Callable[[PayoutHandler], PayoutHandler]:
    """Register ``handler(db, payout)`` for payout attempts that failed (once per failed
    attempt; ``payout.failure`` says why, ``payout.attempts`` which one)."""
    return _failed.register(purpose)


# Reading ---------------------------------------------------------------------------------


def get_payout(db: Session, payout_id: str) -> Payout:
    payout = db.get(Payout, payout_id)
    if payout is None:
        raise NotFound("no such payout", code="unknown_payout", detail={"field": "payout_id"})
    return payout


def payout_for(db: Session, *, purpose: str, subject_type: str, subject_id: str) -> Payout | None:
    """The subject's payout for ``purpose`` (None if there is none)."""
    return db.scalar(
        select(Payout).where(
            Payout.purpose == purpose,
            Payout.subject_type == subject_type,
            Payout.subject_id == subject_id,
        )
    )


def attempts_of(db: Session, payout_id: str) -> list[PayoutAttempt]:
    return list(
        db.scalars(
            select(PayoutAttempt)
            .where(PayoutAttempt.payout_id == payout_id)
            .order_by(PayoutAttempt.number)
        )
    )


def payee_name_of(payout: Payout) -> str:
    """The payee's name in clear (for the insurer's and the payee's own eyes only)."""
    return get_cipher().decrypt(payout.payee_name_enc, context=NAME_CONTEXT)


def masked_payee_name(payout: Payout) -> str:
    return mask_name(payee_name_of(payout))


# Requesting ------------------------------------------------------------------------------


def _clean_account(value: str) -> str:
    account = _SEPARATORS.sub("", value or "")
    if not _ACCOUNT.fullmatch(account):
        raise ValidationFailed(
            "the payee account is 8 to 32 digits (spaces and hyphens are ignored)",
            code="invalid_payee_account",
            detail={"field": "payee_account"},
        )
    return account


def _clean_name(value: str) -> str:
    name = (value or "").strip()
    if not name or len(name) > 100:
        raise ValidationFailed(
            "the payee's name is 1 to 100 characters",
            code="invalid_payee_name",
            detail={"field": "payee_name"},
        )
    return name


def _set_payee(payout: Payout, name: str, account: str) -> None:
    cipher = get_cipher()
    payout.payee_account_enc = cipher.encrypt(account, context=ACCOUNT_CONTEXT)
    payout.payee_account_masked = mask_bank_card(account)
    payout.payee_name_enc = cipher.encrypt(name, context=NAME_CONTEXT)


def _write_lock(db: Session) -> None:
    """SQLite: take the database's write lock before reading (PostgreSQL locks rows)."""
    if not is_postgres(db):
        db.execute(
            update(Payout)
            .where(Payout.id == "")
            .values(attempts=Payout.attempts)
            .execution_options(synchronize_session=False)
        )


def _lock(db: Session, payout_id: str) -> Payout:
    """The payout, row-locked for the rest of the transaction."""
    if not is_postgres(db):
        db.execute(
            update(Payout)
            .where(Payout.id == payout_id)
            .values(updated_at=Payout.updated_at)
            .execution_options(synchronize_session=False)
        )
    payout = db.scalar(
        select(Payout)
        .where(Payout.id == payout_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if payout is None:
        raise NotFound("no such payout", code="unknown_payout", detail={"field": "payout_id"})
    return payout


def _same_or_conflict(payout: Payout, amount_fen: int, insurer_code: str) -> Payout:
    if payout.amount_fen != amount_fen or payout.insurer_code != insurer_code:
        raise Conflict(
            "this already has a payout of a different amount",
            code="payout_exists",
            detail={"payout_id": payout.id, "amount_fen": payout.amount_fen},
        )
    return payout


def _send(db: Session, payout: Payout, account: str, name: str) -> PayoutAttempt:
    """A new provider attempt for the payout (its status becomes ``requested``)."""
    payout.attempts += 1
    attempt = PayoutAttempt(
        payout_id=payout.id,
        number=payout.attempts,
        status=PayoutStatus.requested.value,
        created_at=clock.now(),
    )
    db.add(attempt)
    db.flush()
    ref = providers.get(payout.provider).payout(
        db, payout, attempt, account=account, payee_name=name
    )
    attempt.provider_ref = ref
    payout.provider_ref = ref
    payout.status = PayoutStatus.requested.value
    payout.failure = None
    payout.updated_at = clock.now()
    db.flush()
    return attempt


def request_payout(
    db: Session,
    *,
    purpose: str,
    subject_type: str,
    subject_id: str,
    insurer_code: str,
    amount_fen: int,
    payee_name: str,
    payee_account: str,
    by: audit.Actor = audit.SYSTEM,
) -> Payout:
    """Pay ``amount_fen`` from the insurer's claims account to the payee through the
    configured provider; returns the payout (status ``requested`` until its callback).

    Idempotent per ``(purpose, subject_type, subject_id)``: asking again returns the
    first payout, whatever its status (a failed one is sent again only by
    :func:`retry_payout`); a different amount or insurer is a Conflict ``payout_exists``.
    """
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int) or amount_fen <= 0:
        raise ValidationFailed(
            "the amount is a positive whole number of fen",
            code="invalid_amount",
            detail={"field": "amount_fen"},
        )
    for field, value, limit in (
        ("purpose", purpose, 32),
        ("subject_type", subject_type, 32),
        ("subject_id", subject_id, 64),
    ):
        if not value or len(value) > limit:
            raise ValidationFailed(
                f"{field} is 1 to {limit} characters",
                code="invalid_subject",
                detail={"field": field},
            )
    if insurer_code not in catalog.snapshot(db).insurers:
        raise ValidationFailed(
            f"no insurer '{insurer_code}'", code="unknown_insurer", detail={"field": "insurer_code"}
        )
    account = _clean_account(payee_account)
    name = _clean_name(payee_name)
    _write_lock(db)
    existing = payout_for(db, purpose=purpose, subject_type=subject_type, subject_id=subject_id)
    if existing is not None:
        return _same_or_conflict(existing, amount_fen, insurer_code)
    provider = providers.get()
    now = clock.now()
    payout = Payout(
        provider=provider.name,
        purpose=purpose,
        subject_type=subject_type,
        subject_id=subject_id,
        insurer_code=insurer_code,
        amount_fen=amount_fen,
        currency="CNY",
        status=PayoutStatus.requested.value,
        attempts=0,
        requested_by=by.id,
        created_at=now,
        updated_at=now,
    )
    _set_payee(payout, name, account)
    try:
        with db.begin_nested():
            db.add(payout)
            db.flush()
    except IntegrityError:
        # A concurrent twin inserted first (PostgreSQL waited for its commit): theirs.
        twin = payout_for(db, purpose=purpose, subject_type=subject_type, subject_id=subject_id)
        if twin is None:
            raise
        return _same_or_conflict(twin, amount_fen, insurer_code)
    attempt = _send(db, payout, account, name)
    audit.record(
        db,
        "payout.requested",
        actor=by,
        subject_type="payout",
        subject_id=payout.id,
        detail={
            "purpose": purpose,
            "subject_type": subject_type,
            "subject_id": subject_id,
            "insurer_code": insurer_code,
            "amount_fen": amount_fen,
            "provider": provider.name,
            "attempt": attempt.number,
        },
    )
    return payout


def retry_payout(
    db: Session,
    payout_id: str,
    *,
    payee_name: str | None = None,
    payee_account: str | None = None,
    by: audit.Actor = audit.SYSTEM,
) -> Payout:
    """Send a *failed* payout again as a new provider attempt (same payout row; the
    failed attempt stays in ``payout_attempts``).  The payee may be corrected at the same
    time.  A payout in progress (``payout_in_progress``) or paid (``payout_already_paid``)
    is refused with a Conflict."""
    payout = _lock(db, payout_id)
    if payout.status == PayoutStatus.succeeded.value:
        raise Conflict("this payout is already paid", code="payout_already_paid")
    if payout.status != PayoutStatus.failed.value:
        raise Conflict(
            "this payout is still with the provider; wait for its outcome",
            code="payout_in_progress",
        )
    cipher = get_cipher()
    name = (
        _clean_name(payee_name)
        if payee_name is not None
        else cipher.decrypt(payout.payee_name_enc, context=NAME_CONTEXT)
    )
    account = (
        _clean_account(payee_account)
        if payee_account is not None
        else cipher.decrypt(payout.payee_account_enc, context=ACCOUNT_CONTEXT)
    )
    changed = payee_name is not None or payee_account is not None
    if changed:
        _set_payee(payout, name, account)
    previous_failure = payout.failure
    attempt = _send(db, payout, account, name)
    audit.record(
        db,
        "payout.retried",
        actor=by,
        subject_type="payout",
        subject_id=payout.id,
        detail={
            "from": PayoutStatus.failed.value,
            "to": PayoutStatus.requested.value,
            "attempt": attempt.number,
            "previous_failure": previous_failure,
            "payee_changed": changed,
        },
    )
    return payout


# Callbacks -------------------------------------------------------------------------------


def handle_event(db: Session, provider_name: str, event: CallbackEvent) -> str:
    """Apply a verified payout callback exactly once; returns the outcome
    (``processed``, ``duplicate``, ``ignored`` or ``amount_mismatch``, as
    :class:`covernet.payments.service.Outcome`)."""
    payout = _lock(db, event.payout_id or "")
    if payout.provider != provider_name:
        raise NotFound("no such payout", code="unknown_payout")
    seen = db.scalar(
        select(ProviderEvent.id).where(
            ProviderEvent.provider == provider_name, ProviderEvent.event_id == event.event_id
        )
    )
    if seen is not None:
        return "duplicate"
    attempt = db.get(PayoutAttempt, event.attempt_id or "")
    if attempt is None or attempt.payout_id != payout.id:
        raise NotFound("no such payout attempt", code="unknown_payout_attempt")
    if event.amount_fen != payout.amount_fen or event.currency != payout.currency:
        audit.record(
            db,
            "payout.callback_rejected",
            subject_type="payout",
            subject_id=payout.id,
            detail={
                "reason": "amount_mismatch",
                "event_id": event.event_id,
                "kind": event.kind.value,
                "expected_fen": payout.amount_fen,
                "received_fen": event.amount_fen,
                "currency": event.currency,
            },
        )
        return "amount_mismatch"  # not remembered: a correct resend is still heard
    outcome = "ignored"
    if attempt.status == PayoutStatus.requested.value:
        if event.kind is EventKind.payout_succeeded:
            _succeed(db, payout, attempt, event)
        else:
            _fail(db, payout, attempt, event)
        outcome = "processed"
    db.add(
        ProviderEvent(
            provider=provider_name,
            event_id=event.event_id,
            kind=event.kind.value,
            payment_id=None,
            outcome=outcome,
        )
    )
    db.flush()
    return outcome


def _settle_attempt(attempt: PayoutAttempt, status: PayoutStatus, event: CallbackEvent) -> None:
    attempt.status = status.value
    attempt.event_id = event.event_id
    attempt.completed_at = clock.now()


def _succeed(db: Session, payout: Payout, attempt: PayoutAttempt, event: CallbackEvent) -> None:
    _settle_attempt(attempt, PayoutStatus.succeeded, event)
    previous = payout.status
    payout.status = PayoutStatus.succeeded.value
    payout.failure = None
    payout.paid_at = payout.updated_at = clock.now()
    if event.provider_ref:
        payout.provider_ref = attempt.provider_ref = event.provider_ref
    reference = f"payout:{payout.id}"
    if not ledger.is_booked(db, reference):
        ledger.book(
            db,
            reference,
            [
                (ledger.claims_account(payout.insurer_code), -payout.amount_fen),
                (ledger.clearing_account(payout.provider), payout.amount_fen),
            ],
            currency=payout.currency,
        )
    db.flush()
    audit.record(
        db,
        "payout.succeeded",
        subject_type="payout",
        subject_id=payout.id,
        detail={"from": previous, "to": payout.status, "attempt": attempt.number},
    )
    for handler in _succeeded.of(payout.purpose):
        handler(db, payout)


def _fail(db: Session, payout: Payout, attempt: PayoutAttempt, event: CallbackEvent) -> None:
    reason = (event.reason or "provider_failed")[:200]
    _settle_attempt(attempt, PayoutStatus.failed, event)
    attempt.failure = reason
    previous = payout.status
    payout.status = PayoutStatus.failed.value
    payout.failure = reason
    payout.failed_at = payout.updated_at = clock.now()
    db.flush()
    audit.record(
        db,
        "payout.failed",
        subject_type="payout",
        subject_id=payout.id,
        detail={"from": previous, "to": payout.status, "attempt": attempt.number, "reason": reason},
    )
    for handler in _failed.of(payout.purpose):
        handler(db, payout)


def rotate_field_keys(db: Session) -> int:
    """Re-encrypt payees' accounts and names under the active key."""
    from covernet.core.rotation import rotate_column

    return rotate_column(
        db, Payout.id, Payout.payee_account_enc, context=ACCOUNT_CONTEXT
    ) + rotate_column(db, Payout.id, Payout.payee_name_enc, context=NAME_CONTEXT)
