"""Instant underwriting and suitability rules (pure)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from covernet.catalog.loader import load_catalog
from covernet.catalog.spec import Kind, Line, Product
from covernet.underwriting import rules

ROOT = Path(__file__).resolve().parents[2]
LIMITS = rules.load_limits(ROOT / "catalog" / "rules" / "underwriting.yaml")
CATALOG = {p.code: p for p in load_catalog(ROOT / "catalog").products}
ACCIDENT = CATALOG["accident-monthly"]
MEDICAL = CATALOG["medical-million"]
YUAN = 100


def case(product: Product = ACCIDENT, **over: object) -> rules.Case:
    base: dict[str, object] = {
        "product": product,
        "plan_code": product.plans[0].code,
        "sum_insured_fen": product.plans[0].sum_insured_fen,
        "premium_fen": 500,
        "age": 30,
        "occupation_class": 1,
        "health_answers": {q.code: False for q in product.health_questions},
    }
    base.update(over)
    return rules.Case(**base)  # type: ignore[arg-type]


def accident(total_yuan: int) -> rules.Holding:
    return rules.Holding("accident-monthly", Line.accident, Kind.protection, total_yuan * YUAN)


def test_clean_case_is_accepted() -> None:
    assert rules.decide(case(), LIMITS) == rules.ACCEPT


def test_eligibility_on_the_effective_date() -> None:
    assert rules.decide(case(age=61), LIMITS).reason == "age_out_of_range"
    assert rules.decide(case(age=17), LIMITS).reason == "age_out_of_range"
    assert rules.decide(case(occupation_class=5), LIMITS).reason == "occupation_not_covered"


def test_health_answers_decline_or_refer_by_question() -> None:
    answers = {q.code: False for q in MEDICAL.health_questions}
    declined = rules.decide(
        case(MEDICAL, health_answers={**answers, "major-diagnoses": True}), LIMITS
    )
    assert (declined.outcome, declined.detail) == ("decline", {"question": "major-diagnoses"})
    referred = rules.decide(
        case(MEDICAL, health_answers={**answers, "pending-hospital": True}), LIMITS
    )
    assert (referred.outcome, referred.reason) == ("refer", "health_review")
    both = {**answers, "pending-hospital": True, "congenital": True}
    assert rules.decide(case(MEDICAL, health_answers=both), LIMITS).outcome == "decline"


def test_accumulation_edges() -> None:
    plus = 1_000_000 * YUAN
    at_refer = case(sum_insured_fen=plus, holdings=[accident(2_000_000)])
    assert rules.decide(at_refer, LIMITS) == rules.ACCEPT  # exactly 3,000,000: not above
    over_refer = case(sum_insured_fen=plus, holdings=[accident(2_000_001)])
    assert rules.decide(over_refer, LIMITS).reason == "accumulation_review"
    at_max = case(sum_insured_fen=plus, holdings=[accident(4_000_000)])
    assert rules.decide(at_max, LIMITS).outcome == "refer"
    over_max = case(sum_insured_fen=plus, holdings=[accident(4_000_001)])
    assert rules.decide(over_max, LIMITS).reason == "accumulation_exceeded"
    other_line = rules.Holding("medical-million", Line.medical, Kind.protection, 10**12)
    assert rules.decide(case(holdings=[other_line]), LIMITS) == rules.ACCEPT


def test_gift_limits() -> None:
    gift = rules.Holding("accident-monthly", Line.accident, Kind.protection, 300_000 * YUAN, True)
    assert rules.decide(case(gifted=True, holdings=[gift] * 2), LIMITS) == rules.ACCEPT
    assert (
        rules.decide(case(gifted=True, holdings=[gift] * 3), LIMITS).reason == "gift_limit_reached"
    )
    assert (
        rules.decide(case(gifted=True, premium_fen=10_001), LIMITS).reason
        == "gift_premium_too_high"
    )


@given(
    st.lists(st.integers(min_value=0, max_value=3_000_000), max_size=6),
    st.integers(min_value=0, max_value=3_000_000),
)
def test_more_cover_held_never_makes_a_decision_milder(held: list[int], extra: int) -> None:
    severity = {"accept": 0, "refer": 1, "decline": 2}
    before = rules.decide(case(holdings=[accident(y) for y in held]), LIMITS)
    after = rules.decide(case(holdings=[accident(y) for y in [*held, extra]]), LIMITS)
    assert severity[after.outcome] >= severity[before.outcome]


def test_suitability_warnings() -> None:
    held = [rules.Holding("medical-million", Line.medical, Kind.protection, 1)]
    assert rules.suitability(MEDICAL, age=30, premium_fen=6000, long_term=False, holdings=held) == [
        "duplicate_indemnity"
    ]
    annuity = CATALOG["annuity-participating"]
    warnings = rules.suitability(
        annuity, age=62, premium_fen=9_200_000, long_term=True, holdings=[]
    )
    assert warnings == ["affordability", "senior_long_term", "uncertain_benefits"]
    assert (
        rules.suitability(ACCIDENT, age=30, premium_fen=500, long_term=False, holdings=held) == []
    )
