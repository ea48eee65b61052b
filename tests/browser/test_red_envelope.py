"""A red envelope on phones: the demo customer creates an envelope of gifted cover over the
API and pays it on the sandbox page from her envelope page; a friend, in a second phone
browser, opens the share link, is sent to sign in when she taps the grab button, registers,
grabs a share, activates it in her own name and finds the gifted policy in /policies."""

from __future__ import annotations

import re
import time
from datetime import date
from typing import Any

import httpx
import pytest

from covernet.core.cn_identity import make_id_number
from tests.browser.conftest import PHONE

pytestmark = pytest.mark.browser

SCREENSHOTS = "/tmp"  # for looking at the pages by hand; nothing is written in the repo
FRIEND = {"mobile": "13900139007", "name": "林小雨", "password": "gift-pass-2024"}
FRIEND_ID = make_id_number("310104", date(1993, 5, 20), 62)
GREETING = "端午安康，出行平安"


def no_horizontal_overflow(page: Any) -> None:
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth, document.body.scrollWidth]"
    )
    assert widths[0] <= widths[1] and widths[2] <= widths[1], widths


def shot(page: Any, name: str) -> None:
    no_horizontal_overflow(page)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=f"{SCREENSHOTS}/covernet-envelope-{name}.png", full_page=True)


def _create(base: str, mobile: str, password: str) -> tuple[dict[str, Any], dict[str, str]]:
    """An unpaid two-share envelope of the demo customer's; its body and her bearer header."""
    with httpx.Client(base_url=base, timeout=10) as http:
        token = http.post("/api/v1/auth/login", json={"mobile": mobile, "password": password})
        assert token.status_code == 200, token.text
        auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
        made = http.post(
            "/api/v1/red-envelopes",
            headers=auth,
            json={
                "product_code": "accident-monthly",
                "plan_code": "basic",
                "shares": 2,
                "greeting": GREETING,
            },
        )
        assert made.status_code == 201, made.text
        assert made.json()["status"] == "pending_payment"
        return dict(made.json()), auth


def _wait_open(base: str, envelope_id: str, auth: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 20  # the server delivers the sandbox's callback itself
    with httpx.Client(base_url=base, timeout=10) as http:
        while time.monotonic() < deadline:
            seen = http.get(f"/api/v1/red-envelopes/{envelope_id}", headers=auth).json()
            if seen["status"] == "open":
                return dict(seen)
            time.sleep(0.3)
    raise AssertionError("the envelope did not open after payment")


def _watch(page: Any) -> list[str]:
    """Page errors, console errors, server errors and broken static files on ``page``."""
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on(
        "console",
        lambda message: (
            problems.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.on(
        "response",
        lambda response: (
            problems.append(f"{response.status} {response.url}")
            if response.status >= 500 or ("/static/" in response.url and response.status >= 400)
            else None
        ),
    )
    return problems


def test_send_grab_activate_and_see_the_policy(phone: Any, browser: Any, live_server: str) -> None:
    from playwright.sync_api import expect

    from covernet.cli import DEMO_CUSTOMER
    from covernet.core.config import get_settings

    password = get_settings().demo_password
    envelope, auth = _create(live_server, DEMO_CUSTOMER[0], password)
    envelope_id = envelope["envelope_id"]
    share_path = envelope["share_url"]
    assert share_path == f"/e/{envelope_id}"

    # The sender pays from her own envelope page, on the sandbox pay page.
    sender = phone
    sender.goto(f"{live_server}/login?next={share_path}")
    sender.locator("#l-mobile").fill(DEMO_CUSTOMER[0])
    sender.locator("#l-password").fill(password)
    sender.locator("button[type='submit']").tap()
    sender.wait_for_url(re.compile(re.escape(share_path) + "$"))
    expect(sender.locator("#grabs-title")).to_be_visible()
    expect(sender.locator("main")).to_contain_text("待支付")
    shot(sender, "0-sender-unpaid")
    sender.get_by_role("link", name="去支付").tap()
    sender.wait_for_url(re.compile(r"/sandbox/pay/[0-9a-f-]{36}$"))
    sender.locator("form[action$='/succeed'] button[type='submit']").tap()
    expect(sender.get_by_role("status")).to_be_visible()
    opened = _wait_open(live_server, envelope_id, auth)
    assert opened["shares_left"] == 2
    sender.goto(f"{live_server}{share_path}")
    expect(sender.locator("main")).to_contain_text("可以领取")
    expect(sender.locator("code")).to_contain_text(share_path)
    expect(sender.get_by_role("link", name="去支付")).to_have_count(0)

    # The friend, in a phone browser of her own, opens the share link.
    context = browser.new_context(**PHONE)
    context.set_default_timeout(10_000)
    friend = context.new_page()
    problems = _watch(friend)
    try:
        friend.goto(f"{live_server}{share_path}")
        expect(friend.locator("main")).to_contain_text(GREETING)
        grab = friend.get_by_role("button", name="领取红包")
        expect(grab).to_be_visible()
        shot(friend, "1-share-page")
        grab.tap()
        friend.wait_for_url(re.compile(r"/login\?next="))
        friend.locator("a[href^='/register']").tap()
        friend.wait_for_url(re.compile(r"/register\?next="))
        friend.locator("#r-mobile").fill(FRIEND["mobile"])
        friend.locator("#r-name").fill(FRIEND["name"])
        friend.locator("#r-password").fill(FRIEND["password"])
        friend.locator("button[type='submit']").tap()
        friend.wait_for_url(re.compile(re.escape(share_path) + "$"))
        friend.get_by_role("button", name="领取红包").tap()
        friend.wait_for_url(re.compile(re.escape(share_path) + "$"))

        form = friend.locator(f"form[action='{share_path}/activate']")
        expect(form).to_be_visible()
        expect(friend.locator("#mine-title")).to_contain_text("您领到了保额")
        form.locator("#g-name").fill(FRIEND["name"])
        form.locator("#g-id").fill(FRIEND_ID)
        boxes = form.locator("input[type='checkbox']")
        assert boxes.count() >= 1
        for box in boxes.all():
            assert not box.is_checked()  # nothing is pre-ticked
            box.check()
        shot(friend, "2-activation-form")
        form.get_by_role("button", name="激活赠险").tap()
        expect(friend.get_by_role("status")).to_contain_text("已激活")
        expect(friend.locator("#mine-title ~ p")).to_contain_text("已激活")
        expect(friend.locator(f"form[action='{share_path}/activate']")).to_have_count(0)
        shot(friend, "3-activated")

        friend.goto(f"{live_server}/policies")
        cards = friend.locator(".policy-card")
        expect(cards).to_have_count(1)
        expect(cards.first).to_contain_text("安心月月意外险")
        policy_no = cards.first.locator(".policy-card__no").inner_text().strip()
        assert policy_no
        shot(friend, "4-policies")
        cards.first.locator("a").tap()
        friend.wait_for_url(re.compile(r"/policies/[0-9a-f-]{36}$"))
        expect(friend.get_by_role("heading", level=1)).to_contain_text("安心月月意外险")
        expect(friend.locator("main")).to_contain_text(policy_no)
        shot(friend, "5-policy")
    finally:
        context.close()
    assert problems == [], f"the friend's pages reported errors: {problems}"

    # The sender sees the activated share, without the friend's name.
    sender.goto(f"{live_server}{share_path}")
    expect(sender.locator("[data-grab-status='activated']")).to_have_count(1)
    expect(sender.locator("main")).not_to_contain_text(FRIEND["name"])
    shot(sender, "6-sender-grabs")
