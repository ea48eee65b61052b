"""Desk report aggregation (pure, no database) and the report page (SQLite and
PostgreSQL): percentiles, business-hour SLA, CSAT, per advisor, the bot's rates, charts."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from covernet.crm import desk_reports as dr
from covernet.identity.models import Role
from tests.conftest import sign_in_with_cookie
from tests.crm.test_teams import make_team, staff

# 2026-12-01 is a Tuesday; 02:00 UTC is 10:00 in Shanghai.
T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
DESK = dr.Calendar(days=frozenset({1, 2, 3, 4, 5}), start=time(8, 0), end=time(22, 0))
TARGETS = dr.SlaTargets(first_response_minutes=30, resolution_hours=24, calendar=DESK)


def _row(minutes: float | None, hours: float | None = None, **over: Any) -> dr.Row:
    at = over.pop("at", T0)
    return dr.Row(
        channel=over.pop("channel", "web"),
        created_at=at,
        first_response_at=None if minutes is None else at + timedelta(minutes=minutes),
        resolved_at=None if hours is None else at + timedelta(hours=hours),
        **over,
    )


def test_percentiles() -> None:
    values = [float(v) for v in range(1, 11)]
    assert dr.median(values) == 5.5 and dr.percentile(values, 0.9) == 9.0
    assert dr.median([3.0]) == dr.percentile([3.0], 0.9) == 3.0
    assert dr.median([]) is None and dr.percentile([], 0.5) is None


def test_business_minutes_skip_nights_and_weekends() -> None:
    evening = datetime(2026, 12, 1, 13, 50, tzinfo=UTC)  # Tue 21:50 Shanghai
    assert dr.business_minutes(evening, evening + timedelta(hours=11), DESK) == 10 + 50
    friday = datetime(2026, 12, 4, 13, 0, tzinfo=UTC)  # Fri 21:00
    monday = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)  # Mon 09:00
    assert dr.business_minutes(friday, monday, DESK) == 60 + 60
    assert dr.business_minutes(monday, friday, DESK) == 0.0


def test_sla_hits_and_misses() -> None:
    assert dr.hit(_row(10), TARGETS) is True
    assert dr.hit(_row(45), TARGETS) is False
    assert dr.hit(_row(10, 50), TARGETS) is False  # Tue 10:00 to Thu 12:00: 30 business h
    assert dr.hit(_row(10, 30), TARGETS) is True  # to Wed 16:00: 30 wall hours, 20 business
    assert dr.hit(_row(None), TARGETS) is None  # not answered yet: not counted
    # a question at night answered next morning within 30 business minutes hits
    night = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)  # 00:00 Shanghai
    late = dr.Row("web", night, first_response_at=night + timedelta(hours=8, minutes=20))
    assert dr.hit(late, TARGETS) is True


def test_the_report() -> None:
    rows = [
        _row(5, 2, channel="web", csat_score=5, assignee_id="a", assignee_name="顾问甲"),
        _row(50, None, channel="web", csat_score=3, assignee_id="a", assignee_name="顾问甲"),
        _row(20, 3, channel="wechat", csat_score=4, assignee_id="b", assignee_name="顾问乙"),
        _row(None, channel="email"),
        _row(10, at=T0 + timedelta(hours=5), channel="web", csat_score=9),  # bad score ignored
    ]
    r = dr.report(rows, TARGETS, dr.BotFigures(asked=10, answered=7, handed_off=3))
    assert r.total == 5 and r.by_channel == {"email": 1, "wechat": 1, "web": 3}
    assert r.by_hour[10] == 4 and r.by_hour[15] == 1 and sum(r.by_hour) == 5
    assert r.first_response_minutes.count == 4  # 5, 50, 20, 10 minutes
    assert (r.first_response_minutes.median, r.first_response_minutes.p90) == (15.0, 50.0)
    assert (r.resolution_hours.median, r.resolution_hours.p90) == (2.5, 3.0)
    assert r.sla_total == 4 and r.sla_hit == 3 and r.sla_rate == 0.75
    assert (r.csat_average, r.csat_count) == (4.0, 3)
    assert r.csat_scores == {1: 0, 2: 0, 3: 1, 4: 1, 5: 1}
    assert r.bot.resolution_rate == 0.7 and r.bot.handoff_rate == 0.3
    assert [(a.name, a.handled, a.resolved, a.sla_hit, a.sla_total) for a in r.advisors] == [
        ("顾问甲", 2, 1, 1, 2),
        ("顾问乙", 1, 1, 1, 1),
    ]
    assert r.advisors[0].first_response_minutes.median == 27.5
    empty = dr.report([], TARGETS)
    assert empty.sla_rate is None and empty.csat_average is None and empty.bot.handoff_rate is None


@given(st.lists(st.integers(min_value=0, max_value=2000), min_size=1, max_size=60))
def test_median_and_p90_are_values_in_order(values: list[int]) -> None:
    rows = [_row(float(v)) for v in values]
    times = dr.report(rows, TARGETS).first_response_minutes
    assert times.count == len(values)
    assert times.median is not None and times.p90 is not None
    assert min(values) <= times.median <= times.p90 <= max(values)
    assert times.p90 in [float(v) for v in values]
    below = sum(1 for v in values if v <= times.p90)
    assert below >= 0.9 * len(values)


def test_charts_scale_to_the_largest() -> None:
    hours = dr.hour_chart([0] * 10 + [4, 2] + [0] * 12)
    bars = {b["hour"]: b for b in hours["bars"]}  # type: ignore[attr-defined]
    assert len(bars) == 24 and bars[10]["height"] == dr.BAR_AREA
    assert bars[11]["height"] == dr.BAR_AREA / 2 and bars[0]["height"] == 0
    channels = dr.channel_chart({"web": 3, "email": 6})
    assert [b["channel"] for b in channels["bars"]] == ["email", "web"]  # type: ignore[attr-defined]


def test_the_report_page(client: Any, db_url: str) -> None:
    _, ops = staff(client, db_url, "ops1", Role.ops)
    advisor, _ = staff(client, db_url, "adv-a", Role.advisor)
    sup, _ = staff(client, db_url, "sup-s", Role.advisor)
    ops_id, _ = staff(client, db_url, "ops2", Role.ops)
    make_team(client, ops, "east", {"adv-a": False, "sup-s": True})
    sign_in_with_cookie(client, db_url, advisor)
    refused = client.get("/console/desk/reports")
    assert refused.status_code == 403 and "坐席报表仅供" in refused.text
    sign_in_with_cookie(client, db_url, sup)
    page = client.get("/console/desk/reports?days=30")
    assert page.status_code == 200 and "坐席报表" in page.text
    assert 'data-chart="hours"' in page.text and "<script" not in page.text
    sign_in_with_cookie(client, db_url, ops_id)
    english = client.get("/console/desk/reports?lang=en")
    assert english.status_code == 200 and "Desk reports" in english.text
    assert 'data-figure="total">0<' in english.text


def test_the_report_api(client: Any, db_url: str) -> None:
    _, ops = staff(client, db_url, "ops1", Role.ops)
    _, advisor = staff(client, db_url, "adv-a", Role.advisor)
    got = client.get("/api/v1/desk/reports?days=30", headers=ops)
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["total"] == 0 and len(body["by_hour"]) == 24 and body["sla_rate"] is None
    assert set(body["bot"]) >= {"asked", "resolution_rate", "handoff_rate"}
    refused = client.get("/api/v1/desk/reports", headers=advisor)
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden_reports"


def test_the_report_counts_the_desks_conversations(
    client: Any, db_url: str, customer: dict[str, str]
) -> None:
    from covernet.consult import service as desk
    from covernet.core.db import unit_of_work

    _, ops = staff(client, db_url, "ops1", Role.ops)
    with unit_of_work(db_url) as db:
        for text in ("请问犹豫期是多久", "理赔进度怎么查"):
            desk.start(db, desk.Caller(customer_id=customer["id"]), channel="web", body=text)
    body = client.get("/api/v1/desk/reports?days=1", headers=ops).json()
    assert body["total"] == 2 and body["by_channel"] == {"web": 2}
    assert sum(body["by_hour"]) == 2 and body["first_response_minutes"]["count"] == 0
    page = client.get("/console/desk/reports", headers=ops)
    assert page.status_code == 200 and 'data-channel="web"' in page.text
