"""The premium ledger (R11): double entry, premiums only ever in insurer premium accounts.

Accounts are named ``insurer:<code>:premium`` (the insurer's dedicated premium account),
``insurer:<code>:claims`` (the insurer's claims account, which payouts such as claim
indemnities leave from) and ``provider:<name>:clearing`` (money held by the payment
provider on its way).
There is no account kind for advisors, partners or the platform: :func:`book` refuses
any other name, so no advisor or partner account can ever hold premium or refunds.
Every transaction's legs sum to zero; a ``reference`` is booked at most once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from covernet.core.ids import new_id
from covernet.payments.errors import LedgerRefused
from covernet.payments.models import LedgerEntry

ACCOUNT_KINDS: dict[str, re.Pattern[str]] = {
    "insurer_premium": re.compile(r"^insurer:[a-z0-9][a-z0-9-]{0,62}:premium$"),
    "insurer_claims": re.compile(r"^insurer:[a-z0-9][a-z0-9-]{0,62}:claims$"),
    "provider_clearing": re.compile(r"^provider:[a-z0-9][a-z0-9_-]{0,30}:clearing$"),
}


def premium_account(insurer_code: str) -> str:
    return f"insurer:{insurer_code}:premium"


def claims_account(insurer_code: str) -> str:
    return f"insurer:{insurer_code}:claims"


def clearing_account(provider: str) -> str:
    return f"provider:{provider}:clearing"


def account_kind(account: str) -> str:
    for kind, pattern in ACCOUNT_KINDS.items():
        if pattern.match(account):
            return kind
    raise LedgerRefused(
        f"'{account}' is not a ledger account: only insurer premium and claims accounts "
        "and provider clearing accounts exist (R11: nobody else holds premium)",
        code="account_not_allowed",
        detail={"account": account},
    )


def is_booked(db: Session, reference: str) -> bool:
    return db.scalar(select(LedgerEntry.id).where(LedgerEntry.reference == reference)) is not None


def book(
    db: Session,
    reference: str,
    legs: Sequence[tuple[str, int]],
    *,
    currency: str = "CNY",
    payment_id: str | None = None,
) -> str:
    """Book one transaction of ``(account, signed amount)`` legs; returns its id.

    Refuses unknown account kinds, zero or unbalanced legs and a reference already booked.
    """
    if len(legs) < 2:
        raise LedgerRefused("a transaction has at least two legs", code="ledger_unbalanced")
    for account, amount in legs:
        account_kind(account)
        if isinstance(amount, bool) or not isinstance(amount, int) or amount == 0:
            raise LedgerRefused(
                "every leg moves a non-zero whole number of fen",
                code="ledger_bad_amount",
                detail={"account": account},
            )
    if sum(amount for _, amount in legs) != 0:
        raise LedgerRefused("the legs of a transaction must sum to zero", code="ledger_unbalanced")
    if len({account for account, _ in legs}) != len(legs):
        raise LedgerRefused("an account appears twice in one transaction", code="ledger_unbalanced")
    if is_booked(db, reference):
        raise LedgerRefused(
            f"'{reference}' is already booked",
            code="ledger_duplicate",
            detail={"reference": reference},
        )
    txn_id = new_id()
    for account, amount in legs:
        db.add(
            LedgerEntry(
                txn_id=txn_id,
                reference=reference,
                account=account,
                amount_fen=amount,
                currency=currency,
                payment_id=payment_id,
            )
        )
    db.flush()
    return txn_id


def balance(db: Session, account: str) -> int:
    """What the account holds (positive: money flowed in)."""
    return int(
        db.scalar(
            select(func.coalesce(func.sum(LedgerEntry.amount_fen), 0)).where(
                LedgerEntry.account == account
            )
        )
        or 0
    )


def unbalanced_transactions(db: Session) -> list[str]:
    """Transactions whose legs do not sum to zero (always empty unless tampered with)."""
    rows = db.execute(
        select(LedgerEntry.txn_id)
        .group_by(LedgerEntry.txn_id)
        .having(func.sum(LedgerEntry.amount_fen) != 0)
    )
    return [row[0] for row in rows]


def entries_for_payment(db: Session, payment_id: str) -> list[LedgerEntry]:
    return list(
        db.scalars(
            select(LedgerEntry).where(LedgerEntry.payment_id == payment_id).order_by(LedgerEntry.id)
        )
    )
