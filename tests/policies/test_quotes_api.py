"""Quotes over HTTP: prices from the catalog, clear errors, owners, versions."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from covernet.catalog.service import load_into_db
from covernet.catalog.spec import SaleStatus
from covernet.core import clock
from covernet.core.cn_identity import age_on, make_id_number
from covernet.core.db import unit_of_work
from covernet.policies.models import Quote
from tests.conftest import bearer, run_async, sign_in_with_cookie

ACCIDENT = {"product_code": "accident-monthly", "plan_code": "basic"}
ADULT = {"birth_date": "1990-05-20", "gender": "M", "region": "310000"}


def test_monthly_accident_quote(client: Any) -> None:
    response = client.post("/api/v1/quotes", json={**ACCIDENT, "insured": ADULT})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["premium_fen"] == 500 and body["sum_insured_fen"] == 30_000_000
    assert body["frequency"] == "monthly" and body["currency"] == "CNY"
    assert body["product_version"] == 1 and body["quote_id"]
    assert body["insured"]["age"] == age_on(
        date(1990, 5, 20), date.fromisoformat(body["effective_date"])
    )
    codes = [d["code"] for d in body["disclosures"]]
    assert "is_insurance" in codes and "exclusions" in codes
    plus = client.post("/api/v1/quotes", json={**ACCIDENT, "plan_code": "plus", "insured": ADULT})
    assert (plus.json()["premium_fen"], plus.json()["sum_insured_fen"]) == (1600, 100_000_000)


def test_flat_insured_fields_are_accepted(client: Any) -> None:
    response = client.post("/api/v1/quotes", json={**ACCIDENT, **ADULT})
    assert response.status_code == 201 and response.json()["premium_fen"] == 500


def test_id_number_gives_age_and_sex_and_is_stored_encrypted(client: Any, db_url: str) -> None:
    number = make_id_number("310104", date(1992, 3, 4), 37)  # odd sequence: male
    response = client.post(
        "/api/v1/quotes", json={**ACCIDENT, "insured": {"id_number": number, "region": "310000"}}
    )
    assert response.status_code == 201, response.text
    insured = response.json()["insured"]
    assert insured["gender"] == "M" and insured["id_number"] == number[:6] + "*" * 8 + number[-4:]
    with unit_of_work(db_url) as db:
        quote = db.scalars(select(Quote)).one()
        assert quote.insured_id_enc and number not in quote.insured_id_enc
        assert quote.insured_birth_date == date(1992, 3, 4)


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        (
            {"insured": {"id_number": "11010519491231002Y", "region": "110000"}},
            400,
            "invalid_id_number",
        ),
        ({"insured": {**ADULT, "birth_date": "1940-01-01"}}, 400, "age_out_of_range"),
        ({"insured": {**ADULT, "birth_date": "2020-01-01"}}, 400, "age_out_of_range"),
        ({"insured": {**ADULT, "region": "999999"}}, 400, "invalid_region"),
        ({"insured": {**ADULT, "occupation_class": 6}}, 400, "occupation_not_covered"),
        ({"insured": {"region": "310000"}}, 400, "birth_date_required"),
        ({"insured": {"birth_date": "1990-05-20", "region": "310000"}}, 400, "gender_required"),
        ({"plan_code": "gold"}, 400, "unknown_plan"),
        ({"product_code": "no-such-product"}, 404, "unknown_product"),
        ({"insured": {**ADULT, "id_number": "11010519491231002X"}}, 400, "id_number_mismatch"),
        ({"insured": {**ADULT, "gender": "X"}}, 422, "malformed_request"),
        ({"insured": {**ADULT, "birth_date": "1990-02-30"}}, 422, "malformed_request"),
    ],
)
def test_quote_errors_name_the_problem(
    client: Any, db_url: str, change: dict[str, Any], status: int, code: str
) -> None:
    response = client.post("/api/v1/quotes", json={**ACCIDENT, "insured": ADULT, **change})
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code and body["message"]
    with unit_of_work(db_url) as db:
        assert db.scalars(select(Quote)).all() == []  # nothing half-written


def test_per_order_product_needs_the_order_amount(client: Any) -> None:
    base = {
        "product_code": "return-shipping",
        "plan_code": "standard",
        "insured": {"region": "440000"},
    }
    missing = client.post("/api/v1/quotes", json=base)
    assert missing.status_code == 400 and missing.json()["error"] == "order_amount_required"
    small = client.post("/api/v1/quotes", json={**base, "order_amount_fen": 99_00})
    large = client.post("/api/v1/quotes", json={**base, "order_amount_fen": 2_000_00})
    assert small.status_code == 201 and large.status_code == 201
    assert small.json()["premium_fen"] < large.json()["premium_fen"]
    assert small.json()["frequency"] == "per_order"


def test_a_customers_quote_is_theirs_alone(
    client: Any, anon_client: Any, customer_headers: dict[str, str]
) -> None:
    made = client.post(
        "/api/v1/quotes", json={**ACCIDENT, "insured": ADULT}, headers=customer_headers
    )
    quote_id = made.json()["quote_id"]
    assert client.get(f"/api/v1/quotes/{quote_id}", headers=customer_headers).status_code == 200
    client.post(
        "/api/v1/auth/register",
        json={"mobile": "13600001111", "password": "other-pass1", "name": "别人"},
    )
    other = bearer(client, "13600001111", "other-pass1")
    stranger = client.get(f"/api/v1/quotes/{quote_id}", headers=other)
    assert stranger.status_code == 404 and stranger.json()["error"] == "not_found"
    assert anon_client.get(f"/api/v1/quotes/{quote_id}").status_code == 404
    # An anonymous quote is reachable by whoever holds its unguessable id.
    anonymous = anon_client.post("/api/v1/quotes", json={**ACCIDENT, "insured": ADULT})
    assert client.get(f"/api/v1/quotes/{anonymous.json()['quote_id']}").status_code == 200


def test_stopped_product_is_not_quoted_and_old_quotes_keep_their_version(
    client: Any, db_url: str, shipped_catalog: Any
) -> None:
    first = client.post("/api/v1/quotes", json={**ACCIDENT, "insured": ADULT}).json()
    products = [
        p.model_copy(update={"sale": p.sale.model_copy(update={"status": SaleStatus.suspended})})
        if p.code == "accident-monthly"
        else p
        for p in shipped_catalog.products
    ]
    with unit_of_work(db_url) as db:
        report = load_into_db(db, shipped_catalog.model_copy(update={"products": products}))
    assert report.updated == ["accident-monthly"]
    refused = client.post("/api/v1/quotes", json={**ACCIDENT, "insured": ADULT})
    assert refused.status_code == 400 and refused.json()["error"] == "product_not_on_sale"
    again = client.get(f"/api/v1/quotes/{first['quote_id']}").json()
    assert again["product_version"] == 1 and again["premium_fen"] == 500
    assert client.get("/api/v1/products/accident-monthly").json()["version"] == 2


def test_quote_is_valid_for_the_configured_time(client: Any) -> None:
    moment = datetime(2026, 6, 30, 23, 50, tzinfo=UTC)  # 07:50 on 1 July in Beijing
    with clock.frozen(moment):
        body = client.post("/api/v1/quotes", json={**ACCIDENT, "insured": ADULT}).json()
    assert datetime.fromisoformat(body["valid_until"]) == moment + timedelta(minutes=30)
    # Business dates are Beijing dates: cover starts the day after 1 July.
    assert body["effective_date"] == "2026-07-02"


def test_concurrent_quotes_are_all_stored_before_the_answer(app: Any, db_url: str) -> None:
    import asyncio

    import httpx

    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
            return await asyncio.gather(
                *(
                    http.post(
                        "/api/v1/quotes",
                        json={
                            **ACCIDENT,
                            "insured": {**ADULT, "birth_date": f"19{70 + i % 30}-05-20"},
                        },
                    )
                    for i in range(60)
                )
            )

    responses = run_async(main())
    assert [r.status_code for r in responses] == [201] * 60
    ids = {r.json()["quote_id"] for r in responses}
    with unit_of_work(db_url) as db:
        stored = set(db.scalars(select(Quote.id)))
    assert stored == ids and len(ids) == 60


def test_cookie_signed_quotes_need_the_csrf_token_and_belong_to_the_customer(
    client: Any, anon_client: Any, db_url: str, customer: dict[str, str]
) -> None:
    csrf = sign_in_with_cookie(client, db_url, customer["id"])
    body = {**ACCIDENT, "insured": ADULT}
    refused = client.post("/api/v1/quotes", json=body)
    assert refused.status_code == 403 and refused.json()["error"] == "csrf_failed"
    made = client.post("/api/v1/quotes", json=body, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201
    quote_id = made.json()["quote_id"]
    with unit_of_work(db_url) as db:
        stored = db.get(Quote, quote_id)
        assert stored is not None and stored.customer_id == customer["id"]
    assert client.get(f"/api/v1/quotes/{quote_id}").status_code == 200
    assert anon_client.get(f"/api/v1/quotes/{quote_id}").status_code == 404


def test_bearer_quotes_belong_to_the_customer(
    client: Any, db_url: str, customer: dict[str, str], customer_headers: dict[str, str]
) -> None:
    made = client.post(
        "/api/v1/quotes", json={**ACCIDENT, "insured": ADULT}, headers=customer_headers
    )
    with unit_of_work(db_url) as db:
        stored = db.get(Quote, made.json()["quote_id"])
        assert stored is not None and stored.customer_id == customer["id"]
    bad = client.post(
        "/api/v1/quotes",
        json={**ACCIDENT, "insured": ADULT},
        headers={"Authorization": "Bearer not-a-token"},
    )
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_token"
