"""The desk's console pages and the chat widget's place on customer pages."""

from __future__ import annotations

import re
from typing import Any

from covernet.identity.models import Role
from tests.conftest import add_staff, sign_in_with_cookie
from tests.consult.test_desk_helpers import advisor


def _start(client: Any, body: str, product_code: str | None = None) -> str:
    token = client.post("/api/v1/chat/visitor").json()["visitor_token"]
    answer = client.post(
        "/api/v1/conversations",
        json={"body": body, "product_code": product_code},
        headers={"X-Visitor-Token": token},
    )
    assert answer.status_code == 201, answer.text
    conv_id: str = answer.json()["id"]
    return conv_id


def test_widget_on_customer_pages_only(client: Any, db_url: str) -> None:
    home = client.get("/")
    assert "data-chat" in home.text and "js/chat.js" in home.text
    product = client.get("/products/medical-million")
    assert "data-chat" in product.text
    adv = advisor(db_url, "adv", lines=["medical"])
    sign_in_with_cookie(client, db_url, adv)
    desk = client.get("/console/desk")
    assert desk.status_code == 200
    assert "data-chat-panel" not in desk.text  # staff pages have no customer chat
    assert "data-chat-panel" not in client.get("/").text  # nor for signed-in staff


def test_desk_inbox_reply_note_state_and_refusal(client: Any, db_url: str) -> None:
    adv = advisor(db_url, "adv", lines=["medical"], name="王顾问")
    conv_id = _start(client, "我要投诉，理赔太慢了", "medical-million")
    other = _start(client, "医疗险保什么", "medical-million")
    assert client.get("/console/desk", follow_redirects=False).status_code == 303
    csrf = sign_in_with_cookie(client, db_url, adv)
    inbox = client.get("/console/desk")
    order = re.findall(r'data-conversation="([^"]+)" data-priority="([^"]+)"', inbox.text)
    assert order[0] == (conv_id, "urgent")  # the complaint first
    assert (other, "normal") in order
    page = client.get(f"/console/desk/{conv_id}")
    assert "我要投诉，理赔太慢了" in page.text and "投诉" in page.text
    sent = client.post(
        f"/console/desk/{conv_id}/reply",
        data={"csrf_token": csrf, "body": "非常抱歉，我们马上核实"},
        follow_redirects=False,
    )
    assert sent.status_code == 303
    client.post(f"/console/desk/{conv_id}/note", data={"csrf_token": csrf, "body": "加急处理"})
    history = client.get(f"/api/v1/conversations/{conv_id}/messages").json()
    assert [(m["author_kind"], m["private"]) for m in history] == [
        ("customer", False),
        ("advisor", False),
        ("advisor", True),
    ]
    assert history[1]["advisor"]["license_no"]
    early = client.post(f"/console/desk/{conv_id}/resolved", data={"csrf_token": csrf})
    assert early.status_code == 409 and "处理结果" in early.text  # a complaint needs its outcome
    recorded = client.post(
        f"/console/desk/{conv_id}/outcome",
        data={"csrf_token": csrf, "outcome": "已加急，三日内到账"},
        follow_redirects=False,
    )
    assert recorded.status_code == 303
    resolved = client.post(
        f"/console/desk/{conv_id}/resolved", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert resolved.status_code == 303
    again = client.post(f"/console/desk/{conv_id}/pending", data={"csrf_token": csrf})
    assert again.status_code == 409 and "form-error" in again.text
    # without the CSRF token nothing happens
    forged = client.post(f"/console/desk/{other}/resolved", data={})
    assert forged.status_code == 403


def test_unlicensed_reply_is_refused_on_the_page(client: Any, db_url: str) -> None:
    ops_id, _ = add_staff(db_url, "ops1", Role.ops)
    conv_id = _start(client, "医疗险保什么", "medical-million")
    csrf = sign_in_with_cookie(client, db_url, ops_id)
    refused = client.post(
        f"/console/desk/{conv_id}/reply", data={"csrf_token": csrf, "body": "买这个吧"}
    )
    assert refused.status_code == 403
    assert "执业证" in refused.text  # the page names the license problem
    assert client.get(f"/api/v1/conversations/{conv_id}/messages").json()[-1]["author_kind"] == (
        "customer"
    )


def test_customers_cannot_open_the_desk(client: Any, db_url: str, customer: dict[str, str]) -> None:
    sign_in_with_cookie(client, db_url, customer["id"])
    assert client.get("/console/desk").status_code == 403
    assert client.get("/api/v1/desk/conversations").status_code == 403
