"""Customer 360 over HTTP on SQLite and PostgreSQL: who sees whom (own pool, team pools,
everyone), only that customer's policies, claims, payments and red envelopes, masking in
every answer, unmasked views with a reason (audited, refused without permission, the
hourly monitor), tags, notes, search and suggestions."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from covernet.audit.models import AuditEntry
from covernet.core import clock
from covernet.core.cn_identity import make_id_number
from covernet.core.db import unit_of_work
from covernet.core.ids import new_id
from covernet.core.masking import mask_id_number
from covernet.crm import monitors as crm_monitors
from covernet.crm import service
from covernet.identity.models import Role
from tests.conftest import CUSTOMER, add_staff, bearer, sign_in_with_cookie
from tests.crm.test_teams import license_for, make_team, staff
from tests.policies.buying import APPLICANT_ID, application, apply, pay, quote

OTHER_MOBILE = "13700006666"
OTHER_ID = make_id_number("310104", date(1985, 1, 2), 11)
NO = {
    "major-diagnoses": False,
    "pending-hospital": False,
    "chronic-conditions": False,
    "congenital": False,
}


def _buy(client: Any, headers: dict[str, str], id_number: str, **over: Any) -> str:
    product = over.pop("product_code", "accident-monthly")
    plan = over.pop("plan_code", "basic")
    q = quote(
        client,
        headers,
        product_code=product,
        plan_code=plan,
        insured={"id_number": id_number, "region": "310000"},
    )
    extra = {"health_answers": NO} if product == "medical-million" else {}
    body = application(
        client, q, applicant={"name": "张三", "id_number": id_number}, **extra, **over
    )
    made = apply(client, headers, body)
    assert made.status_code == 201, made.text
    pay(client, made.json()["payment_id"])
    mine = client.get("/api/v1/policies", headers=headers).json()
    return str(
        next(p for p in mine if p["application_id"] == made.json()["application_id"])["policy_no"]
    )


@pytest.fixture
def world(client: Any, db_url: str, customer: dict[str, str]) -> dict[str, Any]:
    _, ops = staff(client, db_url, "ops1", Role.ops)
    _, officer = staff(client, db_url, "officer", Role.compliance)
    a, a_h = staff(client, db_url, "adv-a", Role.advisor, "顾问甲")
    b, b_h = staff(client, db_url, "adv-b", Role.advisor, "顾问乙")
    _, s_h = staff(client, db_url, "sup-s", Role.advisor, "主管丙")
    _, t_h = staff(client, db_url, "sup-t", Role.advisor, "主管丁")
    _, claims_h = staff(client, db_url, "handler", Role.claims)
    for who in ("adv-a", "adv-b"):
        license_for(client, officer, who, ["accident", "medical"])
    make_team(client, ops, "east", {"adv-a": False, "sup-s": True})
    make_team(client, ops, "west", {"adv-b": False, "sup-t": True})
    me = bearer(client, CUSTOMER["mobile"], CUSTOMER["password"])
    p1 = _buy(client, me, APPLICANT_ID, advisor_id=a)
    made = client.post(
        "/api/v1/red-envelopes",
        headers=me,
        json={
            "product_code": "accident-monthly",
            "plan_code": "basic",
            "shares": 2,
            "greeting": "新年快乐",
        },
    )
    assert made.status_code == 201, made.text
    pay(client, made.json()["payment_id"])
    envelope = made.json()["envelope_id"]
    registered = client.post(
        "/api/v1/auth/register",
        json={"mobile": OTHER_MOBILE, "password": "s3cret-pass", "name": "李四"},
    )
    c2 = registered.json()["id"]
    them = bearer(client, OTHER_MOBILE, "s3cret-pass")
    p2 = _buy(client, them, OTHER_ID)
    _buy(client, them, OTHER_ID, product_code="medical-million", plan_code="standard")
    grabbed = client.post(f"/api/v1/red-envelopes/{envelope}/grab", headers=them)
    assert grabbed.status_code in (200, 201), grabbed.text
    policy_id = next(p["policy_id"] for p in client.get("/api/v1/policies", headers=me).json())
    with clock.shifted(timedelta(days=3)):
        claim = client.post(
            "/api/v1/claims",
            headers={
                **bearer(client, CUSTOMER["mobile"], CUSTOMER["password"]),
                "Idempotency-Key": "c360-1",
            },
            json={
                "policy_id": policy_id,
                "coverage_code": "accidental-death-disability",
                "cause": "accident",
                "incident_date": (clock.today() - timedelta(days=1)).isoformat(),
                "description": "下楼梯时摔倒，右腿骨折",
                "amount_claimed_fen": 300_000,
                "payee": {"name": "张三", "account": "6222021234567890123"},
            },
        )
        assert claim.status_code == 201, claim.text
    return {
        "c1": customer["id"],
        "c2": c2,
        "a": a,
        "b": b,
        "ops": ops,
        "officer": officer,
        "a_h": a_h,
        "b_h": b_h,
        "s_h": s_h,
        "t_h": t_h,
        "claims_h": claims_h,
        "p1": p1,
        "p2": p2,
        "envelope": envelope,
        "claim_no": claim.json()["claim_no"],
    }


def _no_personal_data(text: str) -> None:
    for secret in (CUSTOMER["mobile"], APPLICANT_ID, OTHER_MOBILE, OTHER_ID, "6222021234567890123"):
        assert secret not in text


def test_the_360_shows_that_customer_only_and_masked(client: Any, world: dict[str, Any]) -> None:
    got = client.get(f"/api/v1/customers/{world['c1']}", headers=world["a_h"])
    assert got.status_code == 200, got.text
    assert got.headers["cache-control"] == "no-store"
    c = got.json()
    _no_personal_data(got.text)
    assert c["mobile"] == "139****5678" and c["id_number"] == mask_id_number(APPLICANT_ID)
    assert c["advisor"]["advisor_id"] == world["a"] and c["advisor"]["source"] == "referral"
    assert [p["policy_no"] for p in c["policies"]] == [world["p1"]]
    assert [k["claim_no"] for k in c["claims"]] == [world["claim_no"]]
    assert sorted(p["purpose"] for p in c["payments"]) == ["gift", "premium"]
    assert [e["envelope_id"] for e in c["envelopes_sent"]] == [world["envelope"]]
    assert c["envelopes_grabbed"] == []
    # c1 holds accident; the other customer holds accident and medical: medical suggested.
    assert [(s["line"], s["because"], s["percent"]) for s in c["suggestions"]] == [
        ("medical", "accident", 100)
    ]
    other = client.get(f"/api/v1/customers/{world['c2']}", headers=world["ops"]).json()
    assert {p["policy_no"] for p in other["policies"]} >= {world["p2"]}
    assert world["p1"] not in {p["policy_no"] for p in other["policies"]}
    assert other["claims"] == [] and other["envelopes_sent"] == []
    assert [e["envelope_id"] for e in other["envelopes_grabbed"]] == [world["envelope"]]
    assert all(s["line"] not in {"accident", "medical"} for s in other["suggestions"])
    assert other["advisor"] is None


def test_who_sees_whom(client: Any, world: dict[str, Any]) -> None:
    path = f"/api/v1/customers/{world['c1']}"
    foreign = client.get(path, headers=world["b_h"])
    missing = client.get(f"/api/v1/customers/{new_id()}", headers=world["b_h"])
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()  # existence does not leak
    assert foreign.json()["error"] == "customer_not_found"
    assert client.get(path, headers=world["s_h"]).status_code == 200  # supervisor of a's team
    assert client.get(path, headers=world["t_h"]).status_code == 404  # another team's
    assert client.get(path, headers=world["ops"]).status_code == 200
    assert client.get(path, headers=world["officer"]).status_code == 200
    assert client.get(path, headers=world["claims_h"]).status_code == 403
    # c2 is nobody's: advisors and supervisors do not see them, ops does
    assert client.get(f"/api/v1/customers/{world['c2']}", headers=world["a_h"]).status_code == 404
    assert client.get(f"/api/v1/customers/{world['c2']}", headers=world["s_h"]).status_code == 404
    # a staff member's id is not a customer
    assert client.get(f"/api/v1/customers/{world['a']}", headers=world["ops"]).status_code == 404
    # Writes follow the same rule
    tag = client.post(f"{path}/tags", headers=world["b_h"], json={"tag": "vip"})
    assert tag.status_code == 404 and tag.json()["error"] == "customer_not_found"


def test_search_finds_only_visible_customers_masked(client: Any, world: dict[str, Any]) -> None:
    def found(q: str, who: str) -> list[str]:
        got = client.get("/api/v1/customers", params={"q": q}, headers=world[who])
        assert got.status_code == 200, got.text
        _no_personal_data(got.text)
        return [r["customer_id"] for r in got.json()]

    assert found(CUSTOMER["mobile"], "a_h") == [world["c1"]]
    assert found("139 1234 5678", "a_h") == [world["c1"]]
    assert found(OTHER_MOBILE, "a_h") == []
    assert found(OTHER_MOBILE, "ops") == [world["c2"]]
    assert found("139****5678", "a_h") == [world["c1"]]
    assert found(world["p1"], "a_h") == [world["c1"]]
    assert found(world["p2"], "a_h") == []
    assert found(world["p2"], "ops") == [world["c2"]]
    assert found("测试", "a_h") == [world["c1"]]
    assert found("李四", "b_h") == []
    row = client.get("/api/v1/customers", params={"q": "测试"}, headers=world["a_h"]).json()[0]
    assert row["name"] == "测***" and row["mobile"] == "139****5678"
    assert row["advisor_name"] == "顾问甲"
    bad = client.get("/api/v1/customers", params={"q": "x"}, headers=world["a_h"])
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_query"


def test_unmask_needs_a_reason_is_audited_and_refused_without_permission(
    client: Any, db_url: str, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = f"/api/v1/customers/{world['c1']}/unmask"
    ok = {"field": "mobile", "reason_code": "customer_request", "reason": "客户来电核实身份"}
    no_code = client.post(path, headers=world["a_h"], json={**ok, "reason_code": ""})
    assert no_code.status_code == 400 and no_code.json()["error"] == "reason_required"
    short = client.post(path, headers=world["a_h"], json={**ok, "reason": "核实"})
    assert short.status_code == 400 and short.json()["error"] == "reason_too_short"
    foreign = client.post(path, headers=world["b_h"], json=ok)
    assert foreign.status_code == 403 and foreign.json()["error"] == "not_your_customer"
    nobody = client.post(f"/api/v1/customers/{new_id()}/unmask", headers=world["b_h"], json=ok)
    assert nobody.status_code == 403 and nobody.json() == foreign.json()
    with unit_of_work(db_url) as db:
        assert (
            db.scalars(select(AuditEntry).where(AuditEntry.action == "customer.unmask")).all() == []
        )
    shown = client.post(path, headers=world["a_h"], json=ok)
    assert shown.status_code == 200 and shown.json() == {
        "field": "mobile",
        "value": CUSTOMER["mobile"],
    }
    assert shown.headers["cache-control"] == "no-store"
    ident = client.post(path, headers=world["a_h"], json={**ok, "field": "id_number"})
    assert ident.json()["value"] == APPLICANT_ID
    with unit_of_work(db_url) as db:
        entries = db.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == "customer.unmask")
            .order_by(AuditEntry.seq)
        ).all()
        assert [(e.actor_id, e.subject_id, e.detail["field"]) for e in entries] == [
            (world["a"], world["c1"], "mobile"),
            (world["a"], world["c1"], "id_number"),
        ]
        assert entries[0].detail["reason_code"] == "customer_request"
        assert entries[0].detail["reason"] == "客户来电核实身份"
        assert CUSTOMER["mobile"] not in json.dumps(entries[0].detail)
        figure = crm_monitors.unmask_views(db, clock.today())
        assert figure.value == 2 and figure.status == "ok"
        monkeypatch.setattr(service, "UNMASK_PER_HOUR", 1)
        over = crm_monitors.unmask_views(db, clock.today())
        assert over.status == "breach" and [i.label for i in over.items] == ["顾问甲"]
        with clock.shifted(timedelta(hours=2)):  # an hour later they no longer count
            assert crm_monitors.unmask_views(db, clock.today()).value == 0


def test_pages_mask_and_show_a_full_value_once(
    client: Any, db_url: str, world: dict[str, Any]
) -> None:
    csrf = sign_in_with_cookie(client, db_url, world["a"])
    page = client.get(f"/console/customers/{world['c1']}")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    _no_personal_data(page.text)
    assert "139****5678" in page.text and mask_id_number(APPLICANT_ID) in page.text
    assert "显示完整信息" in page.text and world["p1"] in page.text
    assert "持有意外险的客户中 100% 也持有医疗险" in page.text
    assert "接收场景优惠推荐 · 未同意" in page.text  # consents, from crm.consents
    refused = client.post(
        f"/console/customers/{world['c1']}/unmask",
        data={
            "csrf_token": csrf,
            "field": "mobile",
            "reason_code": "claim_service",
            "reason": "短",
        },
    )
    assert refused.status_code == 400 and "至少 6 个字" in refused.text
    _no_personal_data(refused.text)
    shown = client.post(
        f"/console/customers/{world['c1']}/unmask",
        data={
            "csrf_token": csrf,
            "field": "mobile",
            "reason_code": "claim_service",
            "reason": "理赔回访需要联系客户",
        },
    )
    assert shown.status_code == 200 and CUSTOMER["mobile"] in shown.text
    assert shown.headers["cache-control"] == "no-store"
    again = client.get(f"/console/customers/{world['c1']}")
    assert CUSTOMER["mobile"] not in again.text
    listing = client.get("/console/customers")
    assert listing.status_code == 200 and "测***" in listing.text
    _no_personal_data(listing.text)
    searched = client.post("/console/customers", data={"csrf_token": csrf, "q": CUSTOMER["mobile"]})
    assert f"/console/customers/{world['c1']}" in searched.text
    _no_personal_data(searched.text)  # not even in the search box or the language links
    by_link = client.get("/console/customers", params={"q": world["p1"]})
    assert f"/console/customers/{world['c1']}" in by_link.text
    english = client.get(f"/console/customers/{world['c1']}?lang=en")
    assert "Show full information" in english.text
    # An advisor who does not serve c2 gets the not-found page, not c2's data
    other = client.get(f"/console/customers/{world['c2']}")
    assert other.status_code == 404 and "李四" not in other.text


def test_tags_and_notes(client: Any, db_url: str, world: dict[str, Any]) -> None:
    path = f"/api/v1/customers/{world['c1']}"
    assert client.post(f"{path}/tags", headers=world["a_h"], json={"tag": "vip"}).json() == ["vip"]
    both = client.post(f"{path}/tags", headers=world["a_h"], json={"tag": "高端医疗"})
    assert both.status_code == 201 and both.json() == ["vip", "高端医疗"]
    assert client.post(f"{path}/tags", headers=world["a_h"], json={"tag": "vip"}).json() == [
        "vip",
        "高端医疗",
    ]
    bad = client.post(f"{path}/tags", headers=world["a_h"], json={"tag": "<b>x</b>"})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_tag"
    assert client.delete(f"{path}/tags/vip", headers=world["a_h"]).json() == ["高端医疗"]
    gone = client.delete(f"{path}/tags/vip", headers=world["a_h"])
    assert gone.status_code == 404 and gone.json()["error"] == "tag_not_found"
    note = client.post(f"{path}/notes", headers=world["a_h"], json={"body": "客户希望下周电话回访"})
    assert note.status_code == 201
    empty = client.post(f"{path}/notes", headers=world["a_h"], json={"body": " "})
    assert empty.status_code == 400 and empty.json()["error"] == "invalid_note"
    view = client.get(path, headers=world["s_h"]).json()
    assert view["tags"] == ["高端医疗"]
    assert [(n["author"], n["body"]) for n in view["notes"]] == [("顾问甲", "客户希望下周电话回访")]
    # From the page: a vocabulary tag and a note, then shown
    csrf = sign_in_with_cookie(client, db_url, world["a"])
    done = client.post(
        f"/console/customers/{world['c1']}/tag",
        data={"csrf_token": csrf, "tag": "car_owner"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    noted = client.post(
        f"/console/customers/{world['c1']}/note",
        data={"csrf_token": csrf, "body": "已寄送理赔材料清单"},
    )
    assert noted.status_code == 200 and "已寄送理赔材料清单" in noted.text and "有车" in noted.text
    wrong = client.post(
        f"/console/customers/{world['c1']}/note", data={"csrf_token": csrf, "body": "x"}
    )
    assert wrong.status_code == 400 and "备注须为 2 到 1000 个字" in wrong.text


def test_an_assigned_conversation_opens_the_customer(
    client: Any, db_url: str, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import dataclass

    @dataclass
    class Assigned:
        id: str
        assignee_id: str

    monkeypatch.setattr(
        service,
        "_conversations",
        lambda db, cid: [Assigned("x", world["b"])] if cid == world["c2"] else [],
    )
    assert client.get(f"/api/v1/customers/{world['c2']}", headers=world["b_h"]).status_code == 200
    assert client.get(f"/api/v1/customers/{world['c2']}", headers=world["a_h"]).status_code == 404
    add_staff(db_url, "spare", Role.advisor)
