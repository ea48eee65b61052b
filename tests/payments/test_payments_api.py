"""Creating payments and reading them: the payer only (404 for others), staff may read."""

from __future__ import annotations

from typing import Any

import pytest

from covernet.core.db import unit_of_work
from covernet.core.errors import CovernetError
from covernet.identity.models import Role
from covernet.payments import service
from tests.conftest import bearer, staff_headers
from tests.payments.helpers import AMOUNT, INSURER, PURPOSE, deliver, new_payment


def test_the_payer_reads_the_payment_and_others_get_404(
    client: Any, db_url: str, payment_id: str, customer_headers: dict[str, str]
) -> None:
    shown = client.get(f"/api/v1/payments/{payment_id}", headers=customer_headers)
    assert shown.status_code == 200
    body = shown.json()
    assert body["status"] == "pending" and body["amount_fen"] == AMOUNT
    assert body["pay_url"].endswith(f"/sandbox/pay/{payment_id}") and body["refunds"] == []
    with unit_of_work(db_url) as db:
        from covernet.identity import service as identity

        identity.register_customer(db, mobile="13700001111", password="other-pass-1", name="别人")
    other = bearer(client, "13700001111", "other-pass-1")
    assert client.get(f"/api/v1/payments/{payment_id}", headers=other).status_code == 404
    assert client.get("/api/v1/payments/nope", headers=customer_headers).status_code == 404
    assert client.get(f"/api/v1/payments/{payment_id}").status_code == 401
    ops = staff_headers(client, db_url, "ops1", Role.ops)
    assert client.get(f"/api/v1/payments/{payment_id}", headers=ops).status_code == 200
    assert (
        client.get("/api/v1/payments/refunds/overdue", headers=customer_headers).status_code == 403
    )


def test_asking_again_returns_the_open_payment_and_a_paid_subject_is_refused(
    client: Any, db_url: str, customer: dict[str, str]
) -> None:
    first = new_payment(db_url, customer["id"])
    assert new_payment(db_url, customer["id"]) == first
    with pytest.raises(CovernetError) as pending:
        new_payment(db_url, customer["id"], amount=AMOUNT + 1)
    assert pending.value.code == "payment_pending"
    client.post(f"/sandbox/payments/{first}/succeed")
    deliver(client)
    with pytest.raises(CovernetError) as paid:
        new_payment(db_url, customer["id"])
    assert paid.value.code == "already_paid"
    assert new_payment(db_url, customer["id"], subject_id="app-2") != first


def test_an_expired_payment_makes_way_for_a_new_one(
    client: Any, db_url: str, customer: dict[str, str]
) -> None:
    from datetime import timedelta

    from covernet.core import clock

    first = new_payment(db_url, customer["id"])
    with clock.shifted(timedelta(minutes=31)):
        second = new_payment(db_url, customer["id"])
        with unit_of_work(db_url) as db:
            assert service.get_payment(db, first).status == "expired"
            latest = service.payment_for(
                db, purpose=PURPOSE, subject_type="application", subject_id="app-1"
            )
            assert latest is not None and latest.id == second


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"amount_fen": 0}, "invalid_amount"),
        ({"amount_fen": 1.5}, "invalid_amount"),
        ({"insurer_code": "nobody"}, "unknown_insurer"),
        ({"return_path": "https://evil.example/"}, "invalid_return_path"),
    ],
)
def test_bad_payments_are_refused(
    client: Any, db_url: str, customer: dict[str, str], change: dict[str, Any], code: str
) -> None:
    args: dict[str, Any] = {
        "purpose": PURPOSE,
        "subject_type": "application",
        "subject_id": "app-9",
        "payer_id": customer["id"],
        "insurer_code": INSURER,
        "amount_fen": AMOUNT,
        "description": "x",
        **change,
    }
    with pytest.raises(CovernetError) as refused, unit_of_work(db_url) as db:
        service.create_payment(db, **args)
    assert refused.value.code == code
