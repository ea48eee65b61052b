"""Live sessions (R1, R2, R4): a licensed host, the products, an approved script; after the
session the transcript is checked line by line and compliance reviews it by time offset."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from covernet.audit.models import AuditEntry
from covernet.compliance.models import AdvisorLicense
from covernet.core import clock
from covernet.core.db import unit_of_work
from covernet.identity.models import Role
from tests.conftest import staff_headers

INSTITUTION = "示例安心财产保险股份有限公司（演示）"
LICENSE_NO = "02000111000080002024000999"
SCRIPT = (
    f"大家好，我是王小明，{INSTITUTION}，执业证编号{LICENSE_NO}。"
    "今天介绍一款意外伤害保险，保障责任以保险合同为准。"
)
TRANSCRIPT = (
    "[00:00:05] 大家好，欢迎来到直播间，今天介绍意外伤害保险\n"
    "[00:03:20] 这是全网最便宜的意外险\n"
    "[00:07:45] 想买的去 www.taobao.com/shop 下单\n"
    "[00:09:00] 保障以合同条款为准，点击下方链接进入产品页\n"
)


def _when(hours: float = 2) -> str:
    return (clock.now() + timedelta(hours=hours)).isoformat()


def _setup(client: Any, db_url: str, lines: list[str] | None = None) -> dict[str, Any]:
    advisor = staff_headers(client, db_url, "wang", Role.advisor)
    officer = staff_headers(client, db_url, "zhao", Role.compliance)
    held = client.post(
        "/api/v1/compliance/licenses",
        headers=officer,
        json={
            "license_no": LICENSE_NO,
            "advisor_username": "wang",
            "institution": INSTITUTION,
            "valid_until": (clock.today() + timedelta(days=100)).isoformat(),
            "lines": lines or ["accident"],
        },
    )
    assert held.status_code == 201, held.text
    script = client.post(
        "/api/v1/content",
        headers=advisor,
        json={"kind": "live_script", "body": SCRIPT, "product_codes": ["accident-monthly"]},
    ).json()
    assert script["verdict"] == "pass", script["findings"]
    approved = client.post(f"/api/v1/content/{script['id']}/approve", headers=officer, json={})
    assert approved.status_code == 200
    return {"advisor": advisor, "officer": officer, "script": script, "license": held.json()}


def _register(client: Any, ctx: dict[str, Any], **over: Any) -> Any:
    body = {
        "title": "意外险怎么选",
        "scheduled_at": _when(),
        "product_codes": ["accident-monthly"],
        "script_id": ctx["script"]["id"],
        **over,
    }
    return client.post("/api/v1/live-sessions", headers=ctx["advisor"], json=body)


def test_whole_session_from_registration_to_review(
    client: Any, anon_client: Any, db_url: str
) -> None:
    ctx = _setup(client, db_url)
    made = _register(client, ctx)
    assert made.status_code == 201, made.text
    live = made.json()
    assert live["status"] == "scheduled"
    assert live["product_links"] == ["/products/accident-monthly"]
    assert live["script_hash"] == ctx["script"]["content_hash"]
    # Viewers see the host's identity block and only the platform's own product page.
    page = anon_client.get(live["public_url"], headers={"accept": "text/html"})
    assert page.status_code == 200
    assert LICENSE_NO in page.text and INSTITUTION in page.text and "王小明" in page.text
    assert 'href="/products/accident-monthly"' in page.text
    sid = live["id"]
    early = client.post(
        f"/api/v1/live-sessions/{sid}/transcript",
        headers=ctx["advisor"],
        json={"transcript": TRANSCRIPT},
    )
    assert early.status_code == 409 and early.json()["error"] == "wrong_live_state"
    assert (
        client.post(f"/api/v1/live-sessions/{sid}/start", headers=ctx["advisor"]).json()["status"]
        == "live"
    )
    again = client.post(f"/api/v1/live-sessions/{sid}/start", headers=ctx["advisor"])
    assert again.status_code == 409
    assert (
        client.post(f"/api/v1/live-sessions/{sid}/end", headers=ctx["advisor"]).json()["status"]
        == "ended"
    )
    checked = client.post(
        f"/api/v1/live-sessions/{sid}/transcript",
        headers=ctx["advisor"],
        json={"transcript": TRANSCRIPT},
    )
    assert checked.status_code == 200, checked.text
    out = checked.json()
    assert out["status"] == "pending_review" and out["transcript_verdict"] == "fail"
    timed = [(f["at"], f["line"], f["rule_id"]) for f in out["transcript_findings"]]
    assert ("00:03:20", 2, "R23.superlative") in timed
    assert ("00:07:45", 3, "R4.external_link") in timed
    assert not any(f["line"] in (1, 4) for f in out["transcript_findings"])
    # Compliance sees it waiting, and must say why when recording violations.
    waiting = client.get("/api/v1/live-sessions?status=pending_review", headers=ctx["officer"])
    assert [r["id"] for r in waiting.json()] == [sid]
    silent = client.post(
        f"/api/v1/live-sessions/{sid}/review", headers=ctx["officer"], json={"outcome": "cleared"}
    )
    assert silent.status_code == 400 and silent.json()["error"] == "note_required"
    done = client.post(
        f"/api/v1/live-sessions/{sid}/review",
        headers=ctx["officer"],
        json={"outcome": "violations", "note": "03:20 绝对化用语；07:45 第三方链接"},
    )
    assert done.json()["status"] == "reviewed" and done.json()["review_outcome"] == "violations"
    late = client.post(
        f"/api/v1/live-sessions/{sid}/transcript",
        headers=ctx["advisor"],
        json={"transcript": TRANSCRIPT},
    )
    assert late.status_code == 409
    with unit_of_work(db_url) as db:
        actions = db.scalars(
            select(AuditEntry.action).where(AuditEntry.subject_id == sid).order_by(AuditEntry.seq)
        ).all()
    assert actions == [
        "live.register",
        "live.live",
        "live.ended",
        "live.pending_review",
        "live.reviewed",
    ]


def test_registration_refusals(client: Any, db_url: str) -> None:
    ctx = _setup(client, db_url)
    past = _register(client, ctx, scheduled_at=(clock.now() - timedelta(hours=1)).isoformat())
    assert past.status_code == 400 and past.json()["error"] == "scheduled_in_past"
    other = _register(client, ctx, product_codes=["accident-monthly", "medical-million"])
    assert other.status_code == 403 and other.json()["error"] == "license_out_of_scope"
    unknown = _register(client, ctx, script_id="nope")
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_script"
    post = client.post(
        "/api/v1/content",
        headers=ctx["advisor"],
        json={"kind": "moments", "body": SCRIPT, "product_codes": ["accident-monthly"]},
    ).json()
    wrong_kind = _register(client, ctx, script_id=post["id"])
    assert wrong_kind.status_code == 400 and wrong_kind.json()["error"] == "not_a_live_script"
    # An edited script needs a new approval before it can be used.
    client.put(
        f"/api/v1/content/{ctx['script']['id']}",
        headers=ctx["advisor"],
        json={
            "kind": "live_script",
            "body": SCRIPT + "欢迎提问。",
            "product_codes": ["accident-monthly"],
        },
    )
    stale = _register(client, ctx)
    assert stale.status_code == 409 and stale.json()["error"] == "script_not_approved"
    bad = _register(client, ctx, scheduled_at="tomorrow")
    assert bad.status_code == 422
    with unit_of_work(db_url) as db:
        assert not db.scalars(
            select(AuditEntry.action).where(AuditEntry.action == "live.register")
        ).all()


def test_script_must_cover_the_products(client: Any, db_url: str) -> None:
    ctx = _setup(client, db_url, lines=["accident", "medical"])
    short = _register(client, ctx, product_codes=["accident-monthly", "medical-million"])
    assert short.status_code == 400 and short.json()["error"] == "script_lacks_products"
    assert short.json()["detail"]["products"] == ["medical-million"]


def test_license_checked_again_when_going_live(client: Any, db_url: str) -> None:
    ctx = _setup(client, db_url)
    sid = _register(client, ctx).json()["id"]
    with unit_of_work(db_url) as db:  # the license lapsed yesterday
        held = db.get(AdvisorLicense, ctx["license"]["id"])
        assert held is not None
        held.valid_until = clock.today() - timedelta(days=1)
    expired = client.post(f"/api/v1/live-sessions/{sid}/start", headers=ctx["advisor"])
    with unit_of_work(db_url) as db:
        held = db.get(AdvisorLicense, ctx["license"]["id"])
        assert held is not None
        held.valid_until = clock.today() + timedelta(days=30)
    assert expired.status_code == 403 and expired.json()["error"] == "license_expired"
    client.post(
        f"/api/v1/compliance/licenses/{ctx['license']['id']}/status",
        headers=ctx["officer"],
        json={"status": "suspended", "reason": "投诉调查"},
    )
    suspended = client.post(f"/api/v1/live-sessions/{sid}/start", headers=ctx["advisor"])
    assert suspended.status_code == 403 and suspended.json()["error"] == "license_suspended"


def test_transcript_errors_change_nothing(client: Any, db_url: str) -> None:
    ctx = _setup(client, db_url)
    sid = _register(client, ctx).json()["id"]
    client.post(f"/api/v1/live-sessions/{sid}/start", headers=ctx["advisor"])
    client.post(f"/api/v1/live-sessions/{sid}/end", headers=ctx["advisor"])
    bad = client.post(
        f"/api/v1/live-sessions/{sid}/transcript",
        headers=ctx["advisor"],
        json={"transcript": "[00:00:01] 好\n没有时间的一行"},
    )
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_transcript"
    assert bad.json()["detail"]["line"] == 2
    assert (
        client.get(f"/api/v1/live-sessions/{sid}", headers=ctx["advisor"]).json()["status"]
        == "ended"
    )
    # A clean transcript passes; it can be replaced until reviewed; clearing needs no note.
    clean = "[00:00:01] 今天介绍意外伤害保险，保障以合同为准"
    first = client.post(
        f"/api/v1/live-sessions/{sid}/transcript",
        headers=ctx["advisor"],
        json={"transcript": TRANSCRIPT},
    )
    assert first.json()["transcript_verdict"] == "fail"
    second = client.post(
        f"/api/v1/live-sessions/{sid}/transcript",
        headers=ctx["officer"],
        json={"transcript": clean},
    )
    assert second.json()["transcript_verdict"] == "pass"
    assert second.json()["transcript_findings"] == []
    cleared = client.post(
        f"/api/v1/live-sessions/{sid}/review", headers=ctx["officer"], json={"outcome": "cleared"}
    )
    assert cleared.status_code == 200 and cleared.json()["review_outcome"] == "cleared"


def test_uncertain_products_need_the_statement_once(client: Any, db_url: str) -> None:
    from covernet.compliance import live

    with unit_of_work(db_url) as db:
        _, found = live.check_transcript(
            db, "[00:00:01] 这款分红年金保险\n[00:00:09] 领取灵活", ["annuity-participating"]
        )
        rules = [(f.line, f.finding.rule_id) for f in found]
        assert rules == [(0, "R7.uncertainty_statement")]
        _, ok = live.check_transcript(
            db,
            "[00:00:01] 这款分红年金保险\n[00:00:09] 红利分配不确定，保单利益具有不确定性",
            ["annuity-participating"],
        )
        assert ok == []


def test_who_sees_what(client: Any, db_url: str) -> None:
    ctx = _setup(client, db_url)
    sid = _register(client, ctx).json()["id"]
    other = staff_headers(client, db_url, "liu", Role.advisor)
    assert client.get(f"/api/v1/live-sessions/{sid}", headers=other).status_code == 404
    assert client.get("/api/v1/live-sessions", headers=other).json() == []
    assert client.post(f"/api/v1/live-sessions/{sid}/start", headers=other).status_code == 404
    assert (
        client.post(f"/api/v1/live-sessions/{sid}/start", headers=ctx["officer"]).status_code == 403
    )
    ops = staff_headers(client, db_url, "qian", Role.ops)
    assert client.get("/api/v1/live-sessions", headers=ops).status_code == 403
    assert client.get("/live/nope", headers={"accept": "text/html"}).status_code == 404


def test_monitor_lists_sessions_waiting_for_review(client: Any, db_url: str) -> None:
    ctx = _setup(client, db_url)
    sid = _register(client, ctx).json()["id"]

    def figure() -> dict[str, Any]:
        found = client.get("/api/v1/compliance/monitors", headers=ctx["officer"]).json()
        return next(f for f in found["figures"] if f["key"] == "live_sessions_unreviewed")

    assert figure()["value"] == 0 and figure()["status"] == "ok"
    client.post(f"/api/v1/live-sessions/{sid}/start", headers=ctx["advisor"])
    client.post(f"/api/v1/live-sessions/{sid}/end", headers=ctx["advisor"])
    ended = figure()
    assert ended["value"] == 1 and ended["status"] == "warning"
    assert [i["state"] for i in ended["items"]] == ["no_transcript"]
    client.post(
        f"/api/v1/live-sessions/{sid}/transcript",
        headers=ctx["advisor"],
        json={"transcript": TRANSCRIPT},
    )
    assert [i["href"] for i in figure()["items"]] == [f"/live/{sid}"]
    with clock.shifted(timedelta(days=3)):
        late = staff_headers(client, db_url, "zhou", Role.compliance)
        found = client.get("/api/v1/compliance/monitors", headers=late).json()
        overdue = next(f for f in found["figures"] if f["key"] == "live_sessions_unreviewed")
    assert overdue["status"] == "breach" and overdue["items"][0]["state"] == "overdue"
    client.post(
        f"/api/v1/live-sessions/{sid}/review",
        headers=ctx["officer"],
        json={"outcome": "violations", "note": "03:20"},
    )
    assert figure()["value"] == 0
