"""The sandbox payment provider: behaves like a real one, moves no money.

* ``create`` opens a sandbox order; the payer is sent to the sandbox pay page
  (``GET /sandbox/pay/{payment_id}``), which shows the amount and the payee (the
  insurer's premium account) with 支付 / 模拟失败 buttons.
* Paying, failing and refunding queue a callback in the sandbox's outbox
  (``sandbox_callbacks``).  :func:`deliver_due` POSTs due callbacks to
  ``{COVERNET_PUBLIC_URL}/api/v1/payments/notify/sandbox``, signed with HMAC-SHA256
  over ``"<timestamp>.<body>"`` (headers ``X-Sandbox-Timestamp``,
  ``X-Sandbox-Signature``), and retries non-2xx answers and timeouts with
  exponential backoff.  Duplicates (``duplicate=True``), delays and out-of-order
  delivery (``reverse=True``) can be asked for.
* Refunds are confirmed by a ``refund.succeeded`` callback the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from covernet.core import clock
from covernet.core.config import get_settings
from covernet.core.db import is_postgres, unit_of_work
from covernet.core.errors import Conflict, NotFound
from covernet.core.ids import new_id, new_token
from covernet.payments.errors import PaymentError, SignatureInvalid
from covernet.payments.models import Payment, Refund
from covernet.payments.providers.base import (
    CallbackEvent,
    Created,
    EventKind,
    Remote,
    RemoteStatus,
)
from covernet.payments.providers.sandbox_models import SandboxCallback, SandboxOrder

log = logging.getLogger("covernet.payments.sandbox")

NAME = "sandbox"
TIMESTAMP_HEADER = "X-Sandbox-Timestamp"
SIGNATURE_HEADER = "X-Sandbox-Signature"
TOLERANCE_SECONDS = 300  # a callback signed longer ago (or ahead) than this is refused
NOTIFY_PATH = f"/api/v1/payments/notify/{NAME}"
LEASE_SECONDS = 60  # a claimed callback is not claimed again for this long
BACKOFF_BASE_SECONDS = 10
BACKOFF_MAX_SECONDS = 3600
MAX_ATTEMPTS = 15
TIMEOUT_SECONDS = 10.0


def _secret() -> bytes:
    return get_settings().sandbox_payment_secret.encode()


def sign(timestamp: str, body: bytes) -> str:
    return hmac.new(_secret(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def signed_headers(body: bytes, *, at: datetime | None = None) -> dict[str, str]:
    timestamp = str(int((at or clock.now()).timestamp()))
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(timestamp, body),
    }


def notify_url() -> str:
    return get_settings().public_url.rstrip("/") + NOTIFY_PATH


class SandboxProvider:
    name = NAME

    def create(self, db: Session, payment: Payment) -> Created:
        ref = f"sbx_{new_token(12)}"
        db.add(
            SandboxOrder(
                ref=ref,
                kind="payment",
                payment_id=payment.id,
                amount_fen=payment.amount_fen,
                currency=payment.currency,
                status="open",
            )
        )
        db.flush()
        base = get_settings().public_url.rstrip("/")
        return Created(pay_url=f"{base}/sandbox/pay/{payment.id}", provider_ref=ref)

    def verify_callback(self, headers: Mapping[str, str], body: bytes) -> CallbackEvent:
        lowered = {k.lower(): v for k, v in headers.items()}
        timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
        signature = lowered.get(SIGNATURE_HEADER.lower(), "")
        if not timestamp.isdigit() or not signature:
            raise SignatureInvalid(
                "the callback is not signed",
                detail={"headers": [TIMESTAMP_HEADER, SIGNATURE_HEADER]},
            )
        if not hmac.compare_digest(sign(timestamp, body), signature):
            raise SignatureInvalid("the callback's signature does not verify")
        age = abs(clock.now().timestamp() - int(timestamp))
        if age > TOLERANCE_SECONDS:
            raise SignatureInvalid(
                "the callback's timestamp is outside the accepted window",
                code="stale_callback",
                detail={"tolerance_seconds": TOLERANCE_SECONDS},
            )
        try:
            data = json.loads(body)
            return CallbackEvent(
                event_id=str(data["event_id"]),
                kind=EventKind(data["type"]),
                payment_id=str(data["payment_id"]),
                amount_fen=_int(data["amount_fen"]),
                currency=str(data["currency"]),
                provider_ref=data.get("provider_ref"),
                refund_id=data.get("refund_id"),
                reason=data.get("reason"),
                occurred_at=datetime.fromisoformat(data["occurred_at"])
                if data.get("occurred_at")
                else None,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise PaymentError(
                "the callback body is not a sandbox event", code="malformed_callback"
            ) from exc

    def refund(self, db: Session, refund: Refund, payment: Payment) -> str:
        paid = _order_for(db, payment.id)
        if paid.status != "paid":
            raise Conflict("the sandbox has no paid order to refund", code="not_paid")
        ref = f"sbr_{new_token(12)}"
        db.add(
            SandboxOrder(
                ref=ref,
                kind="refund",
                payment_id=payment.id,
                refund_id=refund.id,
                amount_fen=refund.amount_fen,
                currency=payment.currency,
                status="processing",
            )
        )
        db.flush()
        enqueue(
            db,
            _event(
                EventKind.refund_succeeded,
                paid,
                refund_id=refund.id,
                ref=ref,
                amount_fen=refund.amount_fen,
            ),
        )
        return ref

    def query(self, db: Session, provider_ref: str) -> Remote:
        order = db.get(SandboxOrder, provider_ref)
        if order is None:
            return Remote(RemoteStatus.unknown)
        status = {
            "open": RemoteStatus.pending,
            "processing": RemoteStatus.pending,
            "paid": RemoteStatus.succeeded,
            "succeeded": RemoteStatus.succeeded,
            "failed": RemoteStatus.failed,
        }[order.status]
        return Remote(status, order.amount_fen)

    def acknowledge(self) -> dict[str, Any]:
        return {"code": "SUCCESS"}


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("amount_fen must be an integer")
    return value


# The sandbox's side: orders and callbacks ------------------------------------------------


def _order_for(db: Session, payment_id: str, *, lock: bool = False) -> SandboxOrder:
    stmt = select(SandboxOrder).where(
        SandboxOrder.payment_id == payment_id, SandboxOrder.kind == "payment"
    )
    if lock and is_postgres(db):
        stmt = stmt.with_for_update()
    order = db.scalar(stmt)
    if order is None:
        raise NotFound("the sandbox has no order for this payment", code="unknown_payment")
    return order


def _event(
    kind: EventKind,
    order: SandboxOrder,
    *,
    amount_fen: int | None = None,
    refund_id: str | None = None,
    ref: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": f"evt_{new_id()}",
        "type": kind.value,
        "payment_id": order.payment_id,
        "provider_ref": ref or order.ref,
        "amount_fen": order.amount_fen if amount_fen is None else amount_fen,
        "currency": order.currency,
        "occurred_at": clock.now().isoformat(),
    }
    if refund_id:
        event["refund_id"] = refund_id
    if reason:
        event["reason"] = reason
    return event


def enqueue(
    db: Session, event: Mapping[str, Any], *, copies: int = 1, delay_seconds: float = 0
) -> list[SandboxCallback]:
    """Queue ``event`` for delivery (``copies`` times: duplicates share the event id)."""
    due = clock.now() + timedelta(seconds=delay_seconds)
    payload = json.dumps(dict(event), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    rows = [
        SandboxCallback(
            event_id=str(event["event_id"]),
            kind=str(event["type"]),
            payload=payload,
            attempts=0,
            next_attempt_at=due,
        )
        for _ in range(copies)
    ]
    db.add_all(rows)
    db.flush()
    return rows


@dataclass(frozen=True)
class Completed:
    payment_id: str
    outcome: str
    event_id: str
    copies: int
    deliver_at: datetime


def complete(
    db: Session,
    payment_id: str,
    outcome: str,
    *,
    duplicate: bool = False,
    delay_seconds: float = 0,
) -> Completed:
    """The payer paid (``succeeded``) or the payment failed (``failed``) at the sandbox.

    Like a real provider, an order is paid or failed once; its callback is queued.
    """
    order = _order_for(db, payment_id, lock=True)
    if order.status != "open":
        raise Conflict(
            f"this sandbox order is already {order.status}",
            code="order_closed",
            detail={"status": order.status},
        )
    order.status = "paid" if outcome == "succeeded" else "failed"
    order.updated_at = clock.now()
    kind = EventKind.payment_succeeded if outcome == "succeeded" else EventKind.payment_failed
    event = _event(kind, order, reason=None if outcome == "succeeded" else "payer_declined")
    copies = 2 if duplicate else 1
    rows = enqueue(db, event, copies=copies, delay_seconds=delay_seconds)
    return Completed(
        payment_id, outcome, event["event_id"], copies, rows[0].next_attempt_at or clock.now()
    )


def order_amount(db: Session, payment_id: str) -> int:
    return _order_for(db, payment_id).amount_fen


def pending_callbacks(db: Session) -> list[SandboxCallback]:
    return list(
        db.scalars(
            select(SandboxCallback)
            .where(SandboxCallback.delivered_at.is_(None))
            .order_by(SandboxCallback.id)
        )
    )


# Delivery -------------------------------------------------------------------------------


class Poster(Protocol):
    """What :func:`deliver_due` needs of an HTTP client (httpx.Client, TestClient)."""

    def post(self, url: str, *, content: bytes, headers: dict[str, str]) -> httpx.Response: ...


@dataclass
class DeliveryReport:
    delivered: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed delivery: 10 s, 20 s, 40 s … at most 1 h."""
    return timedelta(
        seconds=min(BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0), BACKOFF_MAX_SECONDS)
    )


def _claim(limit: int, reverse: bool) -> list[tuple[int, str]]:
    """Take due callbacks for delivery (a lease, so several deliverers never send one
    callback at the same time), in a short transaction of its own."""
    now = clock.now()
    with unit_of_work() as db:
        order = SandboxCallback.id.desc() if reverse else SandboxCallback.id
        stmt = (
            select(SandboxCallback)
            .where(
                SandboxCallback.delivered_at.is_(None),
                SandboxCallback.next_attempt_at.is_not(None),
                SandboxCallback.next_attempt_at <= now,
            )
            .order_by(order)
            .limit(limit)
        )
        if is_postgres(db):
            stmt = stmt.with_for_update(skip_locked=True)
        rows = list(db.scalars(stmt))
        for row in rows:
            row.attempts += 1
            row.next_attempt_at = now + timedelta(seconds=LEASE_SECONDS)
        return [(row.id, row.payload) for row in rows]


def _settle(callback_id: int, error: str | None) -> None:
    with unit_of_work() as db:
        row = db.get(SandboxCallback, callback_id)
        if row is None:
            return
        now = clock.now()
        if error is None:
            row.delivered_at, row.next_attempt_at, row.last_error = now, None, None
            return
        row.last_error = error[:200]
        row.next_attempt_at = None if row.attempts >= MAX_ATTEMPTS else now + backoff(row.attempts)


def deliver_due(client: Poster, *, limit: int = 100, reverse: bool = False) -> DeliveryReport:
    """POST every due callback, signed now; a non-2xx answer or a transport error (timeout)
    schedules another attempt with backoff.  ``reverse`` delivers the newest first."""
    report = DeliveryReport()
    url = notify_url()
    for callback_id, payload in _claim(limit, reverse):
        body = payload.encode()
        error: str | None = None
        try:
            response = client.post(url, content=body, headers=signed_headers(body))
            if not 200 <= response.status_code < 300:
                error = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        _settle(callback_id, error)
        event_id = json.loads(payload)["event_id"]
        (report.failed if error else report.delivered).append(event_id)
        if error:
            log.info("sandbox callback %s not delivered: %s", event_id, error)
    return report


async def deliver_forever(stop: asyncio.Event, *, every_seconds: float = 1.0) -> None:
    """The app's background deliverer (lifespan) when the sandbox is configured."""
    with httpx.Client(timeout=TIMEOUT_SECONDS) as client:
        while not stop.is_set():
            try:
                await asyncio.to_thread(deliver_due, client)
            except Exception as exc:  # keep delivering; the next round retries
                log.warning("sandbox deliverer: %s", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_seconds)


def start_deliverer() -> Callable[[], Awaitable[None]]:
    """Start :func:`deliver_forever` on the running loop; returns its stop function."""
    stop = asyncio.Event()
    task = asyncio.create_task(deliver_forever(stop))

    async def halt() -> None:
        stop.set()
        await task

    return halt


def order_status(db: Session, payment_id: str) -> str:
    return _order_for(db, payment_id).status


def event_for(
    db: Session, payment_id: str, kind: EventKind, *, amount_fen: int | None = None
) -> dict[str, Any]:
    """A sandbox event about the payment (tests: forged amounts, stale replays, …)."""
    return _event(kind, _order_for(db, payment_id), amount_fen=amount_fen)
