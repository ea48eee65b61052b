"""Payment errors: each code names the problem."""

from __future__ import annotations

from covernet.core.errors import CovernetError


class PaymentError(CovernetError):
    code = "payment_error"
    status = 400


class SignatureInvalid(PaymentError):
    """A callback whose signature or timestamp does not verify: nothing is changed."""

    code = "invalid_signature"
    status = 400


class LedgerRefused(PaymentError):
    """A booking the ledger will not make (unknown account kind, unbalanced legs)."""

    code = "ledger_refused"
    status = 400
