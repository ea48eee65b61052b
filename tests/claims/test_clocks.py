"""Statutory clocks (R21) and the stage report's arithmetic: pure."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from covernet.claims.board import percentile, stage_durations
from covernet.claims.clocks import Moments, clocks_of, urgency
from covernet.claims.rules import Clocks

RULES = Clocks(
    decision_days=30,
    payment_days=10,
    denial_notice_days=3,
    advance_payment_days=60,
    near_breach_days=3,
)
T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)  # 10:00 in Beijing


def moments(**over: object) -> Moments:
    base: dict[str, object] = {
        "documents_complete_at": T0,
        "decided_at": None,
        "agreed_at": None,
        "denial_notice_at": None,
        "paid_at": None,
        "declined": False,
    }
    base.update(over)
    return Moments(**base)  # type: ignore[arg-type]


def states(m: Moments, today: date) -> dict[str, str]:
    return {c.name: c.state for c in clocks_of(m, RULES, today)}


def test_no_clock_before_its_start() -> None:
    assert clocks_of(moments(documents_complete_at=None), RULES, date(2026, 3, 2)) == []


def test_decision_clock_running_near_breached_met() -> None:
    start = date(2026, 3, 1)
    assert states(moments(), start)["decision"] == "running"
    assert states(moments(), start + timedelta(days=27))["decision"] == "near"
    assert states(moments(), start + timedelta(days=30))["decision"] == "near"  # last day
    assert states(moments(), start + timedelta(days=31))["decision"] == "breached"
    decided = moments(decided_at=T0 + timedelta(days=29))
    assert states(decided, start + timedelta(days=90))["decision"] == "met"
    late = moments(decided_at=T0 + timedelta(days=31))
    assert states(late, start + timedelta(days=90))["decision"] == "met_late"


def test_payment_and_denial_notice_clocks() -> None:
    agreed = moments(decided_at=T0, agreed_at=T0)
    assert states(agreed, date(2026, 3, 12))["payment"] == "breached"
    assert (
        states(moments(decided_at=T0, agreed_at=T0, paid_at=T0), date(2026, 4, 1))["payment"]
        == "met"
    )
    declined = moments(decided_at=T0, declined=True)
    assert states(declined, date(2026, 3, 5))["denial_notice"] == "breached"
    noticed = moments(decided_at=T0, declined=True, denial_notice_at=T0)
    assert states(noticed, date(2026, 3, 5))["denial_notice"] == "met"


def test_advance_payment_after_60_days() -> None:
    assert states(moments(), date(2026, 4, 20))["advance_payment"] == "running"
    assert states(moments(), date(2026, 4, 29))["advance_payment"] == "near"
    assert states(moments(), date(2026, 5, 1))["advance_payment"] == "breached"


def test_board_urgency_breached_before_near_before_running() -> None:
    breached = clocks_of(moments(), RULES, date(2026, 4, 5))
    near = clocks_of(moments(), RULES, date(2026, 3, 29))
    running = clocks_of(moments(), RULES, date(2026, 3, 2))
    assert urgency(breached) < urgency(near) < urgency(running) < urgency([])


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=50))
def test_percentiles_are_values_in_order(values: list[float]) -> None:
    median, p90 = percentile(values, 0.5), percentile(values, 0.9)
    assert median in values and p90 in values
    assert min(values) <= median <= p90 <= max(values)


def test_stage_durations_from_the_timeline() -> None:
    events = [
        ("c1", "reported", T0),
        ("c1", "accepted", T0 + timedelta(hours=2)),
        ("c1", "paid", T0 + timedelta(hours=5)),
        ("c2", "reported", T0),
    ]
    spent = stage_durations(events, now=T0 + timedelta(hours=10))
    assert spent["reported"] == [2.0, 10.0]  # c2 is still waiting: it counts until now
    assert spent["accepted"] == [3.0]
    assert "paid" not in spent  # resting in a final stage is not a delay
