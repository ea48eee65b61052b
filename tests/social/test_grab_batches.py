"""Grabs handled many at a time (``grabs.grab_many`` and the API's coalescing): each grab
gets its own answer, shares go out in order and never twice, and concurrent requests
share batches; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import event, select, update

from covernet.core import clock
from covernet.core.db import dispose_loop_engines, get_engine, unit_of_work
from covernet.core.errors import CovernetError
from covernet.identity import service as identity
from covernet.identity.access import Principal
from covernet.identity.models import Role
from covernet.payments import service as payments
from covernet.social import api as social_api
from covernet.social import grabs, service
from covernet.social.models import RedEnvelope, RedEnvelopeShare
from tests.conftest import run_async


def people(db_url: str, count: int, start: int = 0) -> list[Principal]:
    found = []
    with unit_of_work(db_url) as db:
        for n in range(start, start + count):
            user = identity.register_customer(
                db, mobile=f"1373000{n:04d}", password="s3cret-pass", name=f"赵{n}号"
            )
            found.append(Principal(role=Role.customer, user_id=user.id))
    return found


def envelope(db_url: str, sender: Principal, shares: int) -> str:
    with unit_of_work(db_url) as db:
        data = service.EnvelopeIn(
            product_code="accident-monthly", plan_code="basic", shares=shares, split="random"
        )
        made, _ = service.create(db, sender, data)
        service.on_gift_paid(db, payments.get_payment(db, made.payment_id or ""))
        return made.id


def outcome_names(outcomes: list[grabs.Outcome]) -> list[str]:
    return [
        o.code
        if isinstance(o, CovernetError)
        else "sold_out"
        if o is None
        else f"share:{o.envelope_id[-4:]}"
        for o in outcomes
    ]


def test_one_batch_answers_every_grab_on_its_own(db_url: str, loaded_catalog: Any) -> None:
    sender, p1, p2, p3, p4, p5 = people(db_url, 6)
    a = envelope(db_url, sender, 3)
    b = envelope(db_url, sender, 2)
    late = envelope(db_url, sender, 2)
    with unit_of_work(db_url) as db:
        earlier = grabs.grab(db, p5, b)
        db.execute(
            update(RedEnvelope)
            .where(RedEnvelope.id == late)
            .values(expires_at=clock.now() - timedelta(minutes=1))
        )
    batch = [
        (p1, a),
        (p2, a),
        (p1, a),  # a double tap in the same batch
        (p3, a),
        (p4, a),  # one more than A has shares
        (sender, a),
        (p1, b),
        (p2, b),  # B has one share left for two
        (p5, b),  # grabbed before
        (p1, "no-such-envelope"),
        (p1, late),
    ]
    with unit_of_work(db_url) as db:
        outcomes = grabs.grab_many(db, batch)
    assert outcome_names(outcomes) == [
        f"share:{a[-4:]}",
        f"share:{a[-4:]}",
        "already_grabbed",
        f"share:{a[-4:]}",
        "sold_out",
        "own_envelope",
        f"share:{b[-4:]}",
        "sold_out",
        "already_grabbed",
        "unknown_envelope",
        "envelope_expired",
    ]
    assert isinstance(outcomes[8], CovernetError) and outcomes[8].detail == {"grab_id": earlier.id}
    with unit_of_work(db_url) as db:
        rows = db.execute(
            select(RedEnvelopeShare.envelope_id, RedEnvelopeShare.seq, RedEnvelopeShare.grabbed_by)
            .where(RedEnvelopeShare.grabbed_by.is_not(None))
            .order_by(RedEnvelopeShare.envelope_id, RedEnvelopeShare.seq)
        ).all()
        sold_out = dict(db.execute(select(RedEnvelope.id, RedEnvelope.sold_out)).all())
    # Shares go out in seq order to the grabbers in the order they asked; nobody twice.
    assert [(seq, who) for env, seq, who in rows if env == a] == [
        (0, p1.user_id),
        (1, p2.user_id),
        (2, p3.user_id),
    ]
    assert sorted(who for env, _, who in rows if env == b) == sorted([p5.user_id, p1.user_id])
    assert sold_out == {a: True, b: True, late: False}
    assert {a, b} <= grabs.SOLD_OUT
    held = {o.id: o for o in outcomes if isinstance(o, grabs.Grabbed)}
    with unit_of_work(db_url) as db:
        for share in db.scalars(select(RedEnvelopeShare).where(RedEnvelopeShare.id.in_(held))):
            answer = held[share.id]
            assert (answer.premium_fen, answer.sum_insured_fen) == (
                share.premium_fen,
                share.sum_insured_fen,
            )
            assert answer.hold_until == share.hold_until and share.status == "held"


def test_grabs_of_many_envelopes_are_claimed_with_one_statement(
    db_url: str, loaded_catalog: Any
) -> None:
    sender, *crowd = people(db_url, 9)
    envelopes = [envelope(db_url, sender, 2) for _ in range(4)]
    batch = [(who, envelopes[n % 4]) for n, who in enumerate(crowd)]  # two per envelope
    claims: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("UPDATE RED_ENVELOPE_SHARES", "WITH WANT")):
            claims.append(statement)

    engine = get_engine(db_url)
    event.listen(engine, "before_cursor_execute", count)
    try:
        with unit_of_work(db_url) as db:
            outcomes = grabs.grab_many(db, batch)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert all(isinstance(o, grabs.Grabbed) for o in outcomes)
    assert len({(o.envelope_id, o.id) for o in outcomes if isinstance(o, grabs.Grabbed)}) == 8
    # PostgreSQL: one statement for every envelope; SQLite (one writer): one per grab.
    assert len(claims) == (1 if engine.dialect.name == "postgresql" else 8)


def test_concurrent_api_grabs_share_batches(app: Any, db_url: str) -> None:
    sender, *crowd = people(db_url, 31)
    env = envelope(db_url, sender, 10)
    with unit_of_work(db_url) as db:
        tokens = [
            identity.open_session(
                db, identity.get_user(db, who.user_id or ""), kind="bearer", user_agent="t"
            ).token
            for who in crowd
        ]
    before = social_api._grabber.batches, social_api._grabber.items

    async def crowd_grabs() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
            path = f"/api/v1/red-envelopes/{env}/grab"
            sends = [c.post(path, headers={"Authorization": f"Bearer {t}"}) for t in tokens]
            sends.append(c.post(path, headers={"Authorization": f"Bearer {tokens[0]}"}))
            try:
                return list(await asyncio.gather(*sends))
            finally:
                await dispose_loop_engines()  # no lifespan here to close them

    answers = run_async(crowd_grabs())
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(201) == 10 and statuses.count(409) == 21, statuses
    assert {a.json()["error"] for a in answers if a.status_code == 409} <= {
        "sold_out",
        "already_grabbed",
    }
    batches = social_api._grabber.batches - before[0]
    items = social_api._grabber.items - before[1]
    assert items == 31 and batches < items  # the crowd was handled in shared batches
    with unit_of_work(db_url) as db:
        grabbers = db.scalars(
            select(RedEnvelopeShare.grabbed_by).where(RedEnvelopeShare.envelope_id == env)
        ).all()
    taken = [g for g in grabbers if g is not None]
    assert len(taken) == len(set(taken)) == 10
