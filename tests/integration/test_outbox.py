"""Insurer sync (R19): the outbox written with the policy, delivered by workers to the
sandbox insurer with signatures, retried with backoff, dead after the last attempt, and
the 24-hour monitor; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text
from starlette.testclient import TestClient

from covernet.audit import service as audit
from covernet.audit.models import AuditEntry
from covernet.compliance import monitors
from covernet.core import clock
from covernet.core.config import DEV_SANDBOX_INSURER_SECRET, get_settings, reset_settings
from covernet.core.db import session_factory, unit_of_work
from covernet.integration import insurers, outbox
from covernet.integration.models import OutboxRow, SandboxInsurerEvent
from covernet.policies import issuance
from covernet.policies.models import Application, Policy
from tests.policies.buying import APPLICANT_ID, application, apply, pay, quote

INSURER = "anxin-pc"
EVENTS = f"/sandbox/insurer/{INSURER}/events"


class AppPoster:
    """The app's TestClient as the webhook adapter's HTTP client (it takes no timeout)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def post(self, url: str, *, content: bytes, headers: dict[str, str], timeout: float) -> Any:
        assert timeout > 0
        return self.client.post(url, content=content, headers=headers)


def _deliver(worker: str, client: Any, **kw: Any) -> outbox.BatchReport:
    return outbox.deliver_batch(worker, client=AppPoster(client), **kw)


def _enqueue(db_url: str, n: int = 1, insurer: str = INSURER) -> list[str]:
    with unit_of_work(db_url) as db:
        return [
            outbox.enqueue(
                db,
                "policy.issued",
                insurer_code=insurer,
                subject_id=f"policy-{i}",
                payload={"policy_no": f"CN20261201-TEST{i:04d}", "application_id": None},
            ).id
            for i in range(n)
        ]


def _rows(db_url: str) -> list[OutboxRow]:
    with unit_of_work(db_url) as db:
        return list(db.scalars(select(OutboxRow).order_by(OutboxRow.id)))


def _received(db_url: str) -> list[SandboxInsurerEvent]:
    with unit_of_work(db_url) as db:
        return list(db.scalars(select(SandboxInsurerEvent).order_by(SandboxInsurerEvent.id)))


def _settings(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for name, value in values.items():
        monkeypatch.setenv(f"COVERNET_{name.upper()}", value)
    reset_settings()


def test_an_issued_policy_is_in_the_outbox_with_policy_facts_only(
    client: Any, customer_headers: dict[str, str], db_url: str
) -> None:
    made = apply(client, customer_headers, application(client, quote(client, customer_headers)))
    pay(client, made.json()["payment_id"])
    with unit_of_work(db_url) as db:
        policy = db.scalars(select(Policy)).one()
        row = db.scalars(select(OutboxRow)).one()
        assert (row.topic, row.insurer_code, row.subject_id) == (
            "policy.issued",
            policy.insurer_code,
            policy.id,
        )
        assert row.payload["policy_no"] == policy.policy_no
        assert row.payload["application_id"] == made.json()["application_id"]
        assert row.payload["premium_fen"] == 500 and row.status == "pending"
    stored = json.dumps(row.payload, ensure_ascii=False)
    for personal in (APPLICANT_ID, APPLICANT_ID[-4:], "张三", "测试客户", "13912345678"):
        assert personal not in stored
    assert "customer_id" not in row.payload and "insured_id_index" not in row.payload

    report = _deliver("w1", client)
    assert report.delivered == [row.id]
    [got] = _received(db_url)
    body = json.loads(got.body)
    assert body["event_id"] == row.id and body["topic"] == "policy.issued"
    assert body["data"]["policy_no"] == row.payload["policy_no"]
    [after] = _rows(db_url)
    assert after.status == "delivered" and after.delivered_at and after.claimed_by is None
    listed = client.get(EVENTS).json()
    assert [e["event_id"] for e in listed] == [row.id]


def test_a_rolled_back_issuance_leaves_no_event(
    client: Any, customer_headers: dict[str, str], db_url: str
) -> None:
    made = apply(client, customer_headers, application(client, quote(client, customer_headers)))
    app_id = made.json()["application_id"]
    with pytest.raises(RuntimeError), unit_of_work(db_url) as db:
        app = db.get(Application, app_id)
        assert app is not None
        policy = issuance.issue(db, app, by=audit.SYSTEM)
        assert db.scalars(select(OutboxRow.subject_id)).all() == [policy.id]  # same transaction
        raise RuntimeError("something later in the transaction failed")
    with unit_of_work(db_url) as db:
        assert db.scalar(select(func.count()).select_from(OutboxRow)) == 0
        assert db.scalar(select(func.count()).select_from(Policy)) == 0


CI = {"product_code": "ci-lifetime", "plan_code": "standard", "term": "whole-life"}
CI_NO = {
    "serious-diagnoses": False,
    "screening-findings": False,
    "pending-hospital": False,
    "infant-conditions": False,
}


def test_a_cancellation_is_sent_too(
    client: Any, customer_headers: dict[str, str], db_url: str
) -> None:
    q = quote(client, customer_headers, **CI, payment="pay20")
    made = apply(client, customer_headers, application(client, q, health_answers=CI_NO))
    assert made.status_code == 201, made.text
    pay(client, made.json()["payment_id"])
    [policy] = client.get("/api/v1/policies", headers=customer_headers).json()
    done = client.post(f"/api/v1/policies/{policy['policy_id']}/cancel", headers=customer_headers)
    assert done.status_code == 200, done.text
    rows = _rows(db_url)
    assert [r.topic for r in sorted(rows, key=lambda r: r.created_at)] == [
        "policy.issued",
        "policy.cancelled",
    ]
    cancelled = next(r for r in rows if r.topic == "policy.cancelled")
    assert (
        cancelled.payload["status"] == "cancelled" and cancelled.payload["basis"] == "cooling_off"
    )
    assert cancelled.payload["refund_fen"] == done.json()["amount_fen"]
    assert len(_deliver("w1", client).delivered) == 2


def _signed(body: bytes, secret: str = DEV_SANDBOX_INSURER_SECRET, **over: Any) -> dict[str, str]:
    event_id = json.loads(body)["event_id"]
    return {**insurers.signed_headers(event_id, secret, body, **over)}


def _body(event_id: str = "evt-1", insurer: str = INSURER) -> bytes:
    event = insurers.Event(event_id, "policy.issued", insurer, clock.now(), {"policy_no": "CN1"})
    return event.body()


def test_the_sandbox_refuses_forged_and_stale_deliveries_and_dedupes(
    client: Any, db_url: str
) -> None:
    body = _body()
    forged = client.post(EVENTS, content=body, headers=_signed(body, secret="not-the-secret"))
    assert forged.status_code == 400 and forged.json()["error"] == "invalid_signature"
    unsigned = client.post(EVENTS, content=body, headers={"Content-Type": "application/json"})
    assert unsigned.status_code == 400 and unsigned.json()["error"] == "invalid_signature"
    stale = client.post(
        EVENTS, content=body, headers=_signed(body, at=clock.now() - timedelta(minutes=10))
    )
    assert stale.status_code == 400 and stale.json()["error"] == "stale_delivery"
    tampered = body.replace(b"CN1", b"CN2")
    bad = client.post(EVENTS, content=tampered, headers=_signed(body))
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_signature"
    other = _body(insurer="kangning-health")  # signed right, but for another insurer
    assert client.post(EVENTS, content=other, headers=_signed(other)).status_code == 400
    assert _received(db_url) == []

    first = client.post(EVENTS, content=body, headers=_signed(body))
    again = client.post(EVENTS, content=body, headers=_signed(body))
    assert first.status_code == 200 and first.json()["duplicate"] is False
    assert again.json() == {"event_id": "evt-1", "duplicate": True, "deliveries": 2}
    [kept] = _received(db_url)
    assert kept.deliveries == 2


def test_failures_back_off_then_die_after_the_last_attempt(
    client: Any, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _settings(monkeypatch, outbox_max_attempts="3", outbox_retry_seconds="60")
    [event_id] = _enqueue(db_url)
    assert client.post(f"/sandbox/insurer/{INSURER}/fail?count=10").json()["fail_next"] == 10
    start = clock.now()
    report = _deliver("w1", client)
    assert report.retrying == [event_id]
    [row] = _rows(db_url)
    assert row.attempts == 1 and row.last_error == "HTTP 503" and row.claimed_by is None
    assert row.next_attempt_at is not None
    wait = (row.next_attempt_at - start).total_seconds()
    assert 59 <= wait <= 62
    assert _deliver("w1", client).claimed == 0  # not due yet
    with clock.shifted(timedelta(seconds=61)):
        assert _deliver("w1", client).retrying == [event_id]
        [row] = _rows(db_url)
        assert row.next_attempt_at is not None
        assert 119 <= (row.next_attempt_at - clock.now()).total_seconds() <= 122  # doubled
    with clock.shifted(timedelta(seconds=61 + 121)):
        assert _deliver("w1", client).dead == [event_id]
    [row] = _rows(db_url)
    assert row.status == "dead" and row.attempts == 3 and row.next_attempt_at is None
    with clock.shifted(timedelta(days=1)):
        assert _deliver("w1", client).claimed == 0  # dead stays dead
    with unit_of_work(db_url) as db:
        entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "outbox.dead")).one()
        assert entry.subject_id == event_id and entry.detail["attempts"] == 3
        # Fixed the cause: a person requeues it, and it goes.
        assert outbox.requeue(db, event_id) is not None
    client.post(f"/sandbox/insurer/{INSURER}/fail?count=0")
    assert _deliver("w1", client).delivered == [event_id]
    assert len(_received(db_url)) == 1


def test_a_retry_after_failures_is_delivered(client: Any, db_url: str) -> None:
    [event_id] = _enqueue(db_url)
    client.post(f"/sandbox/insurer/{INSURER}/fail?count=2")
    assert _deliver("w1", client).retrying == [event_id]
    with clock.shifted(timedelta(minutes=2)):
        assert _deliver("w1", client).retrying == [event_id]
    with clock.shifted(timedelta(minutes=6)):
        assert _deliver("w1", client).delivered == [event_id]
    [row] = _rows(db_url)
    assert row.status == "delivered" and row.attempts == 3 and row.last_error is None
    assert [e.deliveries for e in _received(db_url)] == [1]


def test_an_insurer_without_an_endpoint_fails_visibly(
    client: Any, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoints = {INSURER: {"url": "sandbox", "secret": "s3cret"}}
    _settings(monkeypatch, insurer_endpoints=json.dumps(endpoints))
    [event_id] = _enqueue(db_url, insurer="changsheng-life")
    assert _deliver("w1", client).retrying == [event_id]
    assert _rows(db_url)[0].last_error is not None
    assert "no endpoint" in (_rows(db_url)[0].last_error or "")


def test_an_expired_lease_is_claimed_again(client: Any, db_url: str) -> None:
    [event_id] = _enqueue(db_url)
    with unit_of_work(db_url) as db:  # a worker claims, then dies before delivering
        assert [c.event.id for c in outbox.claim(db, "crashed", 10)] == [event_id]
    assert _deliver("w2", client).claimed == 0  # leased
    lease = get_settings().outbox_lease_seconds
    with clock.shifted(timedelta(seconds=lease + 1)):
        assert _deliver("w2", client).delivered == [event_id]
    [row] = _rows(db_url)
    assert row.status == "delivered" and row.attempts == 2
    with unit_of_work(db_url) as db:  # the crashed worker's late report changes nothing
        assert outbox.mark_failed(db, event_id, "crashed", "HTTP 500") is None
    assert _rows(db_url)[0].status == "delivered"


def test_the_monitor_shows_undelivered_events_past_24_hours(client: Any, db_url: str) -> None:
    [late] = _enqueue(db_url)
    with unit_of_work(db_url) as db:
        figure = next(f for f in monitors.evaluate(db) if f.key == "insurer_sync")
    assert figure.status == "ok" and figure.total == 1
    assert [i.state for i in figure.items] == ["sync_pending"]
    with clock.shifted(timedelta(hours=25)):
        [dead] = _enqueue(db_url)
        with unit_of_work(db_url) as db:
            db.get_one(OutboxRow, dead).status = "dead"
        with unit_of_work(db_url) as db:
            figure = next(f for f in monitors.evaluate(db) if f.key == "insurer_sync")
    assert figure.status == "breach" and figure.value == 1 and figure.total == 2
    assert figure.regulation == "R19" and figure.thresholds == {"limit_hours": 24}
    assert [i.state for i in figure.items] == ["dead_letter", "sync_overdue"]
    assert figure.items[1].label.startswith("CN20261201-TEST0000 · policy.issued")
    _deliver("w1", client)
    with unit_of_work(db_url) as db:  # delivered: only the dead letter is left, a warning
        figure = next(f for f in monitors.evaluate(db) if f.key == "insurer_sync")
    assert figure.status == "warning" and [i.state for i in figure.items] == ["dead_letter"]
    assert late


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_concurrent_claims_skip_each_others_rows(db_url: str) -> None:
    ids = _enqueue(db_url, 5)
    first, second = session_factory(db_url)(), session_factory(db_url)()
    try:
        a = outbox.claim(first, "a", 3)  # not committed: its rows stay locked
        second.execute(text("SET LOCAL lock_timeout = '2s'"))  # waiting would be a failure
        b = outbox.claim(second, "b", 10)
        first.commit()
        second.commit()
    finally:
        first.close()
        second.close()
    got_a, got_b = {c.event.id for c in a}, {c.event.id for c in b}
    assert len(got_a) == 3 and len(got_b) == 2 and got_a | got_b == set(ids)
    with unit_of_work(db_url) as db:
        assert outbox.claim(db, "c", 10) == []  # all leased


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_parallel_workers_never_deliver_a_row_twice(app: Any, db_url: str) -> None:
    ids = _enqueue(db_url, 60)
    start = threading.Barrier(3)
    delivered: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def work(name: str) -> None:
        mine: list[str] = []
        try:
            http = TestClient(app, base_url="https://testserver")
            start.wait()
            while True:
                report = _deliver(name, http, limit=4)
                mine += report.delivered
                if report.claimed == 0:
                    break
        except BaseException as exc:  # reported below
            errors.append(exc)
        delivered[name] = mine

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    everything = [e for mine in delivered.values() for e in mine]
    assert sorted(everything) == sorted(ids)  # each exactly once
    received = _received(db_url)
    assert len(received) == 60 and {e.deliveries for e in received} == {1}
    assert {r.status for r in _rows(db_url)} == {"delivered"}
