"""A customer asks on a phone from a product page; an advisor answers from the desk in a
second browser context; the answer appears in the customer's chat with the advisor's
name, institution and 执业证编号 (R2), without reloading."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from tests.browser.test_content_approval import _staff_login

pytestmark = pytest.mark.browser


def test_customer_chats_on_a_phone_and_the_desk_answers(
    phone: Any, browser: Any, live_server: str
) -> None:
    from playwright.sync_api import expect

    from covernet.cli import DEMO_LICENSE_NO

    page = phone
    question = f"百万医疗的等待期是多久？{uuid.uuid4().hex[:6]}"
    page.goto(f"{live_server}/products/medical-million")
    page.get_by_role("button", name="咨询顾问").tap()
    chat = page.locator("[data-chat-panel]")
    expect(chat).to_be_visible()
    expect(page.locator("[data-chat]")).to_have_attribute("data-ready", "1")
    chat.locator("textarea").fill(question)
    chat.get_by_role("button", name="发送").tap()
    expect(chat.locator(".chat__msg--customer")).to_contain_text(question)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page overflows the phone: {width}px"
    box = chat.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390

    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, has_touch=True, locale="zh-CN"
    )
    context.set_default_timeout(10_000)
    advisor = context.new_page()
    _staff_login(advisor, live_server, "advisor", "/console/desk")
    advisor.get_by_role("link", name=question).click()
    advisor.wait_for_url(re.compile(r"/console/desk/[0-9a-f-]+$"))
    expect(advisor.locator("[data-desk-log]")).to_contain_text(question)
    advisor.locator("#desk-reply").fill("等待期为30天，意外导致的住院没有等待期。")
    advisor.get_by_role("button", name="发送").first.click()
    advisor.wait_for_url(re.compile(r"/console/desk/[0-9a-f-]+#latest$"))

    answer = chat.locator(".chat__msg--advisor")
    expect(answer).to_contain_text("等待期为30天")
    expect(answer).to_contain_text(DEMO_LICENSE_NO)
    expect(answer).to_contain_text("王顾问")
    expect(answer).to_contain_text("示例安心财产保险股份有限公司")

    # after a reload the history is there, and the customer can write on
    page.reload()
    page.get_by_role("button", name="咨询顾问").tap()
    expect(chat.locator(".chat__msg--advisor")).to_contain_text(DEMO_LICENSE_NO)
    expect(chat.locator(".chat__msg--customer")).to_contain_text(question)
    chat.locator("textarea").fill("谢谢，明白了")
    chat.get_by_role("button", name="发送").tap()
    expect(advisor.locator("[data-desk-log]")).to_contain_text("谢谢，明白了")
    context.close()
