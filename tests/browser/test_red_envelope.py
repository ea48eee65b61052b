"""A red envelope on phones: the demo customer taps "发保险红包" on the product page, signs
in, fills the send form (the figures follow the form as it changes), pays on the sandbox
page and finds the share link on her envelope page; a friend, in a second phone browser,
opens the share link, is sent to sign in when she taps the grab button, registers, grabs
a share, activates it in her own name and finds the gifted policy in /policies."""

from __future__ import annotations

import re
import time
from datetime import date
from typing import Any

import httpx
import pytest

from covernet.core.cn_identity import make_id_number
from tests.browser.conftest import PHONE, watch

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


def _bearer(base: str, mobile: str, password: str) -> dict[str, str]:
    with httpx.Client(base_url=base, timeout=10) as http:
        token = http.post("/api/v1/auth/login", json={"mobile": mobile, "password": password})
        assert token.status_code == 200, token.text
        return {"Authorization": f"Bearer {token.json()['access_token']}"}


def _wait_open(base: str, envelope_id: str, auth: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 20  # the server delivers the sandbox's callback itself
    with httpx.Client(base_url=base, timeout=10) as http:
        while time.monotonic() < deadline:
            seen = http.get(f"/api/v1/red-envelopes/{envelope_id}", headers=auth).json()
            if seen["status"] == "open":
                return dict(seen)
            time.sleep(0.3)
    raise AssertionError("the envelope did not open after payment")


def test_send_grab_activate_and_see_the_policy(phone: Any, browser: Any, live_server: str) -> None:
    from playwright.sync_api import expect

    from covernet.cli import DEMO_CUSTOMER
    from covernet.core.config import get_settings

    password = get_settings().demo_password

    # The sender starts from the product page and signs in on the way.
    sender = phone
    sender.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server)
    sender.goto(f"{live_server}/products/accident-monthly")
    sender.get_by_role("link", name="发保险红包").tap()
    sender.wait_for_url(re.compile(r"/login\?next="))
    sender.locator("#l-mobile").fill(DEMO_CUSTOMER[0])
    sender.locator("#l-password").fill(password)
    sender.locator("main button[type='submit']").tap()
    sender.wait_for_url(re.compile(r"/envelopes/new\?product=accident-monthly$"))

    # The send form: giftable plans only, the figures before paying.
    form = sender.locator("form[data-envelope-form]")
    options = form.locator("input[name='option']")
    expect(options).to_have_count(2)
    expect(form.locator("input[value='accident-monthly:basic']")).to_be_checked()
    preview = sender.locator("[data-envelope-preview]")
    expect(preview.locator("[data-preview='total_premium']")).to_have_text("¥15.00")
    form.locator("#e-shares").fill("2")
    expect(preview.locator("[data-preview='total_premium']")).to_have_text("¥10.00")
    form.locator("label", has_text="拼手气").tap()
    expect(preview.locator("[data-preview-row='random']")).to_be_visible()
    expect(preview.locator("[data-preview='cover_floor']")).to_have_text("¥60,000.00")
    form.locator("#e-greeting").fill(GREETING)
    shot(sender, "0-send-form")
    form.get_by_role("button", name="去支付").tap()

    # Paying on the sandbox page opens the envelope.
    sender.wait_for_url(re.compile(r"/sandbox/pay/[0-9a-f-]{36}$"))
    sender.locator("form[action$='/succeed'] button[type='submit']").tap()
    expect(sender.get_by_role("status")).to_be_visible()
    sender.goto(f"{live_server}/envelopes")
    sent = sender.locator("[data-envelope-status] a")
    expect(sent).to_have_count(1)
    sent.first.tap()
    sender.wait_for_url(re.compile(r"/e/[0-9a-f-]{36}$"))
    share_path = "/e/" + sender.url.rsplit("/", 1)[1]
    envelope_id = share_path.rsplit("/", 1)[1]
    opened = _wait_open(live_server, envelope_id, _bearer(live_server, DEMO_CUSTOMER[0], password))
    assert opened["shares_left"] == 2 and opened["split"] == "random"
    assert opened["greeting"] == GREETING
    sender.reload()
    expect(sender.locator("main")).to_contain_text("可以领取")
    expect(sender.locator("[data-payment-status]")).to_have_text("已支付")
    share_url = sender.locator("#share-url")
    expect(share_url).to_have_value(f"{live_server}{share_path}")
    expect(sender.get_by_role("link", name="去支付")).to_have_count(0)
    copy = sender.get_by_role("button", name="复制链接")
    copy.tap()
    expect(sender.locator("[data-copy]")).to_have_text("已复制")
    assert sender.evaluate("navigator.clipboard.readText()") == f"{live_server}{share_path}"
    shot(sender, "0-sender-share")

    # The friend, in a phone browser of her own, opens the share link.
    context = browser.new_context(**PHONE)
    context.set_default_timeout(10_000)
    friend = context.new_page()
    problems = watch(friend)
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
        friend.locator("main button[type='submit']").tap()
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
