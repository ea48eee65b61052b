"""The sandbox provider: its pay page, its routes only when configured, its deliverer."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx
import pytest

from covernet.core import clock
from covernet.core.db import unit_of_work
from covernet.payments.providers import sandbox
from covernet.payments.providers.sandbox_models import SandboxCallback
from tests.payments.helpers import deliver, state
from tests.test_routes import _api_routes


def test_sandbox_routes_exist_only_when_the_sandbox_is_configured(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from starlette.testclient import TestClient

    from covernet.app import create_app
    from covernet.core.config import reset_settings

    def sandbox_paths(app: Any) -> set[str]:
        paths = {r.path for r in _api_routes(app.routes) if r.path.startswith("/sandbox")}
        return {p for p in paths if not p.startswith("/sandbox/insurer/")}  # integration's

    assert sandbox_paths(create_app()) == {
        "/sandbox/pay/{payment_id}",
        "/sandbox/pay/{payment_id}/{outcome}",
        "/sandbox/payments/{payment_id}/{outcome}",
        "/sandbox/payouts/{payout_id}/fail",
    }
    monkeypatch.setenv("COVERNET_PAYMENT_PROVIDER", "wechatpay")
    reset_settings()
    app = create_app()
    assert sandbox_paths(app) == set()
    with TestClient(app, base_url="https://testserver") as client:
        assert client.post("/sandbox/payments/x/succeed").status_code == 404
        assert client.get("/sandbox/pay/x").status_code == 404
        refused = client.post("/api/v1/payments/notify/sandbox", content=b"{}")
        assert refused.status_code == 404 and refused.json()["error"] == "unknown_provider"


def test_the_pay_page_shows_amount_and_the_insurers_premium_account(
    client: Any, db_url: str, payment_id: str
) -> None:
    page = client.get(f"/sandbox/pay/{payment_id}")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    html = page.text
    assert 'name="viewport"' in html
    assert "¥100.00" in html and "支付" in html and "模拟失败" in html
    assert "DEMO-ANXIN-PREMIUM-0001" in html  # the payee is the insurer's premium account
    assert "示例安心财产保险股份有限公司" in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)  # no inline scripts
    assert " style=" not in html and "<style" not in html  # no inline styles
    # Pressing 支付 pays at the sandbox; the callback follows asynchronously.
    paid = client.post(f"/sandbox/pay/{payment_id}/succeed")
    assert paid.status_code == 200 and "支付成功" in paid.text
    assert state(db_url, payment_id)["status"] == "pending"
    deliver(client)
    assert state(db_url, payment_id)["status"] == "succeeded"
    assert "已支付" in client.get(f"/sandbox/pay/{payment_id}").text
    assert client.get("/sandbox/pay/no-such-payment").status_code == 404


def test_the_pay_page_fits_a_phone(client: Any, payment_id: str, browser: Any) -> None:
    """Rendered by Chromium at 375 px: nothing wider than the screen, buttons reachable."""

    def serve(route: Any) -> None:
        request = route.request
        answer = client.request(
            request.method,
            request.url,
            content=request.post_data_buffer,
            headers={"accept": request.headers.get("accept", "*/*")},
        )
        route.fulfill(status=answer.status_code, headers=dict(answer.headers), body=answer.content)

    context = browser.new_context(
        viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True
    )
    try:
        page = context.new_page()
        page.route("https://testserver/**", serve)
        page.goto(f"https://testserver/sandbox/pay/{payment_id}")
        widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], widths
        pay = page.get_by_role("button", name=re.compile("支付"))
        box = pay.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375
        assert box["height"] >= 40  # a thumb-sized target
        font = page.evaluate("getComputedStyle(document.body).fontFamily")
        assert font  # the site stylesheet loaded under the CSP
        pay.click()
        page.wait_for_load_state()
        assert "支付成功" in page.content()
    finally:
        context.close()


class Flaky:
    """An HTTP client whose first POST gets a 500 (then a timeout), then reaches the app."""

    def __init__(self, client: Any, failures: list[str]) -> None:
        self.client = client
        self.failures = failures
        self.calls = 0

    def post(self, url: str, *, content: bytes, headers: dict[str, str]) -> httpx.Response:
        self.calls += 1
        if self.failures:
            failure = self.failures.pop(0)
            if failure == "timeout":
                raise httpx.ReadTimeout("timed out")
            return httpx.Response(500)
        response: httpx.Response = self.client.post(url, content=content, headers=headers)
        return response


def _callback(db_url: str) -> SandboxCallback:
    with unit_of_work(db_url) as db:
        row = db.query(SandboxCallback).one()
        db.expunge(row)
        return row


def test_the_deliverer_retries_with_backoff(client: Any, db_url: str, payment_id: str) -> None:
    assert client.post(f"/sandbox/payments/{payment_id}/succeed").status_code == 200
    flaky = Flaky(client, ["500", "timeout"])
    started = clock.now()
    first = sandbox.deliver_due(flaky)
    assert first.delivered == [] and len(first.failed) == 1
    row = _callback(db_url)
    assert row.attempts == 1 and row.last_error == "HTTP 500" and row.delivered_at is None
    assert row.next_attempt_at is not None
    assert row.next_attempt_at - started >= timedelta(seconds=sandbox.BACKOFF_BASE_SECONDS - 1)
    assert sandbox.deliver_due(flaky).failed == []  # not due yet
    assert flaky.calls == 1 and state(db_url, payment_id)["status"] == "pending"
    with clock.shifted(timedelta(seconds=sandbox.BACKOFF_BASE_SECONDS + 1)):
        assert len(sandbox.deliver_due(flaky).failed) == 1  # timed out this time
        row = _callback(db_url)
        assert row.attempts == 2 and row.last_error == "ReadTimeout"
        assert row.next_attempt_at is not None
        assert row.next_attempt_at - clock.now() > timedelta(seconds=sandbox.BACKOFF_BASE_SECONDS)
    with clock.shifted(timedelta(seconds=3 * sandbox.BACKOFF_BASE_SECONDS + 2)):
        report = sandbox.deliver_due(flaky)
    assert len(report.delivered) == 1 and flaky.calls == 3
    row = _callback(db_url)
    assert row.delivered_at is not None and row.next_attempt_at is None
    assert state(db_url, payment_id)["status"] == "succeeded"


def test_backoff_grows_and_is_capped() -> None:
    waits = [sandbox.backoff(n).total_seconds() for n in range(1, 12)]
    assert waits[:4] == [10, 20, 40, 80]
    assert waits == sorted(waits) and max(waits) == sandbox.BACKOFF_MAX_SECONDS


def test_a_delayed_callback_waits(client: Any, db_url: str, payment_id: str) -> None:
    done = client.post(f"/sandbox/payments/{payment_id}/succeed?delay_seconds=30")
    assert done.status_code == 200
    assert deliver(client).delivered == []
    with clock.shifted(timedelta(seconds=31)):
        assert len(deliver(client).delivered) == 1
    assert state(db_url, payment_id)["status"] == "succeeded"
