"""Browser tests: Playwright (sync API) driving the system Chromium against ``live_server``.

The tests are skipped when ``/usr/bin/chromium`` is missing, except on CI (``CI`` set),
where a missing browser is a failure.  Nothing is downloaded: Playwright's own browser
builds are never used.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 3,
    "is_mobile": True,
    "has_touch": True,
    "locale": "zh-CN",
    "timezone_id": "Asia/Shanghai",
}


def watch(page: Any) -> list[str]:
    """Page errors, console errors, server errors and broken static files on ``page``
    (a refused quote answers 4xx on purpose; scripts, styles and the server may not fail)."""
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on(
        "console",
        lambda message: (
            problems.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.on(
        "response",
        lambda response: (
            problems.append(f"{response.status} {response.url}")
            if response.status >= 500 or ("/static/" in response.url and response.status >= 400)
            else None
        ),
    )
    return problems


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    """A fresh phone-sized page (iPhone-ish 390x844, touch) in its own browser context."""
    context = browser.new_context(**PHONE)
    context.set_default_timeout(10_000)
    page = context.new_page()
    problems = watch(page)
    yield page
    context.close()
    assert problems == [], f"the page reported errors: {problems}"


@pytest.fixture
def desktop(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()
