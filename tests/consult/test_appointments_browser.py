"""On a 390px phone the demo customer books a video call in the demo advisor's free
slots; the advisor sees it on the desk's appointments page in a second browser."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from covernet.consult.appointment_models import AppointmentKind, AppointmentStatus
from covernet.core import i18n
from tests.browser.conftest import PHONE

pytestmark = pytest.mark.browser


def test_runtime_keys_exist() -> None:
    keys = [f"appt.kind.{k.value}" for k in AppointmentKind]
    keys += [f"appt.status.{s.value}" for s in AppointmentStatus]
    keys += [f"appt.weekday.{d}" for d in range(7)]
    assert [k for k in keys if not i18n.has_message(k)] == []


def test_customer_books_on_a_phone(browser: Any, live_server: str) -> None:
    from playwright.sync_api import expect

    from covernet.cli import DEMO_CUSTOMER
    from covernet.core.config import get_settings

    password = get_settings().demo_password
    login = httpx.post(
        f"{live_server}/api/v1/auth/login", json={"username": "advisor", "password": password}
    )
    assert login.status_code == 200, login.text
    staff = {"Authorization": f"Bearer {login.json()['access_token']}"}
    advisor_id = httpx.get(f"{live_server}/api/v1/auth/me", headers=staff).json()["id"]
    every_day = [{"weekday": d, "start": "08:00", "end": "21:00"} for d in range(7)]
    hours = httpx.put(
        f"{live_server}/api/v1/desk/availability", headers=staff, json={"windows": every_day}
    )
    assert hours.status_code == 200, hours.text

    context = browser.new_context(**PHONE)
    context.set_default_timeout(10_000)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    path = f"/advisors/{advisor_id}/book"
    page.goto(f"{live_server}/login?next={path}")
    page.locator("#l-mobile").fill(DEMO_CUSTOMER[0])
    page.locator("#l-password").fill(password)
    page.get_by_role("button", name="登录").tap()
    page.wait_for_url(re.compile(re.escape(path) + "$"))
    expect(page.locator(".appt-advisor")).to_contain_text("执业证编号")
    first = page.locator("label.segmented__option:has(input[name='slot_start'])").first
    first.tap()
    chosen = first.locator("input").get_attribute("value")
    page.locator("label.segmented__option", has_text="视频").tap()
    page.locator("#appt-topic").fill("想电话了解百万医疗险")
    page.locator("#appt-line").select_option("medical")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the booking page overflows the phone: {width}px"
    page.get_by_role("button", name="确认预约").tap()
    page.wait_for_url(re.compile(r"/me/appointments\?booked="))
    expect(page.locator("[data-booked]")).to_be_visible()
    expect(page.locator("[data-status='booked']").first).to_contain_text("想电话了解百万医疗险")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert problems == []
    context.close()

    desk = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    advisor = desk.new_page()
    advisor.goto(f"{live_server}/login?as=staff&next=/console/desk/appointments")
    advisor.locator("#l-username").fill("advisor")
    advisor.locator("#l-password").fill(password)
    advisor.get_by_role("button", name="登录").click()
    advisor.wait_for_url(re.compile(r"/console/desk/appointments$"))
    expect(advisor.locator("[data-appointment]").first).to_contain_text("想电话了解百万医疗险")
    assert chosen
    desk.close()
