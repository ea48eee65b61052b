"""The desk's JSON routes (SQLite and PostgreSQL): CSAT, live-session questions, canned
replies, agents, snooze and transfer, and who sees what."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from covernet.core import clock
from covernet.identity.models import Role
from tests.compliance.test_live import _register, _setup
from tests.conftest import bearer, staff_headers
from tests.consult.test_desk_helpers import advisor


def _login_advisor(client: Any, username: str) -> dict[str, str]:
    from covernet.core.db import unit_of_work
    from covernet.identity import service as identity
    from covernet.identity.models import User

    with unit_of_work() as db:
        from sqlalchemy import select

        user = db.scalar(select(User).where(User.username == username))
        assert user is not None
        token = identity.open_session(db, user, kind="bearer", user_agent="t").token
    return {"Authorization": f"Bearer {token}"}


def test_csat_once_and_only_after_resolution(
    client: Any, db_url: str, customer_headers: dict[str, str]
) -> None:
    advisor(db_url, "adv", lines=["medical"])
    adv = _login_advisor(client, "adv")
    conv = client.post(
        "/api/v1/conversations",
        json={"body": "医疗险问题", "product_code": "medical-million"},
        headers=customer_headers,
    ).json()
    rate = f"/api/v1/conversations/{conv['id']}/csat"
    early = client.post(rate, json={"score": 4}, headers=customer_headers)
    assert (early.status_code, early.json()["error"]) == (409, "csat_not_open")
    done = client.post(
        f"/api/v1/desk/conversations/{conv['id']}/state", json={"state": "resolved"}, headers=adv
    )
    assert done.status_code == 200 and done.json()["resolved_at"]
    bad = client.post(rate, json={"score": 6}, headers=customer_headers)
    assert bad.status_code == 422
    first = client.post(rate, json={"score": 4, "comment": "快"}, headers=customer_headers)
    assert first.status_code == 200 and first.json()["csat_score"] == 4
    again = client.post(rate, json={"score": 1}, headers=customer_headers)
    assert (again.status_code, again.json()["error"]) == (409, "csat_already_given")
    assert client.post(rate, json={"score": 1}, headers=adv).json()["error"] == "customers_only"
    inbox = client.get("/api/v1/me/notifications", headers=customer_headers).json()
    assert any(n["topic"] == "desk.csat" for n in inbox["items"])


def test_live_viewer_questions_become_one_conversation(client: Any, db_url: str) -> None:
    ctx = _setup(client, db_url)
    from covernet.consult import service
    from covernet.consult.models import Availability
    from covernet.core.db import unit_of_work

    with unit_of_work() as db:
        from covernet.identity.models import User

        host = db.query(User).filter_by(username="wang").one()
        service.set_agent(db, host.id, skills=["accident"], availability=Availability.online)
    session = _register(client, ctx).json()
    token = client.post("/api/v1/chat/visitor").json()["visitor_token"]
    viewer = {"X-Visitor-Token": token}
    ask = f"/api/v1/live/{session['id']}/questions"
    first = client.post(ask, json={"body": "这款意外险保猝死吗"}, headers=viewer)
    assert first.status_code == 201, first.text
    again = client.post(ask, json={"body": "多大年龄能买"}, headers=viewer)
    conv = first.json()
    assert again.json()["id"] == conv["id"]
    assert (conv["channel"], conv["product_line"], conv["assignee_id"]) == (
        "live",
        "accident",
        host.id,
    )
    history = client.get(f"/api/v1/conversations/{conv['id']}/messages", headers=viewer).json()
    assert [(m["channel"], m["body"]) for m in history] == [
        ("live", "这款意外险保猝死吗"),
        ("live", "多大年龄能买"),
    ]
    assert (
        client.post("/api/v1/live/nope/questions", json={"body": "x"}, headers=viewer).status_code
        == 404
    )
    for step in ("start", "end"):
        moved = client.post(f"/api/v1/live-sessions/{session['id']}/{step}", headers=ctx["advisor"])
        assert moved.status_code == 200, moved.text
    late = client.post(ask, json={"body": "还在吗"}, headers=viewer)
    assert (late.status_code, late.json()["error"]) == (409, "live_not_taking_questions")


def test_canned_replies_only_approved_texts(client: Any, db_url: str) -> None:
    ctx = _setup(client, db_url, lines=["medical", "accident"])
    from covernet.consult import service
    from covernet.consult.models import Availability
    from covernet.core.db import unit_of_work
    from covernet.identity.access import Principal
    from covernet.identity.models import User

    text = "您好，保障责任以保险合同为准，我把产品页面链接发给您。"
    made = client.post(
        "/api/v1/content",
        headers=ctx["advisor"],
        json={"kind": "canned_reply", "body": text, "product_codes": ["accident-monthly"]},
    ).json()
    pending = client.post(
        "/api/v1/content",
        headers=ctx["advisor"],
        json={"kind": "canned_reply", "body": "还没审核的话术", "product_codes": []},
    ).json()
    assert (
        client.post(
            f"/api/v1/content/{made['id']}/approve", headers=ctx["officer"], json={}
        ).status_code
        == 200
    )
    with unit_of_work() as db:
        host = db.query(User).filter_by(username="wang").one()
        service.set_agent(db, host.id, skills=["accident"], availability=Availability.online)
    token = client.post("/api/v1/chat/visitor").json()["visitor_token"]
    conv = client.post(
        "/api/v1/conversations",
        json={"body": "意外险怎么买", "product_code": "accident-monthly"},
        headers={"X-Visitor-Token": token},
    ).json()
    who = Principal(role=Role.advisor, user_id=host.id)
    with unit_of_work() as db:
        offered = [i.id for i in service.canned_replies(db, who)]
        assert offered == [made["id"]]
        sent = service.send_canned(db, who, conv["id"], made["id"])
        assert sent.body == text and sent.advisor_license_no
    from covernet.core.errors import Conflict

    with unit_of_work() as db:
        try:
            service.send_canned(db, who, conv["id"], pending["id"])
        except Conflict as exc:
            assert exc.code == "canned_not_approved"
        else:
            raise AssertionError("an unapproved canned reply was sent")


def test_agents_snooze_transfer_and_visibility(client: Any, db_url: str) -> None:
    one = advisor(db_url, "one", lines=["medical"])
    two = advisor(db_url, "two", lines=["medical"], availability="offline")
    ops = staff_headers(client, db_url, "opsx", Role.ops)
    h_one, h_two = _login_advisor(client, "one"), _login_advisor(client, "two")
    listed = client.get("/api/v1/desk/agents", headers=ops).json()
    assert {a["user_id"] for a in listed} == {one, two}
    refused = client.put(f"/api/v1/desk/agents/{one}", json={"skills": ["x"]}, headers=ops)
    assert refused.json()["error"] == "unknown_line"
    assert (
        client.put(f"/api/v1/desk/agents/{one}", json={"skills": []}, headers=h_one).status_code
        == 403
    )
    token = client.post("/api/v1/chat/visitor").json()["visitor_token"]
    conv = client.post(
        "/api/v1/conversations",
        json={"body": "住院了怎么报销", "product_code": "medical-million"},
        headers={"X-Visitor-Token": token},
    ).json()
    assert (conv["assignee_id"], conv["priority"]) == (one, "urgent")
    assert client.get(f"/api/v1/desk/conversations/{conv['id']}", headers=h_two).status_code == 404
    snooze = f"/api/v1/desk/conversations/{conv['id']}/state"
    past = (clock.now() - timedelta(hours=1)).isoformat()
    bad = client.post(snooze, json={"state": "snoozed", "snooze_until": past}, headers=h_one)
    assert bad.json()["error"] == "bad_snooze_until"
    later = (clock.now() + timedelta(hours=1)).isoformat()
    ok = client.post(snooze, json={"state": "snoozed", "snooze_until": later}, headers=h_one)
    assert ok.json()["state"] == "snoozed"
    snoozed = client.get("/api/v1/desk/conversations?state=snoozed", headers=h_one).json()
    assert [c["id"] for c in snoozed] == [conv["id"]]
    moved = client.post(
        f"/api/v1/desk/conversations/{conv['id']}/transfer",
        json={"to_user_id": two},
        headers=h_one,
    )
    assert moved.status_code == 200 and moved.json()["assignee_id"] == two
    view = client.get(f"/api/v1/desk/conversations/{conv['id']}", headers=h_two).json()
    assert view["customer"] == {"name": None, "mobile": None, "visitor": True}
    assert [m["purpose"] for m in view["messages"]][-1] == "transfer"
    away = client.post("/api/v1/desk/me/availability", json={"availability": "away"}, headers=h_two)
    assert away.json()["availability"] == "away"


def test_customers_see_only_their_own(client: Any, db_url: str, customer: dict[str, str]) -> None:
    from covernet.core.db import unit_of_work
    from covernet.identity import service as identity

    with unit_of_work() as db:
        identity.register_customer(db, mobile="13700001111", password="s3cret-pass", name="另一位")
    mine = bearer(client, customer["mobile"], customer["password"])
    theirs = bearer(client, "13700001111", "s3cret-pass")
    conv = client.post("/api/v1/conversations", json={"body": "你好"}, headers=mine).json()
    assert (
        client.get(f"/api/v1/conversations/{conv['id']}/messages", headers=theirs).status_code
        == 404
    )
    posted = client.post(
        f"/api/v1/conversations/{conv['id']}/messages", json={"body": "x"}, headers=theirs
    )
    assert posted.status_code == 404
    assert client.get("/api/v1/me/conversations", headers=theirs).json() == []
    assert [c["id"] for c in client.get("/api/v1/me/conversations", headers=mine).json()] == [
        conv["id"]
    ]
