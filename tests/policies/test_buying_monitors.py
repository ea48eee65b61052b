"""Monitors of the buying flow: instant underwriting (R16) and off-sale products whose
policies are still in force (R20)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from covernet.catalog.service import load_into_db
from covernet.catalog.spec import SaleStatus
from covernet.core import clock
from covernet.core.db import unit_of_work
from covernet.identity.models import Role
from tests.conftest import staff_headers
from tests.policies.buying import application, apply, pay, quote

MEDICAL = {"product_code": "medical-million", "plan_code": "standard"}
ANSWERS = {
    "major-diagnoses": False,
    "pending-hospital": True,  # referred to a human
    "chronic-conditions": False,
    "congenital": False,
}


def _figure(client: Any, headers: dict[str, str], key: str) -> dict[str, Any]:
    found = client.get("/api/v1/compliance/monitors", headers=headers).json()["figures"]
    return dict(next(f for f in found if f["key"] == key))


def test_instant_underwriting_rate_and_waiting_referrals(
    client: Any, customer_headers: dict[str, str], db_url: str
) -> None:
    officer = staff_headers(client, db_url, "zhao", Role.compliance)
    assert _figure(client, officer, "instant_underwriting")["total"] == 0
    instant = apply(client, customer_headers, application(client, quote(client, customer_headers)))
    pay(client, instant.json()["payment_id"])
    referred = apply(
        client,
        customer_headers,
        application(client, quote(client, customer_headers, **MEDICAL), health_answers=ANSWERS),
    )
    pay(client, referred.json()["payment_id"])
    figure = _figure(client, officer, "instant_underwriting")
    assert (figure["value"], figure["total"], figure["status"]) == (1, 2, "warning")
    assert [i["state"] for i in figure["items"]] == ["waiting"]
    with clock.shifted(timedelta(days=3)):
        late = staff_headers(client, db_url, "qian", Role.compliance)
        assert _figure(client, late, "instant_underwriting")["status"] == "breach"


def test_off_sale_products_with_policies_in_force(
    client: Any, customer_headers: dict[str, str], db_url: str, shipped_catalog: Any
) -> None:
    officer = staff_headers(client, db_url, "zhao", Role.compliance)
    made = apply(client, customer_headers, application(client, quote(client, customer_headers)))
    pay(client, made.json()["payment_id"])
    assert _figure(client, officer, "off_sale_in_force")["value"] == 0
    stopped = shipped_catalog.model_copy(
        update={
            "products": [
                p.model_copy(
                    update={"sale": p.sale.model_copy(update={"status": SaleStatus.suspended})}
                )
                if p.code == "accident-monthly"
                else p
                for p in shipped_catalog.products
            ]
        }
    )
    with unit_of_work(db_url) as db:
        load_into_db(db, stopped)
    figure = _figure(client, officer, "off_sale_in_force")
    assert figure["value"] == 1 and figure["items"][0]["label"].startswith("accident-monthly")
    assert figure["items"][0]["state"] == "served" and figure["status"] == "ok"
