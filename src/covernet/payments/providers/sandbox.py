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
  delivery (``reverse=True``) can be asked for.  The app's background deliverer
  (:func:`deliver_forever`) is woken when a callback queued in its process commits and
  posts a claimed batch concurrently, so a callback is delivered within milliseconds
  rather than at its next round.
* Refunds are confirmed by a ``refund.succeeded`` callback the same way, and payouts
  by ``payout.succeeded`` / ``payout.failed`` (see :mod:`.sandbox_payouts`).
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
from sqlalchemy import event as sa_event
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from covernet.core import clock
from covernet.core.config import get_settings
from covernet.core.db import is_postgres, unit_of_work
from covernet.core.errors import Conflict, NotFound
from covernet.core.ids import new_id, new_token
from covernet.payments.errors import PaymentError, SignatureInvalid
from covernet.payments.models import Payment, Refund
from covernet.payments.payout_models import Payout, PayoutAttempt
from covernet.payments.providers.base import (
    PAYOUT_EVENT_KINDS,
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
DELIVERY_BATCH = 16  # callbacks the background deliverer claims and posts at once

# Set while this process runs the background deliverer: wakes it (from any thread).
_waker: Callable[[], None] | None = None


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
            kind = EventKind(data["type"])
            payout = kind in PAYOUT_EVENT_KINDS  # names a payout attempt, not a payment
            return CallbackEvent(
                event_id=str(data["event_id"]),
                kind=kind,
                payment_id="" if payout else str(data["payment_id"]),
                amount_fen=_int(data["amount_fen"]),
                currency=str(data["currency"]),
                provider_ref=data.get("provider_ref"),
                refund_id=data.get("refund_id"),
                reason=data.get("reason"),
                occurred_at=datetime.fromisoformat(data["occurred_at"])
                if data.get("occurred_at")
                else None,
                payout_id=str(data["payout_id"]) if payout else None,
                attempt_id=str(data["attempt_id"]) if payout else None,
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

    def payout(
        self, db: Session, payout: Payout, attempt: PayoutAttempt, *, account: str, payee_name: str
    ) -> str:
        from covernet.payments.providers import sandbox_payouts

        return sandbox_payouts.open_payout(db, payout, attempt, account=account)

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
    if _waker is not None:  # deliver once this transaction has committed, not a round later
        sa_event.listen(db, "after_commit", _wake, once=True)
    return rows


def _wake(_session: Session) -> None:
    waker = _waker
    if waker is not None:
        waker()


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


def _failed(row: SandboxCallback, error: str, now: datetime) -> None:
    row.last_error = error[:200]
    row.next_attempt_at = None if row.attempts >= MAX_ATTEMPTS else now + backoff(row.attempts)


def _settle(callback_id: int, error: str | None) -> None:
    with unit_of_work() as db:
        row = db.get(SandboxCallback, callback_id)
        if row is None:
            return
        now = clock.now()
        if error is None:
            row.delivered_at, row.next_attempt_at, row.last_error = now, None, None
            return
        _failed(row, error, now)


def _settle_all(outcomes: list[tuple[int, str | None]]) -> None:
    """Record a batch's outcomes in one transaction (delivered rows in one UPDATE)."""
    delivered = [callback_id for callback_id, error in outcomes if error is None]
    with unit_of_work() as db:
        now = clock.now()
        if delivered:
            db.execute(
                update(SandboxCallback)
                .where(SandboxCallback.id.in_(delivered))
                .values(delivered_at=now, next_attempt_at=None, last_error=None)
                .execution_options(synchronize_session=False)
            )
        for callback_id, error in outcomes:
            row = db.get(SandboxCallback, callback_id) if error is not None else None
            if row is not None and error is not None:
                _failed(row, error, now)


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


async def deliver_batch(
    client: httpx.AsyncClient, *, limit: int = DELIVERY_BATCH
) -> DeliveryReport:
    """Claim up to ``limit`` due callbacks, POST them all at once, record the outcomes."""
    report = DeliveryReport()
    claimed = await asyncio.to_thread(_claim, limit, False)
    if not claimed:
        return report
    url = notify_url()

    async def post(payload: str) -> str | None:
        body = payload.encode()
        try:
            response = await client.post(url, content=body, headers=signed_headers(body))
        except httpx.HTTPError as exc:
            return type(exc).__name__
        return None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"

    errors = await asyncio.gather(*(post(payload) for _, payload in claimed))
    outcomes = [(cid, error) for (cid, _), error in zip(claimed, errors, strict=True)]
    await asyncio.to_thread(_settle_all, outcomes)
    for (_, payload), error in zip(claimed, errors, strict=True):
        event_id = json.loads(payload)["event_id"]
        (report.failed if error else report.delivered).append(event_id)
        if error:
            log.info("sandbox callback %s not delivered: %s", event_id, error)
    return report


async def deliver_forever(
    stop: asyncio.Event, *, every_seconds: float = 1.0, client: httpx.AsyncClient | None = None
) -> None:
    """The app's background deliverer (lifespan) when the sandbox is configured: a round
    every ``every_seconds``, at once when a callback queued in this process commits, and
    straight on while a round found a full batch.  ``client`` (tests) replaces its own."""
    global _waker
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()

    def waker() -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closing
            loop.call_soon_threadsafe(wake.set)

    _waker = waker
    limits = httpx.Limits(max_connections=DELIVERY_BATCH, max_keepalive_connections=16)
    own = httpx.AsyncClient(timeout=TIMEOUT_SECONDS, limits=limits) if client is None else None
    try:
        async with contextlib.AsyncExitStack() as stack:
            if own is not None:
                client = await stack.enter_async_context(own)
            assert client is not None
            while not stop.is_set():
                wake.clear()
                full = False
                try:
                    report = await deliver_batch(client)
                    full = len(report.delivered) + len(report.failed) >= DELIVERY_BATCH
                except Exception as exc:  # keep delivering; the next round retries
                    log.warning("sandbox deliverer: %s", type(exc).__name__)
                if full:
                    continue
                waits = {asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stop.wait())}
                _, pending = await asyncio.wait(
                    waits, timeout=every_seconds, return_when=asyncio.FIRST_COMPLETED
                )
                for task in pending:
                    task.cancel()
    finally:
        _waker = None


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
