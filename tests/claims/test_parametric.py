"""Parametric claims from partners' signed events, on SQLite and PostgreSQL: a delayed or
cancelled flight and a received return pay without a human; forged, stale, replayed or
foreign events change nothing."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select

from covernet.claims import parametric
from covernet.claims.models import Claim, ClaimEvent
from covernet.core import clock
from covernet.core.config import DEV_PARTNER_SECRETS
from covernet.core.db import unit_of_work
from covernet.identity import service as identity
from covernet.identity.models import Role
from covernet.partners.models import PartnerEvent
from covernet.partners.signing import signed_headers
from covernet.payments.payout_models import Payout
from covernet.payments.providers import sandbox

BATCH = "/api/v1/partner/policies:batch"
EVENTS = "/api/v1/partner/events"
PAYEE = {"name": "李四", "account": "6222 0212 3456 7890 123"}
INSURED = {"birth_date": "1990-05-01", "gender": "F", "region": "310000"}


def key(db_url: str, name: str, role: Role = Role.partner) -> dict[str, str]:
    with unit_of_work(db_url) as db:
        insurer = name if role is Role.insurer else None
        issued = identity.create_api_key(db, name=name, role=role, insurer_code=insurer)
    return {"X-API-Key": issued.key}


@pytest.fixture
def evening() -> Any:
    """Every test runs at 20:00 Beijing time today, so the flights of the day are over."""
    local = clock.local_now().replace(hour=20, minute=0, second=0, microsecond=0)
    with clock.frozen(local):
        yield local


@pytest.fixture
def air(db_url: str) -> dict[str, str]:
    return key(db_url, "demo-air")


@pytest.fixture
def shop(db_url: str) -> dict[str, str]:
    return key(db_url, "demo-shop")


def issue(client: Any, headers: dict[str, str], items: list[dict[str, Any]]) -> list[Any]:
    response = client.post(BATCH, json={"items": items}, headers=headers)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert all(r["status"] == "issued" for r in results), results
    return list(results)


def booking(ref: str) -> dict[str, Any]:
    return {
        "external_ref": ref,
        "product_code": "flight-delay",
        "plan_code": "standard",
        "holder_ref": f"traveller-{ref}",
        "insured": INSURED,
    }


def order(ref: str, amount: int = 8_000) -> dict[str, Any]:
    return {
        "external_ref": ref,
        "product_code": "return-shipping",
        "plan_code": "standard",
        "holder_ref": f"buyer-{ref}",
        "order_amount_fen": amount,
    }


def at(day: datetime, hour: int, minute: int = 0) -> str:
    return day.replace(hour=hour, minute=minute).isoformat()


def flight(
    day: datetime, ref: str, event_id: str, *, late: tuple[int, int] | None = (19, 10), **data: Any
) -> dict[str, Any]:
    """A flight.delayed event: scheduled 13:00-15:00, arriving at ``late`` (h, m)."""
    body: dict[str, Any] = {
        "external_ref": ref,
        "flight_no": "MU5101",
        "scheduled_departure": at(day, 13),
        "scheduled_arrival": at(day, 15),
        "payee": PAYEE,
    }
    if late is not None:
        body["actual_arrival"] = at(day, *late)
    body.update(data)
    return {
        "event_id": event_id,
        "type": "flight.delayed",
        "occurred_at": at(day, 19, 30),
        "data": {k: v for k, v in body.items() if v is not None},
    }


def returned(day: datetime, ref: str, event_id: str, fee: int, **data: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "external_ref": ref,
        "shipped_at": at(day, 9),
        "received_at": at(day, 17),
        "shipping_fee_fen": fee,
        "payee": PAYEE,
    }
    body.update(data)
    return {
        "event_id": event_id,
        "type": "order.returned",
        "occurred_at": at(day, 17, 5),
        "data": {k: v for k, v in body.items() if v is not None},
    }


def post(
    client: Any,
    headers: dict[str, str],
    event: dict[str, Any],
    *,
    partner: str = "demo-air",
    secret: str | None = None,
    timestamp: int | None = None,
    raw: bytes | None = None,
) -> Any:
    body = orjson.dumps(event)
    signed = signed_headers(secret or DEV_PARTNER_SECRETS[partner], body, timestamp)
    return client.post(
        EVENTS,
        content=raw if raw is not None else body,
        headers={**headers, **signed, "Content-Type": "application/json"},
    )


def counts(db_url: str) -> tuple[int, int, int]:
    """(claims, partner events, payouts)."""
    with unit_of_work(db_url) as db:
        return (
            db.scalar(select(func.count()).select_from(Claim)) or 0,
            db.scalar(select(func.count()).select_from(PartnerEvent)) or 0,
            db.scalar(select(func.count()).select_from(Payout)) or 0,
        )


def claim_of(db_url: str, claim_id: str) -> tuple[Claim, list[ClaimEvent]]:
    with unit_of_work(db_url) as db:
        claim = db.get(Claim, claim_id)
        assert claim is not None
        events = list(
            db.scalars(
                select(ClaimEvent).where(ClaimEvent.claim_id == claim_id).order_by(ClaimEvent.id)
            )
        )
        return claim, events


STAGES = ["reported", "accepted", "documents", "assessed", "approved", "paid"]


def test_a_delayed_flight_pays_without_a_human(
    client: Any, db_url: str, air: dict[str, str], evening: datetime
) -> None:
    issue(client, air, [booking("BK-1")])
    started = time.perf_counter()
    answer = post(client, air, flight(evening, "BK-1", "evt-1"))
    assert answer.status_code == 200, answer.text
    sandbox.deliver_due(client)  # the provider confirms the payout
    elapsed = time.perf_counter() - started
    body = answer.json()
    assert body["result"] == "claim_approved" and body["duplicate"] is False
    assert body["amount_fen"] == 20_000 and body["delay_minutes"] == 250
    assert body["external_ref"] == "BK-1" and body["claim_no"].startswith("CL")
    claim, timeline = claim_of(db_url, body["claim_id"])
    assert claim.auto and claim.cause == "event" and claim.coverage_code == "delay"
    assert claim.external_event_id == "demo-air:evt-1"
    assert claim.stage == "paid" and claim.paid_at is not None
    assert claim.assessed_amount_fen == 20_000 and claim.required_documents == []
    assert claim.payee_account_masked == "6222 **** **** 0123"
    assert [e.stage_to for e in timeline] == STAGES
    assert timeline[0].actor_type == "partner" and timeline[0].actor_id == "demo-air"
    assert {e.actor_type for e in timeline[1:]} == {"system"}
    assert "延误4小时10分钟" in (timeline[0].note or "")
    assert "无需您提交任何材料" in (timeline[1].note or "")
    assert "200.00元" in (timeline[-1].note or "")
    assert all(e.internal_note is None for e in timeline)
    assert counts(db_url) == (1, 1, 1)
    assert elapsed < 1.0, f"took {elapsed:.3f} s"


def test_a_two_hour_delay_pays_nothing(
    client: Any, db_url: str, air: dict[str, str], evening: datetime
) -> None:
    issue(client, air, [booking("BK-2")])
    answer = post(client, air, flight(evening, "BK-2", "evt-2", late=(17, 0)))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["result"] == "not_triggered" and body["reason"] == "delay_below_threshold"
    assert body["delay_minutes"] == 120 and body["threshold_minutes"] == 180
    assert counts(db_url) == (0, 1, 0)
    again = post(client, air, flight(evening, "BK-2", "evt-2", late=(17, 0)))
    assert again.json() == {**body, "duplicate": True}
    # exactly three hours is "满3小时"
    issue(client, air, [booking("BK-3")])
    three = post(client, air, flight(evening, "BK-3", "evt-3", late=(18, 0)))
    assert three.json()["result"] == "claim_approved"


def test_a_cancelled_flight_pays(
    client: Any, db_url: str, air: dict[str, str], evening: datetime
) -> None:
    issue(client, air, [booking("BK-4")])
    answer = post(client, air, flight(evening, "BK-4", "evt-4", late=None, cancelled=True))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["result"] == "claim_approved" and body["cancelled"] is True
    sandbox.deliver_due(client)
    claim, timeline = claim_of(db_url, body["claim_id"])
    assert claim.stage == "paid" and claim.assessed_amount_fen == 20_000
    assert "已取消" in (timeline[0].note or "")
    # a later event about the same flight (another id) pays nothing more
    later = post(client, air, flight(evening, "BK-4", "evt-4b"))
    assert later.json()["result"] == "already_claimed"
    assert later.json()["claim_no"] == body["claim_no"]
    assert counts(db_url) == (1, 2, 1)


def test_forged_stale_and_foreign_events_change_nothing(
    client: Any, db_url: str, air: dict[str, str], shop: dict[str, str], evening: datetime
) -> None:
    issue(client, air, [booking("BK-5")])
    issue(client, shop, [order("ORD-5")])
    event = flight(evening, "BK-5", "evt-5")
    now = int(clock.now().timestamp())
    cases = [
        (post(client, air, event, secret="not-the-secret"), 401, "signature_invalid"),
        (post(client, air, event, partner="demo-shop"), 401, "signature_invalid"),
        (post(client, air, event, timestamp=now - 301), 401, "stale_event"),
        (post(client, air, event, timestamp=now + 301), 401, "stale_event"),
        (
            post(
                client,
                air,
                event,
                raw=orjson.dumps(flight(evening, "BK-5", "evt-5", late=None, cancelled=True)),
            ),
            401,
            "signature_invalid",
        ),
        (client.post(EVENTS, json=event, headers=air), 401, "signature_missing"),
        # demo-shop's key and secret, about demo-air's booking: not its policy
        (post(client, shop, event, partner="demo-shop"), 404, "unknown_policy"),
        # demo-air about demo-shop's order
        (post(client, air, returned(evening, "ORD-5", "evt-5r", 800)), 404, "unknown_policy"),
        (post(client, air, {**event, "type": "flight.diverted"}), 400, "unknown_event_type"),
        (post(client, air, flight(evening, "BK-5", "evt-5p", payee=None)), 400, "payee_required"),
        (post(client, air, flight(evening, "BK-5", "evt-5x", late=None)), 422, "malformed_request"),
        (post(client, key(db_url, "anxin-pc", Role.insurer), event), 403, "forbidden"),
        (post(client, key(db_url, "not-a-partner"), event), 403, "unknown_partner"),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.json()["error"]) == (status, code), response.text
    assert counts(db_url) == (0, 0, 0)
    # the genuine event still goes through afterwards, once
    assert post(client, air, event).json()["result"] == "claim_approved"
    assert counts(db_url) == (1, 1, 1)


def test_a_replayed_event_pays_once(
    client: Any, db_url: str, air: dict[str, str], evening: datetime
) -> None:
    issue(client, air, [booking("BK-6"), booking("BK-7")])
    event = flight(evening, "BK-6", "evt-6")
    first = post(client, air, event).json()
    for _ in range(3):
        again = post(client, air, event)
        assert again.status_code == 200
        assert again.json() == {**first, "duplicate": True}
    reused = post(client, air, flight(evening, "BK-7", "evt-6"))
    assert (reused.status_code, reused.json()["error"]) == (409, "event_id_reused")
    sandbox.deliver_due(client)
    sandbox.deliver_due(client)
    assert counts(db_url) == (1, 1, 1)
    assert claim_of(db_url, first["claim_id"])[0].stage == "paid"

    # five deliveries of one event at once
    event = flight(evening, "BK-7", "evt-7")
    answers: list[Any] = [None] * 5
    start = threading.Barrier(5)

    def send(k: int) -> None:
        start.wait()
        answers[k] = post(client, air, event)

    threads = [threading.Thread(target=send, args=(k,)) for k in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(a is not None and a.status_code == 200 for a in answers), answers
    bodies = [a.json() for a in answers]
    assert len({b["claim_no"] for b in bodies}) == 1
    assert sorted(b["duplicate"] for b in bodies) == [False] + [True] * 4
    sandbox.deliver_due(client)
    assert counts(db_url) == (2, 2, 2)
    assert claim_of(db_url, bodies[0]["claim_id"])[0].stage == "paid"


def test_return_shipping_pays_the_actual_fee_up_to_the_sum_insured(
    client: Any, db_url: str, shop: dict[str, str], evening: datetime
) -> None:
    issue(client, shop, [order("ORD-1"), order("ORD-2", 60_000), order("ORD-3")])
    cheap = post(client, shop, returned(evening, "ORD-1", "ret-1", 1_200), partner="demo-shop")
    dear = post(client, shop, returned(evening, "ORD-2", "ret-2", 3_000), partner="demo-shop")
    waiting = post(
        client,
        shop,
        returned(evening, "ORD-3", "ret-3", 900, received_at=None),
        partner="demo-shop",
    )
    assert [r.status_code for r in (cheap, dear, waiting)] == [200, 200, 200]
    assert cheap.json()["result"] == "claim_approved" and cheap.json()["amount_fen"] == 1_200
    assert dear.json()["result"] == "claim_approved" and dear.json()["amount_fen"] == 2_500
    assert waiting.json()["result"] == "not_triggered"
    assert waiting.json()["reason"] == "return_not_received"
    sandbox.deliver_due(client)
    for answer, paid in ((cheap, 1_200), (dear, 2_500)):
        claim, timeline = claim_of(db_url, answer.json()["claim_id"])
        assert claim.stage == "paid" and claim.coverage_code == "return-freight"
        assert claim.amount_claimed_fen == answer.json()["shipping_fee_fen"]
        assert [e.stage_to for e in timeline] == STAGES
        assert f"{paid / 100:.2f}元" in (timeline[-1].note or "")
    _, timeline = claim_of(db_url, dear.json()["claim_id"])
    assert "每单最高25.00元" in (timeline[3].note or "")
    assert counts(db_url) == (2, 3, 2)
    # once received, the third return pays too (a new event)
    done = post(client, shop, returned(evening, "ORD-3", "ret-3b", 900), partner="demo-shop")
    assert done.json()["amount_fen"] == 900
    # a flight event about an order is refused
    wrong = post(client, shop, flight(evening, "ORD-1", "ret-x"), partner="demo-shop")
    assert (wrong.status_code, wrong.json()["error"]) == (400, "event_not_for_product")


def test_triggers_follow_the_product_terms() -> None:
    base = datetime.fromisoformat("2026-05-01T15:00:00+08:00")

    def data(minutes: int) -> parametric.FlightDelayed:
        return parametric.FlightDelayed(
            external_ref="x",
            flight_no="MU5101",
            scheduled_arrival=base,
            actual_arrival=base + timedelta(minutes=minutes),
        )

    assert not parametric.flight_trigger(data(179)).triggered
    assert parametric.flight_trigger(data(180)).triggered
    assert parametric.flight_trigger(
        parametric.FlightDelayed(
            external_ref="x", flight_no="MU5101", scheduled_arrival=base, cancelled=True
        )
    ).triggered
    with pytest.raises(ValueError, match="disagrees"):
        parametric.FlightDelayed(
            external_ref="x",
            flight_no="MU5101",
            scheduled_arrival=base,
            actual_arrival=base + timedelta(hours=4),
            delay_minutes=60,
        )


def test_different_events_about_one_flight_at_once_pay_once(
    client: Any, db_url: str, air: dict[str, str], evening: datetime
) -> None:
    issue(client, air, [booking("BK-8")])
    answers: list[Any] = [None] * 4
    start = threading.Barrier(4)

    def send(k: int) -> None:
        start.wait()
        answers[k] = post(client, air, flight(evening, "BK-8", f"evt-8-{k}"))

    threads = [threading.Thread(target=send, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(a is not None and a.status_code == 200 for a in answers), answers
    results = sorted(a.json()["result"] for a in answers)
    assert results == ["already_claimed"] * 3 + ["claim_approved"]
    assert counts(db_url) == (1, 4, 1)


def test_production_refuses_the_development_partner_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from covernet.core.config import Settings

    monkeypatch.setenv("COVERNET_ENV", "production")
    monkeypatch.setenv("COVERNET_SECRET_KEY", "k" * 40)
    monkeypatch.setenv("COVERNET_FIELD_KEYS", "p1:" + "A" * 43 + "=")
    monkeypatch.setenv("COVERNET_BLIND_INDEX_KEY", "b" * 40)
    assert Settings().partner_secrets == {}  # no partner may post events until named
    monkeypatch.setenv("COVERNET_PARTNER_SECRETS", orjson.dumps(DEV_PARTNER_SECRETS).decode())
    with pytest.raises(ValueError, match="COVERNET_PARTNER_SECRETS"):
        Settings()
    monkeypatch.setenv("COVERNET_PARTNER_SECRETS", '{"demo-air": "short"}')
    with pytest.raises(ValueError, match="COVERNET_PARTNER_SECRETS"):
        Settings()
    monkeypatch.setenv("COVERNET_PARTNER_SECRETS", '{"demo-air": "' + "s" * 40 + '"}')
    assert Settings().partner_secrets == {"demo-air": "s" * 40}
