"""The sandbox provider's payouts: confirmed asynchronously by signed callbacks.

* :func:`open_payout` (the provider's ``payout``) opens a sandbox payout order and
  queues its callback in the sandbox's outbox at once: ``payout.succeeded``, or
  ``payout.failed`` (reason ``account_rejected``) when the payee account ends in
  ``0000``, so failures can be shown with nothing else set up.  The callback is due after
  ``COVERNET_SANDBOX_PAYOUT_DELAY_SECONDS`` (default 0) and delivered like every
  sandbox callback (``sandbox.deliver_due`` in tests, the app's deliverer otherwise).
* :func:`fail_payout` (``POST /sandbox/payouts/{payout_id}/fail``) makes a payout whose
  success callback is still undelivered fail instead: the queued callback is withdrawn
  and a ``payout.failed`` (reason ``sandbox_failed``) queued in its place.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from covernet.core import clock
from covernet.core.config import get_settings
from covernet.core.db import is_postgres
from covernet.core.errors import Conflict, NotFound
from covernet.core.ids import new_id, new_token
from covernet.payments.payout_models import Payout, PayoutAttempt
from covernet.payments.providers import sandbox
from covernet.payments.providers.base import EventKind, Remote, RemoteStatus
from covernet.payments.providers.sandbox_models import SandboxCallback
from covernet.payments.providers.sandbox_payout_models import SandboxPayout

FAILING_SUFFIX = "0000"  # a payee account ending so always fails at the sandbox


def payout_event(
    kind: EventKind,
    order: SandboxPayout,
    *,
    amount_fen: int | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": f"evt_{new_id()}",
        "type": kind.value,
        "payout_id": order.payout_id,
        "attempt_id": order.attempt_id,
        "provider_ref": order.ref,
        "amount_fen": order.amount_fen if amount_fen is None else amount_fen,
        "currency": order.currency,
        "occurred_at": clock.now().isoformat(),
    }
    if reason:
        event["reason"] = reason
    return event


def open_payout(db: Session, payout: Payout, attempt: PayoutAttempt, *, account: str) -> str:
    fails = account.endswith(FAILING_SUFFIX)
    order = SandboxPayout(
        ref=f"sbp_{new_token(12)}",
        payout_id=payout.id,
        attempt_id=attempt.id,
        attempt=attempt.number,
        amount_fen=payout.amount_fen,
        currency=payout.currency,
        account_last4=account[-4:],
        status="failed" if fails else "succeeded",
        event_id="",
    )
    event = payout_event(
        EventKind.payout_failed if fails else EventKind.payout_succeeded,
        order,
        reason="account_rejected" if fails else None,
    )
    order.event_id = event["event_id"]
    db.add(order)
    db.flush()
    sandbox.enqueue(db, event, delay_seconds=get_settings().sandbox_payout_delay_seconds)
    return order.ref


def _latest(db: Session, payout_id: str, *, lock: bool = False) -> SandboxPayout:
    stmt = (
        select(SandboxPayout)
        .where(SandboxPayout.payout_id == payout_id)
        .order_by(SandboxPayout.attempt.desc())
        .limit(1)
    )
    if lock and is_postgres(db):
        stmt = stmt.with_for_update()
    order = db.scalar(stmt)
    if order is None:
        raise NotFound("the sandbox has no order for this payout", code="unknown_payout")
    return order


def fail_payout(db: Session, payout_id: str) -> dict[str, Any]:
    """Make the payout's latest sandbox order fail while its callback is undelivered."""
    if not is_postgres(db):  # SQLite: the write lock before reading
        db.execute(
            update(SandboxPayout)
            .where(SandboxPayout.payout_id == payout_id)
            .values(updated_at=SandboxPayout.updated_at)
            .execution_options(synchronize_session=False)
        )
    order = _latest(db, payout_id, lock=True)
    if order.status == "failed":
        raise Conflict("this sandbox payout already failed", code="order_closed")
    pending = list(
        db.scalars(
            select(SandboxCallback).where(
                SandboxCallback.event_id == order.event_id,
                SandboxCallback.delivered_at.is_(None),
                SandboxCallback.next_attempt_at.is_not(None),
            )
        )
    )
    if not pending:
        raise Conflict("this payout's confirmation was already delivered", code="payout_confirmed")
    for row in pending:  # withdrawn: never delivered
        row.next_attempt_at = None
        row.last_error = "withdrawn: the sandbox failed the payout"
    event = payout_event(EventKind.payout_failed, order, reason="sandbox_failed")
    order.status, order.event_id, order.updated_at = "failed", event["event_id"], clock.now()
    db.flush()
    sandbox.enqueue(db, event)
    return {"payout_id": payout_id, "outcome": "failed", "event_id": event["event_id"]}


def query(db: Session, provider_ref: str) -> Remote:
    order = db.get(SandboxPayout, provider_ref)
    if order is None:
        return Remote(RemoteStatus.unknown)
    return Remote(RemoteStatus(order.status), order.amount_fen)


def event_for(
    db: Session, payout_id: str, kind: EventKind, *, amount_fen: int | None = None
) -> dict[str, Any]:
    """A sandbox event about the payout's latest attempt (tests: forged, stale, …)."""
    return payout_event(kind, _latest(db, payout_id), amount_fen=amount_fen)


def order_of(db: Session, payout_id: str) -> SandboxPayout:
    return _latest(db, payout_id)
