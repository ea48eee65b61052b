"""Phone/video appointments on SQLite and PostgreSQL: slots in Asia/Shanghai time,
no double booking under concurrency, license gating (R1), cancel/reschedule with the
other side notified, reminders, call notes and recording references in the timeline
(R15), and each side seeing only their own appointments."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from covernet.consult import appointments, service
from covernet.consult.appointment_models import Appointment, CallRecord
from covernet.consult.models import Conversation
from covernet.core import clock
from covernet.core.db import unit_of_work
from covernet.core.errors import CovernetError
from covernet.identity.models import Role
from covernet.notify.models import Notification
from covernet.policies import tasks
from tests.conftest import bearer
from tests.consult.test_desk_helpers import advisor, principal

pytestmark = pytest.mark.usefixtures("loaded_catalog")

# Monday 2027-01-04, 09:10 in Shanghai (01:10 UTC)
MONDAY_0910 = datetime(2027, 1, 4, 1, 10, tzinfo=UTC)
MONDAY = date(2027, 1, 4)
HOURS = [
    appointments.WindowIn(weekday=0, start="09:00", end="11:00", slot_minutes=30),
    appointments.WindowIn(weekday=2, start="14:00", end="15:00", slot_minutes=60),
]


@pytest.fixture
def frozen() -> Any:
    with clock.frozen(MONDAY_0910):
        yield


def _customer(db_url: str, n: int) -> str:
    from covernet.identity import service as identity

    with unit_of_work(db_url) as db:
        user = identity.register_customer(
            db, mobile=f"1391234{n:04d}", password="s3cret-pass", name=f"客户{n}"
        )
        return user.id


def _cust(user_id: str) -> Any:
    return principal(user_id, Role.customer)


def _hours(db_url: str, adv: str, windows: list[Any] = HOURS) -> None:
    with unit_of_work(db_url) as db:
        appointments.set_weekly(db, principal(adv), windows)


def _utc(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=clock.SHANGHAI).astimezone(UTC)


def _book(db_url: str, customer_id: str, adv: str, start: datetime, **kw: Any) -> str:
    with unit_of_work(db_url) as db:
        row = appointments.book(
            db,
            _cust(customer_id),
            appointments.BookingIn(
                advisor_id=adv,
                slot_start=start,
                kind=kw.pop("kind", "phone"),
                topic=kw.pop("topic", "想了解百万医疗险"),
                **kw,
            ),
        )
        return row.id


def _code(fn: Any) -> str:
    with pytest.raises(CovernetError) as caught:
        fn()
    return caught.value.code


def _notes(db_url: str, user_id: str, topic: str) -> int:
    with unit_of_work(db_url) as db:
        return int(
            db.scalar(
                select(func.count())
                .select_from(Notification)
                .where(
                    Notification.user_id == user_id,
                    Notification.topic == topic,
                    Notification.channel == "inbox",
                )
            )
            or 0
        )


def test_slots_follow_weekly_hours_exceptions_and_shanghai_time(db_url: str, frozen: None) -> None:
    adv = advisor(db_url, "slotadv")
    _hours(db_url, adv)
    with unit_of_work(db_url) as db:
        week = appointments.free_slots(db, adv, MONDAY, MONDAY + timedelta(days=7))
    # Monday 09:00 and 09:30 are within 30 minutes of 09:10; next Monday's all four
    assert [s.start for s in week] == [
        datetime(2027, 1, 4, 2, 0, tzinfo=UTC),  # 10:00 Shanghai
        datetime(2027, 1, 4, 2, 30, tzinfo=UTC),
        datetime(2027, 1, 6, 6, 0, tzinfo=UTC),  # Wednesday 14:00, a 60-minute slot
        datetime(2027, 1, 11, 1, 0, tzinfo=UTC),
        datetime(2027, 1, 11, 1, 30, tzinfo=UTC),
        datetime(2027, 1, 11, 2, 0, tzinfo=UTC),
        datetime(2027, 1, 11, 2, 30, tzinfo=UTC),
    ]
    assert week[2].end - week[2].start == timedelta(minutes=60)
    # the same wall-clock hours weeks on (no daylight saving in Shanghai)
    with unit_of_work(db_url) as db:
        february = appointments.free_slots(db, adv, date(2027, 2, 1), date(2027, 2, 1))
    assert [s.local_start.strftime("%H:%M") for s in february] == [
        "09:00",
        "09:30",
        "10:00",
        "10:30",
    ]
    assert february[0].start.hour == 1  # always UTC+8
    # midsummer too: 09:00 on Monday 2027-07-05 is 01:00 UTC
    assert appointments._local(date(2027, 7, 5), 9 * 60) == datetime(2027, 7, 5, 1, tzinfo=UTC)
    with unit_of_work(db_url) as db:
        appointments.set_exception(
            db, principal(adv), appointments.ExceptionIn(day=date(2027, 1, 6), available=False)
        )
        appointments.set_exception(
            db,
            principal(adv),
            appointments.ExceptionIn(
                day=date(2027, 1, 9), available=True, start="10:00", end="11:00"
            ),
        )
        days = appointments.free_slots(db, adv, date(2027, 1, 5), date(2027, 1, 9))
    assert [s.local_start.strftime("%m-%d %H:%M") for s in days] == ["01-09 10:00", "01-09 10:30"]

    bad = [appointments.WindowIn(weekday=1, start="07:00", end="10:00")]
    with unit_of_work(db_url) as db:
        assert _code(lambda: appointments.set_weekly(db, principal(adv), bad)) == (
            "outside_business_hours"
        )
    overlap = [
        appointments.WindowIn(weekday=1, start="09:00", end="11:00"),
        appointments.WindowIn(weekday=1, start="10:30", end="12:00"),
    ]
    with unit_of_work(db_url) as db:
        assert _code(lambda: appointments.set_weekly(db, principal(adv), overlap)) == (
            "overlapping_windows"
        )
    odd = [appointments.WindowIn(weekday=1, start="09:00", end="10:00", slot_minutes=7)]
    with unit_of_work(db_url) as db:
        assert _code(lambda: appointments.set_weekly(db, principal(adv), odd)) == "bad_slot_length"
        assert _code(lambda: appointments.free_slots(db, adv, MONDAY, MONDAY + timedelta(40))) == (
            "range_too_long"
        )
        # a customer does not publish hours
        assert _code(lambda: appointments.set_weekly(db, _cust(adv), HOURS)) == "advisor_only"


def test_booking_checks_the_slot_and_the_license(db_url: str, frozen: None) -> None:
    adv = advisor(db_url, "licadv", lines=["accident"])
    unlicensed = advisor(db_url, "nolic", licensed=False)
    expired = advisor(db_url, "oldlic", lines=["medical"], valid_days=-1)
    for a in (adv, unlicensed, expired):
        _hours(db_url, a)
    cust = _customer(db_url, 1)
    ten = _utc(MONDAY, 10)
    for a in (unlicensed, expired):
        assert _code(lambda a=a: _book(db_url, cust, a, ten, product_line="medical")) == (
            "advisor_not_licensed"
        )
    # licensed, but not for this line
    assert _code(lambda: _book(db_url, cust, adv, ten, product_line="medical")) == (
        "advisor_not_licensed"
    )
    assert _code(lambda: _book(db_url, cust, adv, _utc(MONDAY, 9, 30))) == "slot_too_soon"
    assert _code(lambda: _book(db_url, cust, adv, _utc(MONDAY, 10, 15))) == "no_such_slot"
    assert _code(lambda: _book(db_url, cust, adv, _utc(MONDAY, 13))) == "no_such_slot"
    with unit_of_work(db_url) as db:
        assert db.scalar(select(func.count()).select_from(Appointment)) == 0
        assert appointments.bookable(db, adv, "accident")
        assert not appointments.bookable(db, adv, "medical")
    booked = _book(db_url, cust, adv, ten, product_line="accident", kind="video")
    # a service question (no line) is bookable with any advisor
    _book(db_url, cust, unlicensed, ten)
    with unit_of_work(db_url) as db:
        row = db.get(Appointment, booked)
        assert row is not None and (row.kind, row.status) == ("video", "booked")
        conv = db.get(Conversation, row.conversation_id)
        assert conv is not None and conv.channel == "phone" and conv.customer_id == cust
        bodies = [m.body for m in service.messages(db, conv, staff=False)]
        assert bodies[0] == "想了解百万医疗险" and bodies[-1].startswith(
            "预约视频咨询：2027-01-04 10:00"
        )
        assert ten not in [s.start for s in appointments.free_slots(db, adv, MONDAY, MONDAY)]
    assert _notes(db_url, adv, "appointment.booked") == 1
    # the slot is gone for the next customer
    other = _customer(db_url, 2)
    assert _code(lambda: _book(db_url, other, adv, ten)) == "slot_taken"


def test_booking_an_existing_conversation_needs_it_to_be_yours(db_url: str, frozen: None) -> None:
    adv = advisor(db_url, "convadv")
    _hours(db_url, adv)
    mine, theirs = _customer(db_url, 3), _customer(db_url, 4)
    with unit_of_work(db_url) as db:
        conv, _ = service.start(
            db, service.Caller(customer_id=mine), channel="web", body="我想电话聊聊"
        )
        conv_id = conv.id
    assert _code(lambda: _book(db_url, theirs, adv, _utc(MONDAY, 10), conversation_id=conv_id)) == (
        "not_found"
    )
    booked = _book(db_url, mine, adv, _utc(MONDAY, 10), conversation_id=conv_id)
    with unit_of_work(db_url) as db:
        row = db.get(Appointment, booked)
        assert row is not None and row.conversation_id == conv_id


@pytest.mark.parametrize("threads", [6])
def test_no_double_booking_under_concurrency(db_url: str, frozen: None, threads: int) -> None:
    adv = advisor(db_url, "raceadv")
    _hours(db_url, adv)
    customers = [_customer(db_url, 10 + i) for i in range(threads)]
    slot = _utc(MONDAY + timedelta(days=7), 9)
    barrier = threading.Barrier(threads)
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt(customer_id: str) -> None:
        barrier.wait()
        try:
            _book(db_url, customer_id, adv, slot)
            result = "booked"
        except CovernetError as exc:
            result = exc.code
        with lock:
            outcomes.append(result)

    workers = [threading.Thread(target=attempt, args=(c,)) for c in customers]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert sorted(outcomes) == ["booked"] + ["slot_taken"] * (threads - 1)
    with unit_of_work(db_url) as db:
        live = db.scalar(
            select(func.count())
            .select_from(Appointment)
            .where(Appointment.advisor_id == adv, Appointment.status == "booked")
        )
        assert live == 1
        # the losers left no conversation behind
        assert db.scalar(select(func.count()).select_from(Conversation)) == 1


def test_cancel_and_reschedule_notify_the_other_side(db_url: str, frozen: None) -> None:
    adv = advisor(db_url, "moveadv")
    _hours(db_url, adv)
    cust = _customer(db_url, 20)
    first = _book(db_url, cust, adv, _utc(MONDAY, 10))
    later = _utc(MONDAY + timedelta(days=7), 9, 30)
    with unit_of_work(db_url) as db:
        moved = appointments.reschedule(db, principal(adv), first, later)
        moved_id = moved.id
    assert _notes(db_url, cust, "appointment.rescheduled") == 1
    assert _notes(db_url, adv, "appointment.rescheduled") == 0
    with unit_of_work(db_url) as db:
        old = db.get(Appointment, first)
        assert old is not None and (old.status, old.rescheduled_to_id) == ("rescheduled", moved_id)
        free = [s.start for s in appointments.free_slots(db, adv, MONDAY, MONDAY + timedelta(7))]
        assert _utc(MONDAY, 10) in free and later not in free
        assert _code(lambda: appointments.reschedule(db, _cust(cust), first, later)) == (
            "bad_appointment_transition"
        )
    with unit_of_work(db_url) as db:
        done = appointments.cancel(db, _cust(cust), moved_id, "有事")
        assert (done.status, done.cancelled_by) == ("cancelled", "customer")
    assert _notes(db_url, adv, "appointment.cancelled") == 1
    with unit_of_work(db_url) as db:
        told = db.scalar(
            select(Notification).where(
                Notification.user_id == adv,
                Notification.topic == "appointment.cancelled",
                Notification.channel == "inbox",
            )
        )
        assert told is not None
        assert told.body == "2027-01-11 09:30 的电话咨询已被客户取消。"
        assert told.body_en == (
            "The phone appointment at 2027-01-11 09:30 was cancelled by the customer."
        )
        moved_note = db.scalar(
            select(Notification).where(Notification.topic == "appointment.rescheduled")
        )
        assert moved_note is not None
        assert moved_note.body == "电话咨询从 2027-01-04 10:00 改到 2027-01-11 09:30。"
    with unit_of_work(db_url) as db:
        assert _code(lambda: appointments.cancel(db, principal(adv), moved_id)) == (
            "bad_appointment_transition"
        )
        free = [s.start for s in appointments.free_slots(db, adv, MONDAY, MONDAY + timedelta(7))]
        assert later in free
        # a stranger cannot touch it
        stranger = _customer(db_url, 21)
        assert _code(lambda: appointments.cancel(db, _cust(stranger), first)) == "not_found"
    # the slot freed by the cancellation can be booked again
    _book(db_url, _customer(db_url, 22), adv, later)


def test_reminders_go_to_both_sides_once(db_url: str, frozen: None) -> None:
    adv = advisor(db_url, "remadv")
    _hours(db_url, adv)
    cust = _customer(db_url, 30)
    _book(db_url, cust, adv, _utc(MONDAY + timedelta(days=7), 10))
    with unit_of_work(db_url) as db:
        assert tasks.JOBS["appointment_reminders"](db) == 0  # a week ahead: not yet
    with clock.frozen(_utc(MONDAY + timedelta(days=7), 8, 30)):
        with unit_of_work(db_url) as db:
            assert tasks.JOBS["appointment_reminders"](db) == 1
        with unit_of_work(db_url) as db:
            assert appointments.remind(db) == 0
    assert _notes(db_url, cust, "appointment.reminder") == 1
    assert _notes(db_url, adv, "appointment.reminder") == 1


def test_call_notes_and_recording_reference_in_the_timeline(db_url: str, frozen: None) -> None:
    adv = advisor(db_url, "calladv", name="李顾问")
    other_adv = advisor(db_url, "calladv2")
    _hours(db_url, adv)
    cust = _customer(db_url, 40)
    booked = _book(db_url, cust, adv, _utc(MONDAY, 10), kind="phone")
    record = appointments.CallRecordIn(
        notes="客户关心既往症，已说明等待期30天。",
        recording_ref="s3://covernet-recordings/2027/01/04/abc.opus",
        recording_seconds=754,
        recording_sha256="a" * 64,
    )
    with unit_of_work(db_url) as db:
        assert _code(lambda: appointments.record_call(db, principal(adv), booked, record)) == (
            "call_not_started"
        )
    with clock.frozen(_utc(MONDAY, 10, 40)):
        with unit_of_work(db_url) as db:
            assert (
                _code(lambda: appointments.record_call(db, principal(other_adv), booked, record))
                == "not_found"
            )
            audio = record.model_copy(update={"recording_ref": "data:audio/ogg;base64,AAAA"})
            assert _code(lambda: appointments.record_call(db, principal(adv), booked, audio)) == (
                "bad_recording_ref"
            )
            no_sum = record.model_copy(update={"recording_sha256": None})
            assert _code(lambda: appointments.record_call(db, principal(adv), booked, no_sum)) == (
                "recording_incomplete"
            )
        with unit_of_work(db_url) as db:
            row = appointments.record_call(db, principal(adv), booked, record)
            assert row.retain_until == date(2037, 1, 4)
    with unit_of_work(db_url) as db:
        appt = db.get(Appointment, booked)
        assert appt is not None and appt.status == "completed"
        assert db.scalar(select(func.count()).select_from(CallRecord)) == 1
        conv = db.get(Conversation, appt.conversation_id)
        assert conv is not None
        staff_view = service.messages(db, conv, staff=True)
        note = staff_view[-1]
        assert note.private and note.author_id == adv and note.advisor_name == "李顾问"
        assert "s3://covernet-recordings/2027/01/04/abc.opus" in note.body
        assert "12:34" in note.body and "a" * 64 in note.body and "既往症" in note.body
        customer_view = [m.body for m in service.messages(db, conv, staff=False)]
        assert not any("recordings" in b or "既往症" in b for b in customer_view)


def test_api_each_side_sees_only_their_own(client: Any, db_url: str, frozen: None) -> None:
    from tests.conftest import add_staff

    adv = advisor(db_url, "apiadv", lines=["medical"])
    adv2 = advisor(db_url, "apiadv2", lines=["medical"])
    _hours(db_url, adv)
    _hours(db_url, adv2)
    _customer(db_url, 50)
    _customer(db_url, 51)
    alice = bearer(client, "13912340050", "s3cret-pass")
    bob = bearer(client, "13912340051", "s3cret-pass")

    slots = client.get(
        f"/api/v1/advisors/{adv}/slots", params={"from": "2027-01-04", "line": "medical"}
    )
    assert slots.status_code == 200, slots.text
    body = slots.json()
    assert body["bookable_for_line"] is True
    assert body["slots"][0]["local_start"] == "2027-01-04T10:00"
    odd_line = client.get(f"/api/v1/advisors/{adv}/slots", params={"line": "pets"})
    assert odd_line.status_code == 422
    nobody = client.get("/api/v1/advisors/0190a000-0000-7000-8000-00000000dead/slots")
    assert (nobody.status_code, nobody.json()["error"]) == (404, "unknown_advisor")
    not_licensed = client.get(f"/api/v1/advisors/{adv}/slots", params={"line": "life"})
    assert not_licensed.json()["bookable_for_line"] is False
    made = client.post(
        "/api/v1/appointments",
        headers=alice,
        json={
            "advisor_id": adv,
            "slot_start": body["slots"][0]["start"],
            "kind": "video",
            "topic": "百万医疗",
            "product_line": "medical",
        },
    )
    assert made.status_code == 201, made.text
    appt_id = made.json()["id"]
    bad_line = client.post(
        "/api/v1/appointments",
        headers=bob,
        json={
            "advisor_id": adv,
            "slot_start": body["slots"][1]["start"],
            "kind": "fax",
            "topic": "x",
        },
    )
    assert bad_line.status_code == 422
    assert client.get(f"/api/v1/appointments/{appt_id}", headers=alice).status_code == 200
    assert client.get(f"/api/v1/appointments/{appt_id}", headers=bob).status_code == 404
    assert [a["id"] for a in client.get("/api/v1/me/appointments", headers=alice).json()] == [
        appt_id
    ]
    assert client.get("/api/v1/me/appointments", headers=bob).json() == []

    from covernet.identity import service as identity

    def staff_login(username: str) -> dict[str, str]:
        from covernet.identity.models import User

        with unit_of_work(db_url) as db:
            user = db.scalar(select(User).where(User.username == username))
            assert user is not None
            issued = identity.open_session(db, user, kind="bearer", user_agent="test")
        return {"Authorization": f"Bearer {issued.token}"}

    h1, h2 = staff_login("apiadv"), staff_login("apiadv2")
    assert [a["id"] for a in client.get("/api/v1/desk/appointments", headers=h1).json()] == [
        appt_id
    ]
    assert client.get("/api/v1/desk/appointments", headers=h2).json() == []
    assert client.get(f"/api/v1/appointments/{appt_id}", headers=h2).status_code == 404
    # customers do not use the advisor's routes, nor advisors the booking route
    assert client.get("/api/v1/desk/appointments", headers=alice).status_code == 403
    assert client.post("/api/v1/appointments", headers=h1, json={}).status_code in (403, 422)
    ops_id, _ = add_staff(db_url, "opsappt", Role.ops)
    with clock.frozen(_utc(MONDAY, 10, 45)):
        rec = client.post(
            f"/api/v1/desk/appointments/{appt_id}/call-records",
            headers=h1,
            json={
                "notes": "已电话沟通",
                "recording_ref": "rec/2027/abc.opus",
                "recording_seconds": 60,
                "recording_sha256": "b" * 64,
            },
        )
        assert rec.status_code == 201, rec.text
        assert rec.json()["retain_until"] == "2037-01-04"
    cancel = client.post(f"/api/v1/appointments/{appt_id}/cancel", headers=bob, json={})
    assert cancel.status_code == 404
    assert ops_id
