"""Content approval and publishing (R1, R2, R3): only the approved version, frozen by
its hash, is published, by a licensed advisor, with the advisor's identity block."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from covernet.audit.models import AuditEntry
from covernet.core import clock
from covernet.core.db import unit_of_work
from covernet.identity.models import Role
from tests.conftest import staff_headers

GOOD = (
    "这是一款意外伤害保险，每月5元保30万元，保障责任以保险合同为准。"
    "王小明 示例安心财产保险股份有限公司（演示） 执业证编号02000111000080002024000999"
)
BAD = "全网最便宜的意外险，稳赚不赔！"


def _login(client: Any, db_url: str, username: str, role: Role) -> dict[str, str]:
    return staff_headers(client, db_url, username, role)


def _licensed(
    client: Any, officer: dict[str, str], username: str, no: str, lines: list[str]
) -> dict[str, Any]:
    response = client.post(
        "/api/v1/compliance/licenses",
        headers=officer,
        json={
            "license_no": no,
            "advisor_username": username,
            "institution": "示例安心财产保险股份有限公司（演示）",
            "valid_until": (clock.today() + timedelta(days=100)).isoformat(),
            "lines": lines,
        },
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_submit_review_publish(client: Any, anon_client: Any, db_url: str) -> None:
    advisor = _login(client, db_url, "wang", Role.advisor)
    officer = _login(client, db_url, "zhao", Role.compliance)
    _licensed(client, officer, "wang", "02000111000080002024000999", ["accident"])
    draft = {"kind": "moments", "body": GOOD, "product_codes": ["accident-monthly"]}
    made = client.post("/api/v1/content", headers=advisor, json=draft)
    assert made.status_code == 201, made.text
    item = made.json()
    assert item["status"] == "pending_review" and item["verdict"] == "pass"
    early = client.post(f"/api/v1/content/{item['id']}/publish", headers=advisor)
    assert early.status_code == 409 and early.json()["error"] == "not_approved"
    rejected = client.post(
        f"/api/v1/content/{item['id']}/reject", headers=officer, json={"note": ""}
    )
    assert rejected.status_code == 400 and rejected.json()["error"] == "note_required"
    approved = client.post(f"/api/v1/content/{item['id']}/approve", headers=officer, json={})
    assert approved.status_code == 200 and approved.json()["approved_hash"] == item["content_hash"]
    # An edit is a new version: the approval no longer holds.
    edited = client.put(
        f"/api/v1/content/{item['id']}",
        headers=advisor,
        json={**draft, "body": GOOD + "欢迎咨询。"},
    )
    assert edited.json()["status"] == "pending_review" and edited.json()["version"] == 2
    assert client.post(f"/api/v1/content/{item['id']}/publish", headers=advisor).status_code == 409
    client.post(f"/api/v1/content/{item['id']}/approve", headers=officer, json={"note": "可以"})
    published = client.post(f"/api/v1/content/{item['id']}/publish", headers=advisor)
    assert published.status_code == 200 and published.json()["public_url"] == f"/c/{item['id']}"
    page = anon_client.get(f"/c/{item['id']}", headers={"accept": "text/html"})
    assert page.status_code == 200 and "欢迎咨询" in page.text
    assert "02000111000080002024000999" in page.text and "王小明" in page.text
    with unit_of_work(db_url) as db:
        actions = db.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.subject_id == item["id"])
            .order_by(AuditEntry.seq)
        ).all()
    assert actions == [
        "content.submit",
        "content.approve",
        "content.edit",
        "content.approve",
        "content.publish",
    ]


def test_failing_text_cannot_be_approved(client: Any, db_url: str) -> None:
    advisor = _login(client, db_url, "wang", Role.advisor)
    officer = _login(client, db_url, "zhao", Role.compliance)
    _licensed(client, officer, "wang", "02000111000080002024000999", ["accident"])
    made = client.post(
        "/api/v1/content",
        headers=advisor,
        json={"kind": "moments", "body": BAD, "product_codes": ["accident-monthly"]},
    ).json()
    assert made["verdict"] == "fail" and made["findings"]
    refused = client.post(f"/api/v1/content/{made['id']}/approve", headers=officer, json={})
    assert refused.status_code == 409 and refused.json()["error"] == "content_fails_check"
    assert (
        client.post(
            f"/api/v1/content/{made['id']}/reject", headers=officer, json={"note": "含绝对化用语"}
        ).json()["status"]
        == "rejected"
    )


def test_licenses_gate_content(client: Any, db_url: str) -> None:
    advisor = _login(client, db_url, "wang", Role.advisor)
    officer = _login(client, db_url, "zhao", Role.compliance)
    draft = {"kind": "moments", "body": GOOD, "product_codes": ["accident-monthly"]}
    unlicensed = client.post("/api/v1/content", headers=advisor, json=draft)
    assert unlicensed.status_code == 403 and unlicensed.json()["error"] == "unlicensed"
    held = _licensed(client, officer, "wang", "02000111000080002024000999", ["life"])
    scope = client.post("/api/v1/content", headers=advisor, json=draft)
    assert scope.status_code == 403 and scope.json()["error"] == "license_out_of_scope"
    client.post(
        f"/api/v1/compliance/licenses/{held['id']}/status",
        headers=officer,
        json={"status": "suspended", "reason": "调查"},
    )
    suspended = client.post("/api/v1/content", headers=advisor, json={**draft, "product_codes": []})
    assert suspended.status_code == 403 and suspended.json()["error"] == "license_suspended"


def test_advisors_only_see_their_own(client: Any, db_url: str) -> None:
    wang = _login(client, db_url, "wang", Role.advisor)
    li = _login(client, db_url, "liu", Role.advisor)
    officer = _login(client, db_url, "zhao", Role.compliance)
    _licensed(client, officer, "wang", "02000111000080002024000999", ["accident"])
    item = client.post(
        "/api/v1/content",
        headers=wang,
        json={"kind": "moments", "body": GOOD, "product_codes": ["accident-monthly"]},
    ).json()
    assert client.get(f"/api/v1/content/{item['id']}", headers=li).status_code == 404
    assert client.get("/api/v1/content", headers=li).json() == []
    assert [
        c["id"] for c in client.get("/api/v1/content?status=pending_review", headers=officer).json()
    ] == [item["id"]]
    assert client.get(f"/c/{item['id']}").status_code == 404  # not published
