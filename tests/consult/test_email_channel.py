"""The desk's e-mail channel on SQLite and PostgreSQL: the signed inbound webhook
(forged, stale, replayed), threading, the address kept encrypted, and the answer sent
over a real local SMTP server with threading headers and the R2 signature."""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from covernet.consult import service
from covernet.consult.appointment_models import DeskEmail
from covernet.consult.channels import email as desk_email
from covernet.consult.models import Conversation, ConversationMessage
from covernet.core import clock
from covernet.core.db import unit_of_work
from covernet.partners import signing
from covernet.policies import tasks
from tests.conftest import _free_port
from tests.consult.test_desk_helpers import advisor, principal

SECRET = "test-email-inbound-secret-0000000000000000"
URL = "/api/v1/channels/email/inbound"
SENDER = "Li Hua <li.hua@example.com>"


class Inbox:
    def __init__(self) -> None:
        self.received: list[EmailMessage] = []
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(parsed)
        return "250 OK"


@pytest.fixture
def smtp(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    from covernet.core.config import reset_settings

    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("COVERNET_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("COVERNET_SMTP_PORT", str(port))
    monkeypatch.setenv("COVERNET_SMTP_SENDER", "Covernet 客服 <desk@covernet.example>")
    monkeypatch.setenv("COVERNET_PARTNER_SECRETS", json.dumps({"email-inbound": SECRET}))
    reset_settings()
    try:
        yield inbox
    finally:
        controller.stop()
        reset_settings()


def _mail(message_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "from": SENDER,
        "to": "desk@covernet.example",
        "subject": "百万医疗险的等待期",
        "text": "请问百万医疗险的等待期是多久？",
        **extra,
    }


def _post(client: Any, payload: dict[str, Any], *, secret: str = SECRET, **kw: Any) -> Any:
    raw = json.dumps(payload, ensure_ascii=False).encode()
    headers = signing.signed_headers(secret, raw, **kw)
    return client.post(URL, content=raw, headers={**headers, "Content-Type": "application/json"})


def _count(db_url: str, model: Any) -> int:
    with unit_of_work(db_url) as db:
        return int(db.scalar(select(func.count()).select_from(model)) or 0)


def test_forged_stale_unsigned_and_replayed_mail_write_nothing(
    smtp: Inbox, client: Any, db_url: str
) -> None:
    forged = _post(client, _mail("<a1@example.com>"), secret="not-the-secret-at-all-000000000000")
    assert (forged.status_code, forged.json()["error"]) == (401, "signature_invalid")
    stale_at = int(clock.now().timestamp()) - 3600
    stale = _post(client, _mail("<a1@example.com>"), timestamp=stale_at)
    assert (stale.status_code, stale.json()["error"]) == (401, "stale_event")
    unsigned = client.post(URL, json=_mail("<a1@example.com>"))
    assert (unsigned.status_code, unsigned.json()["error"]) == (401, "signature_missing")
    # the body was changed after signing
    raw = json.dumps(_mail("<a1@example.com>")).encode()
    headers = signing.signed_headers(SECRET, raw)
    tampered = client.post(URL, content=raw.replace(b"a1@", b"a2@"), headers=headers)
    assert tampered.status_code == 401
    assert _count(db_url, Conversation) == 0
    assert _count(db_url, DeskEmail) == 0

    first = _post(client, _mail("<a1@example.com>"))
    assert first.status_code == 200, first.text
    again = _post(client, _mail("<a1@example.com>"))
    assert again.status_code == 200
    assert again.json() == {**first.json(), "duplicate": True, "threaded": False}
    assert (_count(db_url, Conversation), _count(db_url, ConversationMessage)) == (1, 1)
    assert _count(db_url, DeskEmail) == 1


def test_bad_sender_and_empty_text_are_refused(smtp: Inbox, client: Any, db_url: str) -> None:
    bad = _post(client, _mail("<b1@example.com>", **{"from": "nobody"}))
    assert (bad.status_code, bad.json()["error"]) == (400, "bad_sender")
    empty = _post(client, _mail("<b2@example.com>", text="> only a quote"))
    assert (empty.status_code, empty.json()["error"]) == (400, "empty_mail")
    assert _count(db_url, DeskEmail) == 0


def test_threading_by_headers_and_by_subject_tag(smtp: Inbox, client: Any, db_url: str) -> None:
    first = _post(client, _mail("<t1@example.com>")).json()
    conv_id = first["conversation_id"]
    by_header = _post(
        client,
        _mail(
            "<t2@example.com>",
            subject="Re: 百万医疗险的等待期",
            text="还有一个问题：能带病投保吗？\n\nOn Mon, Li Hua wrote:\n> 请问百万医疗险",
            in_reply_to="<t1@example.com>",
        ),
    ).json()
    assert (by_header["conversation_id"], by_header["threaded"]) == (conv_id, True)
    by_tag = _post(
        client,
        _mail("<t3@example.com>", subject=f"回复: 等待期 [#{conv_id}]", text="谢谢"),
    ).json()
    assert (by_tag["conversation_id"], by_tag["threaded"]) == (conv_id, True)
    # the same tag from another address does not get into the conversation
    stranger = _post(
        client,
        _mail(
            "<t4@example.org>",
            **{"from": "x@example.org"},
            subject=f"Re: [#{conv_id}]",
            text="我也想问",
        ),
    ).json()
    assert stranger["conversation_id"] != conv_id and stranger["threaded"] is False
    fresh = _post(client, _mail("<t5@example.com>", subject="车险", text="车险怎么买")).json()
    assert fresh["conversation_id"] not in (conv_id, stranger["conversation_id"])

    with unit_of_work(db_url) as db:
        conv = db.get(Conversation, conv_id)
        assert conv is not None and conv.channel == "email" and conv.customer_id is None
        bodies = [m.body for m in service.messages(db, conv, staff=True)]
        assert bodies == ["请问百万医疗险的等待期是多久？", "还有一个问题：能带病投保吗？", "谢谢"]
        rows = list(db.scalars(select(DeskEmail).where(DeskEmail.conversation_id == conv_id)))
        assert all("li.hua" not in r.address_enc for r in rows)
        assert {r.address_masked for r in rows} == {"l***@example.com"}
        assert desk_email.masked_address(db, conv_id) == "l***@example.com"


def test_advisor_answer_is_mailed_after_commit_threaded_and_signed(
    smtp: Inbox, client: Any, db_url: str
) -> None:
    adv = advisor(db_url, "mailadv", lines=["medical"], name="张顾问")
    first = _post(client, _mail("<m1@example.com>")).json()
    conv_id = first["conversation_id"]
    _post(client, _mail("<m2@example.com>", text="补充一句", in_reply_to="<m1@example.com>"))
    with unit_of_work(db_url) as db:
        conv = db.get(Conversation, conv_id)
        assert conv is not None
        conv.product_line = "medical"
    with unit_of_work(db_url) as db:
        service.reply(db, principal(adv), conv_id, "等待期一般为30天。")
        service.reply(db, principal(adv), conv_id, "内部备注", private=True)
        # nothing leaves before the commit
        assert smtp.received == []
    assert tasks.JOBS["desk_email_delivery"] is desk_email.delivery_job
    with unit_of_work(db_url) as db:
        sent = tasks.JOBS["desk_email_delivery"](db)
    assert sent == 1
    assert len(smtp.received) == 1  # the private note is never mailed
    mail = smtp.received[0]
    assert smtp.envelopes[0].rcpt_tos == ["li.hua@example.com"]
    assert mail["To"] == "li.hua@example.com"
    assert mail["From"].addresses[0].addr_spec == "desk@covernet.example"
    assert f"[#{conv_id}]" in mail["Subject"] and mail["Subject"].startswith("Re: ")
    assert mail["In-Reply-To"] == "<m2@example.com>"
    assert mail["References"].split() == ["<m1@example.com>", "<m2@example.com>"]
    assert mail["Message-ID"].endswith("@covernet.example>")
    text = mail.get_content()
    assert "等待期一般为30天。" in text and "内部备注" not in text
    assert "张顾问" in text and "示例安心财产保险股份有限公司" in text
    with unit_of_work(db_url) as db:
        answer = db.scalar(
            select(ConversationMessage).where(
                ConversationMessage.conversation_id == conv_id,
                ConversationMessage.author_kind == "advisor",
                ConversationMessage.private.is_(False),
            )
        )
        assert answer is not None and answer.advisor_license_no
        assert f"执业证编号 / License No.: {answer.advisor_license_no}" in text
    # the desk sees the address only masked
    from tests.conftest import sign_in_with_cookie

    sign_in_with_cookie(client, db_url, adv)
    contact = client.get(f"/api/v1/desk/conversations/{conv_id}/email")
    assert contact.status_code == 200, contact.text
    assert contact.json() == {
        "conversation_id": conv_id,
        "address": "l***@example.com",
        "tag": f"[#{conv_id}]",
    }
    assert "li.hua" not in contact.text
    # delivered once: running the job again sends nothing
    with unit_of_work(db_url) as db:
        assert desk_email.delivery_job(db) == 0
    assert len(smtp.received) == 1

    # the customer's reply to the advisor's mail continues the conversation
    back = _post(
        client,
        _mail("<m3@example.com>", text="明白了", in_reply_to=mail["Message-ID"]),
    ).json()
    assert (back["conversation_id"], back["threaded"]) == (conv_id, True)


def test_unreachable_mail_server_retries_later(
    smtp: Inbox, client: Any, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from covernet.core.config import reset_settings

    adv = advisor(db_url, "mailadv2", lines=["medical"])
    conv_id = _post(client, _mail("<r1@example.com>")).json()["conversation_id"]
    with unit_of_work(db_url) as db:
        conv = db.get(Conversation, conv_id)
        assert conv is not None
        conv.product_line = "medical"
    with unit_of_work(db_url) as db:
        service.reply(db, principal(adv), conv_id, "您好")
    monkeypatch.setenv("COVERNET_SMTP_PORT", str(_free_port()))  # nobody listens
    reset_settings()
    assert desk_email.deliver_due() == {"sent": 0, "failed": 0, "queued": 1}
    with unit_of_work(db_url) as db:
        row = db.scalar(select(DeskEmail).where(DeskEmail.direction == "outbound"))
        assert row is not None and row.status == "queued" and row.attempts == 1
        assert row.last_error and row.next_attempt_at and row.next_attempt_at > clock.now()


def test_concurrent_redeliveries_of_one_mail_make_one_conversation(
    smtp: Inbox, db_url: str
) -> None:
    import threading

    raw = json.dumps(_mail("<race@example.com>"), ensure_ascii=False).encode()
    barrier = threading.Barrier(4)
    answers: list[dict[str, Any]] = []

    def deliver() -> None:
        barrier.wait()
        answers.append(desk_email.receive_signed(signing.signed_headers(SECRET, raw), raw))

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(answers) == 4
    assert len({a["conversation_id"] for a in answers}) == 1
    assert sorted(a["duplicate"] for a in answers) == [False, True, True, True]
    assert (_count(db_url, Conversation), _count(db_url, DeskEmail)) == (1, 1)


def test_stored_addresses_rotate_to_a_new_field_key(
    smtp: Inbox, client: Any, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from covernet.consult.appointment_models import EMAIL_ADDRESS_CONTEXT
    from covernet.core.config import get_settings, reset_settings
    from covernet.core.crypto import FieldCipher, new_key_entry, parse_keyring, reset_crypto

    _post(client, _mail("<k1@example.com>"))
    old = get_settings().field_keys
    monkeypatch.setenv("COVERNET_FIELD_KEYS", f"{new_key_entry('k9')},{old}")
    reset_settings()
    reset_crypto()
    with unit_of_work(db_url) as db:
        assert desk_email.rotate_field_keys(db) == 1
    new_only = FieldCipher(parse_keyring(get_settings().field_keys)[:1])
    with unit_of_work(db_url) as db:
        token = db.scalar(select(DeskEmail.address_enc))
        assert token is not None
        assert new_only.decrypt(token, context=EMAIL_ADDRESS_CONTEXT) == "li.hua@example.com"
    reset_crypto()
