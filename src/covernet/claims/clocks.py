"""The statutory clocks of a claim (R21, 保险法 Art 22–25): pure.

- decision: decide within 30 days of complete documents;
- payment: pay within 10 days of agreement (approval);
- denial notice: a reasoned notice within 3 days of deciding to decline;
- advance payment: after 60 days from complete documents without a decision, pay the
  part that can be determined.

Each clock has a start, a due date (Beijing time), and is ``running``, ``near`` (within
``near_breach_days`` of its end), ``breached`` (past due, not met), ``met`` or
``met_late``; a clock whose start has not happened is not listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from covernet.claims.rules import Clocks
from covernet.core import clock as core_clock

State = Literal["running", "near", "breached", "met", "met_late"]


@dataclass(frozen=True)
class Moments:
    documents_complete_at: datetime | None
    decided_at: datetime | None
    agreed_at: datetime | None
    denial_notice_at: datetime | None
    paid_at: datetime | None
    declined: bool


@dataclass(frozen=True)
class ClockState:
    name: str  # decision | payment | denial_notice | advance_payment
    started: date
    due: date
    state: State
    done: date | None

    @property
    def urgent(self) -> bool:
        return self.state in ("near", "breached")


def _local(moment: datetime) -> date:
    return core_clock.to_local(moment).date()


def _clock(
    name: str, start: datetime, days: int, done: datetime | None, today: date, near: int
) -> ClockState:
    started = _local(start)
    due = started + timedelta(days=days)
    if done is not None:
        finished = _local(done)
        return ClockState(name, started, due, "met" if finished <= due else "met_late", finished)
    if today > due:
        state: State = "breached"
    elif (due - today).days <= near:
        state = "near"
    else:
        state = "running"
    return ClockState(name, started, due, state, None)


def clocks_of(m: Moments, rules: Clocks, today: date) -> list[ClockState]:
    out = []
    near = rules.near_breach_days
    if m.documents_complete_at is not None:
        out.append(
            _clock(
                "decision", m.documents_complete_at, rules.decision_days, m.decided_at, today, near
            )
        )
        out.append(
            _clock(
                "advance_payment",
                m.documents_complete_at,
                rules.advance_payment_days,
                m.decided_at,
                today,
                near,
            )
        )
    if m.agreed_at is not None:
        out.append(_clock("payment", m.agreed_at, rules.payment_days, m.paid_at, today, near))
    if m.declined and m.decided_at is not None:
        out.append(
            _clock(
                "denial_notice",
                m.decided_at,
                rules.denial_notice_days,
                m.denial_notice_at,
                today,
                near,
            )
        )
    return out


def urgency(states: list[ClockState]) -> tuple[int, date]:
    """Sort key for the claims board: breached first, then near, then by due date."""
    rank = {"breached": 0, "near": 1, "running": 2, "met_late": 3, "met": 4}
    open_ = [s for s in states if s.state in ("breached", "near", "running")]
    if not open_:
        return (9, date.max)
    worst = min(open_, key=lambda s: (rank[s.state], s.due))
    return (rank[worst.state], worst.due)
