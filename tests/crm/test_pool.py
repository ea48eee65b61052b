"""The advisor's pool: filled from advised applications and advisors' share links (at
the point of sale or sign-up, and by the sync job from stored data), first advisor
keeps the customer, manual reassignment by ops or a supervisor with history; on SQLite
and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from covernet.core.db import unit_of_work
from covernet.crm import pool
from covernet.crm.models import PoolEntry, PoolHistory
from covernet.identity.models import Role
from covernet.policies import tasks
from tests.conftest import CUSTOMER, bearer
from tests.crm.test_teams import license_for, make_team, staff
from tests.policies.buying import application, apply, quote


def _register(client: Any, mobile: str, code: str | None = None) -> str:
    made = client.post(
        "/api/v1/auth/register",
        headers={"X-Share-Code": code} if code else {},
        json={"mobile": mobile, "password": "s3cret-pass", "name": "访客"},
    )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def _entry(db_url: str, customer_id: str) -> tuple[str, str] | None:
    with unit_of_work(db_url) as db:
        row = pool.current(db, customer_id)
        return (row.advisor_id, row.source) if row else None


def test_pool_from_an_advised_sale_and_a_share_link(
    client: Any, db_url: str, customer: dict[str, str]
) -> None:
    _, officer = staff(client, db_url, "officer", Role.compliance)
    a, _ = staff(client, db_url, "adv-a", Role.advisor, "顾问甲")
    b, b_headers = staff(client, db_url, "adv-b", Role.advisor, "顾问乙")
    license_for(client, officer, "adv-a", ["accident"])
    license_for(client, officer, "adv-b", ["accident"])
    me = bearer(client, CUSTOMER["mobile"], CUSTOMER["password"])
    assert _entry(db_url, customer["id"]) is None
    made = apply(client, me, application(client, quote(client, me), advisor_id=a))
    assert made.status_code == 201, made.text
    assert _entry(db_url, customer["id"]) == (a, "referral")
    # A later sale advised by B does not take the customer away (first advisor keeps).
    again = apply(client, me, application(client, quote(client, me), advisor_id=b))
    assert again.status_code == 201, again.text
    assert _entry(db_url, customer["id"]) == (a, "referral")
    # Signing up through B's share link puts the new customer in B's pool ...
    link = client.post(
        "/api/v1/share-links",
        headers=b_headers,
        json={"target": "product", "target_id": "accident-monthly"},
    ).json()
    newcomer = _register(client, "13700002222", link["code"])
    assert _entry(db_url, newcomer) == (b, "share_link")
    # ... a customer's own link makes no pool, and nor does a plain sign-up.
    mine = client.post(
        "/api/v1/share-links",
        headers=me,
        json={"target": "product", "target_id": "accident-monthly"},
    ).json()
    friend = _register(client, "13700003333", mine["code"])
    plain = _register(client, "13700004444")
    assert _entry(db_url, friend) is None and _entry(db_url, plain) is None
    # Buying through B's link, without an advisor named, puts an unassigned buyer in B's pool.
    buyer_headers = bearer(client, "13700004444", "s3cret-pass")
    bought = apply(
        client,
        {**buyer_headers, "X-Share-Code": link["code"]},
        application(client, quote(client, buyer_headers)),
    )
    assert bought.status_code == 201, bought.text
    assert _entry(db_url, plain) == (b, "share_link")
    with unit_of_work(db_url) as db:
        history = pool.history(db, customer["id"])
        assert [(h.advisor_id, h.source, h.until) for h in history] == [(a, "referral", None)]


def test_the_sync_job_fills_the_pool_from_stored_data(
    client: Any, db_url: str, customer: dict[str, str]
) -> None:
    _, officer = staff(client, db_url, "officer", Role.compliance)
    a, _ = staff(client, db_url, "adv-a", Role.advisor)
    b, b_headers = staff(client, db_url, "adv-b", Role.advisor)
    license_for(client, officer, "adv-a", ["accident"])
    license_for(client, officer, "adv-b", ["accident"])
    me = bearer(client, CUSTOMER["mobile"], CUSTOMER["password"])
    assert (
        apply(client, me, application(client, quote(client, me), advisor_id=a)).status_code == 201
    )
    link = client.post(
        "/api/v1/share-links",
        headers=b_headers,
        json={"target": "product", "target_id": "accident-monthly"},
    ).json()
    newcomer = _register(client, "13700005555", link["code"])
    with unit_of_work(db_url) as db:  # as if the data came before the pool existed
        db.execute(delete(PoolHistory))
        db.execute(delete(PoolEntry))
    assert "sync_customer_pool" in tasks.JOBS
    with unit_of_work(db_url) as db:
        assert tasks.JOBS["sync_customer_pool"](db) == 2
    assert _entry(db_url, customer["id"]) == (a, "referral")
    assert _entry(db_url, newcomer) == (b, "share_link")
    with unit_of_work(db_url) as db:
        assert pool.sync(db) == 0  # safe to run again
        assert len(db.scalars(select(PoolHistory)).all()) == 2


def test_manual_reassignment_keeps_history(
    client: Any, db_url: str, customer: dict[str, str]
) -> None:
    _, ops = staff(client, db_url, "ops1", Role.ops)
    a, a_headers = staff(client, db_url, "adv-a", Role.advisor)
    b, _ = staff(client, db_url, "adv-b", Role.advisor)
    _, s_headers = staff(client, db_url, "sup-s", Role.advisor)
    outsider, _ = staff(client, db_url, "adv-x", Role.advisor)
    make_team(client, ops, "east", {"adv-a": False, "adv-b": False, "sup-s": True})
    cid = customer["id"]
    path = f"/api/v1/customers/{cid}/advisor"
    first = client.put(path, headers=ops, json={"advisor_id": a, "reason": "新客户分配"})
    assert first.status_code == 200 and first.json() == {
        "customer_id": cid,
        "advisor_id": a,
        "source": "manual",
    }
    # A plain advisor may not reassign, not even their own customer.
    refused = client.put(path, headers=a_headers, json={"advisor_id": b, "reason": "转给同事"})
    assert refused.status_code == 403 and refused.json()["error"] == "not_your_team"
    # The supervisor may within the team, not to someone outside it.
    out = client.put(path, headers=s_headers, json={"advisor_id": outsider, "reason": "调整"})
    assert out.status_code == 403 and out.json()["error"] == "not_your_team"
    moved = client.put(path, headers=s_headers, json={"advisor_id": b, "reason": "顾问甲休假"})
    assert moved.status_code == 200 and moved.json()["advisor_id"] == b
    short = client.put(path, headers=ops, json={"advisor_id": a, "reason": " "})
    assert short.status_code == 400 and short.json()["error"] == "reason_required"
    not_adv = client.put(path, headers=ops, json={"advisor_id": cid, "reason": "错误指派"})
    assert not_adv.status_code == 400 and not_adv.json()["error"] == "not_an_advisor"
    with unit_of_work(db_url) as db:
        history = pool.history(db, cid)
        assert [(h.advisor_id, h.until is None, h.reason) for h in history] == [
            (b, True, "顾问甲休假"),
            (a, False, "新客户分配"),
        ]
        assert pool.current(db, cid).advisor_id == b  # type: ignore[union-attr]
    # An advised sale later does not override the manual assignment.
    with unit_of_work(db_url) as db:
        assert not pool.claim(db, cid, a, pool.PoolSource.referral)


def test_concurrent_claims_leave_one_advisor(db_url: str, customer: dict[str, str]) -> None:
    """Eight advisors claim the same customer at once: one wins, one history row."""
    import threading

    from tests.conftest import add_staff

    advisors = [add_staff(db_url, f"adv-{n}", Role.advisor)[0] for n in range(8)]
    barrier = threading.Barrier(len(advisors))
    won: list[str] = []
    errors: list[BaseException] = []

    def claim(advisor_id: str) -> None:
        try:
            barrier.wait(timeout=10)
            with unit_of_work(db_url) as db:
                if pool.claim(db, customer["id"], advisor_id, pool.PoolSource.share_link):
                    won.append(advisor_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(a,)) for a in advisors]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == [] and len(won) == 1
    with unit_of_work(db_url) as db:
        current = pool.current(db, customer["id"])
        assert current is not None and current.advisor_id == won[0]
        rows = db.scalars(select(PoolHistory)).all()
        assert [(h.advisor_id, h.until) for h in rows] == [(won[0], None)]
