"""The service-standard monitors: figures follow the data, a failing monitor shows as an
error without hiding the others, and only compliance and administrators see them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from covernet.compliance import monitors
from covernet.core import clock
from covernet.core.db import unit_of_work
from covernet.identity.models import Role
from tests.conftest import add_staff, bearer, sign_in_with_cookie, staff_headers

HTML = {"accept": "text/html"}
SOON = "02000111000080002024000010"
LATER = "02000111000080002024000060"
LAPSED = "0200011100008000202400000X"


def _license(client: Any, officer: dict[str, str], username: str, no: str, days: int) -> None:
    response = client.post(
        "/api/v1/compliance/licenses",
        headers=officer,
        json={
            "license_no": no,
            "advisor_username": username,
            "institution": "示例安心财产保险股份有限公司（演示）",
            "valid_until": (clock.today() + timedelta(days=days)).isoformat(),
            "lines": ["accident"],
        },
    )
    assert response.status_code == 201, response.text


def _advisor(db_url: str, username: str) -> None:
    add_staff(db_url, username, Role.advisor, name=f"顾问{username}")


@pytest.fixture
def officer(client: Any, db_url: str) -> dict[str, str]:
    return staff_headers(client, db_url, "zhao", Role.compliance)


def _figures(client: Any, headers: dict[str, str]) -> dict[str, dict[str, Any]]:
    response = client.get("/api/v1/compliance/monitors", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["as_of"] == clock.today().isoformat()
    return {f["key"]: f for f in body["figures"]}


def test_license_figure_follows_the_registry(
    client: Any, db_url: str, officer: dict[str, str]
) -> None:
    quiet = _figures(client, officer)["licenses_expiring"]
    assert quiet["status"] == "ok" and quiet["value"] == 0 and quiet["items"] == []
    assert quiet["regulation"] == "R1" and quiet["href"] == "/console/licenses?expiring=true"

    for name in ("ada", "bob", "cyd"):
        _advisor(db_url, name)
    _license(client, officer, "ada", SOON, 10)
    _license(client, officer, "bob", LATER, 60)
    soon = _figures(client, officer)["licenses_expiring"]
    assert soon["status"] == "warning" and soon["value"] == 1 and soon["total"] == 2
    assert soon["thresholds"] == {"warning_days": 30, "breach_days": 0}
    [item] = soon["items"]
    assert SOON in item["label"] and "顾问ada" in item["label"]
    assert item["state"] == "expiring" and item["href"] == "/console/licenses?expiring=true"
    assert item["due"] == (clock.today() + timedelta(days=10)).isoformat()
    assert LATER not in str(soon)

    _license(client, officer, "cyd", LAPSED, -1)  # expired yesterday, still marked active
    lapsed = _figures(client, officer)["licenses_expiring"]
    assert lapsed["status"] == "breach" and lapsed["value"] == 2
    assert [i["state"] for i in lapsed["items"]] == ["expired", "expiring"]
    assert LAPSED in lapsed["items"][0]["label"]

    # Fifty days on (the service, as the bearer token would have expired), the 60-day
    # license enters the window too.
    with clock.shifted(timedelta(days=50)), unit_of_work(db_url) as db:
        later = {f.key: f for f in monitors.evaluate(db)}["licenses_expiring"]
    assert later.value == 3 and any(LATER in i.label for i in later.items)


GOOD = "这是一款意外伤害保险，保障责任以保险合同为准。"


def test_content_waiting_too_long_is_a_breach(
    client: Any, db_url: str, officer: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    advisor = staff_headers(client, db_url, "ada", Role.advisor)
    _license(client, officer, "ada", SOON, 100)
    empty = _figures(client, officer)["content_pending_review"]
    assert empty["status"] == "ok" and empty["value"] == 0 and empty["regulation"] == "R3"

    with clock.shifted(timedelta(days=-3)):
        old = client.post("/api/v1/content", headers=advisor, json={"body": GOOD})
    assert old.status_code == 201, old.text
    fresh = client.post("/api/v1/content", headers=advisor, json={"body": GOOD + "。"})
    assert fresh.status_code == 201, fresh.text

    figure = _figures(client, officer)["content_pending_review"]
    assert figure["status"] == "breach" and figure["value"] == 2
    assert figure["thresholds"] == {"warning_days": 1, "limit_days": 2}
    assert figure["meter"] == {"value": 3, "limit": 2, "unit": "monitors.unit.days"}
    assert [i["state"] for i in figure["items"]] == ["overdue", "waiting"]  # oldest first
    assert all(i["href"] == "/console/content" for i in figure["items"])
    assert figure["items"][0]["due"] == (clock.today() - timedelta(days=1)).isoformat()

    monkeypatch.setenv("COVERNET_CONTENT_REVIEW_MAX_DAYS", "5")
    from covernet.core.config import reset_settings

    reset_settings()
    relaxed = _figures(client, officer)["content_pending_review"]
    assert relaxed["status"] == "warning" and relaxed["thresholds"]["limit_days"] == 5

    reviewed = client.post(
        f"/api/v1/content/{old.json()['id']}/reject", headers=officer, json={"note": "改一下"}
    )
    assert reviewed.status_code == 200, reviewed.text
    after = _figures(client, officer)["content_pending_review"]
    assert after["value"] == 1 and after["status"] == "ok"


@pytest.fixture
def broken_monitor() -> Iterator[None]:
    @monitors.register("always_fails", order=15, regulation="R19", href="/console/monitors")
    def always_fails(db: Session, today: date) -> monitors.Figure:
        db.execute(monitors_bad_sql())  # a failed statement, as a broken query would be
        raise AssertionError("unreachable")

    try:
        yield
    finally:
        monitors.unregister("always_fails")


def monitors_bad_sql() -> Any:
    from sqlalchemy import text

    return text("SELECT * FROM no_such_table_here")


def test_a_failing_monitor_shows_error_and_the_others_still_show(
    client: Any,
    db_url: str,
    officer: dict[str, str],
    broken_monitor: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _advisor(db_url, "ada")
    _license(client, officer, "ada", SOON, 10)
    figures = _figures(client, officer)
    assert list(figures)[:3] == ["licenses_expiring", "always_fails", "content_pending_review"]
    failed = figures["always_fails"]
    assert failed["status"] == "error" and failed["items"] == []
    assert failed["title"] == "monitors.always_fails.title" and failed["regulation"] == "R19"
    assert figures["licenses_expiring"]["value"] == 1  # queried after the failure
    assert figures["content_pending_review"]["status"] == "ok"
    logged = [r.getMessage() for r in caplog.records if r.name == "covernet.monitors"]
    assert logged and all("no_such_table_here" not in m for m in logged)
    page = client.get("/console/monitors", headers={**HTML, **officer})
    assert page.status_code == 200 and "无法计算" in page.text and SOON in page.text


def test_only_compliance_and_admin(client: Any, db_url: str, customer: dict[str, str]) -> None:
    assert client.get("/api/v1/compliance/monitors").status_code == 401
    as_customer = bearer(client, customer["mobile"], customer["password"])
    assert client.get("/api/v1/compliance/monitors", headers=as_customer).status_code == 403
    advisor = staff_headers(client, db_url, "adv", Role.advisor)
    assert client.get("/api/v1/compliance/monitors", headers=advisor).status_code == 403
    admin = staff_headers(client, db_url, "root", Role.admin)
    assert client.get("/api/v1/compliance/monitors", headers=admin).status_code == 200

    anonymous = client.get("/console/monitors", headers=HTML, follow_redirects=False)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login?as=staff&next=/console/monitors"
    sign_in_with_cookie(client, db_url, customer["id"])
    assert client.get("/console/monitors", headers=HTML).status_code == 403
    sign_in_with_cookie(client, db_url, add_staff(db_url, "adv2", Role.advisor)[0])
    assert client.get("/console/monitors", headers=HTML).status_code == 403


def test_the_page_in_chinese_and_english(client: Any, db_url: str, officer: dict[str, str]) -> None:
    _advisor(db_url, "ada")
    _advisor(db_url, "cyd")
    _license(client, officer, "ada", SOON, 10)
    _license(client, officer, "cyd", LAPSED, -1)
    sign_in_with_cookie(client, db_url, add_staff(db_url, "cass", Role.compliance)[0])
    zh = client.get("/console/monitors", headers=HTML)
    assert zh.status_code == 200
    assert "服务标准监测" in zh.text and "执业证到期" in zh.text and "待审核内容" in zh.text
    assert "超标" in zh.text and "依据 R1" in zh.text and "依据 R3" in zh.text
    assert SOON in zh.text and LAPSED in zh.text and "已过期仍为有效" in zh.text
    assert 'href="/console/licenses?expiring=true"' in zh.text
    assert "<svg" in zh.text and "style=" not in zh.text and "<script" not in zh.text
    assert "Content-Security-Policy" in zh.headers
    en = client.get("/console/monitors?lang=en", headers=HTML)
    assert en.status_code == 200 and 'lang="en"' in en.text
    assert "Service-standard monitors" in en.text and "Licenses expiring" in en.text
    assert "Breach" in en.text and "Cites R1" in en.text and "Expired, still active" in en.text
    account = client.get("/account?lang=zh", headers=HTML)
    assert 'href="/console/monitors"' in account.text


def test_every_monitor_has_its_texts_in_both_languages(db_url: str) -> None:
    from covernet.core import i18n

    with unit_of_work(db_url) as db:
        figures = monitors.evaluate(db)
    keys_in_order = [f.key for f in figures]
    assert keys_in_order[:3] == [
        "licenses_expiring",
        "content_pending_review",
        "live_sessions_unreviewed",
    ]
    # Every state a registered monitor can give its items (each module's own list).
    states = {"expiring", "expired", "waiting", "overdue", "no_transcript", "served", "unlisted"}
    states |= {"sync_pending", "sync_overdue", "dead_letter"}
    states |= {"clock_breached", "clock_near"}
    keys = [k for f in figures for k in (f.title, f.explain, f.rule)]
    keys += [f"monitors.status.{s}" for s in ("ok", "warning", "breach", "error")]
    keys += [f"monitors.state.{s}" for s in states] + ["monitors.unit.days"]
    for lang in i18n.LANGS:
        assert [k for k in keys if k not in i18n.catalogs()[lang]] == [], lang
    for f in figures:  # the rule sentence is filled from the figure's thresholds
        assert i18n.translate_or(f.rule, "en", "", f.thresholds)
