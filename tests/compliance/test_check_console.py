"""The content checker page: paste a draft, see the findings marked in the text."""

from __future__ import annotations

from typing import Any

from covernet.compliance.checker import Finding
from covernet.compliance.pages import highlight
from covernet.core.db import unit_of_work
from covernet.identity import service as identity
from covernet.identity.models import Role
from tests.conftest import sign_in_with_cookie

HTML = {"accept": "text/html"}


def _finding(start: int, end: int) -> Finding:
    return Finding(
        rule_id="R23.superlative",
        rule="R23",
        severity="fail",
        span=(start, end),
        excerpt="",
        citation="",
        suggestion="",
    )


def test_highlight_cuts_the_text_and_merges_overlaps() -> None:
    text = "全网最便宜稳赚不赔的保险"
    segments = highlight(text, [_finding(2, 5), _finding(4, 7), _finding(0, len(text))])
    assert "".join(s["text"] for s in segments) == text
    assert segments == [
        {"text": "全网", "marks": []},
        {"text": "最便宜稳赚", "marks": [1, 2]},
        {"text": "不赔的保险", "marks": []},
    ]


def test_an_advisor_checks_a_draft_on_the_page(client: Any, db_url: str) -> None:
    with unit_of_work(db_url) as db:
        advisor = identity.add_staff(
            db, username="wang", role=Role.advisor, password="staff-pass-1", name="王小明"
        ).user.id
    csrf = sign_in_with_cookie(client, db_url, advisor)
    page = client.get("/console/check", headers=HTML)
    assert page.status_code == 200 and "文案合规检查" in page.text
    draft = "这款保险全网最便宜，保 本保收益！"
    refused = client.post(
        "/console/check",
        headers=HTML,
        data={"csrf_token": "wrong", "text": draft, "kind": "moments"},
    )
    assert refused.status_code == 403
    result = client.post(
        "/console/check",
        headers=HTML,
        data={
            "csrf_token": csrf,
            "text": draft,
            "kind": "moments",
            "product_codes": ["accident-monthly"],
        },
    )
    assert result.status_code == 200
    assert "不合规，请修改" in result.text and '<mark class="check-mark">' in result.text
    assert "最" in result.text.split('<mark class="check-mark">')[1].split("</mark>")[0]
    fixed = client.post(
        "/console/check",
        headers=HTML,
        data={
            "csrf_token": csrf,
            "kind": "canned_reply",
            "product_codes": ["accident-monthly"],
            "text": "这是一款意外伤害保险，保障内容以保险合同为准。",
        },
    )
    assert "未发现问题" in fixed.text and "check-mark" not in fixed.text.split("check-result")[1]


def test_customers_cannot_use_the_checker(
    client: Any, db_url: str, customer: dict[str, str]
) -> None:
    sign_in_with_cookie(client, db_url, customer["id"])
    assert client.get("/console/check", headers=HTML).status_code == 403


def test_content_console_roles_and_csrf(client: Any, db_url: str, customer: dict[str, str]) -> None:
    response = client.get("/console/content", headers=HTML, follow_redirects=False)
    assert response.status_code == 303 and "next=/console/content" in response.headers["location"]
    sign_in_with_cookie(client, db_url, customer["id"])
    assert client.get("/console/content", headers=HTML).status_code == 403
    with unit_of_work(db_url) as db:
        advisor = identity.add_staff(
            db, username="wang", role=Role.advisor, password="staff-pass-1", name="王小明"
        ).user.id
    csrf = sign_in_with_cookie(client, db_url, advisor)
    forged = client.post(
        "/console/content",
        headers=HTML,
        data={"csrf_token": "x", "text": "保险", "kind": "moments"},
    )
    assert forged.status_code == 403
    unlicensed = client.post(
        "/console/content",
        headers=HTML,
        data={"csrf_token": csrf, "text": "保险", "kind": "moments"},
    )
    assert unlicensed.status_code == 403 and 'role="alert"' in unlicensed.text
