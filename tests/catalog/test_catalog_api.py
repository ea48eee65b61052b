"""The catalog over HTTP."""

from __future__ import annotations

from typing import Any


def test_products_listed_with_lines_prices_and_insurers(client: Any) -> None:
    body = client.get("/api/v1/products").json()
    by_code = {p["code"]: p for p in body["items"]}
    assert {
        "accident-monthly",
        "medical-million",
        "ci-lifetime",
        "annuity-participating",
        "return-shipping",
        "flight-delay",
        "screen-guard",
        "travel-medical",
        "account-security",
    } <= set(by_code)
    accident = by_code["accident-monthly"]
    assert (accident["price_from_fen"], accident["price_from_frequency"]) == (500, "monthly")
    assert accident["line_label"] == {"zh": "意外", "en": "Accident"}
    assert accident["insurer"]["demo"] is True and accident["on_sale"] is True
    assert {p["line"] for p in body["items"]} == {
        "accident",
        "medical",
        "critical_illness",
        "life",
        "property",
        "travel",
    }


def test_filter_by_line(client: Any) -> None:
    items = client.get("/api/v1/products", params={"line": "medical"}).json()["items"]
    assert items and {p["line"] for p in items} == {"medical"}
    bad = client.get("/api/v1/products", params={"line": "pets"})
    assert bad.status_code == 422 and bad.json()["error"] == "malformed_request"


def test_product_detail_carries_terms_and_disclosures(client: Any) -> None:
    body = client.get("/api/v1/products/annuity-participating").json()
    assert body["spec"]["kind"] == "participating" and body["spec"]["cash_values"]["rows"]
    assert body["spec"]["terms"]["exclusions"]
    codes = {d["code"]: d for d in body["disclosures"]}
    assert codes["uncertain_benefits"]["emphasis"] is True
    assert body["insurer"]["service_phone"] and "premium_account" not in body["insurer"]


def test_unknown_product_is_404(client: Any) -> None:
    response = client.get("/api/v1/products/nope")
    assert response.status_code == 404 and response.json()["error"] == "unknown_product"


def test_health_and_openapi(client: Any) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    spec = client.get("/openapi.json").json()
    assert "/api/v1/quotes" in spec["paths"] and "/api/v1/auth/login" in spec["paths"]
    assert client.get("/docs").status_code == 200
