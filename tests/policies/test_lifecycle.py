"""Getting out of a policy over HTTP (R17, R18): 犹豫期 cancellation and surrender, with
the refund through the provider, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from covernet.audit.models import AuditEntry
from covernet.core import clock
from covernet.core.db import unit_of_work
from tests.policies.buying import application, apply, deliver, pay, quote

CI = {
    "product_code": "ci-lifetime",
    "plan_code": "standard",
    "term": "whole-life",
    "payment": "pay20",
}
CI_NO = {
    "serious-diagnoses": False,
    "screening-findings": False,
    "pending-hospital": False,
    "infant-conditions": False,
}


def _bought(client: Any, headers: dict[str, str], **over: Any) -> dict[str, Any]:
    q = quote(client, headers, **over)
    extra = {"health_answers": CI_NO} if over.get("product_code") == "ci-lifetime" else {}
    made = apply(client, headers, application(client, q, **extra))
    assert made.status_code == 201, made.text
    pay(client, made.json()["payment_id"])
    policies = client.get("/api/v1/policies", headers=headers).json()
    return dict(next(p for p in policies if p["application_id"] == made.json()["application_id"]))


def test_cooling_off_cancellation_refunds_at_once(
    client: Any, customer_headers: dict[str, str], db_url: str
) -> None:
    policy = _bought(client, customer_headers, **CI)
    assert policy["cooling_off_end"]
    done = client.post(f"/api/v1/policies/{policy['policy_id']}/cancel", headers=customer_headers)
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["basis"] == "cooling_off" and body["executed"] is True
    assert body["amount_fen"] == policy["premium_fen"] - body["fee_fen"]
    assert body["policy"]["status"] == "cancelled"
    refund = body["policy"]["refunds"][0]
    assert refund["amount_fen"] == body["amount_fen"] and refund["status"] == "requested"
    deliver(client)  # the provider confirms the refund
    after = client.get(f"/api/v1/policies/{policy['policy_id']}", headers=customer_headers).json()
    assert after["refunds"][0]["status"] == "succeeded"
    again = client.post(f"/api/v1/policies/{policy['policy_id']}/cancel", headers=customer_headers)
    assert again.status_code == 409 and again.json()["error"] == "policy_not_in_force"
    with unit_of_work(db_url) as db:
        assert db.scalars(
            select(AuditEntry.action).where(AuditEntry.subject_id == policy["policy_id"])
        ).all() == ["policy.issue", "policy.cancelled"]


def test_after_cooling_off_surrender_is_quoted_then_confirmed(
    client: Any, customer_headers: dict[str, str]
) -> None:
    policy = _bought(client, customer_headers, **CI)
    with clock.shifted(timedelta(days=40)):
        from tests.conftest import CUSTOMER, bearer

        headers = bearer(client, CUSTOMER["mobile"], CUSTOMER["password"])
        late = client.post(f"/api/v1/policies/{policy['policy_id']}/cancel", headers=headers)
        assert late.status_code == 409 and late.json()["error"] == "cooling_off_over"
        url = f"/api/v1/policies/{policy['policy_id']}/surrender"
        shown = client.post(url, headers=headers, json={})
        assert shown.status_code == 200, shown.text
        offer = shown.json()
        assert offer["executed"] is False and offer["basis"] == "cash_value"
        assert offer["documents"] and offer["processing_days"] <= 30
        assert offer["policy"]["status"] == "in_force"
        wrong = client.post(url, headers=headers, json={"confirm": True, "amount_fen": 1})
        assert wrong.status_code == 409 and wrong.json()["error"] == "surrender_amount_changed"
        done = client.post(
            url, headers=headers, json={"confirm": True, "amount_fen": offer["amount_fen"]}
        )
        assert done.json()["executed"] is True
        assert done.json()["policy"]["status"] == "surrendered"


def test_monthly_cover_surrenders_for_the_unused_days(
    client: Any, customer_headers: dict[str, str]
) -> None:
    policy = _bought(client, customer_headers)
    url = f"/api/v1/policies/{policy['policy_id']}/surrender"
    before_start = client.post(url, headers=customer_headers, json={}).json()
    assert (before_start["basis"], before_start["amount_fen"]) == ("not_started", 500)
    no_cooling = client.post(
        f"/api/v1/policies/{policy['policy_id']}/cancel", headers=customer_headers
    )
    assert no_cooling.json()["error"] == "cooling_off_over"


def test_only_the_policyholder_ends_a_policy(
    client: Any, customer_headers: dict[str, str], anon_client: Any
) -> None:
    policy = _bought(client, customer_headers)
    anon_client.post(
        "/api/v1/auth/register",
        json={"mobile": "13700002222", "password": "another-pass-1", "name": "王五"},
    )
    from tests.conftest import bearer

    other = bearer(anon_client, "13700002222", "another-pass-1")
    url = f"/api/v1/policies/{policy['policy_id']}/cancel"
    assert anon_client.post(url, headers=other).status_code == 404
    assert anon_client.post(url).status_code == 401


def test_renewal_only_when_the_customer_asks(
    client: Any, customer_headers: dict[str, str], db_url: str
) -> None:
    from covernet.policies import renewal
    from tests.conftest import CUSTOMER, bearer

    policy = _bought(client, customer_headers)
    assert policy["renewal"]["guaranteed"] is False  # 不保证续保
    end = policy["end_date"]
    early = client.post(
        f"/api/v1/policies/{policy['policy_id']}/renewal-quote", headers=customer_headers
    )
    assert early.status_code == 409 and early.json()["error"] == "renewal_not_open"
    with clock.shifted(timedelta(days=27)):
        headers = bearer(client, CUSTOMER["mobile"], CUSTOMER["password"])
        with unit_of_work(db_url) as db:
            assert renewal.remind(db) == 1
            assert renewal.remind(db) == 0  # once
        shown = client.get(f"/api/v1/policies/{policy['policy_id']}", headers=headers).json()
        assert shown["renewal"]["open"] and shown["renewal"]["reminded"]
        offered = client.post(
            f"/api/v1/policies/{policy['policy_id']}/renewal-quote", headers=headers
        )
        assert offered.status_code == 201, offered.text
        next_quote = offered.json()
        assert next_quote["effective_date"] > end  # the day after cover ends
        # An ordinary quote cannot pose as the renewal.
        plain = quote(client, headers)
        wrong = apply(client, headers, application(client, plain, renewal_of=policy["policy_id"]))
        assert wrong.json()["error"] == "not_a_renewal_quote"
        made = apply(
            client, headers, application(client, next_quote, renewal_of=policy["policy_id"])
        )
        assert made.status_code == 201, made.text
        pay(client, made.json()["payment_id"])
        mine = client.get("/api/v1/policies", headers=headers).json()
        renewed = next(p for p in mine if p["application_id"] == made.json()["application_id"])
        assert renewed["effective_date"] == next_quote["effective_date"]
        old = client.get(f"/api/v1/policies/{policy['policy_id']}", headers=headers).json()
        assert old["renewal"]["reason"] == "already_renewed"
    with clock.shifted(timedelta(days=45)):
        with unit_of_work(db_url) as db:
            assert renewal.expire_ended(db) == 1
        headers = bearer(client, CUSTOMER["mobile"], CUSTOMER["password"])
        assert (
            client.get(f"/api/v1/policies/{policy['policy_id']}", headers=headers).json()["status"]
            == "expired"
        )
