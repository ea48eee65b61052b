"""A customer buys 安心月月意外险 on a phone: sign in, quote, apply step by step, pay on the
sandbox page, watch the status page reach 出单, open the policy and download its PDF."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest

from covernet.core.cn_identity import make_id_number

pytestmark = pytest.mark.browser

SCREENSHOTS = "/tmp"  # for looking at the pages by hand; nothing is written in the repo
BUYER_ID = make_id_number("310104", date(1990, 5, 20), 37)  # male, born 1990-05-20


def no_horizontal_overflow(page: Any) -> None:
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth, document.body.scrollWidth]"
    )
    assert widths[0] <= widths[1] and widths[2] <= widths[1], widths


def shot(page: Any, name: str) -> None:
    no_horizontal_overflow(page)
    page.evaluate("window.scrollTo(0, 0)")  # the sticky header stays at the top of the shot
    page.screenshot(path=f"{SCREENSHOTS}/covernet-buy-{name}.png", full_page=True)


def test_buy_accident_cover_on_a_phone(phone: Any, live_server: str) -> None:
    from playwright.sync_api import expect

    from covernet.cli import DEMO_CUSTOMER
    from covernet.core.config import get_settings

    page = phone
    page.goto(f"{live_server}/login?next=/products/accident-monthly")
    page.locator("#l-mobile").fill(DEMO_CUSTOMER[0])
    page.locator("#l-password").fill(get_settings().demo_password)
    page.locator("button[type='submit']").tap()
    page.wait_for_url(re.compile(r"/products/accident-monthly$"))

    page.locator("label.choice", has_text="基础版").tap()
    page.locator("#q-birth-date").fill("1990-05-20")
    page.locator("label.segmented__option", has_text="男").tap()
    page.locator("#q-region").select_option("310000")
    page.locator("[data-quote-submit]").tap()
    card = page.locator("[data-quote-result] [data-quote-card]")
    expect(card.locator("[data-slot='premium']")).to_have_text("¥5.00")
    apply_link = card.get_by_role("link", name="投保", exact=True)
    expect(apply_link).to_be_visible()
    no_horizontal_overflow(page)
    card.screenshot(path=f"{SCREENSHOTS}/covernet-buy-0-quote.png")
    apply_link.tap()
    page.wait_for_url(re.compile(r"/apply/[0-9a-f-]{36}$"))

    def step(code: str) -> Any:
        section = page.locator(f"[data-step='{code}']")
        expect(section).to_be_visible()
        expect(page.locator("[data-step]:visible")).to_have_count(1)  # one step at a time
        return section

    # (a) Key clauses on their own step: leaving it unconfirmed is refused.
    terms = step("terms")
    expect(terms.locator("h2")).to_have_text("保险条款重要内容")
    expect(terms.locator("[data-confirm]")).not_to_be_checked()
    terms.get_by_role("button", name="下一步").tap()
    expect(terms.locator("[data-step-problem]")).to_have_text("请阅读后勾选确认，再进入下一步。")
    shot(page, "1-terms")
    terms.locator(".buy-confirm").tap()
    terms.get_by_role("button", name="下一步").tap()

    # (b) Exclusions, highlighted.
    exclusions = step("exclusions")
    expect(exclusions.locator(".callout--warning li").first).to_be_visible()
    shot(page, "2-exclusions")
    exclusions.locator(".buy-confirm").tap()
    exclusions.get_by_role("button", name="下一步").tap()

    # (c) 投保提示书.
    notices = step("disclosures")
    expect(notices.locator(".disclosure").first).to_contain_text("保险产品")
    shot(page, "3-disclosures")
    notices.locator(".buy-confirm").tap()
    notices.get_by_role("button", name="下一步").tap()

    # (e) The applicant insures himself; beneficiaries are the statutory heirs by default.
    people = step("people")
    expect(page.locator("[data-insured]")).to_be_hidden()
    expect(people.locator("input[name='beneficiary_mode'][value='statutory']")).to_be_checked()
    expect(page.locator("[data-named]")).to_be_hidden()
    people.locator("#a-name").fill(DEMO_CUSTOMER[1])
    people.locator("#a-id").fill(BUYER_ID)
    people.locator("label.segmented__option", has_text="配偶").tap()
    expect(page.locator("[data-insured]")).to_be_visible()
    people.locator("label.segmented__option", has_text="本人").tap()
    expect(page.locator("[data-insured]")).to_be_hidden()
    shot(page, "4-people")
    people.get_by_role("button", name="下一步").tap()

    # (f) Privacy notice and a separate consent for sensitive data, both unticked.
    consent = step("consent")
    boxes = consent.locator("[data-confirm]")
    expect(boxes).to_have_count(2)
    expect(boxes.nth(0)).not_to_be_checked()
    expect(boxes.nth(1)).not_to_be_checked()
    consent.locator(".buy-confirm").nth(0).tap()
    consent.get_by_role("button", name="下一步").tap()
    expect(consent.locator("[data-step-problem]")).to_be_visible()  # the second is separate
    consent.locator(".buy-confirm").nth(1).tap()
    shot(page, "5-consent")
    consent.get_by_role("button", name="下一步").tap()

    submit = step("submit")
    expect(submit).to_contain_text("¥5.00")
    expect(submit).to_contain_text("不保证续保")
    shot(page, "6-submit")
    submit.locator("[data-submit]").tap()

    page.wait_for_url(re.compile(r"/sandbox/pay/[0-9a-f-]{36}$"))
    expect(page.locator("main")).to_contain_text("¥5.00")
    shot(page, "7-pay")
    page.get_by_role("button", name=re.compile(r"^支付")).tap()
    expect(page.get_by_role("status")).to_contain_text("支付成功")
    page.get_by_role("link", name="返回").tap()
    page.wait_for_url(re.compile(r"/applications/[0-9a-f-]{36}$"))
    application_id = page.url.rsplit("/", 1)[-1]

    # The status page polls the API and reloads itself until the policy is issued.
    issued = page.locator("[data-progress='issue'][aria-current='step']")
    expect(issued).to_be_visible(timeout=20_000)
    expect(page.locator("[data-progress='pay']")).to_have_class(re.compile("progress__step--done"))
    expect(page.get_by_role("status")).to_contain_text("投保成功")
    shot(page, "8-issued")

    # Every step shown was recorded with its own time (R13).
    trace = page.request.get(f"{live_server}/api/v1/applications/{application_id}/trace")
    assert trace.ok, trace.text()
    shown = {e["step"]: e["at"] for e in trace.json()["events"] if e["kind"] == "shown"}
    assert shown["terms"] < shown["exclusions"] < shown["disclosures"] < shown["privacy"]

    page.get_by_role("link", name="查看保单").tap()
    page.wait_for_url(re.compile(r"/policies/[0-9a-f-]{36}$"))
    expect(page.locator("[data-policy-no]")).to_have_text(re.compile(r"^CN"))
    expect(page.locator("main")).to_contain_text("安心月月意外险")
    expect(page.locator("[data-renewal]")).to_have_text("不保证续保")
    expect(page.get_by_role("link", name="保单验真")).to_have_attribute(
        "href", re.compile(r"^/verify/")
    )
    shot(page, "9-policy")

    page.goto(f"{live_server}/policies")
    expect(page.locator(".policy-card").first).to_contain_text("安心月月意外险")
    shot(page, "10-policies")
    page.locator(".policy-card a").first.tap()
    page.wait_for_url(re.compile(r"/policies/[0-9a-f-]{36}$"))

    with page.expect_download() as downloading:
        page.locator("[data-policy-pdf]").tap()
    download = downloading.value
    assert download.failure() is None, download.failure()
    with open(download.path(), "rb") as pdf:
        assert pdf.read(5) == b"%PDF-"


def test_the_purchase_pages_in_english_fit_a_phone(phone: Any, live_server: str) -> None:
    from playwright.sync_api import expect

    from covernet.cli import DEMO_CUSTOMER
    from covernet.core.config import get_settings

    page = phone
    page.goto(f"{live_server}/login?next=/policies%3Flang%3Den")
    page.locator("#l-mobile").fill(DEMO_CUSTOMER[0])
    page.locator("#l-password").fill(get_settings().demo_password)
    page.locator("button[type='submit']").tap()
    page.wait_for_url(re.compile(r"/policies\?lang=en$"))
    page.goto(f"{live_server}/products/medical-million?lang=en")
    page.locator("label.choice").first.tap()
    page.locator("#q-birth-date").fill("1990-05-20")
    page.locator("label.segmented__option", has_text=re.compile(r"^Male$")).tap()
    page.locator("#q-region").select_option("310000")
    page.locator("[data-quote-submit]").tap()
    page.locator("[data-quote-card]").get_by_role("link", name="Apply", exact=True).tap()
    page.wait_for_url(re.compile(r"/apply/"))
    expect(page.locator("h1")).to_have_text("Apply")
    for code in ("terms", "exclusions", "disclosures"):
        section = page.locator(f"[data-step='{code}']")
        section.locator(".buy-confirm").tap()
        section.get_by_role("button", name="Next").tap()
    health = page.locator("[data-step='health']")
    expect(health).to_be_visible()
    expect(health.locator("input[type='radio']:checked")).to_have_count(0)  # R8
    health.locator(".buy-confirm").tap()
    health.get_by_role("button", name="Next").tap()
    expect(health.locator("[data-step-problem]")).to_have_text(
        "Answer every health question (yes or no)."
    )
    shot(page, "en-health")
