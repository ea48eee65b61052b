"""Helpers for buying-flow tests: a quote, the documents, an application, the payment."""

from __future__ import annotations

from datetime import date
from typing import Any

from covernet.core.cn_identity import make_id_number

APPLICANT_ID = make_id_number("310104", date(1990, 5, 20), 37)  # male, 1990-05-20
CHILD_ID = make_id_number("310104", date(2016, 3, 8), 22)  # female


def quote(client: Any, headers: dict[str, str], **over: Any) -> dict[str, Any]:
    body = {
        "product_code": "accident-monthly",
        "plan_code": "basic",
        "insured": {"id_number": APPLICANT_ID, "region": "310000"},
        **over,
    }
    made = client.post("/api/v1/quotes", headers=headers, json=body)
    assert made.status_code == 201, made.text
    return dict(made.json())


def documents(client: Any, product_code: str) -> dict[str, Any]:
    found = client.get(f"/api/v1/products/{product_code}/documents")
    assert found.status_code == 200, found.text
    return dict(found.json())


def application(client: Any, quote_body: dict[str, Any], **over: Any) -> dict[str, Any]:
    docs = documents(client, quote_body["product_code"])
    body: dict[str, Any] = {
        "quote_id": quote_body["quote_id"],
        "applicant": {"name": "张三", "id_number": APPLICANT_ID},
        "relationship": "self",
        "acknowledgements": {d["code"]: d["content_hash"] for d in docs["documents"]},
    }
    if docs["uncertainty_statement"]:
        body["uncertainty_statement"] = docs["uncertainty_statement"]
    body.update(over)
    return body


def apply(
    client: Any, headers: dict[str, str], body: dict[str, Any], key: str | None = None
) -> Any:
    extra = {"Idempotency-Key": key} if key else {}
    return client.post("/api/v1/applications", headers={**headers, **extra}, json=body)


def pay(client: Any, payment_id: str, *, outcome: str = "succeed") -> None:
    """Make the sandbox pay (or fail) and deliver its callback to the app."""
    from covernet.payments.providers import sandbox

    done = client.post(f"/sandbox/payments/{payment_id}/{outcome}")
    assert done.status_code in (200, 202), done.text
    report = sandbox.deliver_due(client)
    assert not report.failed, report


def deliver(client: Any) -> Any:
    from covernet.payments.providers import sandbox

    return sandbox.deliver_due(client)
