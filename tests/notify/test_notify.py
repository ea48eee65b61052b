"""Notifications: written with the action, delivered after it commits through the
channel's notifier, read by their own recipient only."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import func, select

from covernet.core.config import reset_settings
from covernet.core.crypto import get_cipher
from covernet.core.db import unit_of_work
from covernet.core.errors import NotFound, ValidationFailed
from covernet.identity import service as identity
from covernet.identity.models import Role
from covernet.notify import notifiers, service
from covernet.notify.models import SANDBOX_MOBILE_CONTEXT, Notification, SandboxSms
from tests.conftest import CUSTOMER, add_staff, bearer


def notify(db: Any, user_id: str, title: str = "理赔进度", **kw: Any) -> list[Notification]:
    return service.send(
        db,
        user_id=user_id,
        topic="claim.stage",
        subject_type="claim",
        subject_id=kw.pop("subject_id", "claim-1"),
        title=title,
        body=kw.pop("body", "您的理赔已进入审核阶段。"),
        **kw,
    )


def rows(db_url: str) -> list[tuple[str, str, int]]:
    with unit_of_work(db_url) as db:
        return [
            (r.channel, r.status, r.attempts)
            for r in db.scalars(select(Notification).order_by(Notification.channel))
        ]


def test_rows_are_written_in_the_actions_transaction(db_url: str, customer: dict[str, str]) -> None:
    with pytest.raises(RuntimeError), unit_of_work(db_url) as db:
        notify(db, customer["id"])
        raise RuntimeError("the action failed")
    assert rows(db_url) == []  # rolled back: nobody is told
    assert service.deliver_queued().claimed == 0
    with unit_of_work(db_url) as db:
        written = notify(db, customer["id"], title_en="Claim progress", body_en="In review.")
        assert sorted(r.channel for r in written) == ["inbox", "sms"]
    assert rows(db_url) == [("inbox", "queued", 0), ("sms", "queued", 0)]


def test_delivery_marks_sent_and_the_sandbox_sms_gets_the_mobile(
    db_url: str, customer: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with unit_of_work(db_url) as db:
        notify(db, customer["id"])
    with caplog.at_level(logging.DEBUG):
        report = service.deliver_queued(limit=10)
    assert report.claimed == 2 and len(report.sent) == 2 and report.failed == []
    assert rows(db_url) == [("inbox", "sent", 1), ("sms", "sent", 1)]
    with unit_of_work(db_url) as db:
        sms = db.scalars(select(SandboxSms)).all()
        assert len(sms) == 1
        assert (
            get_cipher().decrypt(sms[0].mobile_enc, context=SANDBOX_MOBILE_CONTEXT)
            == (CUSTOMER["mobile"])
        )
        assert sms[0].mobile_masked == "139****5678"
        assert CUSTOMER["mobile"] not in sms[0].mobile_enc
        assert sms[0].text == "【Covernet】理赔进度：您的理赔已进入审核阶段。"
        sent_at = db.scalar(select(Notification.sent_at).where(Notification.channel == "sms"))
        assert sent_at is not None
    assert CUSTOMER["mobile"] not in caplog.text
    assert "139****5678" in caplog.text
    assert service.deliver_queued().claimed == 0  # sent once


def test_unreachable_channels_are_skipped_and_bad_input_refused(
    db_url: str, customer: dict[str, str]
) -> None:
    staff_id, _ = add_staff(db_url, "claims1", Role.claims)
    with unit_of_work(db_url) as db:
        # Staff have no mobile; no account has an e-mail address yet.
        assert [r.channel for r in notify(db, staff_id, channels=("inbox", "sms"))] == ["inbox"]
        assert notify(db, customer["id"], channels=("email",)) == []
        with pytest.raises(ValidationFailed) as channel:
            notify(db, customer["id"], channels=("fax",))
        assert channel.value.code == "unknown_channel"
        with pytest.raises(ValidationFailed) as empty:
            notify(db, customer["id"], title=" ")
        assert empty.value.detail == {"field": "title"}
        with pytest.raises(NotFound):
            notify(db, "no-such-user")


class Broken:
    channel = "sms"
    calls = 0

    def send(self, message: notifiers.Message) -> None:
        Broken.calls += 1
        raise notifiers.DeliveryFailed("gateway down")


def test_failures_are_retried_then_given_up(
    db_url: str, customer: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    Broken.calls = 0
    notifiers.register("sms", "broken", Broken)
    monkeypatch.setenv("COVERNET_SMS_NOTIFIER", "broken")
    monkeypatch.setenv("COVERNET_NOTIFY_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("COVERNET_NOTIFY_RETRY_SECONDS", "1")
    reset_settings()
    with unit_of_work(db_url) as db:
        notify(db, customer["id"], channels=("sms",))
    first = service.deliver_queued()
    assert first.retrying and not first.sent
    assert service.deliver_queued().claimed == 0  # not due yet (backoff)
    with unit_of_work(db_url) as db:
        row = db.scalars(select(Notification)).one()
        row.next_attempt_at = row.created_at  # due again
    second = service.deliver_queued()
    assert second.failed == first.retrying
    with unit_of_work(db_url) as db:
        row = db.scalars(select(Notification)).one()
        assert (row.status, row.attempts, row.last_error) == ("failed", 2, "gateway down")
    assert Broken.calls == 2


def test_the_smtp_notifier_sends_through_the_configured_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[Any] = []

    class FakeSMTP:
        def __init__(self, host: str, port: int, timeout: float) -> None:
            sent.append((host, port))

        def __enter__(self) -> FakeSMTP:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def send_message(self, mail: Any) -> None:
            sent.append((mail["To"], mail["Subject"], mail.get_content().strip()))

    monkeypatch.setenv("COVERNET_SMTP_HOST", "mail.example.test")
    monkeypatch.setenv("COVERNET_SMTP_PORT", "2525")
    reset_settings()
    monkeypatch.setattr(notifiers.smtplib, "SMTP", FakeSMTP)
    message = notifiers.Message("n1", "email", "u1", "a@example.com", "t", "标题", "正文")
    notifiers.SmtpNotifier().send(message)
    assert sent == [("mail.example.test", 2525), ("a@example.com", "标题", "正文")]
    assert "a@example.com" not in repr(message)
    with pytest.raises(notifiers.DeliveryFailed) as none:
        notifiers.SmtpNotifier().send(
            notifiers.Message("n2", "email", "u1", None, "t", "标题", "正文")
        )
    assert none.value.permanent
    reset_settings()


def test_the_api_lists_only_your_own_and_marks_read(
    client: Any, db_url: str, customer: dict[str, str]
) -> None:
    with unit_of_work(db_url) as db:
        other = identity.register_customer(
            db, mobile="13700001111", password="s3cret-pass", name="别人"
        )
        for n in range(3):
            notify(db, customer["id"], title=f"第{n}条", subject_id=f"c{n}")
        notify(db, other.id, title="别人的")
    mine = bearer(client, customer["mobile"], customer["password"])
    page = client.get("/api/v1/me/notifications?size=2", headers=mine)
    assert page.status_code == 200, page.text
    data = page.json()
    assert data["total"] == 3 and data["unread"] == 3 and data["size"] == 2
    assert [i["title"] for i in data["items"]] == ["第2条", "第1条"]  # newest first
    assert {i["channel"] for i in data["items"]} == {"inbox"}
    rest = client.get("/api/v1/me/notifications?page=2&size=2", headers=mine).json()
    assert [i["title"] for i in rest["items"]] == ["第0条"]
    sms = client.get("/api/v1/me/notifications?channel=sms", headers=mine).json()
    assert sms["total"] == 3
    first = data["items"][0]["id"]
    read = client.post(f"/api/v1/me/notifications/{first}/read", headers=mine)
    assert read.status_code == 200 and read.json()["read_at"] is not None
    again = client.post(f"/api/v1/me/notifications/{first}/read", headers=mine)
    assert again.json()["read_at"] == read.json()["read_at"]
    assert client.get("/api/v1/me/notifications", headers=mine).json()["unread"] == 2
    theirs = bearer(client, "13700001111", "s3cret-pass")
    listed = client.get("/api/v1/me/notifications", headers=theirs).json()
    assert [i["title"] for i in listed["items"]] == ["别人的"]
    stolen = client.post(f"/api/v1/me/notifications/{first}/read", headers=theirs)
    assert stolen.status_code == 404
    assert client.get("/api/v1/me/notifications").status_code == 401


def test_the_worker_delivers_notifications(db_url: str, customer: dict[str, str]) -> None:
    from covernet.integration import worker

    with unit_of_work(db_url) as db:
        notify(db, customer["id"])
    worker.run(worker_id="test", once=True)
    assert rows(db_url) == [("inbox", "sent", 1), ("sms", "sent", 1)]
    with unit_of_work(db_url) as db:
        assert db.scalar(select(func.count()).select_from(SandboxSms)) == 1
