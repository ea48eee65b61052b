"""Web chat over WebSockets (SQLite and PostgreSQL): customer → advisor → customer,
private notes kept from the customer, history after a reload, visitors' tokens."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.websockets import WebSocketDisconnect

from covernet.identity.models import Role
from tests.conftest import sign_in_with_cookie, staff_headers
from tests.consult.test_desk_helpers import advisor


def _frames(ws: Any, *kinds: str, limit: int = 10) -> dict[str, dict[str, Any]]:
    """The first frame of each of ``kinds``, in whatever order they come (a socket's
    own answer and the fan-out of its message race), skipping other frames."""
    found: dict[str, dict[str, Any]] = {}
    for _ in range(limit):
        frame: dict[str, Any] = ws.receive_json()
        assert frame["type"] != "error", frame
        if frame["type"] in kinds and frame["type"] not in found:
            found[frame["type"]] = frame
        if len(found) == len(kinds):
            return found
    raise AssertionError(f"no {kinds} frames")


def _frame(ws: Any, kind: str) -> dict[str, Any]:
    return _frames(ws, kind)[kind]


def test_round_trip_customer_advisor_customer(
    client: Any, anon_client: Any, db_url: str, customer: dict[str, str]
) -> None:
    adv = advisor(db_url, "adv", lines=["medical"], name="王顾问")
    sign_in_with_cookie(client, db_url, customer["id"])
    token = sign_in_with_cookie(anon_client, db_url, adv)
    with client.websocket_connect("/ws/chat") as chat:
        assert _frame(chat, "ready")["conversation_id"] is None
        chat.send_json(
            {"type": "message", "body": "百万医疗怎么报销", "product_code": "medical-million"}
        )
        first = _frames(chat, "started", "message")
        started = first["started"]["conversation"]
        assert started["assignee_id"] == adv and started["product_line"] == "medical"
        echoed = first["message"]["message"]
        assert (echoed["author_kind"], echoed["body"]) == ("customer", "百万医疗怎么报销")
        conv_id = started["id"]
        with anon_client.websocket_connect("/ws/desk") as desk:
            _frame(desk, "ready")
            desk.send_json({"type": "watch", "conversation_id": conv_id})
            _frame(desk, "watching")
            # the advisor's note and reply over the REST fallback (cookie + CSRF)
            note = anon_client.post(
                f"/api/v1/conversations/{conv_id}/messages",
                json={"body": "客户之前问过", "private": True},
                headers={"X-CSRF-Token": token},
            )
            assert note.status_code == 201, note.text
            answer = anon_client.post(
                f"/api/v1/conversations/{conv_id}/messages",
                json={"body": "住院费用扣除免赔额后报销"},
                headers={"X-CSRF-Token": token},
            )
            assert answer.status_code == 201, answer.text
            seen_by_desk = [_frame(desk, "message")["message"] for _ in range(2)]
            assert [m["private"] for m in seen_by_desk] == [True, False]
        got = _frame(chat, "message")["message"]
        # the customer never gets the note: the next message is the answer, with R2
        assert got["body"] == "住院费用扣除免赔额后报销"
        assert got["advisor"]["name"] == "王顾问"
        assert got["advisor"]["institution"] == "示例安心财产保险股份有限公司"
        assert got["advisor"]["license_no"].startswith("LIC")
        chat.send_json({"type": "message", "body": "明白了，谢谢"})
        last = _frames(chat, "sent", "message")
        assert last["sent"]["id"] == last["message"]["message"]["id"]
        assert last["message"]["message"]["body"] == "明白了，谢谢"
    # after a reload: the history, without the private note
    history = client.get(f"/api/v1/conversations/{conv_id}/messages")
    assert [m["body"] for m in history.json()] == [
        "百万医疗怎么报销",
        "住院费用扣除免赔额后报销",
        "明白了，谢谢",
    ]
    with client.websocket_connect(f"/ws/chat?conversation={conv_id}") as again:
        assert _frame(again, "ready")["conversation_id"] == conv_id


def test_visitors_and_refusals(client: Any, anon_client: Any, db_url: str) -> None:
    token = client.post("/api/v1/chat/visitor").json()["visitor_token"]
    headers = {"X-Visitor-Token": token}
    started = client.post("/api/v1/conversations", json={"body": "你好"}, headers=headers)
    assert started.status_code == 201, started.text
    conv_id = started.json()["id"]
    mine = client.get("/api/v1/me/conversations", headers=headers).json()
    assert [c["id"] for c in mine] == [conv_id]
    # another visitor, a forged token, no token: nothing
    other = {"X-Visitor-Token": anon_client.post("/api/v1/chat/visitor").json()["visitor_token"]}
    assert client.get(f"/api/v1/conversations/{conv_id}/messages", headers=other).status_code == 404
    forged = {"X-Visitor-Token": token.split(".")[0] + ".0000"}
    assert client.get("/api/v1/me/conversations", headers=forged).json()["error"] == (
        "visitor_required"
    )
    with client.websocket_connect(f"/ws/chat?visitor={token}&conversation={conv_id}") as ws:
        assert _frame(ws, "ready")["conversation_id"] == conv_id
    refused = [
        (anon_client, f"/ws/chat?visitor={other['X-Visitor-Token']}&conversation={conv_id}", {}),
        (client, f"/ws/chat?visitor={token}", {"Origin": "https://evil.example"}),
        (client, "/ws/desk", {}),  # the desk is for staff
    ]
    for who, path, extra in refused:
        with pytest.raises(WebSocketDisconnect), who.websocket_connect(path, headers=extra) as ws:
            ws.receive_json()
    # visitors may not write private notes; customers cannot read the desk inbox
    note = client.post(
        f"/api/v1/conversations/{conv_id}/messages",
        json={"body": "x", "private": True},
        headers=headers,
    )
    assert note.json()["error"] == "private_notes_are_for_staff"
    ops = staff_headers(anon_client, db_url, "ops1", Role.ops)
    inbox = anon_client.get("/api/v1/desk/conversations", headers=ops).json()
    assert [c["id"] for c in inbox] == [conv_id]
