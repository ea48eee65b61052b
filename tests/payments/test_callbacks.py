"""Provider callbacks: verified, deduplicated, never trusted for the amount, in any order."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

from covernet.core import clock
from covernet.payments.providers import sandbox
from tests.payments.helpers import (
    AMOUNT,
    INSURER,
    audit_actions,
    deliver,
    event,
    post_event,
    state,
)


def test_a_forged_signature_is_rejected_and_changes_nothing(
    client: Any, db_url: str, payment_id: str
) -> None:
    body = json.dumps(event(db_url, payment_id, "payment.succeeded")).encode()
    headers = sandbox.signed_headers(body)
    headers[sandbox.SIGNATURE_HEADER] = "0" * 64
    response = client.post(sandbox.NOTIFY_PATH, content=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_signature"
    # Signed over a different body (the amount changed after signing).
    tampered = body.replace(b'"amount_fen": 10000', b'"amount_fen": 1')
    assert tampered != body
    response = client.post(
        sandbox.NOTIFY_PATH, content=tampered, headers=sandbox.signed_headers(body)
    )
    assert response.status_code == 400
    # Unsigned.
    response = client.post(
        sandbox.NOTIFY_PATH, content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    after = state(db_url, payment_id)
    assert after["status"] == "pending" and after["legs"] == [] and after["events"] == 0


def test_a_stale_timestamp_is_rejected(client: Any, db_url: str, payment_id: str) -> None:
    stale = event(db_url, payment_id, "payment.succeeded")
    response = post_event(client, stale, at=clock.now() - timedelta(minutes=10))
    assert response.status_code == 400
    assert response.json()["error"] == "stale_callback"
    assert state(db_url, payment_id)["status"] == "pending"
    # The same event, freshly signed, is accepted.
    assert post_event(client, stale).json() == {"code": "SUCCESS"}
    assert state(db_url, payment_id)["status"] == "succeeded"


def test_a_callback_for_another_provider_is_not_found(client: Any, payment_id: str) -> None:
    response = client.post("/api/v1/payments/notify/wechat", content=b"{}")
    assert response.status_code == 404
    assert response.json()["error"] == "unknown_provider"


def test_a_duplicated_callback_books_once(
    client: Any, db_url: str, payment_id: str, payment_handlers: list[tuple[str, str]]
) -> None:
    done = client.post(f"/sandbox/payments/{payment_id}/succeed?duplicate=true")
    assert done.status_code == 200, done.text
    assert done.json()["callbacks"] == 2
    assert state(db_url, payment_id)["status"] == "pending"  # asynchronous: not yet
    report = deliver(client)
    assert len(report.delivered) == 2 and report.failed == []
    after = state(db_url, payment_id)
    assert after["status"] == "succeeded" and after["paid_at"] is not None
    assert after["txns"] == 1
    assert sorted((a, n) for _, a, n in after["legs"]) == [
        (f"insurer:{INSURER}:premium", AMOUNT),
        ("provider:sandbox:clearing", -AMOUNT),
    ]
    assert after["events"] == 1 and after["premium"] == AMOUNT
    assert payment_handlers == [("succeeded", payment_id)]
    assert audit_actions(db_url, payment_id).count("payment.succeeded") == 1
    # The sandbox pays an order once, like a real provider.
    assert client.post(f"/sandbox/payments/{payment_id}/succeed").status_code == 409


def test_eight_concurrent_duplicates_succeed_once(
    client: Any, db_url: str, payment_id: str, payment_handlers: list[tuple[str, str]]
) -> None:
    body = json.dumps(event(db_url, payment_id, "payment.succeeded")).encode()
    headers = sandbox.signed_headers(body)
    barrier = threading.Barrier(8)
    answers: list[Any] = []
    lock = threading.Lock()

    def send() -> None:
        barrier.wait()
        response = client.post(sandbox.NOTIFY_PATH, content=body, headers=headers)
        with lock:
            answers.append((response.status_code, response.json()))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [(200, {"code": "SUCCESS"})] * 8
    after = state(db_url, payment_id)
    assert after["status"] == "succeeded" and after["txns"] == 1 and after["events"] == 1
    assert payment_handlers == [("succeeded", payment_id)]
    assert audit_actions(db_url, payment_id).count("payment.succeeded") == 1


def test_an_amount_mismatch_is_rejected_and_audited(
    client: Any, db_url: str, payment_id: str
) -> None:
    forged = event(db_url, payment_id, "payment.succeeded", amount_fen=AMOUNT - 1)
    response = post_event(client, forged)
    assert response.status_code == 400
    assert response.json()["error"] == "amount_mismatch"
    after = state(db_url, payment_id)
    assert after["status"] == "pending" and after["legs"] == [] and after["events"] == 0
    assert "payment.callback_rejected" in audit_actions(db_url, payment_id)


def test_a_failure_delivered_after_success_is_ignored(
    client: Any, db_url: str, payment_id: str
) -> None:
    from covernet.core.db import unit_of_work

    failed = event(db_url, payment_id, "payment.failed")
    paid = event(db_url, payment_id, "payment.succeeded")
    with unit_of_work(db_url) as db:  # the provider sent: failed, then succeeded
        sandbox.enqueue(db, failed)
        sandbox.enqueue(db, paid)
    report = deliver(client, reverse=True)  # …and they arrive the other way round
    assert report.delivered == [paid["event_id"], failed["event_id"]]
    after = state(db_url, payment_id)
    assert after["status"] == "succeeded" and after["txns"] == 1 and after["events"] == 2


def test_a_failure_callback_fails_the_payment(
    client: Any, db_url: str, payment_id: str, payment_handlers: list[tuple[str, str]]
) -> None:
    assert client.post(f"/sandbox/payments/{payment_id}/fail").status_code == 200
    deliver(client)
    after = state(db_url, payment_id)
    assert after["status"] == "failed" and after["legs"] == []
    assert payment_handlers == [("failed", payment_id)]


def test_success_after_expiry_books_and_refunds_in_full(
    client: Any, db_url: str, payment_id: str, payment_handlers: list[tuple[str, str]]
) -> None:
    from covernet.core.db import unit_of_work
    from covernet.payments import service

    with clock.shifted(timedelta(minutes=31)):
        with unit_of_work(db_url) as db:
            assert service.expire_stale(db) == {"expired": 1, "succeeded": 0, "failed": 0}
        assert state(db_url, payment_id)["status"] == "expired"
        assert payment_handlers == [("expired", payment_id)]
        # The payer still completes the payment at the provider: the money arrives.
        assert client.post(f"/sandbox/payments/{payment_id}/succeed").status_code == 200
        deliver(client)
        after = state(db_url, payment_id)
        assert after["status"] == "expired" and after["paid_at"] is not None
        assert after["refunds"] == [(AMOUNT, "requested", "late_payment")]
        assert after["premium"] == AMOUNT
        assert "payment.paid_late" in audit_actions(db_url, payment_id)
        deliver(client)  # the provider confirms the refund
        after = state(db_url, payment_id)
        assert after["refunds"] == [(AMOUNT, "succeeded", "late_payment")]
        assert after["premium"] == 0 and after["txns"] == 2 and after["unbalanced"] == []
        assert ("succeeded", payment_id) not in payment_handlers


def test_expiry_asks_the_provider_first(client: Any, db_url: str, payment_id: str) -> None:
    """A payment whose callback never came is completed from the provider's answer."""
    from covernet.core.db import unit_of_work
    from covernet.payments import service

    assert client.post(f"/sandbox/payments/{payment_id}/succeed").status_code == 200
    with clock.shifted(timedelta(minutes=31)), unit_of_work(db_url) as db:
        assert service.expire_stale(db)["succeeded"] == 1
    assert state(db_url, payment_id)["status"] == "succeeded"
    deliver(client)  # the late callback is then a no-op
    after = state(db_url, payment_id)
    assert after["status"] == "succeeded" and after["txns"] == 1 and after["refunds"] == []
