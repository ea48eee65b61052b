"""Red envelopes (R12, R13): create → pay → open, grabs under concurrency, activation into
a gifted policy, gift limits, expiry refunds once; on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from covernet.core import clock
from covernet.core.cn_identity import make_id_number
from covernet.core.db import unit_of_work
from covernet.core.errors import CovernetError
from covernet.identity import service as identity
from covernet.identity.access import Principal
from covernet.identity.models import Role
from covernet.payments.models import Refund
from covernet.policies.models import Application, Policy, TraceEvent
from covernet.social import grabs, tasks
from covernet.social.models import RedEnvelopeShare
from tests.conftest import bearer, staff_headers
from tests.policies.buying import APPLICANT_ID, documents, pay

FRIEND_ID = make_id_number("310104", date(1992, 7, 1), 45)


def friend(client: Any, db_url: str, n: int) -> dict[str, str]:
    mobile = f"1371000{n:04d}"
    with unit_of_work(db_url) as db:
        identity.register_customer(db, mobile=mobile, password="s3cret-pass", name=f"李朋友{n}")
    return bearer(client, mobile, "s3cret-pass")


def create(client: Any, headers: dict[str, str], key: str | None = None, **over: Any) -> Any:
    body = {
        "product_code": "accident-monthly",
        "plan_code": "basic",
        "shares": 3,
        "greeting": "新年快乐",
        **over,
    }
    extra = {"Idempotency-Key": key} if key else {}
    return client.post("/api/v1/red-envelopes", headers={**headers, **extra}, json=body)


def opened(client: Any, headers: dict[str, str], **over: Any) -> dict[str, Any]:
    made = create(client, headers, **over)
    assert made.status_code == 201, made.text
    pay(client, made.json()["payment_id"])
    return dict(made.json())


def acks(client: Any) -> dict[str, str]:
    docs = documents(client, "accident-monthly")
    return {d["code"]: d["content_hash"] for d in docs["documents"]}


def activation(client: Any, id_number: str = FRIEND_ID, name: str = "李朋友") -> dict[str, Any]:
    return {"name": name, "id_number": id_number, "acknowledgements": acks(client)}


def test_create_pay_open(client: Any, customer_headers: dict[str, str]) -> None:
    made = create(client, customer_headers, key="env-1", shares=4, split="random")
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["status"] == "pending_payment" and body["share_url"] == f"/e/{body['envelope_id']}"
    assert body["premium_fen"] == 2000 and body["sum_insured_fen"] == 4 * 30_000_000
    again = create(client, customer_headers, key="env-1", shares=4, split="random")
    assert again.json()["envelope_id"] == body["envelope_id"]
    assert again.headers.get("Idempotency-Replayed") == "true"
    pay(client, body["payment_id"])
    seen = client.get(f"/api/v1/red-envelopes/{body['envelope_id']}", headers=customer_headers)
    assert seen.json()["status"] == "open" and seen.json()["shares_left"] == 4
    public = client.get(f"/api/v1/red-envelopes/{body['envelope_id']}").json()
    assert public["greeting"] == "新年快乐" and "grabs" not in public


def test_a_hundred_shares_of_the_biggest_plan(
    client: Any, customer_headers: dict[str, str]
) -> None:
    made = create(client, customer_headers, shares=100, plan_code="plus", split="random")
    assert made.status_code == 201, made.text
    assert made.json()["sum_insured_fen"] == 100 * 100_000_000


@pytest.mark.parametrize(
    ("over", "code"),
    [
        ({"product_code": "screen-guard", "plan_code": "phone-3k"}, "gift_line_not_allowed"),
        ({"product_code": "ci-lifetime", "plan_code": "standard"}, "gift_term_too_long"),
        ({"product_code": "medical-million", "plan_code": "standard"}, "gift_premium_too_high"),
        ({"shares": 101}, "malformed_request"),
        ({"greeting": "福" * 61}, "malformed_request"),
    ],
)
def test_r12_refusals_name_the_problem(
    client: Any, customer_headers: dict[str, str], over: dict[str, Any], code: str
) -> None:
    made = create(client, customer_headers, **over)
    assert made.status_code in (400, 422), made.text
    assert made.json()["error"] == code, made.text


def test_sender_may_not_grab(client: Any, customer_headers: dict[str, str]) -> None:
    env = opened(client, customer_headers)
    own = client.post(f"/api/v1/red-envelopes/{env['envelope_id']}/grab", headers=customer_headers)
    assert own.status_code == 409 and own.json()["error"] == "own_envelope"


def test_concurrent_grabs_never_exceed_shares(
    client: Any, customer_headers: dict[str, str], db_url: str
) -> None:
    env = opened(client, customer_headers, shares=5)
    people = []
    with unit_of_work(db_url) as db:
        for n in range(20):
            user = identity.register_customer(
                db, mobile=f"1372000{n:04d}", password="s3cret-pass", name=f"王{n}号"
            )
            people.append(Principal(role=Role.customer, user_id=user.id))
    people.append(people[0])  # the same person twice, at once
    outcomes: list[str] = []
    barrier = threading.Barrier(len(people))

    def grab(who: Principal) -> None:
        barrier.wait()
        try:
            with unit_of_work(db_url) as db:
                grabs.grab(db, who, env["envelope_id"])
            outcomes.append("ok")
        except CovernetError as e:
            outcomes.append(e.code)

    threads = [threading.Thread(target=grab, args=(p,)) for p in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outcomes) == len(people)  # every grab answered (none died in its thread)
    assert outcomes.count("ok") == 5, outcomes
    assert set(outcomes) <= {"ok", "sold_out", "already_grabbed"}, outcomes
    with unit_of_work(db_url) as db:
        grabbers = db.scalars(
            select(RedEnvelopeShare.grabbed_by).where(RedEnvelopeShare.grabbed_by.is_not(None))
        ).all()
    assert len(grabbers) == len(set(grabbers)) == 5
    late = client.post(
        f"/api/v1/red-envelopes/{env['envelope_id']}/grab", headers=friend(client, db_url, 99)
    )
    assert late.status_code == 409 and late.json()["error"] == "sold_out"
    # Sold out is answered without identifying the caller, but never without a credential.
    path = f"/api/v1/red-envelopes/{env['envelope_id']}/grab"
    assert client.post(path).status_code == 401
    assert client.post(path, headers={"Authorization": "Bearer forged"}).status_code == 409


def test_grab_refuses_a_bad_token_and_staff(
    client: Any, customer_headers: dict[str, str], db_url: str
) -> None:
    env = opened(client, customer_headers, shares=2)
    path = f"/api/v1/red-envelopes/{env['envelope_id']}/grab"
    forged = client.post(path, headers={"Authorization": "Bearer forged"})
    assert forged.status_code == 401 and forged.json()["error"] == "invalid_token"
    staff = client.post(path, headers=staff_headers(client, db_url, "ops1", Role.ops))
    assert staff.status_code == 403 and staff.json()["error"] == "forbidden"
    with unit_of_work(db_url) as db:
        assert (
            db.scalar(
                select(func.count())
                .select_from(RedEnvelopeShare)
                .where(RedEnvelopeShare.grabbed_by.is_not(None))
            )
            == 0
        )


def test_activation_issues_a_gifted_policy(
    client: Any, customer_headers: dict[str, str], db_url: str
) -> None:
    env = opened(client, customer_headers, shares=2, split="random")
    them = friend(client, db_url, 1)
    grabbed = client.post(f"/api/v1/red-envelopes/{env['envelope_id']}/grab", headers=them)
    assert grabbed.status_code == 201, grabbed.text
    grab = grabbed.json()
    twice = client.post(f"/api/v1/red-envelopes/{env['envelope_id']}/grab", headers=them)
    assert twice.status_code == 409 and twice.json()["error"] == "already_grabbed"
    missing = client.post(
        f"/api/v1/red-envelope-grabs/{grab['grab_id']}/activate",
        headers=them,
        json={**activation(client), "acknowledgements": {}},
    )
    assert missing.status_code == 400 and missing.json()["error"] == "acknowledgement_required"
    done = client.post(
        f"/api/v1/red-envelope-grabs/{grab['grab_id']}/activate",
        headers=them,
        json=activation(client),
    )
    assert done.status_code == 201, done.text
    assert done.json()["gifted"] is True
    assert done.json()["sum_insured_fen"] == grab["sum_insured_fen"]
    mine = client.get("/api/v1/policies", headers=them).json()
    assert [p["policy_no"] for p in mine] == [done.json()["policy_no"]]
    with unit_of_work(db_url) as db:
        policy = db.scalars(select(Policy)).one()
        assert policy.gifted and policy.premium_fen == grab["premium_fen"]
        app = db.get(Application, policy.application_id)
        assert app is not None and app.payment_id == env["payment_id"]
        steps = {e.step for e in db.scalars(select(TraceEvent))}
    assert {"exclusions", "gift", "issued"} <= steps
    seen = client.get(f"/api/v1/red-envelopes/{env['envelope_id']}", headers=customer_headers)
    grabs = seen.json()["grabs"]
    assert len(grabs) == 1 and grabs[0]["status"] == "activated"
    assert grabs[0]["grabbed_by"] != "李朋友1" and seen.json()["activated"] == 1
    theirs = client.get(f"/api/v1/red-envelopes/{env['envelope_id']}", headers=them).json()
    assert theirs["my_grab"]["grab_id"] == grab["grab_id"] and "grabs" not in theirs


def test_gift_limit_declines_a_fourth_gift(
    client: Any, customer_headers: dict[str, str], db_url: str
) -> None:
    them = friend(client, db_url, 2)
    for n in range(4):
        env = opened(client, customer_headers, shares=1)
        grab = client.post(f"/api/v1/red-envelopes/{env['envelope_id']}/grab", headers=them)
        done = client.post(
            f"/api/v1/red-envelope-grabs/{grab.json()['grab_id']}/activate",
            headers=them,
            json=activation(client),
        )
        if n < 3:
            assert done.status_code == 201, done.text
        else:
            assert done.status_code == 409, done.text
            assert done.json()["detail"]["reason"] == "gift_limit_reached"


def test_expiry_refunds_the_unclaimed_part_once(
    client: Any, customer_headers: dict[str, str], db_url: str
) -> None:
    env = opened(client, customer_headers, shares=3)
    a, b = friend(client, db_url, 3), friend(client, db_url, 4)
    grab_a = client.post(f"/api/v1/red-envelopes/{env['envelope_id']}/grab", headers=a).json()
    client.post(f"/api/v1/red-envelopes/{env['envelope_id']}/grab", headers=b)
    done = client.post(
        f"/api/v1/red-envelope-grabs/{grab_a['grab_id']}/activate",
        headers=a,
        json=activation(client),
    )
    assert done.status_code == 201, done.text
    with clock.shifted(timedelta(hours=25)):
        for _ in range(2):
            with unit_of_work(db_url) as db:
                tasks.expire_envelopes(db)
    with unit_of_work(db_url) as db:
        refunds = db.scalars(select(Refund)).all()
        assert [r.amount_fen for r in refunds] == [1000]  # b's held share and the free one
        assert db.scalar(select(func.count()).select_from(Policy)) == 1
    seen = client.get(f"/api/v1/red-envelopes/{env['envelope_id']}", headers=customer_headers)
    assert seen.json()["refunded_fen"] == 1000 and seen.json()["expired"] == 2
    assert seen.json()["status"] == "closed"
    # The gifted policy shares the sender's payment; the sender's refund is not its own.
    gifted = client.get(f"/api/v1/policies/{done.json()['policy_id']}", headers=a)
    assert gifted.status_code == 200 and gifted.json()["refunds"] == []


def test_applicant_id_is_not_stored_in_clear(
    client: Any, customer_headers: dict[str, str], db_url: str
) -> None:
    env = opened(client, customer_headers, shares=1)
    them = friend(client, db_url, 5)
    grab = client.post(f"/api/v1/red-envelopes/{env['envelope_id']}/grab", headers=them).json()
    client.post(
        f"/api/v1/red-envelope-grabs/{grab['grab_id']}/activate",
        headers=them,
        json=activation(client, APPLICANT_ID, "张三"),
    )
    with unit_of_work(db_url) as db:
        app = db.scalars(select(Application)).one()
        assert APPLICANT_ID not in app.applicant_id_enc
