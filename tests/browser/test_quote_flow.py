"""A customer on a phone: home → product → quote, in Chinese and in English."""

from __future__ import annotations

import re
from typing import Any

import pytest

pytestmark = pytest.mark.browser

SCREENSHOTS = "/tmp"  # for looking at the pages by hand; nothing is written in the repo


def no_horizontal_overflow(page: Any) -> None:
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the page is {width[0]}px wide in a {width[1]}px window"


def test_phone_home_to_product_to_quote(phone: Any, live_server: str) -> None:
    from playwright.sync_api import expect

    page = phone
    page.goto(f"{live_server}/")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("#line-accident h2")).to_have_text("意外")
    no_horizontal_overflow(page)
    page.screenshot(path=f"{SCREENSHOTS}/covernet-home.png", full_page=True)

    page.locator("[data-product='accident-monthly'] a").tap()
    page.wait_for_url(re.compile(r"/products/accident-monthly$"))
    expect(page.locator("h1")).to_have_text("安心月月意外险（演示）")
    expect(page.locator("#exclusions h2")).to_contain_text("责任免除")
    no_horizontal_overflow(page)

    page.locator("label.choice", has_text="基础版").tap()
    page.locator("#q-birth-date").fill("1990-05-20")
    page.locator("label.segmented__option", has_text="男").tap()
    page.locator("#q-region").select_option("310000")
    page.locator("[data-quote-submit]").tap()

    card = page.locator("[data-quote-result] [data-quote-card]")
    expect(card.locator("[data-slot='premium']")).to_have_text("¥5.00")
    expect(card.locator("[data-slot='unit']")).to_have_text("/月")
    expect(card.locator("[data-slot='sum_insured']")).to_have_text("30万")
    expect(card.locator("[data-slot='effective_date']")).to_have_text(
        re.compile(r"^\d{4}年\d+月\d+日$")
    )
    expect(card.locator(".disclosure").first).to_contain_text("是保险产品")
    expect(card.locator(".disclosure--emphasis").first).to_contain_text("责任免除")
    assert page.url.endswith("/products/accident-monthly")  # the script quoted in place
    no_horizontal_overflow(page)
    card.screenshot(path=f"{SCREENSHOTS}/covernet-quote-card.png")
    page.screenshot(path=f"{SCREENSHOTS}/covernet-product.png", full_page=True)

    page.get_by_role("link", name="EN", exact=True).tap()
    page.wait_for_url(re.compile(r"\?lang=en$"))
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("h1")).to_have_text("Anxin Monthly Accident Cover (demo)")
    no_horizontal_overflow(page)
    page.locator("label.choice", has_text="Plus").tap()
    page.locator("#q-birth-date").fill("1990-05-20")
    page.locator("label.segmented__option", has_text="Female").tap()
    page.locator("#q-region").select_option("440000")
    page.locator("[data-quote-submit]").tap()
    expect(card.locator("[data-slot='premium']")).to_have_text("¥16.00")
    expect(card.locator("[data-slot='unit']")).to_have_text("/month")
    expect(card.locator(".disclosure").first).to_contain_text("insurance product")
    page.screenshot(path=f"{SCREENSHOTS}/covernet-product-en.png", full_page=True)

    # The choice is remembered: the home page stays in English.
    page.goto(f"{live_server}/")
    expect(page.locator("#line-accident h2")).to_have_text("Accident")


def test_phone_quote_error_is_shown_next_to_the_form(phone: Any, live_server: str) -> None:
    from playwright.sync_api import expect

    page = phone
    page.goto(f"{live_server}/products/accident-monthly")
    page.locator("[data-quote-submit]").tap()
    expect(page.locator("#form-error")).to_have_text("请选择保障计划。")

    page.locator("label.choice", has_text="升级版").tap()
    page.locator("#q-birth-date").fill("2015-01-01")
    page.locator("label.segmented__option", has_text="女").tap()
    page.locator("#q-region").select_option("110000")
    page.locator("[data-quote-submit]").tap()
    error = page.locator("[data-quote-result] #form-error")
    expect(error).to_contain_text("本产品承保18至60周岁")
    expect(page.locator("#q-birth-date")).to_have_attribute("aria-invalid", "true")
    no_horizontal_overflow(page)


def test_uncertain_benefits_are_bold_and_as_large_as_the_product_name(
    phone: Any, live_server: str
) -> None:
    page = phone
    page.goto(f"{live_server}/products/annuity-participating")
    sizes = page.evaluate(
        """() => {
          const name = getComputedStyle(document.querySelector('h1'));
          const item = document.querySelector("[data-code='uncertain_benefits'] strong");
          const style = getComputedStyle(item);
          return [parseFloat(name.fontSize), parseFloat(style.fontSize),
                  parseInt(style.fontWeight, 10), item.textContent];
        }"""
    )
    name_size, statement_size, weight, text = sizes
    assert statement_size >= name_size
    assert weight >= 700
    assert "不确定性" in text
    no_horizontal_overflow(page)
    page.screenshot(path=f"{SCREENSHOTS}/covernet-participating.png", full_page=True)


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/?lang=en",
        "/products/medical-million",
        "/products/return-shipping",
        "/products/annuity-participating?lang=en",
        "/products/ci-lifetime",
        "/login",
        "/login?as=staff&lang=en",
        "/register",
        "/products/no-such-product",
    ],
)
def test_pages_fit_a_375px_screen(browser: Any, live_server: str, path: str) -> None:
    context = browser.new_context(
        viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True
    )
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{live_server}{path}")
        no_horizontal_overflow(page)
        assert page.locator(".lang-toggle a").count() == 2
        assert errors == []
    finally:
        context.close()


def test_desktop_product_page_keeps_the_quote_form_beside_the_details(
    desktop: Any, live_server: str
) -> None:
    page = desktop
    page.goto(f"{live_server}/products/medical-million")
    main = page.locator("#plans").bounding_box()
    quote = page.locator("#quote").bounding_box()
    assert main is not None and quote is not None
    assert quote["x"] > main["x"] + main["width"]
    no_horizontal_overflow(page)
    page.screenshot(path=f"{SCREENSHOTS}/covernet-desktop.png", full_page=True)


def test_signed_in_customer_quotes_in_place_and_logs_out(phone: Any, live_server: str) -> None:
    """A signed-in quote must carry the session's CSRF token (from the page's meta tag)."""
    from playwright.sync_api import expect

    from covernet.cli import DEMO_CUSTOMER
    from covernet.core.config import get_settings

    page = phone
    page.goto(f"{live_server}/account")
    page.wait_for_url(re.compile(r"/login\?next=/account$"))
    page.locator("#l-mobile").fill(DEMO_CUSTOMER[0])
    page.locator("#l-password").fill(get_settings().demo_password)
    page.locator("button[type='submit']").tap()
    page.wait_for_url(re.compile(r"/account$"))
    expect(page.locator("main")).to_contain_text("138****8000")
    no_horizontal_overflow(page)

    page.goto(f"{live_server}/products/accident-monthly")
    assert page.locator("meta[name='csrf-token']").get_attribute("content")
    page.locator("label.choice", has_text="基础版").tap()
    page.locator("#q-birth-date").fill("1988-08-08")
    page.locator("label.segmented__option", has_text="女").tap()
    page.locator("#q-region").select_option("320000")
    page.locator("[data-quote-submit]").tap()
    card = page.locator("[data-quote-result] [data-quote-card]")
    expect(card.locator("[data-slot='premium']")).to_have_text("¥5.00")

    page.goto(f"{live_server}/account")
    page.get_by_role("button", name="退出登录").tap()
    page.wait_for_url(re.compile(r"/$"))
    expect(page.locator(".site-nav")).to_contain_text("登录")
