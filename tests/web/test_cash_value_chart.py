"""The cash value chart: cash value against premiums paid, where a product has both."""

from __future__ import annotations

from typing import Any

import pytest

from covernet.web.views import cash_value_chart
from tests.catalog.helpers import product


def test_chart_geometry_follows_the_table() -> None:
    cash = product("ci-lifetime").cash_values
    chart = cash_value_chart(cash, "zh")
    assert chart is not None and cash is not None
    value_points = [tuple(map(float, p.split(","))) for p in chart["value_points"].split()]
    paid_points = [tuple(map(float, p.split(","))) for p in chart["paid_points"].split()]
    assert len(value_points) == len(paid_points) == len(cash.rows)
    # x grows with the policy year; the last year sits at the right edge.
    assert [p[0] for p in value_points] == sorted(p[0] for p in value_points)
    assert value_points[-1][0] == pytest.approx(chart["right"])
    # SVG y grows downwards: higher cash value, smaller y.
    assert value_points[0][1] > value_points[-1][1]
    # Premiums stop after 20 years: the paid line is flat from then on.
    after = [p for r, p in zip(cash.rows, paid_points, strict=True) if r.policy_year >= 20]
    assert len({p[1] for p in after}) == 1
    # Cash value first reaches premiums paid at the end of year 25 in the demo table.
    assert "第25年末" in chart["summary"]


def test_no_chart_without_reference_premiums() -> None:
    assert cash_value_chart(None, "zh") is None
    cash = product("ci-lifetime").cash_values
    assert cash is not None
    bare = cash.model_copy(update={"annual_premium_fen": None, "payment_years": None})
    assert cash_value_chart(bare, "en") is None


def test_the_product_page_draws_the_chart(client: Any) -> None:
    page = client.get("/products/annuity-participating", headers={"accept": "text/html"}).text
    assert 'class="chart__value"' in page and 'class="chart__paid"' in page
    assert "现金价值始终低于已交保费" in page
    english = client.get("/products/ci-lifetime?lang=en", headers={"accept": "text/html"}).text
    assert "end of year 25" in english
    medical = client.get("/products/medical-million", headers={"accept": "text/html"}).text
    assert "chart__value" not in medical


@pytest.mark.parametrize(
    ("value", "ceiling"),
    [(1, 1), (9, 10), (10, 10), (11, 20), (21, 25), (26, 50), (51, 100), (101, 200),
     (41_000_000, 50_000_000)],
)  # fmt: skip
def test_axis_maximum_is_a_round_number_at_or_above_the_data(value: int, ceiling: int) -> None:
    from covernet.web.views import _nice_ceiling

    assert _nice_ceiling(value) == ceiling
