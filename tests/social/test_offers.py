"""Scenario offers from partners' signed events, on SQLite and PostgreSQL: each rule maps
its event to the right offer, conditions, consent, caps (also under concurrency), quiet
hours, and forged, stale or replayed events make nothing."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from covernet.core import clock
from covernet.core.db import unit_of_work
from covernet.crm import consents
from covernet.notify import service as notify
from covernet.notify.models import Notification
from covernet.social.offer_models import Offer
from tests.social import test_offers_helpers as support
from tests.social.test_offers_helpers import (
    PERSON,
    event,
    funnel_rows,
    hospital,
    offers_of,
    person,
    post,
)

# fixtures shared with the other offer tests
air = support.air
morning = support.morning
shop = support.shop


def accepted(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = dict(response.json())
    assert body["result"] == "accepted"
    return body


def test_each_rule_maps_its_event_to_its_offer(
    client: Any, db_url: str, shop: dict[str, str], air: dict[str, str], morning: datetime
) -> None:
    ill, buyer, flyer, walker, saver = (person(db_url, f"1390000000{i}") for i in range(5))
    accepted(post(client, shop, hospital("h-1", morning, "13900000000")))
    accepted(
        post(
            client,
            shop,
            event(
                "o-1",
                "order.placed",
                morning,
                mobile="139 0000 0001",
                order_id="A100",
                amount_fen=8_000,
                category="服装",
            ),
        )
    )
    departure = morning.date() + timedelta(days=10)
    accepted(
        post(
            client,
            air,
            event(
                "f-1",
                "flight.booked",
                morning,
                mobile="+8613900000002",
                booking_ref="PNR1",
                flight_no="MU523",
                departure_date=departure.isoformat(),
                return_date=(departure + timedelta(days=5)).isoformat(),
                destination_country="JP",
                **PERSON,
            ),
            partner="demo-air",
        )
    )
    accepted(
        post(
            client,
            shop,
            event(
                "s-1",
                "steps.milestone",
                morning,
                mobile="13900000003",
                steps=12_000,
                on=morning.date().isoformat(),
            ),
        )
    )
    accepted(
        post(
            client,
            shop,
            event(
                "p-1",
                "points.earned",
                morning,
                mobile="13900000004",
                merchant="demo-mall",
                points=200,
                balance=800,
            ),
        )
    )
    (medical,) = offers_of(db_url, ill)
    assert (medical.rule_code, medical.kind, medical.product_code, medical.plan_code) == (
        "hospital-medical",
        "quote",
        "medical-million",
        "standard",
    )
    assert medical.inputs == {"plan_code": "standard", **PERSON}
    assert medical.rule_version.startswith("file:")
    (shipping,) = offers_of(db_url, buyer)
    assert shipping.product_code == "return-shipping"
    assert shipping.inputs["order_amount"] == "80.00"
    (travel,) = offers_of(db_url, flyer)
    assert travel.product_code == "travel-medical"
    assert travel.inputs["term"] == "7d"  # 6 days of trip: the shortest term covering it
    assert travel.inputs["start_date"] == departure.isoformat()
    (steps,) = offers_of(db_url, walker)
    assert (steps.kind, steps.redeem_with, steps.redeem_cost) == ("gift", "steps", 10_000)
    (points,) = offers_of(db_url, saver)
    assert (points.kind, points.redeem_with, points.redeem_cost) == ("gift", "points", 500)
    assert clock.as_utc(points.expires_at) == clock.as_utc(morning) + timedelta(hours=168)
    # The notification names the offer's link and no mobile number.
    with unit_of_work(db_url) as db:
        sent = db.scalars(select(Notification).where(Notification.user_id == ill)).all()
        assert {n.channel for n in sent} == {"inbox", "sms"}
        assert all(f"/o/{medical.token}" in n.body for n in sent)
        assert all("13900000000" not in n.body for n in sent)
    assert funnel_rows(db_url, "hospital-medical") == [("event", None), ("offer", None)]


def test_conditions_decide(
    client: Any, db_url: str, shop: dict[str, str], air: dict[str, str], morning: datetime
) -> None:
    who = person(db_url, "13900000010")
    accepted(post(client, shop, hospital("h-small", morning, "13900000010", amount=19_999)))
    accepted(
        post(
            client,
            shop,
            event(
                "o-food",
                "order.placed",
                morning,
                mobile="13900000010",
                order_id="B1",
                amount_fen=9_000,
                category="食品",
            ),
        )
    )
    day = (morning.date() + timedelta(days=3)).isoformat()
    domestic = event(
        "f-home",
        "flight.booked",
        morning,
        mobile="13900000010",
        booking_ref="PNR2",
        flight_no="MU5101",
        departure_date=day,
        destination_country="CN",
    )
    accepted(post(client, air, domestic, partner="demo-air"))
    assert offers_of(db_url, who) == []
    assert funnel_rows(db_url, "hospital-medical") == [("event", None)]
    accepted(post(client, shop, hospital("h-big", morning, "13900000010", amount=20_000)))
    assert [o.rule_code for o in offers_of(db_url, who)] == ["hospital-medical"]


def test_consent_and_a_known_person_are_required(
    client: Any, db_url: str, shop: dict[str, str], morning: datetime
) -> None:
    no_consent = person(db_url, "13900000020", consent=False)
    accepted(post(client, shop, hospital("h-a", morning, "13900000020")))
    accepted(post(client, shop, hospital("h-b", morning, "13700000000")))  # nobody's
    accepted(post(client, shop, hospital("h-c", morning, "not-a-mobile-1")))
    assert offers_of(db_url) == []
    assert funnel_rows(db_url, "hospital-medical") == [
        ("event", None),
        ("suppressed", "no_marketing_consent"),
        ("event", None),
        ("suppressed", "unknown_person"),
        ("event", None),
        ("suppressed", "unknown_person"),
    ]
    # Granted, then withdrawn: no offer after the withdrawal.
    notice = consents.NOTICES[consents.Purpose.marketing_offers]
    with unit_of_work(db_url) as db:
        consents.set_consent(
            db,
            no_consent,
            "marketing_offers",
            consents.ConsentIn(granted=True, text_version=notice.version),
        )
    accepted(post(client, shop, hospital("h-d", morning, "13900000020")))
    assert len(offers_of(db_url, no_consent)) == 1
    with unit_of_work(db_url) as db:
        consents.set_consent(db, no_consent, "marketing_offers", consents.ConsentIn(granted=False))
    with clock.frozen(morning + timedelta(days=40)):
        accepted(post(client, shop, hospital("h-e", clock.now(), "13900000020")))
    assert len(offers_of(db_url, no_consent)) == 1
    # The partner's answer tells nothing about the person.
    answer = post(client, shop, hospital("h-f", morning, "13900000020")).json()
    assert set(answer) == {"event_id", "type", "result", "duplicate"}


def test_frequency_cap_per_rule_and_the_daily_cap(
    client: Any, db_url: str, shop: dict[str, str], air: dict[str, str], morning: datetime
) -> None:
    who = person(db_url, "13900000030")
    accepted(post(client, shop, hospital("cap-1", morning, "13900000030")))
    with clock.frozen(morning + timedelta(days=29)):
        accepted(post(client, shop, hospital("cap-2", clock.now(), "13900000030")))
    assert len(offers_of(db_url, who)) == 1
    assert funnel_rows(db_url, "hospital-medical")[-1] == ("suppressed", "frequency_cap")
    with clock.frozen(morning + timedelta(days=30, minutes=1)):
        accepted(post(client, shop, hospital("cap-3", clock.now(), "13900000030")))
    assert len(offers_of(db_url, who)) == 2
    # The daily cap (3) over every rule: a fourth offer on one day is not made.
    other = person(db_url, "13900000031")
    mobile = "13900000031"
    accepted(post(client, shop, hospital("d-1", morning, mobile)))
    order = {"order_id": "C1", "amount_fen": 9_000, "category": "数码"}
    accepted(post(client, shop, event("d-2", "order.placed", morning, mobile=mobile, **order)))
    steps = {"steps": 15_000, "on": morning.date().isoformat()}
    accepted(post(client, shop, event("d-3", "steps.milestone", morning, mobile=mobile, **steps)))
    points = {"merchant": "m", "points": 10, "balance": 900}
    accepted(post(client, shop, event("d-4", "points.earned", morning, mobile=mobile, **points)))
    assert len(offers_of(db_url, other)) == 3
    assert funnel_rows(db_url, "points-accident-gift")[-1] == ("suppressed", "daily_cap")


def test_concurrent_events_for_one_person_never_pass_the_cap(
    client: Any, db_url: str, shop: dict[str, str], morning: datetime
) -> None:
    who = person(db_url, "13900000040")
    start = threading.Barrier(4)
    answers: list[int] = []

    def send(i: int) -> None:
        start.wait()
        answers.append(
            post(client, shop, hospital(f"race-{i}", morning, "13900000040")).status_code
        )

    threads = [threading.Thread(target=send, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [200] * 4
    assert len(offers_of(db_url, who)) == 1
    rows = funnel_rows(db_url, "hospital-medical")
    assert rows.count(("suppressed", "frequency_cap")) == 3
    assert rows.count(("offer", None)) == 1


def test_quiet_hours_defer_the_notification(client: Any, db_url: str, shop: dict[str, str]) -> None:
    who = person(db_url, "13900000050")
    night = clock.local_now().replace(hour=22, minute=30, second=0, microsecond=0)
    with clock.frozen(night):
        accepted(post(client, shop, hospital("night-1", night, "13900000050")))
        (offer,) = offers_of(db_url, who)
        morning = (night + timedelta(days=1)).replace(hour=8, minute=0)
        assert offer.notify_after is not None
        assert clock.as_utc(offer.notify_after) == clock.as_utc(morning)
        with unit_of_work(db_url) as db:
            rows = db.scalars(select(Notification).where(Notification.user_id == who)).all()
            assert rows and all(
                clock.as_utc(n.next_attempt_at) == clock.as_utc(morning) for n in rows
            )
            assert notify.list_for(db, who)[1] == 0  # nothing in the inbox at night
    with clock.frozen(morning + timedelta(minutes=1)), unit_of_work(db_url) as db:
        assert notify.list_for(db, who)[1] == 1
    # Early morning counts as quiet too; daytime does not.
    dawn = night.replace(hour=6)
    with clock.frozen(dawn):
        accepted(post(client, shop, hospital("dawn-1", dawn, "13900000051")))
    with clock.frozen(night.replace(hour=12)):
        person(db_url, "13900000052")
        accepted(post(client, shop, hospital("noon-1", clock.now(), "13900000052")))
    with unit_of_work(db_url) as db:
        deferred = db.scalar(
            select(func.count()).select_from(Offer).where(Offer.notify_after.is_not(None))
        )
        assert deferred == 1  # 13900000051 has no account: no offer at dawn at all


def test_forged_stale_and_replayed_events_make_no_offer(
    client: Any, db_url: str, shop: dict[str, str], morning: datetime
) -> None:
    who = person(db_url, "13900000060")
    body = hospital("sec-1", morning, "13900000060")
    forged = post(client, shop, body, secret="not-the-secret")
    assert forged.status_code == 401 and forged.json()["error"] == "signature_invalid"
    stale_at = int(clock.now().timestamp()) - 3600
    stale = post(client, shop, body, timestamp=stale_at)
    assert stale.status_code == 401 and stale.json()["error"] == "stale_event"
    assert offers_of(db_url, who) == []
    assert funnel_rows(db_url, "hospital-medical") == []
    first = accepted(post(client, shop, body))
    again = post(client, shop, body)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert first["duplicate"] is False
    assert len(offers_of(db_url, who)) == 1
    assert funnel_rows(db_url, "hospital-medical") == [("event", None), ("offer", None)]
    # A malformed event (unknown attribute) is refused and changes nothing.
    bad = hospital("sec-2", morning, "13900000060")
    bad["data"]["amount"] = 1
    assert post(client, shop, bad).status_code == 422
    assert len(offers_of(db_url, who)) == 1
