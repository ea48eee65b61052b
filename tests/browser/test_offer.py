"""A scenario offer on a phone: a partner's signed hospital payment for the demo customer
(who agreed to marketing offers) makes an offer; she opens its link, sees the product,
the pre-filled quote's price and disclosures, taps once and lands on the application
for that quote."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import orjson
import pytest

from covernet.core.config import DEV_PARTNER_SECRETS
from covernet.partners.signing import signed_headers

pytestmark = pytest.mark.browser


def _offer_url(base: str, mobile: str, password: str) -> str:
    """Admin makes the partner's key, the customer agrees, the partner sends the event;
    the customer's own offer list gives the link."""
    from covernet.core.config import get_settings

    with httpx.Client(base_url=base, timeout=10) as http:
        admin = http.post("/api/v1/auth/login", json={"username": "admin", "password": password})
        assert admin.status_code == 200, admin.text
        staff = {"Authorization": f"Bearer {admin.json()['access_token']}"}
        made = http.post(
            "/api/v1/admin/api-keys", headers=staff, json={"name": "demo-shop", "role": "partner"}
        )
        assert made.status_code == 201, made.text
        key = {"X-API-Key": made.json()["key"]}
        login = http.post("/api/v1/auth/login", json={"mobile": mobile, "password": password})
        assert login.status_code == 200, login.text
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        notice = http.get("/api/v1/me/consents", headers=auth).json()[0]
        agreed = http.put(
            "/api/v1/me/consents/marketing_offers",
            headers=auth,
            json={"granted": True, "text_version": notice["current_version"]},
        )
        assert agreed.status_code == 200, agreed.text
        body = orjson.dumps(
            {
                "event_id": f"browser-{time.time_ns()}",
                "type": "hospital.payment",
                "occurred_at": "2026-01-01T10:00:00+08:00",
                "data": {
                    "mobile": mobile,
                    "amount_fen": 52_000,
                    "hospital": "仁济医院",
                    "city": "上海",
                    "birth_date": "1990-05-20",
                    "gender": "F",
                    "region": "310000",
                },
            }
        )
        signed = signed_headers(DEV_PARTNER_SECRETS["demo-shop"], body)
        sent = http.post(
            "/api/v1/partner/events",
            content=body,
            headers={**key, **signed, "Content-Type": "application/json"},
        )
        assert sent.status_code == 200, sent.text
        assert sent.json()["result"] == "accepted"
        mine = http.get("/api/v1/me/offers", headers=auth).json()
        assert len(mine) == 1 and mine[0]["rule_code"] == "hospital-medical", mine
        assert get_settings().demo_password == password
        return str(mine[0]["url"])


def test_open_offer_one_tap_quote(phone: Any, live_server: str) -> None:
    from playwright.sync_api import expect

    from covernet.cli import DEMO_CUSTOMER
    from covernet.core.config import get_settings

    password = get_settings().demo_password
    url = _offer_url(live_server, DEMO_CUSTOMER[0], password)
    path = url.removeprefix(live_server)
    assert re.fullmatch(r"/o/[A-Za-z0-9_-]{32}", path), url

    phone.goto(f"{live_server}/login?next={path}")
    phone.locator("#l-mobile").fill(DEMO_CUSTOMER[0])
    phone.locator("#l-password").fill(password)
    phone.locator("form[action='/login'] button[type='submit']").tap()
    phone.wait_for_url(re.compile(re.escape(path) + "$"))
    expect(phone.locator("#offer-title")).to_contain_text("百万医疗险")
    expect(phone.locator("main")).to_contain_text("康宁住院医疗险")
    card = phone.locator("[data-quote-card]")
    expect(card).to_be_visible()
    expect(card.locator("[data-slot='premium']")).to_contain_text("¥")
    expect(card.locator("[data-slot='disclosures'] li").first).to_be_visible()
    widths = phone.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], widths
    premium = card.locator("[data-slot='premium']").inner_text()
    phone.screenshot(path="/tmp/covernet-offer-landing.png", full_page=True)  # to look at

    phone.locator("[data-one-tap]").tap()  # the one tap
    phone.wait_for_url(re.compile(r"/apply/[0-9a-f-]{36}$"))
    expect(phone.locator("main")).to_contain_text(premium.strip())
    expect(phone.locator("main")).to_contain_text("康宁住院医疗险")  # the product quoted
    expect(phone.locator("input[type='checkbox']").first).not_to_be_checked()  # R13 follows
    widths = phone.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], widths
