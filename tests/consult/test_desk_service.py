"""The desk's rules on SQLite and PostgreSQL: the state machine, automatic priority,
routing by skill/load/availability/license, R1 refusals, R2 snapshots, CSAT."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

from covernet.consult import csat, priority, service
from covernet.consult.models import Conversation, State
from covernet.core import clock
from covernet.core.db import unit_of_work
from covernet.core.errors import Conflict, CovernetError, NotFound
from covernet.identity.models import Role
from tests.conftest import add_staff
from tests.consult.test_desk_helpers import advisor, principal

pytestmark = pytest.mark.usefixtures("loaded_catalog")

VISITOR = service.Caller(visitor_id="0190a000-0000-7000-8000-000000000001")


def _start(db_url: str, body: str, product_code: str | None = None, caller: Any = VISITOR) -> str:
    with unit_of_work(db_url) as db:
        conv, _ = service.start(db, caller, channel="web", body=body, product_code=product_code)
        return conv.id


def _conv(db_url: str, conversation_id: str) -> Conversation:
    with unit_of_work(db_url) as db:
        conv = db.get(Conversation, conversation_id)
        assert conv is not None
        db.expunge(conv)
        return conv


def test_rules_raise_priority_and_detect_complaints_and_lines() -> None:
    rules = priority.current()
    urgent = priority.classify("我要去12378投诉你们", rules)
    assert (urgent.priority.value, urgent.kind and urgent.kind.value) == ("urgent", "complaint")
    assert priority.classify("家人车祸住院了怎么办", rules).priority.value == "urgent"
    assert priority.classify("我的理赔怎么这么慢", rules).reason == "claims_trouble"
    assert priority.classify("拒赔了", rules).priority.value == "high"
    calm = priority.classify("百万医疗的等待期多久", rules)
    assert (calm.priority.value, calm.kind) == ("normal", None)
    # never lowered: a high conversation stays high on a calm message
    from covernet.consult.models import Priority

    assert priority.classify("谢谢", rules, Priority.high).priority is Priority.high
    assert priority.detect_line("重疾险保哪些病", rules).value == "critical_illness"
    assert priority.detect_line("你好", rules) is None


def test_state_machine_moves_and_refuses_bad_transitions(db_url: str) -> None:
    adv = advisor(db_url, "adv1")
    conv_id = _start(db_url, "医疗险怎么买", "medical-million")
    who = principal(adv)
    with unit_of_work(db_url) as db:
        conv = service.move(db, who, conv_id, State.pending)
        assert conv.state == "pending"
    with unit_of_work(db_url) as db, pytest.raises(CovernetError) as bad:
        service.move(db, who, conv_id, State.snoozed, snooze_until=clock.now() - timedelta(hours=1))
    assert bad.value.code == "bad_snooze_until"
    with unit_of_work(db_url) as db:
        service.move(db, who, conv_id, State.resolved)
    with unit_of_work(db_url) as db, pytest.raises(Conflict) as refused:
        service.move(db, who, conv_id, State.pending)
    assert refused.value.code == "bad_transition"
    assert refused.value.detail == {"from": "resolved", "to": "pending"}
    assert _conv(db_url, conv_id).resolved_at is not None
    # the customer writing again reopens it
    with unit_of_work(db_url) as db:
        service.customer_message(db, VISITOR, conv_id, "还有一个问题")
    assert _conv(db_url, conv_id).state == "open"


def test_snoozed_conversations_wake_up(db_url: str) -> None:
    adv = advisor(db_url, "adv1")
    conv_id = _start(db_url, "你好")
    with unit_of_work(db_url) as db:
        service.move(
            db,
            principal(adv),
            conv_id,
            State.snoozed,
            snooze_until=clock.now() + timedelta(hours=2),
        )
    with unit_of_work(db_url) as db:
        assert service.wake_snoozed(db) == 0
    with clock.shifted(timedelta(hours=3)), unit_of_work(db_url) as db:
        assert service.wake_snoozed(db) == 1
    assert _conv(db_url, conv_id).state == "open"


def test_priority_kind_and_complaint_deadline_set_on_arrival(db_url: str) -> None:
    conv_id = _start(db_url, "你们是骗子，我要向监管投诉")
    conv = _conv(db_url, conv_id)
    assert (conv.kind, conv.priority, conv.priority_reason) == ("complaint", "urgent", "complaint")
    assert conv.complaint_due_at is not None
    assert (conv.complaint_due_at - conv.created_at).days == priority.current().complaint_days
    claims_id = _start(db_url, "理赔进度怎么还没到")
    assert _conv(db_url, claims_id).priority == "high"


def test_routing_by_skill_load_availability_and_license(db_url: str) -> None:
    busy = advisor(db_url, "busy", lines=["medical"])
    free = advisor(db_url, "free", lines=["medical"])
    advisor(db_url, "away", lines=["medical"], availability="away")
    advisor(db_url, "expired", lines=["medical"], valid_days=-1)
    advisor(db_url, "wrongline", lines=["travel"], skills=["medical"])  # skill without license
    advisor(db_url, "nolicense", lines=["medical"], licensed=False)
    advisor(db_url, "travel", lines=["travel"])
    first = _conv(db_url, _start(db_url, "医疗险问题一", "medical-million")).assignee_id
    assert first in {busy, free}
    second = _conv(db_url, _start(db_url, "医疗险问题二", "medical-million")).assignee_id
    assert {first, second} == {busy, free}  # the less loaded one gets the next
    for n in range(6):
        got = _conv(db_url, _start(db_url, f"医疗险问题{n}", "medical-million")).assignee_id
        assert got in {busy, free, None}
    with unit_of_work(db_url) as db:
        assigned = {c.assignee_id for c in db.query(Conversation).all()}
    assert assigned <= {busy, free, None}  # never away, expired, out of scope or unlicensed
    # each holds at most max_open (5): 8 conversations → at most 10 places, all taken in turn
    with unit_of_work(db_url) as db:
        from covernet.consult import routing

        assert routing.active_count(db, busy) <= 5 and routing.active_count(db, free) <= 5
    travel_conv = _conv(db_url, _start(db_url, "我想出境旅行买保险"))  # line from keywords
    assert travel_conv.product_line == "travel"


def test_full_agents_leave_conversations_in_the_queue(db_url: str) -> None:
    adv = advisor(db_url, "solo", lines=["medical"], max_open=1)
    one = _conv(db_url, _start(db_url, "医疗一", "medical-million"))
    two = _conv(db_url, _start(db_url, "医疗二", "medical-million"))
    assert (one.assignee_id, two.assignee_id) == (adv, None)


def test_two_conversations_at_once_never_exceed_max_open(db_url: str) -> None:
    adv = advisor(db_url, "solo", lines=["medical"], max_open=1)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def arrive(n: int) -> None:
        try:
            barrier.wait()
            _start(db_url, f"医疗问题{n}", "medical-million")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=arrive, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with unit_of_work(db_url) as db:
        rows = db.query(Conversation).all()
    assert len(rows) == 4
    assert [c.assignee_id for c in rows].count(adv) == 1


def test_unlicensed_sales_advice_is_refused_and_r2_block_is_snapshotted(db_url: str) -> None:
    good = advisor(db_url, "good", lines=["medical"], name="王顾问")
    ops, _ = add_staff(db_url, "ops1", Role.ops)
    conv_id = _start(db_url, "百万医疗保什么", "medical-million")
    assert _conv(db_url, conv_id).assignee_id == good
    with unit_of_work(db_url) as db, pytest.raises(CovernetError) as refused:
        service.reply(db, principal(ops, Role.ops), conv_id, "这款产品很适合你")
    assert refused.value.code == "unlicensed" and refused.value.status == 403
    assert "license" in refused.value.message
    # a private note needs no license
    with unit_of_work(db_url) as db:
        note = service.reply(db, principal(ops, Role.ops), conv_id, "注意核实", private=True)
        assert note.private
    with unit_of_work(db_url) as db, pytest.raises(Conflict) as same:
        service.transfer(db, principal(ops, Role.ops), conv_id, good)
    assert same.value.code == "already_assigned"


def test_r2_snapshot_and_wrong_line_refusal(db_url: str) -> None:
    from covernet.compliance.models import AdvisorLicense

    good = advisor(db_url, "good", lines=["medical"], name="王顾问")
    conv_id = _start(db_url, "百万医疗保什么", "medical-million")
    with unit_of_work(db_url) as db:
        sent = service.reply(db, principal(good), conv_id, "保住院医疗费用")
        assert (sent.advisor_name, sent.advisor_institution) == (
            "王顾问",
            "示例安心财产保险股份有限公司",
        )
        license_no = sent.advisor_license_no
        assert license_no
        sent_id = sent.id
    with unit_of_work(db_url) as db:  # the license lapses later: the old message keeps it
        row = db.query(AdvisorLicense).filter_by(advisor_id=good).one()
        row.valid_until = clock.today() - timedelta(days=1)
    with unit_of_work(db_url) as db, pytest.raises(CovernetError) as lapsed:
        service.reply(db, principal(good), conv_id, "还有什么问题吗")
    assert lapsed.value.code == "license_expired"
    with unit_of_work(db_url) as db:
        from covernet.consult.models import ConversationMessage

        kept = db.get(ConversationMessage, sent_id)
        assert kept is not None and kept.advisor_license_no == license_no
        assert _conv(db_url, conv_id).first_response_at is not None
    travel = advisor(db_url, "trav", lines=["travel"], skills=["medical"], availability="offline")
    other = _start(db_url, "医疗险二", "medical-million")
    with unit_of_work(db_url) as db, pytest.raises(CovernetError) as out_of_scope:
        service.reply(db, principal(travel), other, "我来回答")
    assert out_of_scope.value.code == "license_out_of_scope"


def test_transfer_only_to_licensed_agents_with_room(db_url: str) -> None:
    first = advisor(db_url, "first", lines=["medical"])
    second = advisor(db_url, "second", lines=["medical"], availability="offline")
    travel = advisor(db_url, "trav", lines=["travel"], availability="offline")
    conv_id = _start(db_url, "医疗险", "medical-million")
    assert _conv(db_url, conv_id).assignee_id == first
    with unit_of_work(db_url) as db, pytest.raises(Conflict) as refused:
        service.transfer(db, principal(first), conv_id, travel)
    assert refused.value.code == "license_out_of_scope"
    with unit_of_work(db_url) as db:
        service.transfer(db, principal(first), conv_id, second)
    assert _conv(db_url, conv_id).assignee_id == second
    with unit_of_work(db_url) as db, pytest.raises(NotFound):  # no longer first's
        service.get_for_staff(db, principal(first), conv_id)


def test_advisors_see_their_own_and_their_lines_queue(db_url: str) -> None:
    med = advisor(db_url, "med", lines=["medical"], max_open=1)
    trav = advisor(db_url, "trav", lines=["travel"], availability="offline")
    mine = _start(db_url, "医疗一", "medical-million")
    queued = _start(db_url, "医疗二", "medical-million")  # med is full: waits in the queue
    with unit_of_work(db_url) as db:
        seen_med = {c.id for c in service.inbox(db, principal(med))}
        seen_trav = {c.id for c in service.inbox(db, principal(trav))}
        everything = {c.id for c in service.inbox(db, principal(med, Role.ops))}
    assert seen_med == {mine, queued}
    assert seen_trav == set()
    assert everything == {mine, queued}
    with unit_of_work(db_url) as db, pytest.raises(NotFound):
        service.get_for_staff(db, principal(trav), mine)


def test_csat_only_after_resolution_and_once(db_url: str) -> None:
    from tests.conftest import CUSTOMER

    with unit_of_work(db_url) as db:
        from covernet.identity import service as identity

        user = identity.register_customer(db, **CUSTOMER)
        caller = service.Caller(customer_id=user.id)
    adv = advisor(db_url, "adv", lines=["medical"])
    conv_id = _start(db_url, "医疗险", "medical-million", caller=caller)
    data = csat.CsatIn(score=5, comment="很好")
    with unit_of_work(db_url) as db, pytest.raises(Conflict) as early:
        csat.submit(db, service.get_for_caller(db, caller, conv_id), data)
    assert early.value.code == "csat_not_open"
    with unit_of_work(db_url) as db:
        service.move(db, principal(adv), conv_id, State.resolved)
    with unit_of_work(db_url) as db:
        from covernet.notify.models import Notification

        asked = db.query(Notification).filter_by(user_id=user.id, topic="desk.csat").all()
        assert len(asked) == 1
        survey = [m for m in service.messages(db, _conv(db_url, conv_id), staff=False)]
        assert survey[-1].purpose == "csat_request"
    with unit_of_work(db_url) as db:
        csat.submit(db, service.get_for_caller(db, caller, conv_id), data)
    with unit_of_work(db_url) as db, pytest.raises(Conflict) as twice:
        csat.submit(db, service.get_for_caller(db, caller, conv_id), csat.CsatIn(score=1))
    assert twice.value.code == "csat_already_given"
    assert _conv(db_url, conv_id).csat_score == 5


def test_handoff_and_customer_summaries(db_url: str) -> None:
    from tests.conftest import CUSTOMER

    with unit_of_work(db_url) as db:
        from covernet.identity import service as identity

        user = identity.register_customer(db, **CUSTOMER)
    adv = advisor(db_url, "adv", lines=["medical"], name="李顾问")
    with unit_of_work(db_url) as db:
        conv_id = service.open_handoff(
            db,
            customer_id=user.id,
            channel="assistant",
            transcript=[("customer", "百万医疗能报销门诊吗"), ("bot", "我不确定，为您转人工")],
            subject="门诊报销",
        )
    with unit_of_work(db_url) as db:
        rows = service.messages(db, _conv(db_url, conv_id), staff=True)
        assert [m.author_kind for m in rows] == ["customer", "bot", "system"]
        summaries = service.conversations_of_customer(db, user.id)
    assert [(s.id, s.channel, s.assignee_name) for s in summaries] == [
        (conv_id, "assistant", "李顾问")
    ]
    assert _conv(db_url, conv_id).assignee_id == adv
    with unit_of_work(db_url) as db, pytest.raises(CovernetError) as bad:
        service.open_handoff(
            db, customer_id=None, channel="assistant", transcript=[("agent", "x")], subject="s"
        )
    assert bad.value.code == "bad_transcript_role"
