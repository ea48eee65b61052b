"""What leaving a policy pays (R17, R18): pure rules."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from covernet.catalog.loader import load_catalog
from covernet.catalog.spec import Frequency
from covernet.policies.surrender import PolicyFacts, surrender_quote

ROOT = Path(__file__).resolve().parents[2]
CATALOG = {p.code: p for p in load_catalog(ROOT / "catalog").products}
CI = CATALOG["ci-lifetime"]
ACCIDENT = CATALOG["accident-monthly"]
START = date(2026, 1, 10)


def monthly(**over: object) -> PolicyFacts:
    base: dict[str, object] = {
        "premium_fen": 500,
        "frequency": Frequency.monthly,
        "effective_date": START,
        "end_date": date(2026, 2, 9),
        "cooling_off_end": None,
    }
    base.update(over)
    return PolicyFacts(**base)  # type: ignore[arg-type]


def test_cooling_off_refunds_premium_less_fee() -> None:
    facts = monthly(
        premium_fen=821_000,
        frequency=Frequency.annual,
        end_date=None,
        cooling_off_end=START + timedelta(days=14),
    )
    quote = surrender_quote(CI, facts, START + timedelta(days=14))
    assert quote.basis == "cooling_off"
    assert quote.fee_fen == CI.cooling_off_fee_fen <= 1000
    assert quote.amount_fen == 821_000 - CI.cooling_off_fee_fen
    after = surrender_quote(CI, facts, START + timedelta(days=15))
    assert after.basis == "cash_value" and after.amount_fen < quote.amount_fen


def test_before_cover_starts_everything_comes_back() -> None:
    quote = surrender_quote(ACCIDENT, monthly(), START - timedelta(days=1))
    assert (quote.basis, quote.amount_fen) == ("not_started", 500)


def test_unearned_premium_pro_rata() -> None:
    # 31 days of cover (10 Jan to 9 Feb); leaving on the 9th day keeps 22 days unused.
    quote = surrender_quote(ACCIDENT, monthly(), START + timedelta(days=8))
    assert quote.basis == "unearned_premium" and quote.amount_fen == 500 * 22 // 31
    assert surrender_quote(ACCIDENT, monthly(), date(2026, 2, 9)).amount_fen == 0
    assert quote.documents and quote.processing_days == ACCIDENT.surrender.processing_days


def test_cash_value_follows_the_table_scaled_by_premium() -> None:
    facts = monthly(premium_fen=1_642_000, frequency=Frequency.annual, end_date=None)
    table = {r.policy_year: r.value_fen for r in CI.cash_values.rows}  # type: ignore[union-attr]
    three_years = surrender_quote(CI, facts, date(2029, 1, 10))
    assert three_years.amount_fen == table[3] * 2  # twice the reference premium
    half_year = surrender_quote(CI, facts, date(2026, 7, 10))
    assert 0 < half_year.amount_fen < table[1] * 2


@given(st.integers(min_value=0, max_value=40), st.integers(min_value=1, max_value=1_000_000))
def test_unearned_premium_is_never_more_than_paid(day: int, premium: int) -> None:
    quote = surrender_quote(ACCIDENT, monthly(premium_fen=premium), START + timedelta(days=day))
    assert 0 <= quote.amount_fen <= premium


@given(st.integers(min_value=0, max_value=60 * 365))
def test_cash_value_never_falls_within_the_table(days: int) -> None:
    facts = monthly(premium_fen=821_000, frequency=Frequency.annual, end_date=None)
    on = START + timedelta(days=days)
    later = surrender_quote(CI, facts, on + timedelta(days=1)).amount_fen
    assert later >= surrender_quote(CI, facts, on).amount_fen
