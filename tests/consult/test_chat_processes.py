"""Chat across two app processes on one PostgreSQL database: a message written through
one process reaches a WebSocket open on the other (LISTEN/NOTIFY), and a customer's
message written on the second reaches the desk's socket on the first."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.conftest import run_async
from tests.social.test_grab_processes import two_servers  # noqa: F401 - the fixture

pytestmark = pytest.mark.usefixtures("two_servers")


def _setup(url: str, shipped_catalog: Any) -> dict[str, str]:
    from covernet.catalog.service import load_into_db
    from covernet.core.db import unit_of_work
    from covernet.identity import service as identity
    from covernet.identity.models import User
    from tests.consult.test_desk_helpers import advisor

    with unit_of_work(url) as db:
        load_into_db(db, shipped_catalog)
    adv = advisor(url, "procadv", lines=["medical"])
    with unit_of_work(url) as db:
        user = db.get(User, adv)
        assert user is not None
        token = identity.open_session(db, user, kind="bearer", user_agent="t").token
        cookie = identity.open_session(db, user, kind="cookie", user_agent="t").token
    return {"advisor": adv, "bearer": token, "cookie": cookie}


async def _next(ws: Any, kind: str) -> dict[str, Any]:
    while True:
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout=15))
        if frame["type"] == kind:
            return frame


async def _scenario(bases: list[str], people: dict[str, str]) -> dict[str, Any]:
    a, b = bases
    async with httpx.AsyncClient(base_url=a, timeout=30) as on_a:
        visitor = (await on_a.post("/api/v1/chat/visitor")).json()["visitor_token"]
        started = await on_a.post(
            "/api/v1/conversations",
            json={"body": "医疗险等待期多久", "product_code": "medical-million"},
            headers={"X-Visitor-Token": visitor},
        )
        assert started.status_code == 201, started.text
        conv_id = started.json()["id"]
        ws_b = "ws" + b.removeprefix("http") + f"/ws/chat?visitor={visitor}&conversation={conv_id}"
        ws_a = "ws" + a.removeprefix("http") + "/ws/desk"
        async with (
            websockets.connect(ws_b) as customer,
            websockets.connect(
                ws_a, additional_headers={"Cookie": f"covernet_session={people['cookie']}"}
            ) as desk,
        ):
            assert (await _next(customer, "ready"))["conversation_id"] == conv_id
            await _next(desk, "ready")
            await desk.send(json.dumps({"type": "watch", "conversation_id": conv_id}))
            await _next(desk, "watching")
            # the advisor answers through process A: the customer's socket on B gets it
            answer = await on_a.post(
                f"/api/v1/conversations/{conv_id}/messages",
                json={"body": "等待期30天"},
                headers={"Authorization": f"Bearer {people['bearer']}"},
            )
            assert answer.status_code == 201, answer.text
            got = (await _next(customer, "message"))["message"]
            # the customer writes on B: the desk's socket on A gets it
            await customer.send(json.dumps({"type": "message", "body": "好的谢谢"}))
            at_desk = (await _next(desk, "message"))["message"]
            if at_desk["author_kind"] == "advisor":  # its own answer came first
                at_desk = (await _next(desk, "message"))["message"]
    return {"conv_id": conv_id, "got": got, "at_desk": at_desk}


def test_messages_cross_processes_postgresql(
    two_servers: tuple[str, list[str]],  # noqa: F811
    shipped_catalog: Any,
    tmp_path: Path,
) -> None:
    url, bases = two_servers
    try:
        people = _setup(url, shipped_catalog)
        seen = run_async(_scenario(bases, people))
    except BaseException:
        for log in sorted(tmp_path.glob("server*.log")):
            sys.stderr.write(f"--- {log.name}\n{log.read_text()}\n")
        raise
    assert seen["got"]["body"] == "等待期30天"
    assert seen["got"]["advisor"]["license_no"]
    assert seen["at_desk"]["body"] == "好的谢谢"
    assert seen["at_desk"]["author_kind"] == "customer"
