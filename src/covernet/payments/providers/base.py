"""What every payment provider adapter offers.

An adapter talks to one provider (a wallet, a bank gateway, the sandbox).  The payments
service never trusts what a callback says beyond *which* payment and *what happened*:
the amount is checked against the payment, and a status can be asked again with
:meth:`PaymentProvider.query` when a callback never arrives.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy.orm import Session

from covernet.payments.models import Payment, Refund
from covernet.payments.payout_models import Payout, PayoutAttempt


class EventKind(StrEnum):
    payment_succeeded = "payment.succeeded"
    payment_failed = "payment.failed"
    refund_succeeded = "refund.succeeded"
    refund_failed = "refund.failed"
    payout_succeeded = "payout.succeeded"
    payout_failed = "payout.failed"


PAYOUT_EVENT_KINDS = frozenset({EventKind.payout_succeeded, EventKind.payout_failed})


@dataclass(frozen=True)
class CallbackEvent:
    """A verified callback, in the provider-neutral shape the service handles.

    Payout events (``payout.*``) name ``payout_id`` and ``attempt_id``; their
    ``payment_id`` is empty."""

    event_id: str
    kind: EventKind
    payment_id: str
    amount_fen: int
    currency: str
    provider_ref: str | None = None
    refund_id: str | None = None
    reason: str | None = None
    occurred_at: datetime | None = None
    payout_id: str | None = None
    attempt_id: str | None = None


@dataclass(frozen=True)
class Created:
    pay_url: str
    provider_ref: str


class RemoteStatus(StrEnum):
    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"
    unknown = "unknown"


@dataclass(frozen=True)
class Remote:
    """What the provider says about one of its orders (payment or refund)."""

    status: RemoteStatus
    amount_fen: int | None = None


class PaymentProvider(Protocol):
    name: str

    def create(self, db: Session, payment: Payment) -> Created:
        """Open an order with the provider: where to send the payer, and its reference.
        Called before the payment's row is written (it is written with both)."""
        ...

    def verify_callback(self, headers: Mapping[str, str], body: bytes) -> CallbackEvent:
        """Check the signature and timestamp of a callback and parse it.

        Raises :class:`covernet.payments.errors.SignatureInvalid` when it does not verify.
        """
        ...

    def refund(self, db: Session, refund: Refund, payment: Payment) -> str:
        """Ask the provider to refund; returns its reference.  Confirmed by a callback."""
        ...

    def payout(
        self,
        db: Session,
        payout: Payout,
        attempt: PayoutAttempt,
        *,
        account: str,
        payee_name: str,
    ) -> str:
        """Send ``payout.amount_fen`` to the payee's account (decrypted by the caller, held
        only in memory); returns the provider's reference.  Confirmed (or failed) later by
        a ``payout.succeeded`` / ``payout.failed`` callback naming the attempt."""
        ...

    def query(self, db: Session, provider_ref: str) -> Remote:
        """The provider's current status of an order (reconciliation)."""
        ...

    def acknowledge(self) -> dict[str, Any]:
        """The answer body the provider expects for a callback it need not resend."""
        ...
