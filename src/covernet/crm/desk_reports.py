"""Desk reports (pure): volume by channel and hour, first-response and resolution times
(median, p90), SLA hit rate, CSAT, the assistant's resolution and hand-off rates and
per-advisor figures, from the conversations the desk returns; and the layout of the
page's inline SVG charts. No database here: tested with plain rows.

The SLA counts business minutes (the desk's calendar: ISO weekdays and opening hours
in Asia/Shanghai): a conversation hits when its first response came within the first
response allowance and, once resolved, its resolution within the resolution allowance.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class Row:
    """One conversation as the report needs it."""

    channel: str
    created_at: datetime
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    csat_score: int | None = None
    assignee_id: str | None = None
    assignee_name: str | None = None


@dataclass(frozen=True)
class Calendar:
    """Business hours: ISO weekdays (1 = Monday) and the daily window, local time."""

    days: frozenset[int] = frozenset(range(1, 8))
    start: time = time(0, 0)
    end: time = time(23, 59, 59, 999999)
    zone: ZoneInfo = SHANGHAI


@dataclass(frozen=True)
class SlaTargets:
    first_response_minutes: int
    resolution_hours: int
    calendar: Calendar = field(default_factory=Calendar)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in (0, 1]); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def business_minutes(start: datetime, end: datetime, cal: Calendar) -> float:
    """Minutes between ``start`` and ``end`` that fall in business hours."""
    if end <= start:
        return 0.0
    local_start, local_end = start.astimezone(cal.zone), end.astimezone(cal.zone)
    total = 0.0
    day = local_start.date()
    while day <= local_end.date():
        if day.isoweekday() in cal.days:
            open_at = datetime.combine(day, cal.start, cal.zone)
            close_at = datetime.combine(day, cal.end, cal.zone)
            lo, hi = max(open_at, local_start), min(close_at, local_end)
            if hi > lo:
                total += (hi - lo).total_seconds() / 60
        day += timedelta(days=1)
    return total


def hit(row: Row, targets: SlaTargets) -> bool | None:
    """Whether the conversation met its SLA; None while it cannot be told yet (no first
    response and still within the allowance is not counted)."""
    cal = targets.calendar
    if row.first_response_at is None:
        return None
    if business_minutes(row.created_at, row.first_response_at, cal) > (
        targets.first_response_minutes
    ):
        return False
    if row.resolved_at is not None:
        return business_minutes(row.created_at, row.resolved_at, cal) <= (
            targets.resolution_hours * 60
        )
    return True


@dataclass(frozen=True)
class Times:
    count: int
    median: float | None
    p90: float | None


def _times(values: list[float]) -> Times:
    return Times(
        len(values),
        None if not values else round(median(values) or 0.0, 1),
        None if not values else round(percentile(values, 0.9) or 0.0, 1),
    )


@dataclass(frozen=True)
class AdvisorFigures:
    advisor_id: str
    name: str
    handled: int
    resolved: int
    first_response_minutes: Times
    sla_hit: int
    sla_total: int
    csat_average: float | None
    csat_count: int


@dataclass(frozen=True)
class BotFigures:
    asked: int
    answered: int
    handed_off: int

    @property
    def resolution_rate(self) -> float | None:
        return None if not self.asked else round(self.answered / self.asked, 3)

    @property
    def handoff_rate(self) -> float | None:
        return None if not self.asked else round(self.handed_off / self.asked, 3)


@dataclass(frozen=True)
class Report:
    total: int
    by_channel: dict[str, int]
    by_hour: list[int]  # 24 counts, local hour of arrival
    first_response_minutes: Times
    resolution_hours: Times
    sla_hit: int
    sla_total: int
    csat_average: float | None
    csat_count: int
    csat_scores: dict[int, int]
    bot: BotFigures
    advisors: list[AdvisorFigures]

    @property
    def sla_rate(self) -> float | None:
        return None if not self.sla_total else round(self.sla_hit / self.sla_total, 3)


def _minutes(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds() / 60


def _csat(rows: Iterable[Row]) -> tuple[float | None, int, dict[int, int]]:
    scores = [r.csat_score for r in rows if r.csat_score is not None and 1 <= r.csat_score <= 5]
    dist = {s: 0 for s in range(1, 6)} | dict(Counter(scores))
    return (round(sum(scores) / len(scores), 2) if scores else None), len(scores), dist


def report(
    rows: Iterable[Row],
    targets: SlaTargets,
    bot: BotFigures | None = None,
    *,
    zone: ZoneInfo = SHANGHAI,
) -> Report:
    found = list(rows)
    by_hour = [0] * 24
    for r in found:
        by_hour[r.created_at.astimezone(zone).hour] += 1
    hits = [h for h in (hit(r, targets) for r in found) if h is not None]
    avg, n, dist = _csat(found)
    return Report(
        total=len(found),
        by_channel=dict(sorted(Counter(r.channel for r in found).items())),
        by_hour=by_hour,
        first_response_minutes=_times(
            [_minutes(r.created_at, r.first_response_at) for r in found if r.first_response_at]
        ),
        resolution_hours=_times(
            [_minutes(r.created_at, r.resolved_at) / 60 for r in found if r.resolved_at]
        ),
        sla_hit=sum(hits),
        sla_total=len(hits),
        csat_average=avg,
        csat_count=n,
        csat_scores=dist,
        bot=bot or BotFigures(0, 0, 0),
        advisors=_advisors(found, targets),
    )


def _advisors(rows: list[Row], targets: SlaTargets) -> list[AdvisorFigures]:
    mine: dict[str, list[Row]] = {}
    for r in rows:
        if r.assignee_id is not None:
            mine.setdefault(r.assignee_id, []).append(r)
    out = []
    for advisor_id, own in mine.items():
        hits = [h for h in (hit(r, targets) for r in own) if h is not None]
        avg, n, _ = _csat(own)
        out.append(
            AdvisorFigures(
                advisor_id=advisor_id,
                name=next((r.assignee_name for r in own if r.assignee_name), advisor_id),
                handled=len(own),
                resolved=sum(1 for r in own if r.resolved_at is not None),
                first_response_minutes=_times(
                    [
                        _minutes(r.created_at, r.first_response_at)
                        for r in own
                        if r.first_response_at
                    ]
                ),
                sla_hit=sum(hits),
                sla_total=len(hits),
                csat_average=avg,
                csat_count=n,
            )
        )
    return sorted(out, key=lambda a: (-a.handled, a.name, a.advisor_id))


# Charts -------------------------------------------------------------------------------

CHART_WIDTH = 640
BAR_AREA = 200


def hour_chart(by_hour: Sequence[int]) -> dict[str, object]:
    """24 vertical bars (local hour of arrival) laid out for an SVG viewBox."""
    top = max(by_hour, default=0) or 1
    step = CHART_WIDTH / 24
    bars = [
        {
            "hour": h,
            "x": round(h * step + 2, 1),
            "width": round(step - 4, 1),
            "height": round(BAR_AREA * n / top, 1),
            "y": round(20 + BAR_AREA - BAR_AREA * n / top, 1),
            "count": n,
            "label_x": round(h * step + step / 2, 1),
        }
        for h, n in enumerate(by_hour)
    ]
    return {"width": CHART_WIDTH, "height": BAR_AREA + 44, "base": BAR_AREA + 20, "bars": bars}


def channel_chart(by_channel: dict[str, int]) -> dict[str, object]:
    """Horizontal bars per channel, largest first."""
    items = sorted(by_channel.items(), key=lambda kv: (-kv[1], kv[0]))
    top = max((n for _, n in items), default=0) or 1
    bars = [
        {
            "channel": name,
            "y": 10 + i * 30,
            "text_y": 10 + i * 30 + 17,
            "width": max(1.0, round(400 * n / top, 1)),
            "count": n,
        }
        for i, (name, n) in enumerate(items)
    ]
    return {
        "width": CHART_WIDTH,
        "height": 20 + 30 * len(bars),
        "bars": bars,
        "bar_x": 130,
        "value_x": 540,
    }
