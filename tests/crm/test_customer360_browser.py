"""On a 390 px phone: the demo ops user finds the demo customer by mobile, opens the
customer 360 (masked, nothing wider than the screen), shows the full mobile with a
reason and sees it once; the page after that is masked again."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.conftest import PHONE

pytestmark = pytest.mark.browser

DEMO_MOBILE = "13800138000"


def _fits(page: Any) -> None:
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth, document.body.scrollWidth]"
    )
    assert widths[0] <= widths[1] and widths[2] <= widths[1], widths


def test_customer_360_on_a_phone(browser: Any, live_server: str) -> None:
    from playwright.sync_api import expect

    from covernet.core.config import get_settings

    context = browser.new_context(**PHONE)
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        page.goto(f"{live_server}/login?as=staff&next=/console/customers")
        page.locator("#l-username").fill("ops")
        page.locator("#l-password").fill(get_settings().demo_password)
        page.locator("button[type='submit']").tap()
        page.wait_for_url(re.compile(r"/console/customers$"))
        expect(page.locator("h1")).to_have_text("客户查询")
        page.locator("input[name='q']").fill(DEMO_MOBILE)
        page.locator("form[role='search'] button[type='submit']").tap()
        row = page.locator("tr[data-customer] a").first
        expect(row).to_have_text("张**")
        assert DEMO_MOBILE not in page.content()
        _fits(page)
        row.tap()
        page.wait_for_url(re.compile(r"/console/customers/[0-9a-f-]{36}$"))
        expect(page.locator("[data-field='mobile']")).to_have_text("138****8000")
        # The demo customer's policy (other browser tests may have bought her more).
        expect(page.locator("[data-section='policies'] tr[data-policy]").first).to_be_visible()
        assert DEMO_MOBILE not in page.content()
        _fits(page)
        page.screenshot(path="/tmp/covernet-customer-360.png", full_page=True)
        url = page.url
        page.locator("details.unmask summary").tap()
        page.locator("details.unmask select[name='reason_code']").select_option("customer_request")
        page.locator("details.unmask input[name='reason']").fill("客户来电核实身份信息")
        page.locator("details.unmask button[type='submit']").tap()
        expect(page.locator("[data-revealed='mobile'] strong")).to_have_text(DEMO_MOBILE)
        _fits(page)
        page.goto(url)  # the value was shown once: the page is masked again
        expect(page.locator("[data-field='mobile']")).to_have_text("138****8000")
        assert DEMO_MOBILE not in page.content()
    except Exception:
        page.screenshot(path="/tmp/covernet-customer-360-failed.png", full_page=True)
        raise
    finally:
        context.close()
