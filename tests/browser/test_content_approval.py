"""The compliance path a person takes: an advisor pastes a non-compliant post, sees the
findings, fixes it, submits it, and a compliance officer approves it."""

from __future__ import annotations

import re
from typing import Any

import pytest

pytestmark = pytest.mark.browser

BAD = "年末最后一波！这款意外险全网最便宜，稳赚不赔，私信我送现金红包～"


def _staff_login(page: Any, base: str, username: str, next_path: str) -> None:
    from covernet.core.config import get_settings

    page.goto(f"{base}/login?as=staff&next={next_path}")
    page.locator("#l-username").fill(username)
    page.locator("#l-password").fill(get_settings().demo_password)
    page.locator("button[type='submit']").tap()
    page.wait_for_url(re.compile(re.escape(next_path) + "$"))


def test_paste_fix_submit_approve(phone: Any, browser: Any, live_server: str) -> None:
    from playwright.sync_api import expect

    from covernet.cli import DEMO_LICENSE_NO

    page = phone
    _staff_login(page, live_server, "advisor", "/console/check")
    page.locator("textarea[name='text']").fill(BAD)
    page.locator("input[value='accident-monthly']").check()
    page.get_by_role("button", name="检查", exact=True).tap()
    result = page.locator(".check-result")
    expect(result).to_contain_text("不合规，请修改")
    expect(result.locator("mark.check-mark").first).to_be_visible()
    expect(result).to_contain_text("R23")

    fixed = (
        "这是一款意外伤害保险，每月5元保30万元，保障责任以保险合同为准。"
        f"王顾问 示例安心财产保险股份有限公司（演示） 执业证编号{DEMO_LICENSE_NO}"
    )
    page.locator("textarea[name='text']").fill(fixed)
    page.get_by_role("button", name="检查", exact=True).tap()
    expect(page.locator(".check-result")).to_contain_text("未发现问题")
    page.get_by_role("button", name="提交审核").tap()
    page.wait_for_url(re.compile(r"/console/content$"))
    expect(page.locator("[role='status']")).to_contain_text("已提交审核")
    expect(page.locator(".content-item").first).to_contain_text("待审核")

    officer = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    ).new_page()
    try:
        _staff_login(officer, live_server, "compliance", "/console/content")
        item = officer.locator(".content-item", has_text="每月5元保30万元").first
        item.locator("input[name='note']").fill("可以发布")
        item.get_by_role("button", name="批准").tap()
        expect(officer.locator("[role='status']")).to_contain_text("审核结果已记录")
    finally:
        officer.context.close()

    page.goto(f"{live_server}/console/content")
    page.get_by_role("button", name="发布").first.tap()
    page.wait_for_url(re.compile(r"/c/[0-9a-f-]+$"))
    expect(page.locator(".identity-block")).to_contain_text(DEMO_LICENSE_NO)
