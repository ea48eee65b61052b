"""Payouts through the provider: once per subject, confirmed once by signed callbacks,
failures retried only explicitly, the payee's account encrypted and shown masked."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from covernet.audit import service as audit
from covernet.audit.models import AuditEntry
from covernet.core import clock
from covernet.core.crypto import DecryptionError, get_cipher
from covernet.core.db import unit_of_work
from covernet.core.errors import Conflict, ValidationFailed
from covernet.core.masking import mask_bank_card
from covernet.identity.models import Role
from covernet.payments import ledger, service
from covernet.payments.errors import LedgerRefused
from covernet.payments.models import LedgerEntry
from covernet.payments.payout_models import ACCOUNT_CONTEXT, Payout
from covernet.payments.providers import sandbox, sandbox_payouts
from covernet.payments.providers.base import EventKind
from covernet.payments.providers.sandbox_models import SandboxCallback
from tests.conftest import staff_headers
from tests.payments.helpers import INSURER, audit_actions, deliver, post_event

PURPOSE = "test_claim"
AMOUNT = 123_456
ACCOUNT = "6222 0212 3456 7891 234"
ACCOUNT_DIGITS = ACCOUNT.replace(" ", "")
NAME = "李四"

outcomes: list[tuple[str, str, int]] = []


def _register() -> None:
    if getattr(_register, "done", False):
        return

    @service.on_payout_succeeded(PURPOSE)
    def _paid(db: Any, payout: Payout) -> None:
        outcomes.append(("succeeded", payout.id, payout.attempts))

    @service.on_payout_failed(PURPOSE)
    def _failed(db: Any, payout: Payout) -> None:
        outcomes.append(("failed", payout.id, payout.attempts))

    _register.done = True  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def payout_outcomes() -> Iterator[list[tuple[str, str, int]]]:
    _register()
    outcomes.clear()
    yield outcomes
    outcomes.clear()


def request(
    db_url: str,
    *,
    subject_id: str = "claim-1",
    amount: int = AMOUNT,
    account: str = ACCOUNT,
    name: str = NAME,
) -> str:
    with unit_of_work(db_url) as db:
        payout = service.request_payout(
            db,
            purpose=PURPOSE,
            subject_type="claim",
            subject_id=subject_id,
            insurer_code=INSURER,
            amount_fen=amount,
            payee_name=name,
            payee_account=account,
            by=audit.Actor("user", "handler-1", "claims"),
        )
        return payout.id


def state(db_url: str, payout_id: str) -> dict[str, Any]:
    with unit_of_work(db_url) as db:
        payout = service.get_payout(db, payout_id)
        entries = db.scalars(
            select(LedgerEntry).where(LedgerEntry.reference == f"payout:{payout_id}")
        )
        return {
            "status": payout.status,
            "failure": payout.failure,
            "attempts": [
                (a.number, a.status, a.failure) for a in service.attempts_of(db, payout_id)
            ],
            "legs": sorted((e.account, e.amount_fen) for e in entries),
            "claims": ledger.balance(db, ledger.claims_account(INSURER)),
            "unbalanced": ledger.unbalanced_transactions(db),
        }


def queued_payload(db_url: str, payout_id: str) -> bytes:
    """The body of the sandbox's queued callback for the payout's latest attempt."""
    with unit_of_work(db_url) as db:
        order = sandbox_payouts.order_of(db, payout_id)
        row = db.scalar(select(SandboxCallback).where(SandboxCallback.event_id == order.event_id))
        assert row is not None
        return row.payload.encode()


BOOKED = [("insurer:anxin-pc:claims", -AMOUNT), ("provider:sandbox:clearing", AMOUNT)]


def test_a_payout_is_made_once_per_subject(client: Any, db_url: str) -> None:
    first = request(db_url)
    assert request(db_url) == first  # asking again: the same payout
    with pytest.raises(Conflict) as other:
        request(db_url, amount=AMOUNT + 1)
    assert other.value.code == "payout_exists"
    assert state(db_url, first)["status"] == "requested"
    assert state(db_url, first)["attempts"] == [(1, "requested", None)]
    assert state(db_url, first)["legs"] == []  # nothing booked before the confirmation
    report = deliver(client)
    assert len(report.delivered) == 1  # one attempt, one callback
    after = state(db_url, first)
    assert after["status"] == "succeeded" and after["legs"] == BOOKED
    assert after["claims"] == -AMOUNT and after["unbalanced"] == []
    assert request(db_url) == first  # even once paid
    assert audit_actions(db_url, first) == ["payout.requested", "payout.succeeded"]


def test_concurrent_requests_make_one_payout(client: Any, db_url: str) -> None:
    barrier = threading.Barrier(4)
    ids: list[str] = []
    lock = threading.Lock()

    def ask() -> None:
        barrier.wait()
        made = request(db_url)
        with lock:
            ids.append(made)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == 4 and len(set(ids)) == 1
    assert state(db_url, ids[0])["attempts"] == [(1, "requested", None)]
    assert len(deliver(client).delivered) == 1


def test_bad_requests_are_refused_and_leave_nothing(db_url: str, loaded_catalog: Any) -> None:
    cases = [
        ({"amount": 0}, "invalid_amount"),
        ({"account": "6222-abc"}, "invalid_payee_account"),
        ({"account": "1234"}, "invalid_payee_account"),
        ({"name": "  "}, "invalid_payee_name"),
    ]
    for kw, code in cases:
        with pytest.raises(ValidationFailed) as refused:
            request(db_url, **kw)
        assert refused.value.code == code
    with pytest.raises(ValidationFailed) as unknown, unit_of_work(db_url) as db:
        service.request_payout(
            db,
            purpose=PURPOSE,
            subject_type="claim",
            subject_id="c",
            insurer_code="nobody",
            amount_fen=1,
            payee_name=NAME,
            payee_account=ACCOUNT,
        )
    assert unknown.value.code == "unknown_insurer"
    with unit_of_work(db_url) as db:
        assert db.scalar(select(Payout.id)) is None


def test_a_duplicated_callback_confirms_once(
    client: Any, db_url: str, payout_outcomes: list[tuple[str, str, int]]
) -> None:
    payout_id = request(db_url)
    body = queued_payload(db_url, payout_id)
    assert len(deliver(client).delivered) == 1
    again = client.post(sandbox.NOTIFY_PATH, content=body, headers=sandbox.signed_headers(body))
    assert again.status_code == 200 and again.json() == {"code": "SUCCESS"}
    # A different event saying the same thing is ignored too.
    fresh = post_event(client, _event(db_url, payout_id, "payout.succeeded"))
    assert fresh.status_code == 200
    after = state(db_url, payout_id)
    assert after["status"] == "succeeded" and after["legs"] == BOOKED
    assert payout_outcomes == [("succeeded", payout_id, 1)]
    assert audit_actions(db_url, payout_id).count("payout.succeeded") == 1


def test_eight_concurrent_deliveries_book_once(
    client: Any, db_url: str, payout_outcomes: list[tuple[str, str, int]]
) -> None:
    payout_id = request(db_url)
    body = queued_payload(db_url, payout_id)
    headers = sandbox.signed_headers(body)
    barrier = threading.Barrier(8)
    answers: list[int] = []
    lock = threading.Lock()

    def send() -> None:
        barrier.wait()
        response = client.post(sandbox.NOTIFY_PATH, content=body, headers=headers)
        with lock:
            answers.append(response.status_code)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * 8
    deliver(client)  # the sandbox's own copy arrives late: a duplicate
    after = state(db_url, payout_id)
    assert after["status"] == "succeeded" and after["legs"] == BOOKED
    assert payout_outcomes == [("succeeded", payout_id, 1)]
    assert audit_actions(db_url, payout_id).count("payout.succeeded") == 1


def test_a_failed_payout_is_sent_again_only_by_retry(
    client: Any, db_url: str, payout_outcomes: list[tuple[str, str, int]]
) -> None:
    payout_id = request(db_url, account="6222 0212 3456 0000")  # the sandbox refuses it
    deliver(client)
    failed = state(db_url, payout_id)
    assert failed["status"] == "failed" and failed["failure"] == "account_rejected"
    assert failed["legs"] == [] and failed["attempts"] == [(1, "failed", "account_rejected")]
    assert payout_outcomes == [("failed", payout_id, 1)]
    assert request(db_url) == payout_id  # asking again does not send it again
    assert deliver(client).delivered == []
    assert state(db_url, payout_id)["attempts"] == [(1, "failed", "account_rejected")]
    with unit_of_work(db_url) as db:
        retried = service.retry_payout(db, payout_id, payee_account=ACCOUNT)
        assert retried.id == payout_id and retried.status == "requested"
        assert retried.payee_account_masked == "6222 **** **** 1234"
    with pytest.raises(Conflict) as busy, unit_of_work(db_url) as db:
        service.retry_payout(db, payout_id)
    assert busy.value.code == "payout_in_progress"
    deliver(client)
    after = state(db_url, payout_id)
    assert after["status"] == "succeeded" and after["legs"] == BOOKED
    assert after["attempts"] == [(1, "failed", "account_rejected"), (2, "succeeded", None)]
    assert payout_outcomes == [("failed", payout_id, 1), ("succeeded", payout_id, 2)]
    with pytest.raises(Conflict) as paid, unit_of_work(db_url) as db:
        service.retry_payout(db, payout_id)
    assert paid.value.code == "payout_already_paid"
    assert audit_actions(db_url, payout_id) == [
        "payout.requested",
        "payout.failed",
        "payout.retried",
        "payout.succeeded",
    ]


def test_the_sandbox_fails_a_pending_payout_on_request(
    client: Any, db_url: str, payout_outcomes: list[tuple[str, str, int]]
) -> None:
    payout_id = request(db_url)
    done = client.post(f"/sandbox/payouts/{payout_id}/fail")
    assert done.status_code == 200, done.text
    assert done.json()["outcome"] == "failed"
    assert client.post(f"/sandbox/payouts/{payout_id}/fail").status_code == 409
    report = deliver(client)
    assert len(report.delivered) == 1  # the withdrawn success never goes out
    assert state(db_url, payout_id)["status"] == "failed"
    assert state(db_url, payout_id)["failure"] == "sandbox_failed"
    assert payout_outcomes == [("failed", payout_id, 1)]
    # Once the confirmation went out, the sandbox can no longer change its mind.
    other = request(db_url, subject_id="claim-2")
    deliver(client)
    late = client.post(f"/sandbox/payouts/{other}/fail")
    assert late.status_code == 409 and late.json()["error"] == "payout_confirmed"
    assert client.post("/sandbox/payouts/nope/fail").status_code == 404


def _event(db_url: str, payout_id: str, kind: str, **kw: Any) -> dict[str, Any]:
    with unit_of_work(db_url) as db:
        return sandbox_payouts.event_for(db, payout_id, EventKind(kind), **kw)


def test_forged_stale_and_wrong_callbacks_change_nothing(client: Any, db_url: str) -> None:
    payout_id = request(db_url)
    good = _event(db_url, payout_id, "payout.succeeded")
    body = json.dumps(good).encode()
    forged = sandbox.signed_headers(body)
    forged[sandbox.SIGNATURE_HEADER] = "0" * 64
    refused = client.post(sandbox.NOTIFY_PATH, content=body, headers=forged)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_signature"
    stale = post_event(client, good, at=clock.now() - timedelta(minutes=10))
    assert stale.status_code == 400 and stale.json()["error"] == "stale_callback"
    wrong = post_event(client, _event(db_url, payout_id, "payout.succeeded", amount_fen=1))
    assert wrong.status_code == 400 and wrong.json()["error"] == "amount_mismatch"
    assert "payout.callback_rejected" in audit_actions(db_url, payout_id)
    unknown = post_event(client, {**good, "attempt_id": "nope", "event_id": "evt_x"})
    assert unknown.status_code == 404
    assert state(db_url, payout_id)["status"] == "requested"
    assert state(db_url, payout_id)["legs"] == []
    # The genuine event, freshly signed, is heard.
    assert post_event(client, good).json() == {"code": "SUCCESS"}
    assert state(db_url, payout_id)["status"] == "succeeded"


def test_a_late_event_for_an_earlier_attempt_is_ignored(client: Any, db_url: str) -> None:
    payout_id = request(db_url, account="6222021234560000")
    first = json.loads(queued_payload(db_url, payout_id))
    deliver(client)
    with unit_of_work(db_url) as db:
        service.retry_payout(db, payout_id, payee_account=ACCOUNT)
    # The first attempt (failed) "succeeds" after all: ignored, nothing booked.
    late = {**first, "type": "payout.succeeded", "event_id": "evt_late"}
    late.pop("reason", None)
    assert post_event(client, late).status_code == 200
    assert state(db_url, payout_id)["status"] == "requested"
    assert state(db_url, payout_id)["legs"] == []


def test_the_account_is_encrypted_and_shown_masked(client: Any, db_url: str) -> None:
    payout_id = request(db_url)
    with unit_of_work(db_url) as db:
        row = db.get(Payout, payout_id)
        assert row is not None
        stored = " ".join(str(v) for v in row.__dict__.values())
        assert ACCOUNT_DIGITS not in stored and NAME not in stored
        assert row.payee_account_masked == "6222 **** **** 1234"
        cipher = get_cipher()
        assert cipher.decrypt(row.payee_account_enc, context=ACCOUNT_CONTEXT) == ACCOUNT_DIGITS
        with pytest.raises(DecryptionError):  # bound to its column
            cipher.decrypt(row.payee_account_enc, context="payout.payee_name")
        assert service.payouts.payee_name_of(row) == NAME
    claims = staff_headers(client, db_url, "claims1", Role.claims)
    shown = client.get(f"/api/v1/payouts/{payout_id}", headers=claims)
    assert shown.status_code == 200, shown.text
    data = shown.json()
    assert data["payee_account_masked"] == "6222 **** **** 1234"
    assert data["payee_name_masked"] == "李*"
    assert data["status"] == "requested" and data["amount_fen"] == AMOUNT
    assert [a["number"] for a in data["attempts"]] == [1]
    assert ACCOUNT_DIGITS not in shown.text and NAME not in shown.text
    assert client.get("/api/v1/payouts/nope", headers=claims).status_code == 404
    ops = staff_headers(client, db_url, "ops1", Role.ops)
    assert client.get(f"/api/v1/payouts/{payout_id}", headers=ops).status_code == 403
    assert client.get(f"/api/v1/payouts/{payout_id}").status_code == 401
    # No personal data in the audit log or the sandbox's books.
    with unit_of_work(db_url) as db:
        details = json.dumps([e.detail for e in db.scalars(select(AuditEntry))], ensure_ascii=False)
        assert ACCOUNT_DIGITS not in details and NAME not in details
    payload = queued_payload(db_url, payout_id).decode()
    assert ACCOUNT_DIGITS not in payload and NAME not in payload


def test_the_claims_account_is_a_ledger_account(db: Any) -> None:
    assert ledger.account_kind(ledger.claims_account(INSURER)) == "insurer_claims"
    for account in ("advisor:u-1:claims", "partner:x:claims", f"insurer:{INSURER}:claims:x"):
        with pytest.raises(LedgerRefused):
            ledger.account_kind(account)


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("6222021234567891234", "6222 **** **** 1234"),
        ("6222 0212 3456 7890", "6222 **** **** 7890"),
        ("62220212345", "**** 2345"),
        ("1234567", "****"),
    ],
)
def test_bank_cards_are_masked(value: str, masked: str) -> None:
    assert mask_bank_card(value) == masked
