"""The claims board and the stage report (R21).

The board lists open claims by urgency: a breached statutory clock first, then clocks
near their end, then the soonest due.  The report shows, over a period, the median and
p90 time claims spent in each stage, so managers see where delays accumulate.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from covernet.claims import clocks, rules, service
from covernet.claims.models import Claim, ClaimEvent
from covernet.core import clock

TERMINAL = ("paid", "closed", "withdrawn", "declined")


@dataclass(frozen=True)
class BoardRow:
    claim: Claim
    clocks: list[clocks.ClockState]
    rank: tuple[int, date]
    waiting_on: str


def board(db: Session, today: date | None = None, limit: int = 200) -> list[BoardRow]:
    today = today or clock.today()
    rows = db.scalars(
        select(Claim).where(Claim.stage.not_in(TERMINAL)).order_by(Claim.reported_at).limit(2000)
    )
    found = []
    for claim in rows:
        states = service.clocks_of(claim, today)
        found.append(BoardRow(claim, states, clocks.urgency(states), service.waiting_on(db, claim)))
    # Declined claims whose denial notice is overdue still belong on the board.
    found.sort(key=lambda r: (r.rank, r.claim.reported_at))
    return found[:limit]


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (``share`` in 0..1) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class StageTime:
    stage: str
    count: int
    median_hours: float
    p90_hours: float


def stage_durations(
    events: Iterable[tuple[str, str, datetime]], now: datetime
) -> dict[str, list[float]]:
    """Hours spent in each stage, from (claim id, stage entered, when) in time order; a
    stage still current counts until ``now``."""
    by_claim: dict[str, list[tuple[str, datetime]]] = defaultdict(list)
    for claim_id, stage, at in events:
        by_claim[claim_id].append((stage, at))
    spent: dict[str, list[float]] = defaultdict(list)
    for steps in by_claim.values():
        for (stage, entered), following in zip(steps, [*steps[1:], None], strict=True):
            left = following[1] if following is not None else now
            if stage in TERMINAL and following is None:
                continue  # resting in a final stage is not a delay
            spent[stage].append(max(0.0, (left - entered).total_seconds() / 3600))
    return spent


def stage_report(db: Session, since: datetime, until: datetime) -> list[StageTime]:
    """Median and p90 hours per stage for claims reported in [since, until)."""
    rows = db.execute(
        select(ClaimEvent.claim_id, ClaimEvent.stage_to, ClaimEvent.at)
        .join(Claim, Claim.id == ClaimEvent.claim_id)
        .where(Claim.reported_at >= since, Claim.reported_at < until)
        .order_by(ClaimEvent.claim_id, ClaimEvent.id)
    ).all()
    events = [(r[0], r[1], clock.as_utc(r[2])) for r in rows]
    spent = stage_durations(_distinct_stages(events), min(clock.now(), until))
    order = [s.code for s in rules.current().stages]
    return [
        StageTime(
            stage, len(hours), round(percentile(hours, 0.5), 1), round(percentile(hours, 0.9), 1)
        )
        for stage in order
        if (hours := spent.get(stage))
    ]


def _distinct_stages(
    events: list[tuple[str, str, datetime]],
) -> list[tuple[str, str, datetime]]:
    """Drop repeated entries into the stage a claim is already in (补充材料 loops stay in
    材料审核: the time runs on)."""
    out: list[tuple[str, str, datetime]] = []
    for event in events:
        if out and out[-1][0] == event[0] and out[-1][1] == event[1]:
            continue
        out.append(event)
    return out
