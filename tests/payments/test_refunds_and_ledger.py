"""Refunds through the provider, the premium ledger (R11) and the refund monitor (R18)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from covernet.core import clock
from covernet.core.db import unit_of_work
from covernet.core.errors import CovernetError
from covernet.payments import ledger, service
from covernet.payments.errors import LedgerRefused
from tests.payments.helpers import AMOUNT, INSURER, audit_actions, deliver, state


def _paid(client: Any, payment_id: str) -> None:
    assert client.post(f"/sandbox/payments/{payment_id}/succeed").status_code == 200
    deliver(client)


def test_refund_flow_through_the_provider(
    client: Any,
    db_url: str,
    payment_id: str,
    customer_headers: dict[str, str],
    payment_handlers: list[tuple[str, str]],
) -> None:
    _paid(client, payment_id)
    with unit_of_work(db_url) as db:
        refund = service.request_refund(db, payment_id, AMOUNT - 1_000, "犹豫期退保")
        refund_id = refund.id
        assert refund.status == "requested"
        assert refund.due_at - refund.created_at == timedelta(days=5)
    shown = client.get(f"/api/v1/payments/{payment_id}", headers=customer_headers).json()
    assert shown["refunds"][0]["status"] == "requested"
    assert shown["refundable_fen"] == 1_000
    assert state(db_url, payment_id)["premium"] == AMOUNT  # moves only when confirmed
    deliver(client)
    after = state(db_url, payment_id)
    assert after["refunds"] == [(AMOUNT - 1_000, "succeeded", "犹豫期退保")]
    assert after["premium"] == 1_000 and after["txns"] == 2 and after["unbalanced"] == []
    by_txn: dict[str, int] = {}
    for txn, _, amount in after["legs"]:
        by_txn[txn] = by_txn.get(txn, 0) + amount
    assert set(by_txn.values()) == {0}
    assert ("refunded", refund_id) in payment_handlers
    assert audit_actions(db_url, refund_id) == ["refund.requested", "refund.succeeded"]
    shown = client.get(f"/api/v1/payments/{payment_id}", headers=customer_headers).json()
    assert shown["refunds"][0]["status"] == "succeeded"
    assert shown["refunds"][0]["completed_at"] is not None
    # Never more than paid less already refunded.
    with pytest.raises(CovernetError) as refused, unit_of_work(db_url) as db:
        service.request_refund(db, payment_id, 1_001, "again")
    assert refused.value.code == "refund_exceeds_paid"
    with unit_of_work(db_url) as db:
        service.request_refund(db, payment_id, 1_000, "rest")
    deliver(client)
    assert state(db_url, payment_id)["premium"] == 0


def test_a_refund_of_an_unpaid_payment_is_refused(db_url: str, payment_id: str) -> None:
    with pytest.raises(CovernetError) as refused, unit_of_work(db_url) as db:
        service.request_refund(db, payment_id, 100, "x")
    assert refused.value.code == "not_paid"


def test_concurrent_refunds_never_exceed_what_was_paid(
    client: Any, db_url: str, payment_id: str
) -> None:
    import threading

    _paid(client, payment_id)
    results: list[str] = []

    def ask() -> None:
        try:
            with unit_of_work(db_url) as db:
                service.request_refund(db, payment_id, AMOUNT // 2 + 1, "twice")
            results.append("ok")
        except CovernetError as exc:
            results.append(exc.code)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["ok"] + ["refund_exceeds_paid"] * 3


def test_a_failed_refund_frees_the_amount(client: Any, db_url: str, payment_id: str) -> None:
    from covernet.payments.providers import sandbox

    _paid(client, payment_id)
    with unit_of_work(db_url) as db:
        refund = service.request_refund(db, payment_id, AMOUNT, "cancel")
        # The provider turns the refund down instead of confirming it.
        for row in sandbox.pending_callbacks(db):
            db.delete(row)
        db.flush()
        failed = sandbox.event_for(
            db, payment_id, sandbox.EventKind.refund_failed, amount_fen=AMOUNT
        )
        failed["refund_id"] = refund.id
        sandbox.enqueue(db, failed)
        assert len(sandbox.pending_callbacks(db)) == 1
    deliver(client)
    after = state(db_url, payment_id)
    assert after["refunds"] == [(AMOUNT, "failed", "cancel")]
    assert after["premium"] == AMOUNT
    with unit_of_work(db_url) as db:
        assert service.refundable_fen(db, service.get_payment(db, payment_id)) == AMOUNT


@pytest.mark.parametrize(
    "account",
    [
        "advisor:u-1:premium",
        "partner:alipay:clearing",
        "advisor:u-1:commission",
        "platform:covernet:premium",
        "insurer:anxin-pc:commission",
        f"insurer:{INSURER}:premium:advisor",
    ],
)
def test_the_ledger_refuses_any_account_but_premium_and_clearing(db: Any, account: str) -> None:
    with pytest.raises(LedgerRefused) as refused:
        ledger.book(db, "test:1", [(account, 100), (ledger.clearing_account("sandbox"), -100)])
    assert refused.value.code == "account_not_allowed"


def test_the_ledger_refuses_unbalanced_and_repeated_bookings(db: Any) -> None:
    legs = [(ledger.premium_account(INSURER), 100), (ledger.clearing_account("sandbox"), -100)]
    with pytest.raises(LedgerRefused):
        ledger.book(
            db,
            "t",
            [(ledger.premium_account(INSURER), 100), (ledger.clearing_account("sandbox"), -99)],
        )
    ledger.book(db, "t", legs)
    with pytest.raises(LedgerRefused) as again:
        ledger.book(db, "t", legs)
    assert again.value.code == "ledger_duplicate"
    assert ledger.unbalanced_transactions(db) == []


def test_overdue_refunds_show_on_the_monitor(client: Any, db_url: str, payment_id: str) -> None:
    from covernet.identity.models import Role
    from tests.conftest import staff_headers

    _paid(client, payment_id)
    with unit_of_work(db_url) as db:
        refund = service.request_refund(db, payment_id, 500, "cancel")
        refund_id = refund.id
        due = clock.to_local(refund.due_at).date()
    with unit_of_work(db_url) as db:
        assert service.overdue_refunds(db, due) == []
        assert [r.id for r in service.overdue_refunds(db, due + timedelta(days=1))] == [refund_id]
    headers = staff_headers(client, db_url, "compliance1", Role.compliance)
    later = (due + timedelta(days=1)).isoformat()
    shown = client.get(f"/api/v1/payments/refunds/overdue?today={later}", headers=headers)
    assert shown.status_code == 200
    assert [(r["id"], r["overdue"], r["payment_id"]) for r in shown.json()] == [
        (refund_id, True, payment_id)
    ]
    deliver(client)
    with unit_of_work(db_url) as db:
        assert service.overdue_refunds(db, due + timedelta(days=1)) == []


def test_refund_standard_is_never_beyond_the_statutory_30_days(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pydantic import ValidationError

    from covernet.core.config import Settings

    assert Settings().refund_due_days == 5
    monkeypatch.setenv("COVERNET_REFUND_DUE_DAYS", "30")
    assert Settings().refund_due_days == 30
    monkeypatch.setenv("COVERNET_REFUND_DUE_DAYS", "31")
    with pytest.raises(ValidationError):
        Settings()


def test_production_refuses_the_sandbox_development_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from covernet.core.config import Settings

    monkeypatch.setenv("COVERNET_ENV", "production")
    monkeypatch.setenv("COVERNET_SECRET_KEY", "k" * 40)
    monkeypatch.setenv("COVERNET_FIELD_KEYS", "p1:" + "A" * 43 + "=")
    monkeypatch.setenv("COVERNET_BLIND_INDEX_KEY", "b" * 40)
    assert Settings().payment_provider == ""  # never the sandbox by default in production
    monkeypatch.setenv("COVERNET_PAYMENT_PROVIDER", "sandbox")
    with pytest.raises(ValueError, match="COVERNET_SANDBOX_PAYMENT_SECRET"):
        Settings()
    monkeypatch.setenv("COVERNET_SANDBOX_PAYMENT_SECRET", "s" * 40)
    assert Settings().payment_provider == "sandbox"


def test_the_refund_monitor_counts_overdue_refunds(
    client: Any, db_url: str, payment_id: str
) -> None:
    from covernet.compliance import monitors

    _paid(client, payment_id)
    with unit_of_work(db_url) as db:
        due = clock.to_local(service.request_refund(db, payment_id, 500, "cancel").due_at).date()
    with unit_of_work(db_url) as db:
        figures = {f.key: f for f in monitors.evaluate(db, due)}
        assert figures["refunds_on_time"].status == "ok"
        assert figures["refunds_on_time"].total == 1
        late = {f.key: f for f in monitors.evaluate(db, due + timedelta(days=1))}
        assert late["refunds_on_time"].status == "breach"
        assert [i.state for i in late["refunds_on_time"].items] == ["overdue"]
