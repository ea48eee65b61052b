"""The appointment pages on SQLite and PostgreSQL: a customer books from the phone
page's slot picker, sees and cancels it; the advisor sees it on the desk and records
the call notes and recording reference, which appear in the conversation."""

from __future__ import annotations

import re
from typing import Any

import pytest

from covernet.consult import appointments, service
from covernet.consult.appointment_models import Appointment
from covernet.consult.models import Conversation
from covernet.core import clock
from covernet.core.db import unit_of_work
from covernet.identity.models import Role
from tests.conftest import sign_in_with_cookie
from tests.consult.test_appointments import HOURS, MONDAY, MONDAY_0910, _customer, _utc
from tests.consult.test_desk_helpers import advisor, principal

pytestmark = pytest.mark.usefixtures("loaded_catalog")


@pytest.fixture
def frozen() -> Any:
    with clock.frozen(MONDAY_0910):
        yield


def test_customer_books_on_the_page_and_the_advisor_records_the_call(
    client: Any, anon_client: Any, db_url: str, frozen: None
) -> None:
    adv = advisor(db_url, "pageadv", lines=["medical"], name="周顾问")
    with unit_of_work(db_url) as db:
        appointments.set_weekly(db, principal(adv), HOURS)
    cust = _customer(db_url, 60)

    # not signed in: to the login page and back
    away = anon_client.get(f"/advisors/{adv}/book", follow_redirects=False)
    assert (
        away.status_code == 303 and away.headers["location"] == f"/login?next=/advisors/{adv}/book"
    )

    csrf = sign_in_with_cookie(client, db_url, cust)
    page = client.get(f"/advisors/{adv}/book")
    assert page.status_code == 200
    html = page.text
    assert "预约电话/视频咨询" in html and "周顾问" in html and "执业证编号" in html
    assert "示例安心财产保险股份有限公司" in html
    assert 'name="viewport"' in html  # the phone layout of base.html
    offered = re.findall(r'name="slot_start" value="([^"]+)"', html)
    assert offered[0] == _utc(MONDAY, 10).isoformat() and len(offered) == 3
    assert '<script src="http' not in html  # nothing from a CDN
    english = client.get(f"/advisors/{adv}/book?lang=en")
    assert "Book a phone or video call" in english.text
    assert "预约电话/视频咨询" in client.get(f"/advisors/{adv}/book?lang=zh").text

    # no time chosen: the form comes back with the problem, nothing booked
    missing = client.post(
        f"/advisors/{adv}/book",
        data={"csrf_token": csrf, "kind": "phone", "topic": "医疗险", "product_line": "medical"},
    )
    assert missing.status_code == 400 and "请选择一个时间" in missing.text
    done = client.post(
        f"/advisors/{adv}/book",
        data={
            "csrf_token": csrf,
            "slot_start": offered[0],
            "kind": "video",
            "topic": "百万医疗险能保既往症吗",
            "product_line": "medical",
        },
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    assert done.headers["location"].startswith("/me/appointments?booked=")
    mine = client.get(done.headers["location"])
    assert "百万医疗险能保既往症吗" in mine.text and "已预约" in mine.text
    again = client.get(f"/advisors/{adv}/book")
    assert offered[0] not in again.text  # taken

    with unit_of_work(db_url) as db:
        row = db.query(Appointment).one()
        appt_id, conv_id = row.id, row.conversation_id

    desk = anon_client
    desk_csrf = sign_in_with_cookie(desk, db_url, adv)
    listing = desk.get("/console/desk/appointments")
    assert listing.status_code == 200
    assert (
        f'data-appointment="{appt_id}"' in listing.text and "百万医疗险能保既往症吗" in listing.text
    )
    assert "客户60" not in listing.text  # the customer's name is masked
    assert f"/console/desk/{conv_id}" in listing.text
    with clock.frozen(_utc(MONDAY, 10, 35)):
        bad = desk.post(
            f"/console/desk/appointments/{appt_id}/record",
            data={"csrf_token": desk_csrf, "recording_ref": "data:audio/ogg;base64,AA"},
        )
        assert bad.status_code == 400 and "不能是录音内容本身" in bad.text
        saved = desk.post(
            f"/console/desk/appointments/{appt_id}/record",
            data={
                "csrf_token": desk_csrf,
                "notes": "已说明既往症免责",
                "recording_ref": "oss://rec/2027/01/04/x.opus",
                "recording_seconds": "300",
                "recording_sha256": "c" * 64,
            },
            follow_redirects=False,
        )
        assert saved.status_code == 303, saved.text
    with unit_of_work(db_url) as db:
        conv = db.get(Conversation, conv_id)
        assert conv is not None
        timeline = service.messages(db, conv, staff=True)
        assert timeline[-1].private and "oss://rec/2027/01/04/x.opus" in timeline[-1].body
        assert "5:00" in timeline[-1].body

    # the customer's page is theirs only: another customer's cancel is refused
    stranger = _customer(db_url, 61)
    from starlette.testclient import TestClient

    with TestClient(client.app, base_url="https://testserver") as other:
        other_csrf = sign_in_with_cookie(other, db_url, stranger)
        refused = other.post(f"/me/appointments/{appt_id}/cancel", data={"csrf_token": other_csrf})
        assert refused.status_code == 404
        assert appt_id not in other.get("/me/appointments").text
        # and customers have no desk page
        assert other.get("/console/desk/appointments").status_code == 403
    assert Role.customer


def test_customer_cancels_from_the_page(client: Any, db_url: str, frozen: None) -> None:
    adv = advisor(db_url, "pageadv2")
    with unit_of_work(db_url) as db:
        appointments.set_weekly(db, principal(adv), HOURS)
    cust = _customer(db_url, 62)
    with unit_of_work(db_url) as db:
        row = appointments.book(
            db,
            principal(cust, Role.customer),
            appointments.BookingIn(
                advisor_id=adv, slot_start=_utc(MONDAY, 10, 30), kind="phone", topic="理赔材料"
            ),
        )
        appt_id = row.id
    csrf = sign_in_with_cookie(client, db_url, cust)
    listed = client.get("/me/appointments").text
    assert f'action="/me/appointments/{appt_id}/cancel"' in listed and "取消预约" in listed
    gone = client.post(
        f"/me/appointments/{appt_id}/cancel", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert gone.status_code == 303
    with unit_of_work(db_url) as db:
        found = db.get(Appointment, appt_id)
        assert found is not None and (found.status, found.cancelled_by) == ("cancelled", "customer")
