"""A live session as the people involved see it on their phones: the host gets a live
script approved, registers the session, goes live, ends it and pastes the transcript;
compliance sees every finding with its time in the stream and records the outcome."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from tests.browser.test_content_approval import _staff_login

pytestmark = pytest.mark.browser


def test_script_session_transcript_review(phone: Any, browser: Any, live_server: str) -> None:
    from playwright.sync_api import expect

    from covernet.cli import DEMO_LICENSE_NO
    from covernet.core import clock

    page = phone
    script = (
        "直播脚本：今天介绍一款意外伤害保险，保障责任以保险合同为准。"
        f"王顾问 示例安心财产保险股份有限公司（演示） 执业证编号{DEMO_LICENSE_NO}"
    )
    _staff_login(page, live_server, "advisor", "/console/check")
    page.locator("select[name='kind']").select_option("live_script")
    page.locator("textarea[name='text']").fill(script)
    page.locator("input[value='accident-monthly']").check()
    page.get_by_role("button", name="提交审核").tap()
    page.wait_for_url(re.compile(r"/console/content$"))

    officer = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    ).new_page()
    try:
        _staff_login(officer, live_server, "compliance", "/console/content")
        officer.locator(".content-item", has_text="直播脚本").first.get_by_role(
            "button", name="批准"
        ).tap()
        expect(officer.locator("[role='status']")).to_contain_text("审核结果已记录")

        page.goto(f"{live_server}/console/live")
        page.locator("input[name='title']").fill("意外险直播答疑")
        start = clock.to_local(clock.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
        page.locator("input[name='scheduled_at']").fill(start)
        page.locator("select[name='script_id']").select_option(index=0)
        page.locator("input[name='product_codes'][value='accident-monthly']").check()
        page.get_by_role("button", name="登记", exact=True).tap()
        expect(page.locator("[role='status']")).to_contain_text("直播已登记")
        session = page.locator(".live-session", has_text="意外险直播答疑").first
        session.get_by_role("button", name="开始直播").tap()
        expect(page.locator("[role='status']")).to_contain_text("直播已开始")
        page.locator(".live-session", has_text="意外险直播答疑").first.get_by_role(
            "button", name="结束直播"
        ).tap()
        session = page.locator(".live-session", has_text="意外险直播答疑").first
        session.locator("textarea[name='transcript']").fill(
            "[00:00:10] 欢迎来到直播间，今天聊意外伤害保险\n"
            "[00:12:34] 这款是全网最便宜的意外险\n"
            "[00:20:00] 保障责任以保险合同为准"
        )
        session.get_by_role("button", name="上传并检查").tap()
        expect(page.locator("[role='status']")).to_contain_text("等待合规复核")

        officer.goto(f"{live_server}/console/live")
        waiting = officer.locator(".live-session", has_text="意外险直播答疑").first
        expect(waiting).to_contain_text("00:12:34")
        expect(waiting).to_contain_text("R23")
        waiting.locator("input[value='violations']").check()
        waiting.locator("input[name='note']").fill("00:12:34 绝对化用语，已提醒主播")
        waiting.get_by_role("button", name="提交复核结论").tap()
        expect(officer.locator("[role='status']")).to_contain_text("复核结论已记录")
        width = officer.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the console overflows the phone: {width}px"

        # Viewers' page: identity block and only the platform's own product page.
        link = officer.locator(".live-session", has_text="意外险直播答疑").first.locator("h2 a")
        link.tap()
        officer.wait_for_url(re.compile(r"/live/[0-9a-f-]+$"))
        expect(officer.locator(".identity-block")).to_contain_text(DEMO_LICENSE_NO)
        expect(officer.locator("a[href='/products/accident-monthly']")).to_be_visible()
    finally:
        officer.context.close()
