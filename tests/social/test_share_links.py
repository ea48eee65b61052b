"""Share links (R1, R2, R4, R12): creation, landing with a signed attribution cookie,
sign-ups, quotes and purchases credited along the chain of sharers, the funnel, and the
referral rewards configuration; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from covernet.core import clock
from covernet.core.errors import ValidationFailed
from covernet.identity.models import Role
from covernet.social import attribution, rewards
from tests.conftest import bearer, staff_headers
from tests.policies.buying import application, apply, pay, quote

CATALOG = Path(__file__).resolve().parents[2] / "catalog"


def _license(client: Any, db_url: str, lines: list[str]) -> dict[str, str]:
    advisor = staff_headers(client, db_url, "wang", Role.advisor)
    officer = staff_headers(client, db_url, "zhao", Role.compliance)
    held = client.post(
        "/api/v1/compliance/licenses",
        headers=officer,
        json={
            "license_no": "02000111000080002024000999",
            "advisor_username": "wang",
            "institution": "示例安心财产保险股份有限公司（演示）",
            "valid_until": (clock.today() + timedelta(days=100)).isoformat(),
            "lines": lines,
        },
    )
    assert held.status_code == 201, held.text
    return advisor


def _link(client: Any, headers: dict[str, str], **body: Any) -> Any:
    return client.post(
        "/api/v1/share-links",
        headers=headers,
        json={"target": "product", "target_id": "accident-monthly", **body},
    )


def _register(client: Any, mobile: str) -> dict[str, str]:
    made = client.post(
        "/api/v1/auth/register", json={"mobile": mobile, "password": "s3cret-pass", "name": "访客"}
    )
    assert made.status_code == 201, made.text
    return bearer(client, mobile, "s3cret-pass")


def test_links_are_created_and_checked(
    client: Any, customer_headers: dict[str, str], db_url: str
) -> None:
    made = _link(client, customer_headers)
    assert made.status_code == 201, made.text
    link = made.json()
    assert len(link["code"]) >= 12 and link["url"].endswith(f"/s/{link['code']}")
    assert link["target_path"] == "/products/accident-monthly" and link["depth"] == 1
    unknown = _link(client, customer_headers, target_id="no-such-product")
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_target"
    for target in ("live", "envelope"):
        missing = _link(client, customer_headers, target=target, target_id="0" * 36)
        assert missing.status_code == 404, missing.text
    advisor = _license(client, db_url, ["accident"])
    assert _link(client, advisor).status_code == 201
    refused = _link(client, advisor, target_id="screen-guard")  # property: not licensed
    assert refused.status_code in (400, 403), refused.text
    other = _link(client, staff_headers(client, db_url, "liming", Role.advisor))
    assert other.status_code in (400, 403), other.text  # no license at all
    assert client.get(f"/api/v1/share-links/{link['id']}", headers=advisor).status_code == 404


def test_advisor_landing_shows_identity(client: Any, db_url: str) -> None:
    advisor = _license(client, db_url, ["accident"])
    code = _link(client, advisor).json()["code"]
    with TestClient(client.app, base_url="https://testserver") as visitor:
        page = visitor.get(f"/s/{code}")
        assert page.status_code == 200
        assert (
            "02000111000080002024000999" in page.text and "/products/accident-monthly" in page.text
        )
        assert attribution.verify(visitor.cookies.get(attribution.COOKIE)) == code


def test_chain_funnel_and_attribution(
    client: Any, customer_headers: dict[str, str], db_url: str
) -> None:
    a = _link(client, customer_headers).json()
    with TestClient(client.app, base_url="https://testserver") as visitor:
        landed = visitor.get(f"/s/{a['code']}", follow_redirects=False)
        assert (
            landed.status_code == 303 and landed.headers["location"] == "/products/accident-monthly"
        )
        cookie = landed.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "max-age=2592000" in cookie
        assert attribution.verify(visitor.cookies.get(attribution.COOKIE)) == a["code"]
        b_owner = _register(visitor, "13912340001")
        b = _link(visitor, b_owner).json()
        assert b["parent_id"] == a["id"] and b["depth"] == 2
    with TestClient(client.app, base_url="https://testserver") as buyer:
        assert buyer.get(f"/s/{b['code']}", follow_redirects=False).status_code == 303
        headers = _register(buyer, "13912340002")
        q = quote(buyer, headers)
        made = apply(buyer, headers, application(buyer, q))
        assert made.status_code == 201, made.text
    submitted = client.get(f"/api/v1/share-links/{b['id']}", headers=b_owner).json()
    assert submitted["funnel"]["counts"]["purchase"] == 0  # not until the policy is issued
    pay(client, made.json()["payment_id"])
    mine = client.get(f"/api/v1/share-links/{a['id']}", headers=customer_headers).json()
    assert mine["funnel"]["counts"] == {"visit": 1, "signup": 1, "quote": 0, "purchase": 0}
    assert mine["funnel"]["rates"]["signup"] == 1.0
    assert mine["funnel"]["chain"] == {"visit": 1, "signup": 1, "quote": 1, "purchase": 1}
    assert mine["shared_on"] == 1
    theirs = client.get(f"/api/v1/share-links/{b['id']}", headers=b_owner).json()
    assert theirs["funnel"]["counts"] == {"visit": 1, "signup": 1, "quote": 1, "purchase": 1}
    assert theirs["funnel"]["rates"] == {"signup": 1.0, "quote": 1.0, "purchase": 1.0}
    listed = client.get("/api/v1/share-links", headers=customer_headers).json()
    assert [x["id"] for x in listed] == [a["id"]]
    assert client.get(f"/api/v1/share-links/{b['id']}", headers=customer_headers).status_code == 404
    # explicit code instead of a cookie
    explicit = _register_with_code(client, "13912340003", a["code"])
    assert explicit == 201
    after = client.get(f"/api/v1/share-links/{a['id']}", headers=customer_headers).json()
    assert after["funnel"]["counts"]["signup"] == 2


def _register_with_code(client: Any, mobile: str, code: str) -> int:
    made = client.post(
        "/api/v1/auth/register",
        headers={"X-Share-Code": code},
        json={"mobile": mobile, "password": "s3cret-pass", "name": "访客"},
    )
    return int(made.status_code)


def test_funnel_page_is_svg_without_inline_script(
    client: Any, customer: dict[str, str], db_url: str
) -> None:
    from tests.conftest import sign_in_with_cookie

    headers = bearer(client, customer["mobile"], customer["password"])
    code = _link(client, headers).json()["code"]
    sign_in_with_cookie(client, db_url, customer["id"])
    page = client.get("/account/links")
    assert page.status_code == 200 and "<svg" in page.text and code in page.text
    assert "<script>" not in page.text and "style=" not in page.text


def test_a_forged_cookie_is_ignored() -> None:
    token = attribution.sign("abc")
    assert attribution.verify(token) == "abc"
    assert attribution.verify(token[:-2] + "xx") is None
    assert attribution.verify(attribution.sign("abc", now=0)) is None  # older than 30 days


def test_referral_rewards_config(client: Any) -> None:
    from covernet.catalog.loader import load_catalog

    catalog = load_catalog(CATALOG)
    ok = rewards.parse(
        {
            "rewards": [
                {
                    "code": "gift",
                    "kind": "gift_cover",
                    "product": "accident-monthly",
                    "plan": "basic",
                    "title": "赠险",
                },
                {
                    "code": "perk",
                    "kind": "service_perk",
                    "title": "优先服务",
                    "description": "专人指导",
                },
            ]
        },
        catalog,
    )
    assert [r.kind for r in ok.rewards] == ["gift_cover", "service_perk"]
    with pytest.raises(ValidationFailed, match="R4"):
        rewards.parse({"rewards": [{"code": "c", "kind": "cash_rebate", "title": "返现"}]}, catalog)
    with pytest.raises(ValidationFailed, match="R12"):
        rewards.parse(
            {
                "rewards": [
                    {
                        "code": "p",
                        "kind": "gift_cover",
                        "product": "screen-guard",
                        "plan": "phone-3k",
                        "title": "碎屏险",
                    }
                ]
            },
            catalog,
        )
    with pytest.raises(ValidationFailed, match="R4"):
        rewards.parse(
            {
                "rewards": [
                    {"code": "x", "kind": "service_perk", "title": "t", "description": "返现10元"}
                ]
            },
            catalog,
        )
    assert rewards.load(CATALOG, catalog).rewards
    listed = client.get("/api/v1/referral-rewards")
    assert listed.status_code == 200 and {r["kind"] for r in listed.json()} == {
        "gift_cover",
        "service_perk",
    }
