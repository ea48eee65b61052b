"""Service levels in business hours, complaints' deadline and outcome, the desk_sla
monitor, escalation to supervisors, and merging (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from covernet.consult import monitors, service
from covernet.consult.models import Conversation, State
from covernet.core import clock
from covernet.core.db import unit_of_work
from covernet.core.errors import Conflict
from tests.consult.test_desk_helpers import advisor, principal

pytestmark = pytest.mark.usefixtures("loaded_catalog")

VISITOR = service.Caller(visitor_id="0190a000-0000-7000-8000-0000000000aa")


def _at(minutes: float) -> Any:
    """``minutes`` after 10:00 Beijing time on a Wednesday (business hours 08:00–22:00)."""
    return clock.frozen(datetime(2026, 12, 2, 2, 0, tzinfo=UTC) + timedelta(minutes=minutes))


def _start(db_url: str, body: str, caller: service.Caller = VISITOR) -> str:
    with unit_of_work(db_url) as db:
        conv, _ = service.start(
            db, caller, channel="web", body=body, product_code="medical-million"
        )
        return conv.id


def _clocks(db_url: str, conv_id: str) -> dict[str, str]:
    with unit_of_work(db_url) as db:
        conv = db.get(Conversation, conv_id)
        assert conv is not None
        return {c.name: c.state for c in monitors.clocks_for(db, conv)}


def test_first_response_and_resolution_clocks_in_business_hours(db_url: str) -> None:
    adv = advisor(db_url, "adv", lines=["medical"])
    with _at(0):
        conv_id = _start(db_url, "医疗险等待期多久")
    with _at(10):
        assert _clocks(db_url, conv_id) == {"first_response": "running", "resolution": "running"}
    with _at(25):  # 80 % of 30 minutes used
        assert _clocks(db_url, conv_id)["first_response"] == "near"
        with unit_of_work(db_url) as db:
            figure = monitors.desk_sla(db, clock.today())
        assert (figure.status, figure.value) == ("warning", 0)
    with _at(31):
        assert _clocks(db_url, conv_id)["first_response"] == "breached"
        with unit_of_work(db_url) as db:
            figure = monitors.desk_sla(db, clock.today())
        assert (figure.status, figure.value, figure.items[0].state) == ("breach", 1, "sla_breached")
        assert figure.items[0].href.endswith(conv_id)
    with _at(32), unit_of_work(db_url) as db:
        service.reply(db, principal(adv), conv_id, "等待期30天")
    with _at(40):
        assert _clocks(db_url, conv_id)["first_response"] == "missed"
    with _at(50), unit_of_work(db_url) as db:  # the customer writes again: next response runs
        service.customer_message(db, VISITOR, conv_id, "那意外呢")
    with _at(50 + 61):
        assert _clocks(db_url, conv_id)["next_response"] == "breached"
    # night hours do not count: 22:00 → next 08:00 is no business time
    with _at(12 * 60 + 1):  # 22:01 local
        night = _clocks(db_url, conv_id)
    with _at(21 * 60 + 59):  # 07:59 local, next day
        assert _clocks(db_url, conv_id) == night


def test_complaints_need_an_outcome_and_escalate_when_late(db_url: str) -> None:
    from covernet.crm import teams

    adv = advisor(db_url, "adv", lines=["medical"])
    with _at(0):
        conv_id = _start(db_url, "我要投诉，向监管举报")
    with _at(1), unit_of_work(db_url) as db, pytest.raises(Conflict) as refused:
        service.move(db, principal(adv), conv_id, State.resolved)
    assert refused.value.code == "outcome_required"
    with _at(60 * 24 * 14):
        assert _clocks(db_url, conv_id)["complaint"] == "near"
    with _at(60 * 24 * 16):
        assert _clocks(db_url, conv_id)["complaint"] == "breached"
    # escalation: once, to the advisor's team supervisors
    from covernet.audit import service as audit
    from covernet.notify.models import Notification

    boss = advisor(db_url, "boss", lines=["medical"], availability="offline", name="主管")
    with unit_of_work(db_url) as db:
        teams.create_team(db, teams.TeamIn(code="east", name="华东组"), by=audit.SYSTEM)
        teams.set_member(db, "east", teams.MemberIn(username="adv"), by=audit.SYSTEM)
        teams.set_member(
            db, "east", teams.MemberIn(username="boss", is_supervisor=True), by=audit.SYSTEM
        )
    with _at(60 * 24 * 16), unit_of_work(db_url) as db:
        assert monitors.escalate_breaches(db) == 1
    with _at(60 * 24 * 16), unit_of_work(db_url) as db:
        assert monitors.escalate_breaches(db) == 0  # once per conversation
        assert db.get(Conversation, conv_id).escalated_at is not None  # type: ignore[union-attr]
        told = db.query(Notification).filter_by(topic="desk.escalation").all()
        assert {n.user_id for n in told} == {boss}
    with _at(60 * 24 * 16 + 1), unit_of_work(db_url) as db:
        conv = service.record_outcome(db, principal(adv), conv_id, "已核实，补发理赔款并致歉")
        assert conv.outcome_at is not None
    with _at(60 * 24 * 16 + 2), unit_of_work(db_url) as db:
        service.move(db, principal(adv), conv_id, State.resolved)
    assert _clocks(db_url, conv_id)["complaint"] == "missed"


def test_merge_moves_messages_and_keeps_the_higher_priority(db_url: str) -> None:
    adv = advisor(db_url, "adv", lines=["medical"])
    keep = _start(db_url, "医疗险问题")
    fold = _start(db_url, "家人车祸住院了")
    other = _start(db_url, "别人的问题", service.Caller(visitor_id="someone-else"))
    who = principal(adv)
    with unit_of_work(db_url) as db, pytest.raises(Conflict) as refused:
        service.merge(db, who, other, keep)
    assert refused.value.code == "merge_not_allowed"
    with unit_of_work(db_url) as db:
        target = service.merge(db, who, fold, keep)
        assert target.priority == "urgent"
    with unit_of_work(db_url) as db:
        kept = db.get(Conversation, keep)
        gone = db.get(Conversation, fold)
        assert kept is not None and gone is not None
        assert (gone.state, gone.merged_into_id) == ("resolved", keep)
        bodies = [m.body for m in service.messages(db, kept, staff=True)]
    assert bodies[:2] == ["医疗险问题", "家人车祸住院了"] and bodies[-1] == "merged"
    with unit_of_work(db_url) as db:  # the customer writing to the old one lands in the new
        sent = service.customer_message(db, VISITOR, fold, "还在吗")
        assert sent.conversation_id == keep
