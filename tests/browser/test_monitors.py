"""The demo compliance officer reads the service-standard monitors on a phone: every
figure shows, the items behind a figure link to their console page, nothing overflows."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.browser

DRAFT = "这是一款意外伤害保险，每月5元保30万元，保障责任以保险合同为准。王顾问（监测页测试）"


def _submit_as_demo_advisor(base: str) -> None:
    """A draft waiting for review, so the content figure has an item (API, no TOTP in the
    demo)."""
    from covernet.core.config import get_settings

    login = httpx.post(
        f"{base}/api/v1/auth/login",
        json={"username": "advisor", "password": get_settings().demo_password},
    )
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    made = httpx.post(
        f"{base}/api/v1/content",
        headers={"Authorization": f"Bearer {token}"},
        json={"kind": "moments", "body": DRAFT, "product_codes": ["accident-monthly"]},
    )
    assert made.status_code == 201, made.text


def _staff_login(page: Any, base: str, username: str, next_path: str) -> None:
    from covernet.core.config import get_settings

    page.goto(f"{base}/login?as=staff&next={next_path}")
    page.locator("#l-username").fill(username)
    page.locator("#l-password").fill(get_settings().demo_password)
    page.locator("button[type='submit']").tap()
    page.wait_for_url(re.compile(re.escape(next_path) + "$"))


def _no_horizontal_overflow(page: Any) -> None:
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth, document.body.scrollWidth]"
    )
    assert widths[0] <= widths[1] and widths[2] <= widths[1], widths


def test_monitors_on_a_phone(phone: Any, live_server: str) -> None:
    from playwright.sync_api import expect

    _submit_as_demo_advisor(live_server)
    page = phone
    _staff_login(page, live_server, "compliance", "/console/monitors")
    expect(page.locator("h1")).to_have_text("服务标准监测")

    licenses = page.locator("#monitor-licenses_expiring")
    expect(licenses).to_contain_text("执业证到期")
    expect(licenses).to_contain_text("依据 R1")
    expect(licenses.locator(".monitor-status")).to_have_text(re.compile("正常|预警|超标"))

    pending = page.locator("#monitor-content_pending_review")
    expect(pending).to_contain_text("依据 R3")
    expect(pending.locator(".monitor-status")).to_have_text(re.compile("正常|预警|超标"))
    assert int(pending.locator(".monitor__value").inner_text()) >= 1
    expect(pending.locator(".monitor-bar")).to_be_visible()
    item = pending.locator(".monitor-item", has_text="王顾问").first
    expect(item).to_contain_text("等待审核")
    _no_horizontal_overflow(page)

    item.locator("a").tap()
    page.wait_for_url(re.compile(r"/console/content$"))
    expect(page.locator(".content-item", has_text="监测页测试").first).to_contain_text("待审核")

    page.go_back()
    page.locator("#monitor-licenses_expiring .monitor__title a").tap()
    page.wait_for_url(re.compile(r"/console/licenses\?expiring=true$"))
    expect(page.locator("h1")).to_have_text("执业证登记")

    page.goto(f"{live_server}/console/monitors?lang=en")
    expect(page.locator("#monitor-content_pending_review")).to_contain_text(
        "Content waiting for review"
    )
    _no_horizontal_overflow(page)
