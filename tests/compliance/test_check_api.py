"""POST /api/v1/compliance/check over HTTP."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from covernet.core import clock
from covernet.identity.models import Role
from tests.conftest import staff_headers


def _login(client: Any, db_url: str, username: str, role: Role) -> dict[str, str]:
    return staff_headers(client, db_url, username, role)


def test_an_advisor_checks_a_draft(client: Any, db_url: str) -> None:
    advisor = _login(client, db_url, "wang", Role.advisor)
    officer = _login(client, db_url, "zhao", Role.compliance)
    client.post(
        "/api/v1/compliance/licenses",
        headers=officer,
        json={
            "license_no": "02000111000080002024000999",
            "advisor_username": "wang",
            "institution": "示例安心财产保险股份有限公司（演示）",
            "valid_until": (clock.today() + timedelta(days=300)).isoformat(),
            "lines": ["accident", "life"],
        },
    )
    text = "全网最便宜的意外险，稳 赚不赔！"
    bad = client.post(
        "/api/v1/compliance/check",
        headers=advisor,
        json={"text": text, "product_codes": ["accident-monthly"], "kind": "moments"},
    )
    assert bad.status_code == 200, bad.text
    body = bad.json()
    assert body["verdict"] == "fail"
    rules = {f["rule"] for f in body["findings"]}
    assert {"R23", "R2"} <= rules
    superlative = next(f for f in body["findings"] if f["rule"] == "R23")
    assert text[superlative["span"][0] : superlative["span"][1]] == superlative["excerpt"]
    good = (
        "这是一款意外伤害保险，每月5元保30万元，保障以保险合同为准。"
        "王小明 示例安心财产保险股份有限公司（演示） 执业证编号02000111000080002024000999"
    )
    fine = client.post(
        "/api/v1/compliance/check",
        headers=advisor,
        json={"text": good, "product_codes": ["accident-monthly"], "kind": "moments"},
    )
    assert fine.json()["verdict"] == "pass", fine.json()


def test_participating_products_need_the_uncertainty_statement(client: Any, db_url: str) -> None:
    officer = _login(client, db_url, "zhao", Role.compliance)
    response = client.post(
        "/api/v1/compliance/check",
        headers=officer,
        json={
            "text": "长生年年有约年金保险，每年领取，安心养老。",
            "kind": "canned_reply",
            "product_codes": ["annuity-participating"],
        },
    )
    assert response.json()["verdict"] == "fail"
    assert "R7" in {f["rule"] for f in response.json()["findings"]}


def test_bad_requests_and_audience(client: Any, db_url: str, customer_headers: Any) -> None:
    officer = _login(client, db_url, "zhao", Role.compliance)
    unknown = client.post(
        "/api/v1/compliance/check",
        headers=officer,
        json={"text": "保险", "product_codes": ["nope"]},
    )
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_product"
    empty = client.post("/api/v1/compliance/check", headers=officer, json={"text": ""})
    assert empty.status_code == 422
    not_advisor = client.post(
        "/api/v1/compliance/check", headers=officer, json={"text": "保险", "advisor_id": "missing"}
    )
    assert not_advisor.status_code == 404 and not_advisor.json()["error"] == "unlicensed"
    assert (
        client.post(
            "/api/v1/compliance/check", headers=customer_headers, json={"text": "保险"}
        ).status_code
        == 403
    )
