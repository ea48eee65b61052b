"""The desk's official-account channel on SQLite and PostgreSQL: the platform's URL
verification, the signed XML callback (forged, stale, declared entities, replayed), one
open conversation per openid kept encrypted, and answers sent through the sandbox
customer-service API after commit with the R2 signature, retried with backoff."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from covernet.consult import service
from covernet.consult.channels import wechat
from covernet.consult.models import Conversation, ConversationMessage
from covernet.consult.wechat_models import DeskWechatMessage
from covernet.core import clock
from covernet.core.db import unit_of_work
from covernet.policies import tasks
from tests.consult.test_desk_helpers import advisor, principal

TOKEN = "test-wechat-token-0000"
URL = "/api/v1/channels/wechat/callback"
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"


@pytest.fixture
def sandbox(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[wechat.SandboxSender]:
    from covernet.core.config import reset_settings

    monkeypatch.setenv("COVERNET_WECHAT_TOKEN", TOKEN)
    reset_settings()
    sender = wechat.SandboxSender()
    previous = wechat.set_sender(sender)
    try:
        yield sender
    finally:
        wechat.set_sender(previous)
        reset_settings()


def _xml(msg_id: str, content: str = "请问百万医疗险的等待期是多久？", **kw: str) -> bytes:
    msg_type = kw.get("msg_type", "text")
    sender = kw.get("openid", OPENID)
    extra = kw.get("extra", "")
    return (
        "<xml><ToUserName><![CDATA[gh_covernet]]></ToUserName>"
        f"<FromUserName><![CDATA[{sender}]]></FromUserName>"
        f"<CreateTime>{int(clock.now().timestamp())}</CreateTime>"
        f"<MsgType><![CDATA[{msg_type}]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content>{extra}"
        f"<MsgId>{msg_id}</MsgId></xml>"
    ).encode()


def _post(client: Any, raw: bytes, *, token: str = TOKEN, **kw: Any) -> Any:
    params = wechat.signed_query(token, **kw)
    return client.post(URL, params=params, content=raw, headers={"Content-Type": "text/xml"})


def _count(db_url: str, model: Any) -> int:
    with unit_of_work(db_url) as db:
        return int(db.scalar(select(func.count()).select_from(model)) or 0)


def _medical(db_url: str, conv_id: str) -> None:
    with unit_of_work(db_url) as db:
        conv = db.get(Conversation, conv_id)
        assert conv is not None
        conv.product_line = "medical"


def test_url_verification(sandbox: wechat.SandboxSender, client: Any) -> None:
    ok = client.get(URL, params={**wechat.signed_query(TOKEN), "echostr": "4213958"})
    assert ok.status_code == 200, ok.text
    assert ok.text == "4213958" and ok.headers["content-type"].startswith("text/plain")
    bad = client.get(URL, params={**wechat.signed_query("wrong-token"), "echostr": "4213958"})
    assert (bad.status_code, bad.json()["error"]) == (401, "signature_invalid")
    stale_at = int(clock.now().timestamp()) - 3600
    stale = client.get(URL, params={**wechat.signed_query(TOKEN, timestamp=stale_at)})
    assert (stale.status_code, stale.json()["error"]) == (401, "stale_event")
    unsigned = client.get(URL, params={"echostr": "1"})
    assert (unsigned.status_code, unsigned.json()["error"]) == (401, "signature_missing")


def test_without_a_token_the_callback_fails_closed(
    db_url: str, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from covernet.core.config import reset_settings

    monkeypatch.delenv("COVERNET_WECHAT_TOKEN", raising=False)
    reset_settings()
    verify = client.get(URL, params={**wechat.signed_query(""), "echostr": "1"})
    assert (verify.status_code, verify.json()["error"]) == (403, "wechat_disabled")
    posted = _post(client, _xml("1001"), token="")
    assert posted.status_code == 403
    assert _count(db_url, DeskWechatMessage) == 0


def test_text_messages_of_one_openid_share_the_open_conversation(
    sandbox: wechat.SandboxSender, client: Any, db_url: str
) -> None:
    first = _post(client, _xml("2001"))
    assert first.status_code == 200, first.text
    assert first.text == "success" and first.headers["content-type"].startswith("text/plain")
    second = _post(client, _xml("2002", "能带病投保吗？"))
    assert second.text == "success"
    other = _post(client, _xml("2003", "车险怎么买", openid="oOtherUser_000000000000000"))
    assert other.text == "success"
    with unit_of_work(db_url) as db:
        convs = list(db.scalars(select(Conversation).order_by(Conversation.created_at)))
        assert len(convs) == 2
        conv = convs[0]
        assert conv.channel == "wechat" and conv.customer_id is None and conv.visitor_id
        bodies = [m.body for m in service.messages(db, conv, staff=True)]
        assert bodies == ["请问百万医疗险的等待期是多久？", "能带病投保吗？"]
        rows = list(db.scalars(select(DeskWechatMessage)))
        assert len(rows) == 3
        assert all(OPENID not in r.openid_enc for r in rows)
        assert wechat.masked_openid(db, conv.id) == "oUpF****eS6o"

    # a resolved conversation stays closed: the next message opens a new one (same visitor)
    with unit_of_work(db_url) as db:
        found = db.get(Conversation, convs[0].id)
        assert found is not None
        found.state = "resolved"
    _post(client, _xml("2004", "还有一个问题"))
    with unit_of_work(db_url) as db:
        newest = db.scalars(
            select(Conversation).order_by(Conversation.created_at.desc()).limit(1)
        ).one()
        assert newest.id != convs[0].id and newest.visitor_id == convs[0].visitor_id


def test_forged_stale_declared_and_replayed_messages_write_nothing(
    sandbox: wechat.SandboxSender, client: Any, db_url: str
) -> None:
    forged = _post(client, _xml("3001"), token="not-the-token")
    assert (forged.status_code, forged.json()["error"]) == (401, "signature_invalid")
    stale = _post(client, _xml("3001"), timestamp=int(clock.now().timestamp()) - 3600)
    assert (stale.status_code, stale.json()["error"]) == (401, "stale_event")
    unsigned = client.post(URL, content=_xml("3001"))
    assert (unsigned.status_code, unsigned.json()["error"]) == (401, "signature_missing")
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b"<xml><FromUserName>" + OPENID.encode() + b"</FromUserName><CreateTime>1</CreateTime>"
        b"<MsgType>text</MsgType><Content>&b;</Content><MsgId>3002</MsgId></xml>"
    )
    declared = _post(client, bomb)
    assert (declared.status_code, declared.json()["error"]) == (400, "xml_refused")
    broken = _post(client, b"<xml><FromUserName>x</xml>")
    assert (broken.status_code, broken.json()["error"]) == (400, "bad_xml")
    huge = _post(client, _xml("3003", "长" * (wechat.MAX_INBOUND_BYTES // 2)))
    assert (huge.status_code, huge.json()["error"]) == (400, "message_too_large")
    assert _count(db_url, Conversation) == 0
    assert _count(db_url, DeskWechatMessage) == 0

    assert _post(client, _xml("3004")).text == "success"
    again = _post(client, _xml("3004", "改过的内容"))
    assert (again.status_code, again.text) == (200, "success")
    assert (_count(db_url, Conversation), _count(db_url, ConversationMessage)) == (1, 1)
    assert _count(db_url, DeskWechatMessage) == 1


def test_other_kinds_follow_the_table(
    sandbox: wechat.SandboxSender, client: Any, db_url: str
) -> None:
    # an image with no open conversation, and a subscribe event: kept, nothing else
    image = _xml("4001", "", msg_type="image", extra="<PicUrl>http://x/1.jpg</PicUrl>")
    assert _post(client, image).text == "success"
    event = (
        f"<xml><ToUserName>gh</ToUserName><FromUserName>{OPENID}</FromUserName>"
        f"<CreateTime>{int(clock.now().timestamp())}</CreateTime>"
        "<MsgType>event</MsgType><Event>subscribe</Event></xml>"
    ).encode()
    assert _post(client, event).text == "success"
    assert _post(client, event).text == "success"  # the same event again: one row
    assert _count(db_url, Conversation) == 0
    assert _count(db_url, DeskWechatMessage) == 2
    # with an open conversation, a voice message becomes a system note in it
    _post(client, _xml("4002"))
    _post(client, _xml("4003", "", msg_type="voice"))
    with unit_of_work(db_url) as db:
        conv = db.scalars(select(Conversation)).one()
        kinds = [(m.author_kind, m.purpose) for m in service.messages(db, conv, staff=True)]
        assert kinds == [("customer", "text"), ("system", "wechat_media")]


def test_advisor_answer_is_sent_after_commit_once_signed_and_notes_never(
    sandbox: wechat.SandboxSender, client: Any, db_url: str
) -> None:
    adv = advisor(db_url, "wxadv", lines=["medical"], name="张顾问")
    _post(client, _xml("5001"))
    with unit_of_work(db_url) as db:
        conv_id = db.scalars(select(Conversation.id)).one()
    _medical(db_url, conv_id)
    with unit_of_work(db_url) as db:
        service.reply(db, principal(adv), conv_id, "等待期一般为30天。")
        service.reply(db, principal(adv), conv_id, "内部备注", private=True)
        assert sandbox.sent == []  # nothing leaves before the commit
    assert tasks.JOBS["desk_wechat_delivery"] is wechat.delivery_job
    with unit_of_work(db_url) as db:
        assert tasks.JOBS["desk_wechat_delivery"](db) == 1
    assert len(sandbox.sent) == 1  # the private note is never sent
    payload = sandbox.sent[0]
    assert payload["touser"] == OPENID and payload["msgtype"] == "text"
    content = payload["text"]["content"]
    assert content.startswith("等待期一般为30天。") and "内部备注" not in content
    assert "张顾问" in content and "示例安心财产保险股份有限公司" in content
    with unit_of_work(db_url) as db:
        answer = db.scalars(
            select(ConversationMessage).where(
                ConversationMessage.author_kind == "advisor",
                ConversationMessage.private.is_(False),
            )
        ).one()
        assert answer.advisor_license_no
        assert f"执业证编号 / License No.: {answer.advisor_license_no}" in content
        row = db.scalars(
            select(DeskWechatMessage).where(DeskWechatMessage.direction == "outbound")
        ).one()
        assert (row.status, row.attempts) == ("sent", 1)
    with unit_of_work(db_url) as db:
        assert wechat.delivery_job(db) == 0
    assert len(sandbox.sent) == 1

    from tests.conftest import sign_in_with_cookie

    sign_in_with_cookie(client, db_url, adv)
    contact = client.get(f"/api/v1/desk/conversations/{conv_id}/wechat")
    assert contact.status_code == 200, contact.text
    assert contact.json() == {"conversation_id": conv_id, "openid": "oUpF****eS6o"}


def test_a_refusing_platform_is_retried_with_backoff(
    sandbox: wechat.SandboxSender, client: Any, db_url: str
) -> None:
    adv = advisor(db_url, "wxadv2", lines=["medical"])
    _post(client, _xml("6001"))
    with unit_of_work(db_url) as db:
        conv_id = db.scalars(select(Conversation.id)).one()
    _medical(db_url, conv_id)
    with unit_of_work(db_url) as db:
        service.reply(db, principal(adv), conv_id, "您好")
    sandbox.fail_next = 1
    assert wechat.deliver_due() == {"sent": 0, "failed": 0, "queued": 1}
    with unit_of_work(db_url) as db:
        row = db.scalars(
            select(DeskWechatMessage).where(DeskWechatMessage.direction == "outbound")
        ).one()
        assert row.status == "queued" and row.attempts == 1 and row.claimed_until is None
        assert row.last_error and row.next_attempt_at and row.next_attempt_at > clock.now()
        due_at = row.next_attempt_at
    assert wechat.deliver_due() == {"sent": 0, "failed": 0, "queued": 0}  # not due yet
    with clock.frozen(clock.as_utc(due_at)):
        assert wechat.deliver_due() == {"sent": 1, "failed": 0, "queued": 0}
    assert len(sandbox.sent) == 1 and sandbox.sent[0]["text"]["content"].startswith("您好")
