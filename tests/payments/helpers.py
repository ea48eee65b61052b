"""Payments test helpers: a payment to pay, signed callbacks, delivery through the app."""

from __future__ import annotations

import json
from typing import Any

INSURER = "anxin-pc"
PURPOSE = "test_purchase"
AMOUNT = 10_000

handled: list[tuple[str, str]] = []


def register_handlers() -> None:
    from covernet.payments import service

    if getattr(register_handlers, "done", False):
        return

    @service.on_succeeded(PURPOSE)
    def _paid(db: Any, payment: Any) -> None:
        handled.append(("succeeded", payment.id))

    @service.on_failed(PURPOSE)
    def _failed(db: Any, payment: Any) -> None:
        handled.append((payment.status, payment.id))

    @service.on_refunded(PURPOSE)
    def _refunded(db: Any, payment: Any, refund: Any) -> None:
        handled.append(("refunded", refund.id))

    register_handlers.done = True  # type: ignore[attr-defined]


def new_payment(
    db_url: str, payer_id: str, *, subject_id: str = "app-1", amount: int = AMOUNT
) -> str:
    from covernet.core.db import unit_of_work
    from covernet.payments import service

    with unit_of_work(db_url) as db:
        payment, url = service.create_payment(
            db,
            purpose=PURPOSE,
            subject_type="application",
            subject_id=subject_id,
            payer_id=payer_id,
            insurer_code=INSURER,
            amount_fen=amount,
            description="测试意外险 1个月",
        )
        assert url.endswith(f"/sandbox/pay/{payment.id}")
        return payment.id


def post_event(client: Any, event: dict[str, Any], **sign: Any) -> Any:
    from covernet.payments.providers import sandbox

    body = json.dumps(event).encode()
    return client.post(
        sandbox.NOTIFY_PATH, content=body, headers=sandbox.signed_headers(body, **sign)
    )


def event(db_url: str, payment_id: str, kind: str, **kw: Any) -> dict[str, Any]:
    from covernet.core.db import unit_of_work
    from covernet.payments.providers import sandbox
    from covernet.payments.providers.base import EventKind

    with unit_of_work(db_url) as db:
        return sandbox.event_for(db, payment_id, EventKind(kind), **kw)


def deliver(client: Any, **kw: Any) -> Any:
    from covernet.payments.providers import sandbox

    return sandbox.deliver_due(client, **kw)


def state(db_url: str, payment_id: str) -> dict[str, Any]:
    """The payment's status, its ledger legs, refunds and remembered events."""
    from sqlalchemy import func, select

    from covernet.core.db import unit_of_work
    from covernet.payments import ledger, service
    from covernet.payments.models import ProviderEvent

    with unit_of_work(db_url) as db:
        payment = service.get_payment(db, payment_id)
        entries = ledger.entries_for_payment(db, payment_id)
        return {
            "status": payment.status,
            "paid_at": payment.paid_at,
            "legs": [(e.txn_id, e.account, e.amount_fen) for e in entries],
            "txns": len({e.txn_id for e in entries}),
            "refunds": [
                (r.amount_fen, r.status, r.reason) for r in service.refunds_of(db, payment_id)
            ],
            "events": db.scalar(
                select(func.count())
                .select_from(ProviderEvent)
                .where(ProviderEvent.payment_id == payment_id)
            ),
            "premium": ledger.balance(db, ledger.premium_account(INSURER)),
            "unbalanced": ledger.unbalanced_transactions(db),
        }


def audit_actions(db_url: str, subject_id: str) -> list[str]:
    from sqlalchemy import select

    from covernet.audit.models import AuditEntry
    from covernet.core.db import unit_of_work

    with unit_of_work(db_url) as db:
        return list(
            db.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.subject_id == subject_id)
                .order_by(AuditEntry.seq)
            )
        )
