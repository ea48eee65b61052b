"""The help centre on a phone (390 px, Chromium): search, read an article, and ask the
assistant from the ask box (help.js): an answer with its source link, then a
recommendation question handed to a person."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import PHONE


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    context = browser.new_context(**PHONE)
    context.set_default_timeout(10_000)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on(
        "response",
        lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None,
    )
    yield page
    context.close()
    assert problems == [], problems


def _fits(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width}px wide on a 390px phone"


def test_ask_from_the_help_page_on_a_phone(phone: Any, live_server: str) -> None:
    phone.goto(f"{live_server}/help")
    _fits(phone)
    phone.fill("#help-question", "买了想退怎么办")
    phone.click("[data-ask-button]")
    source = phone.locator("[data-ask-answer] [data-ask-source]")
    source.wait_for()
    assert source.get_attribute("data-ask-source") == "surrender"
    assert "退保" in phone.inner_text("[data-ask-answer]")
    _fits(phone)
    phone.fill("#help-question", "帮我推荐个保险")
    phone.click("[data-ask-button]")
    phone.locator(".help-answer--handoff").wait_for()
    assert "持牌顾问" in phone.inner_text("[data-ask-answer]")
    assert phone.locator("[data-ask-answer] [data-ask-source]").count() == 0
    source_link = phone.locator("a[href='/help/cooling-off']").first
    source_link.click()
    phone.wait_for_url(f"{live_server}/help/cooling-off")
    assert "犹豫期" in phone.inner_text("h1")
    _fits(phone)
    phone.goto(f"{live_server}/help?q=住院材料")
    assert phone.locator("[data-help-results] a").count() >= 1
    _fits(phone)
