"""A claim on a phone: the demo customer files a claim on her policy with a document,
and while her claim page is open the demo claims handler, in another browser, accepts
it and asks for more documents; her page shows the new stage without a manual reload.

The live server's clock cannot be moved, and cover starts the day after purchase, so
after buying (over the API, as ``test_buy_policy`` does through the pages) the test moves
the policy's start two days back in the live server's database: as if bought earlier.
"""

from __future__ import annotations

import re
import sqlite3
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from covernet.core.cn_identity import make_id_number

pytestmark = pytest.mark.browser

SCREENSHOTS = "/tmp"  # for looking at the pages by hand; nothing is written in the repo
INSURED_ID = make_id_number("310104", date(1988, 3, 3), 51)
STAFF = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


def no_horizontal_overflow(page: Any) -> None:
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth, document.body.scrollWidth]"
    )
    assert widths[0] <= widths[1] and widths[2] <= widths[1], widths


def shot(page: Any, name: str) -> None:
    no_horizontal_overflow(page)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=f"{SCREENSHOTS}/covernet-claim-{name}.png", full_page=True)


def _buy(base: str, mobile: str, password: str) -> str:
    """An accident policy for the demo customer, paid on the sandbox; its id."""
    with httpx.Client(base_url=base, timeout=10) as http:
        token = http.post("/api/v1/auth/login", json={"mobile": mobile, "password": password})
        assert token.status_code == 200, token.text
        auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
        quote = http.post(
            "/api/v1/quotes",
            headers=auth,
            json={
                "product_code": "accident-monthly",
                "plan_code": "basic",
                "insured": {"id_number": INSURED_ID, "region": "310000"},
            },
        )
        assert quote.status_code == 201, quote.text
        docs = http.get("/api/v1/products/accident-monthly/documents").json()
        made = http.post(
            "/api/v1/applications",
            headers=auth,
            json={
                "quote_id": quote.json()["quote_id"],
                "applicant": {"name": "张小满", "id_number": INSURED_ID},
                "relationship": "self",
                "acknowledgements": {d["code"]: d["content_hash"] for d in docs["documents"]},
            },
        )
        assert made.status_code == 201, made.text
        paid = http.post(f"/sandbox/payments/{made.json()['payment_id']}/succeed")
        assert paid.status_code in (200, 202), paid.text
        deadline = time.monotonic() + 20  # the server delivers the sandbox's callback itself
        while time.monotonic() < deadline:
            mine = http.get("/api/v1/policies", headers=auth).json()
            found = [p for p in mine if p["application_id"] == made.json()["application_id"]]
            if found:
                return str(found[0]["policy_id"])
            time.sleep(0.3)
    raise AssertionError("the policy was not issued")


def _start_earlier(tmp_path_factory: Any, policy_id: str) -> None:
    databases = list(tmp_path_factory.getbasetemp().glob("live[0-9]*/live.db"))
    assert len(databases) == 1, databases
    start = (date.today() - timedelta(days=2)).isoformat()
    with sqlite3.connect(databases[0], timeout=10) as conn:
        conn.execute("UPDATE policies SET effective_date = ? WHERE id = ?", (start, policy_id))


def _staff_login(page: Any, base: str, next_path: str) -> None:
    from covernet.core.config import get_settings

    page.goto(f"{base}/login?as=staff&next={next_path}")
    page.locator("#l-username").fill("claims")
    page.locator("#l-password").fill(get_settings().demo_password)
    page.locator("button[type='submit']").tap()
    page.wait_for_url(re.compile(re.escape(next_path) + "$"))


def test_file_a_claim_and_watch_it_move(
    phone: Any, browser: Any, live_server: str, tmp_path_factory: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    from covernet.cli import DEMO_CUSTOMER
    from covernet.core.config import get_settings

    password = get_settings().demo_password
    policy_id = _buy(live_server, DEMO_CUSTOMER[0], password)
    _start_earlier(tmp_path_factory, policy_id)

    page = phone
    page.goto(f"{live_server}/login?next=/policies/{policy_id}")
    page.locator("#l-mobile").fill(DEMO_CUSTOMER[0])
    page.locator("#l-password").fill(password)
    page.locator("button[type='submit']").tap()
    page.wait_for_url(re.compile(rf"/policies/{policy_id}$"))
    page.get_by_role("link", name="申请理赔").tap()
    page.wait_for_url(re.compile(rf"/policies/{policy_id}/claim$"))

    form = page.locator("[data-claim-form]")
    form.locator(
        "label.choice", has=page.locator("input[value='accidental-death-disability']")
    ).tap()
    form.locator("label.segmented__option", has_text="意外").tap()
    yesterday = (date.today() - timedelta(days=1)).isoformat()
    form.locator("#c-date").fill(yesterday)
    form.locator("#c-description").fill("下楼梯时摔倒，右腿骨折，住院治疗")
    form.locator("#c-amount").fill("3000")
    form.locator("#c-payee-name").fill("张小满")
    form.locator("#c-payee-account").fill("62220212345")  # 11 digits: refused
    shot(page, "0-form")
    form.locator("[data-claim-submit]").tap()
    problem = page.locator("[data-error='payee_account']")
    expect(problem).to_contain_text("12至19位数字")
    expect(page.locator("#c-description")).to_have_value("下楼梯时摔倒，右腿骨折，住院治疗")
    shot(page, "1-form-error")
    page.locator("#c-payee-account").fill("6222021234567890123")
    page.locator("[data-claim-submit]").tap()
    page.wait_for_url(re.compile(r"/claims/[0-9a-f-]{36}\?filed=1$"))
    claim_url = page.url.split("?", 1)[0]
    claim_id = claim_url.rsplit("/", 1)[-1]
    expect(page.locator("[data-track='reported'][aria-current='step']")).to_be_visible()

    pdf = tmp_path / "身份证.pdf"
    pdf.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n")
    upload = page.locator("[data-document='id_card'] form")
    upload.locator("input[type='file']").set_input_files(str(pdf))
    upload.get_by_role("button", name="上传").tap()
    expect(page.locator("[data-document='id_card']")).to_have_attribute("data-uploaded", "yes")
    expect(page.get_by_role("status").first).to_contain_text("材料已上传")
    shot(page, "2-tracker")

    # The handler, in another browser, while the customer's page stays open.
    staff = browser.new_context(**STAFF).new_page()
    try:
        _staff_login(staff, live_server, "/console/claims")
        row = staff.locator(f"[data-claim='{claim_id}']")
        expect(row).to_be_visible()
        expect(row.locator("[data-flag='soon_after_start']")).to_be_visible()
        no_horizontal_overflow(staff)
        staff.screenshot(path=f"{SCREENSHOTS}/covernet-claim-3-board.png", full_page=True)
        row.locator("a").first.tap()
        staff.wait_for_url(re.compile(rf"/console/claims/{claim_id}$"))
        staff.locator("[data-action='accept'] button").tap()
        expect(staff.get_by_role("status")).to_contain_text("已受理")
        expect(page.locator("[data-track='accepted'][aria-current='step']")).to_be_visible(
            timeout=15_000
        )
        asking = staff.locator("[data-action='request_documents']")
        for box in asking.locator("input[type='checkbox']").all():
            box.uncheck()
        asking.locator("input[value='diagnosis']").check()
        asking.locator("textarea[name='note']").fill("请上传出院时医院开具的诊断证明。")
        asking.get_by_role("button", name="要求补充材料").tap()
        expect(staff.get_by_role("status")).to_contain_text("已通知客户补充材料")
        no_horizontal_overflow(staff)
        staff.screenshot(path=f"{SCREENSHOTS}/covernet-claim-4-console.png", full_page=True)

        # The customer's page moved on by itself (polling, then a reload).
        expect(page.locator("[data-track='documents'][aria-current='step']")).to_be_visible(
            timeout=15_000
        )
        expect(page.locator("[data-waiting='customer']")).to_be_visible()
        expect(page.locator("[data-document='diagnosis']")).to_contain_text("需补充")
        expect(page.locator(".claim-timeline")).to_contain_text("请上传出院时医院开具的诊断证明")
        shot(page, "5-tracker-documents")

        staff.goto(f"{live_server}/console/claims/report?days=30")
        expect(staff.locator("svg [data-stage='reported']")).to_be_visible()
        no_horizontal_overflow(staff)
        staff.screenshot(path=f"{SCREENSHOTS}/covernet-claim-6-report.png", full_page=True)
    finally:
        staff.context.close()

    page.goto(f"{claim_url}?lang=en")
    expect(page.locator("[data-track='documents'][aria-current='step']")).to_contain_text(
        "Documents"
    )
    shot(page, "7-tracker-en")
