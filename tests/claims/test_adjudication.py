"""Claim cover and amounts: the pure adjudication rules, on the shipped catalog, no database."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import NamedTuple

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from covernet.catalog.loader import load_catalog
from covernet.catalog.pricing import end_date
from covernet.catalog.spec import Coverage, Plan, Product, Term
from covernet.claims.adjudication import (
    PAYMENTS_ALLOWED,
    Assessment,
    Cause,
    ClaimFacts,
    CoverageKind,
    PaidSoFar,
    PolicyState,
    PolicyTerms,
    PolicyYear,
    Reason,
    StepCode,
    allowed_causes,
    assess,
    coverage_kind,
    paid_in_year,
    policy_year,
    shares_plan_limit,
)
from covernet.core.i18n_text import I18nText
from covernet.policies.models import PolicyStatus

ROOT = Path(__file__).resolve().parents[2]
CATALOG = {p.code: p for p in load_catalog(ROOT / "catalog").products}
START = date(2026, 3, 10)
YUAN = 100
D = timedelta(days=1)


def terms(
    product: str | Product,
    plan: str,
    *,
    effective: date = START,
    end: date | None = None,
    waiting_end: date | None = None,
    status: PolicyState = PolicyState.in_force,
    ended_on: date | None = None,
) -> PolicyTerms:
    spec = CATALOG[product] if isinstance(product, str) else product
    if end is None and not any(t.whole_life or t.to_age for t in spec.terms_options):
        end = end_date(spec.terms_options[0], effective, None)
    if waiting_end is None and spec.waiting_period_days:
        waiting_end = effective + timedelta(days=spec.waiting_period_days)
    return PolicyTerms(spec, plan, effective, end, waiting_end, status, ended_on)


def claim(
    coverage: str,
    amount_fen: int,
    *,
    on: date = START + timedelta(days=200),
    cause: Cause = Cause.accident,
    this_year: dict[str, int] | None = None,
    whole_policy: dict[str, int] | None = None,
    deductible_used_fen: int = 0,
) -> ClaimFacts:
    year = this_year or {}
    paid = PaidSoFar(this_year=year, whole_policy=year if whole_policy is None else whole_policy)
    return ClaimFacts(coverage, on, on + 3 * D, cause, amount_fen, paid, deductible_used_fen)


def step(found: Assessment, code: StepCode) -> int:
    return next(s for s in found.steps if s.code is code).amount_fen


# Every (product, plan, coverage) of the shipped catalog, for the properties.
TRIPLES = [
    (product, plan, coverage)
    for product in CATALOG.values()
    for plan in product.plans
    for coverage in plan.coverages
]


def coverage_left(product: Product, coverage: Coverage, facts: ClaimFacts) -> int:
    if coverage_kind(product.line, coverage.code) is CoverageKind.indemnity:
        return coverage.sum_insured_fen - facts.paid.this_year.get(coverage.code, 0)
    times = PAYMENTS_ALLOWED.get((product.code, coverage.code), 1)
    paid = facts.paid.whole_policy.get(coverage.code, 0)
    return min(coverage.sum_insured_fen, coverage.sum_insured_fen * times - paid)


def plan_left(product: Product, plan: Plan, facts: ClaimFacts) -> int:
    shared = [c.code for c in plan.coverages if shares_plan_limit(product, c)]
    return plan.sum_insured_fen - sum(facts.paid.this_year.get(c, 0) for c in shared)


fen = st.integers(min_value=0, max_value=2_000_000_00)


class Case(NamedTuple):
    product: Product
    plan: Plan
    coverage: Coverage
    policy: PolicyTerms
    facts: ClaimFacts

    def __repr__(self) -> str:  # the product itself would print tens of kB
        return f"Case({self.product.code}/{self.plan.code}/{self.coverage.code}, {self.facts!r})"


@st.composite
def cases(draw: st.DrawFn) -> Case:
    product, plan, coverage = draw(st.sampled_from(TRIPLES))
    policy = terms(product, plan.code)
    codes = [c.code for c in plan.coverages]
    this_year = draw(st.dictionaries(st.sampled_from(codes), fen, max_size=len(codes)))
    extra = draw(st.dictionaries(st.sampled_from(codes), fen, max_size=len(codes)))
    whole = {c: this_year.get(c, 0) + extra.get(c, 0) for c in set(this_year) | set(extra)}
    last = policy.end_date or START + timedelta(days=3650)
    first = policy.waiting_period_end + D if policy.waiting_period_end else START
    assume(first <= last)
    facts = claim(
        coverage.code,
        draw(fen),
        on=draw(st.dates(first, last)),
        cause=draw(st.sampled_from(sorted(allowed_causes(product.line, coverage.code)))),
        this_year=this_year,
        whole_policy=whole,
        deductible_used_fen=draw(st.integers(0, 3_000_000)),
    )
    return Case(product, plan, coverage, policy, facts)


# Properties ---------------------------------------------------------------------------


@given(cases())
def test_payable_within_claimed_and_every_limit(
    case: Case,
) -> None:
    product, plan, coverage, policy, facts = case
    found = assess(policy, facts)
    # Inside the period, past the waiting period, with a cause the coverage knows: covered,
    # unless another benefit's payment has ended this one (ci-lifetime death).
    assert found.covered or found.reasons == (Reason.coverage_ended,), found.reasons
    assert 0 <= found.payable_fen <= facts.amount_claimed_fen
    assert found.payable_fen <= max(0, coverage_left(product, coverage, facts))
    assert found.payable_fen <= coverage.sum_insured_fen
    if shares_plan_limit(product, coverage):
        assert found.payable_fen <= max(0, plan_left(product, plan, facts))
    # The steps tell the whole story: each takes its reduction off the one before.
    assert found.steps[0].code is StepCode.claimed
    assert found.steps[0].amount_fen == facts.amount_claimed_fen
    for before, after in zip(found.steps, found.steps[1:], strict=False):
        assert after.amount_fen == before.amount_fen - after.reduction_fen
        assert after.reduction_fen >= 0
    assert found.steps[-1].amount_fen == found.payable_fen
    json.dumps(found.as_dict())


@given(cases(), fen)
def test_payable_monotone_in_amount_claimed(case: Case, more: int) -> None:
    _, _, _, policy, facts = case
    bigger = ClaimFacts(
        facts.coverage_code,
        facts.incident_date,
        facts.report_date,
        facts.cause,
        facts.amount_claimed_fen + more,
        facts.paid,
        facts.deductible_used_fen,
    )
    assert assess(policy, bigger).payable_fen >= assess(policy, facts).payable_fen


@given(cases(), st.data())
def test_payable_falls_as_payments_grow(case: Case, data: st.DataObject) -> None:
    _, plan, _, policy, facts = case
    code = data.draw(st.sampled_from([c.code for c in plan.coverages]))
    more = data.draw(fen)
    this_year = dict(facts.paid.this_year)
    whole = dict(facts.paid.whole_policy)
    this_year[code] = this_year.get(code, 0) + more
    whole[code] = whole.get(code, 0) + more
    richer = ClaimFacts(
        facts.coverage_code,
        facts.incident_date,
        facts.report_date,
        facts.cause,
        facts.amount_claimed_fen,
        PaidSoFar(this_year, whole),
        facts.deductible_used_fen,
    )
    assert assess(policy, richer).payable_fen <= assess(policy, facts).payable_fen


@given(cases(), st.integers(0, 3_000_000))
def test_payable_rises_as_the_deductible_is_used_up(case: Case, more: int) -> None:
    """More of the annual deductible already borne leaves less to bear: never pays less."""
    _, _, _, policy, facts = case
    used = ClaimFacts(
        facts.coverage_code,
        facts.incident_date,
        facts.report_date,
        facts.cause,
        facts.amount_claimed_fen,
        facts.paid,
        facts.deductible_used_fen + more,
    )
    assert assess(policy, used).payable_fen >= assess(policy, facts).payable_fen


@given(st.sampled_from(TRIPLES), st.integers(1, 400))
def test_nothing_outside_the_period(triple: tuple[Product, Plan, Coverage], days: int) -> None:
    product, plan, coverage = triple
    policy = terms(product, plan.code)
    cause = sorted(allowed_causes(product.line, coverage.code))[0]
    before = assess(policy, claim(coverage.code, 100_00, on=START - days * D, cause=cause))
    assert not before.covered
    assert before.reasons[:2] == (Reason.not_in_force_on_incident, Reason.before_effective_date)
    assert before.payable_fen == 0 and before.policy_year is None
    if policy.end_date is not None:
        after = assess(
            policy, claim(coverage.code, 100_00, on=policy.end_date + days * D, cause=cause)
        )
        assert not after.covered
        assert after.reasons[:2] == (Reason.not_in_force_on_incident, Reason.after_end_date)


@given(st.integers(0, 179))
def test_illness_in_waiting_period_is_not_covered_but_an_accident_is(days: int) -> None:
    policy = terms("ci-lifetime", "standard", waiting_end=START + 180 * D)
    on = START + days * D
    illness = assess(policy, claim("death", 500_000_00, on=on, cause=Cause.illness))
    accident = assess(policy, claim("death", 500_000_00, on=on, cause=Cause.accident))
    assert not illness.covered and illness.reasons == (Reason.in_waiting_period,)
    assert accident.covered and accident.payable_fen == 500_000_00


# In force on the incident date ----------------------------------------------------------


def test_cover_runs_from_the_effective_date_to_the_end_date_inclusive() -> None:
    policy = terms("accident-monthly", "basic")
    assert policy.end_date == date(2026, 4, 9)
    for on, covered in (
        (START - D, False),
        (START, True),
        (policy.end_date, True),
        (policy.end_date + D, False),
    ):
        found = assess(policy, claim("accidental-death-disability", 300_000_00, on=on))
        assert found.covered is covered, on


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (PolicyState.cancelled, Reason.policy_cancelled_before_incident),
        (PolicyState.surrendered, Reason.policy_surrendered_before_incident),
        (PolicyState.expired, Reason.after_end_date),
    ],
)
def test_an_ended_policy_covers_up_to_its_last_day(status: PolicyState, reason: Reason) -> None:
    ended = START + 40 * D
    policy = terms("ci-lifetime", "standard", status=status, ended_on=ended)
    on_the_day = assess(policy, claim("death", 500_000_00, on=ended))
    assert on_the_day.covered and on_the_day.payable_fen == 500_000_00
    next_day = assess(policy, claim("death", 500_000_00, on=ended + D))
    assert not next_day.covered
    assert next_day.reasons == (Reason.not_in_force_on_incident, reason)


def test_status_given_as_stored_text_is_understood() -> None:
    policy = PolicyTerms(
        CATALOG["ci-lifetime"],
        "standard",
        START,
        None,
        None,
        "cancelled",  # type: ignore[arg-type]  # as stored on the policy row
        START + D,
    )
    assert policy.status is PolicyState.cancelled
    assert {s.value for s in PolicyState} == {s.value for s in PolicyStatus}
    facts = ClaimFacts("death", START, START, "illness", 1)  # type: ignore[arg-type]
    assert facts.cause is Cause.illness


def test_malformed_inputs_are_refused() -> None:
    product = CATALOG["ci-lifetime"]
    with pytest.raises(ValueError, match="ended_on"):
        PolicyTerms(product, "standard", START, None, None, PolicyState.in_force, START)
    with pytest.raises(ValueError, match="ended_on"):
        PolicyTerms(product, "standard", START, None, None, PolicyState.surrendered)
    with pytest.raises(ValueError, match="no plan"):
        PolicyTerms(product, "gold", START, None, None)
    with pytest.raises(ValueError, match="end_date"):
        PolicyTerms(product, "standard", START, START - D, None)
    with pytest.raises(ValueError, match="amount_claimed_fen"):
        ClaimFacts("death", START, START, Cause.illness, -1)
    with pytest.raises(ValueError, match="report_date"):
        ClaimFacts("death", START, START - D, Cause.illness, 1)
    with pytest.raises(ValueError, match="paid"):
        PaidSoFar(this_year={"death": -5})


def test_unknown_coverage_and_wrong_causes() -> None:
    found = assess(terms("medical-million", "standard"), claim("dental", 100_00))
    assert not found.covered and found.reasons == (Reason.unknown_coverage,) and found.kind is None
    # A hospital stay is an accident or an illness, never an "event" (no side-stepping the
    # waiting period), and accidental death pays for accidents only; sudden death is illness.
    medical = terms("medical-million", "standard")
    event = assess(medical, claim("general-hospital", 100_00, cause=Cause.event))
    assert event.reasons == (Reason.cause_not_covered,)
    accident = terms("accident-monthly", "basic")
    ill = assess(
        accident, claim("accidental-death-disability", 100_00, on=START, cause=Cause.illness)
    )
    assert ill.reasons == (Reason.cause_not_covered,)
    assert assess(accident, claim("sudden-death", 100_00, on=START, cause=Cause.illness)).covered


def test_waiting_period_boundaries_on_the_shipped_medical_product() -> None:
    policy = terms("medical-million", "standard")
    assert policy.waiting_period_end == START + 30 * D
    last = policy.waiting_period_end
    inside = assess(policy, claim("general-hospital", 30_000_00, on=last, cause=Cause.illness))
    assert not inside.covered and inside.reasons == (Reason.in_waiting_period,)
    after = assess(policy, claim("general-hospital", 30_000_00, on=last + D, cause=Cause.illness))
    assert after.covered and after.payable_fen == 20_000_00
    accident = assess(policy, claim("general-hospital", 30_000_00, on=START, cause=Cause.accident))
    assert accident.covered and accident.payable_fen == 20_000_00
    renewal = terms("medical-million", "standard", waiting_end=None)
    renewal = PolicyTerms(renewal.product, "standard", START, renewal.end_date, None)
    assert assess(
        renewal, claim("general-hospital", 30_000_00, on=START, cause=Cause.illness)
    ).covered


# Amounts on the shipped catalog ------------------------------------------------------------


def test_medical_million_annual_deductible() -> None:
    policy = terms("medical-million", "standard")
    found = assess(policy, claim("general-hospital", 30_000 * YUAN))
    assert found.kind is CoverageKind.indemnity
    assert found.after_deductible_fen == found.payable_fen == 20_000 * YUAN
    assert [(s.code.value, s.amount_fen, s.reduction_fen, s.limit_fen) for s in found.steps] == [
        ("claimed", 30_000_00, 0, None),
        ("deductible", 20_000_00, 10_000_00, 10_000_00),
        ("copay", 20_000_00, 0, None),
        ("coverage_limit", 20_000_00, 0, 500_000_00),
        ("plan_limit", 20_000_00, 0, 500_000_00),
    ]
    # Partly used this year (an earlier claim, or what social insurance paid).
    partly = assess(policy, claim("general-hospital", 30_000_00, deductible_used_fen=4_000_00))
    assert partly.payable_fen == 24_000_00
    used_up = assess(policy, claim("general-hospital", 3_000_00, deductible_used_fen=12_000_00))
    assert used_up.payable_fen == 3_000_00 and used_up.reasons == ()
    under = assess(policy, claim("general-hospital", 8_000_00))
    assert under.covered and under.payable_fen == 0
    assert under.reasons == (Reason.nothing_payable_after_deductible,)


def test_medical_million_coverages_share_the_plan_limit() -> None:
    policy = terms("medical-million", "standard")
    ci = assess(policy, claim("critical-illness-hospital", 100_000_00, cause=Cause.illness))
    assert ci.payable_fen == 100_000_00  # no deductible
    paid = {"general-hospital": 450_000_00}
    shared = assess(
        policy,
        claim("critical-illness-hospital", 100_000_00, cause=Cause.illness, this_year=paid),
    )
    assert shared.payable_fen == 50_000_00
    assert shared.reasons == (Reason.capped_by_plan_limit,)
    assert shared.steps[-1].limit_fen == 50_000_00
    full = {"general-hospital": 300_000_00, "critical-illness-hospital": 200_000_00}
    gone = assess(policy, claim("general-hospital", 50_000_00, this_year=full))
    assert gone.covered and gone.payable_fen == 0 and gone.reasons == (Reason.limit_exhausted,)


def test_travel_medical_deductible_is_per_event_and_benefits_stand_apart() -> None:
    essential = terms("travel-medical", "essential")
    assert essential.end_date == START + 6 * D
    on = START + 2 * D
    first = assess(essential, claim("overseas-medical", 2_000_00, on=on))
    again = assess(
        essential, claim("overseas-medical", 2_000_00, on=on, deductible_used_fen=500_00)
    )
    assert first.payable_fen == again.payable_fen == 1_500_00
    evacuation = assess(
        essential,
        claim("emergency-evacuation", 80_000_00, on=on, this_year={"overseas-medical": 250_000_00}),
    )
    assert evacuation.kind is CoverageKind.indemnity and evacuation.payable_fen == 50_000_00
    plus = terms("travel-medical", "plus")
    death = assess(
        plus,
        claim("accidental-death", 300_000_00, on=on, this_year={"overseas-medical": 1_000_000_00}),
    )
    assert death.kind is CoverageKind.benefit and death.payable_fen == 300_000_00
    assert [s.code for s in death.steps] == [StepCode.claimed, StepCode.coverage_limit]


def test_fixed_benefits() -> None:
    accident = terms("accident-monthly", "basic")
    share = assess(
        accident, claim("accidental-death-disability", 90_000_00, on=START)
    )  # grade: 30%
    assert share.kind is CoverageKind.benefit and share.payable_fen == 90_000_00
    too_much = assess(accident, claim("accidental-death-disability", 400_000_00, on=START))
    assert too_much.payable_fen == 300_000_00
    assert too_much.reasons == (Reason.capped_by_coverage_limit,)
    flight = terms("flight-delay", "standard")
    assert flight.end_date == START + D
    delay = assess(flight, claim("delay", 200_00, on=START, cause=Cause.event))
    assert delay.covered and delay.payable_fen == 200_00


def test_ci_lifetime_benefits_over_the_whole_policy() -> None:
    policy = terms("ci-lifetime", "standard")
    year_6 = START + 5 * 365 * D + 10 * D
    once = {"critical-illness": 500_000_00}
    # Paid in year 2; the new year's figures are empty, but the benefit has ended.
    ended = assess(
        policy,
        claim("critical-illness", 500_000_00, on=year_6, this_year={}, whole_policy=once),
    )
    assert ended.covered and ended.payable_fen == 0 and ended.reasons == (Reason.limit_exhausted,)
    death = assess(policy, claim("death", 500_000_00, on=year_6, this_year={}, whole_policy=once))
    assert not death.covered and death.reasons == (Reason.coverage_ended,)
    # Mild conditions: 150,000 yuan each, three times in all.
    for times_paid, payable in ((0, 150_000_00), (2, 150_000_00), (3, 0)):
        found = assess(
            policy,
            claim(
                "mild-illness",
                200_000_00,
                on=year_6,
                cause=Cause.illness,
                whole_policy={"mild-illness": times_paid * 150_000_00},
            ),
        )
        assert found.payable_fen == payable, times_paid


def test_property_lines_reimburse_up_to_the_limit() -> None:
    shipping = terms("return-shipping", "standard")
    assert (
        assess(shipping, claim("return-freight", 18_00, on=START, cause=Cause.event)).payable_fen
        == 18_00
    )
    capped = assess(shipping, claim("return-freight", 30_00, on=START, cause=Cause.event))
    assert capped.payable_fen == 25_00 and capped.reasons == (Reason.capped_by_coverage_limit,)
    screen = terms("screen-guard", "phone-3k")
    second = assess(screen, claim("screen-repair", 1_200_00, this_year={"screen-repair": 1_200_00}))
    assert second.payable_fen == 300_00


def _with_copay(percent: int) -> Product:
    data = CATALOG["medical-million"].model_dump(mode="json")
    data["plans"][0]["coverages"][0]["copay_percent"] = percent
    return Product.model_validate(data)


def test_copay_insurer_pays_the_floor_of_its_share() -> None:
    policy = terms(_with_copay(20), "standard")
    # 10,000 yuan deductible, then 80% of 12,347.47 yuan = 9,877.976 yuan: the insurer pays
    # 9,877.97 and the customer bears 2,469.50 (the fraction of a fen stays with them).
    found = assess(policy, claim("general-hospital", 22_347_47))
    assert found.after_deductible_fen == 12_347_47
    assert found.after_copay_fen == found.payable_fen == 9_877_97
    copay = next(s for s in found.steps if s.code is StepCode.copay)
    assert copay.percent == 20 and copay.reduction_fen == 2_469_50
    whole = assess(terms(_with_copay(100), "standard"), claim("general-hospital", 22_347_47))
    assert whole.payable_fen == 0


@given(st.integers(0, 10_000_000_00), st.integers(0, 100))
def test_copay_arithmetic(after_deductible: int, percent: int) -> None:
    policy = terms(_COPAY[percent], "standard")
    found = assess(policy, claim("general-hospital", after_deductible + 10_000_00))
    insurer = step(found, StepCode.copay)
    assert insurer == after_deductible * (100 - percent) // 100
    assert insurer * 100 <= after_deductible * (100 - percent) < (insurer + 1) * 100


_COPAY = {p: _with_copay(p) for p in range(101)}


def test_shipped_benefits_declare_no_deductible_or_copay() -> None:
    for product, _, coverage in TRIPLES:
        if coverage_kind(product.line, coverage.code) is CoverageKind.benefit:
            assert coverage.deductible_fen == 0 and coverage.copay_percent == 0, coverage.code


# Policy years -------------------------------------------------------------------------


def test_policy_years_around_anniversaries() -> None:
    assert policy_year(START, START) == PolicyYear(1, START, date(2027, 3, 9))
    assert policy_year(START, date(2027, 3, 9)).index == 1
    assert policy_year(START, date(2027, 3, 10)) == PolicyYear(
        2, date(2027, 3, 10), date(2028, 3, 9)
    )
    leap = date(2024, 2, 29)
    assert policy_year(leap, date(2025, 2, 28)) == PolicyYear(1, leap, date(2025, 2, 28))
    assert policy_year(leap, date(2025, 3, 1)).index == 2
    assert policy_year(leap, date(2028, 2, 28)) == PolicyYear(
        4, date(2027, 3, 1), date(2028, 2, 28)
    )
    assert policy_year(leap, date(2028, 2, 29)) == PolicyYear(
        5, leap.replace(year=2028), date(2029, 2, 28)
    )
    assert policy_year(date(2023, 3, 1), date(2024, 2, 29)).index == 1
    assert policy_year(date(2023, 2, 28), date(2024, 2, 28)).index == 2
    with pytest.raises(ValueError):
        policy_year(START, START - D)


@given(st.dates(date(2000, 1, 1), date(2090, 12, 31)), st.integers(1, 40))
def test_policy_years_match_the_cover_period_of_whole_years(effective: date, years: int) -> None:
    """Year n ends exactly where a policy of n years ends (catalog.pricing.end_date)."""
    last = end_date(Term(code="ny", label=I18nText(zh="n年"), years=years), effective, None)
    assert last is not None
    assert policy_year(effective, last).index == years
    assert policy_year(effective, last).end == last
    assert policy_year(effective, last + D) == PolicyYear(
        years + 1, last + D, policy_year(effective, last + D).end
    )


@given(st.dates(date(2000, 1, 1), date(2090, 12, 31)), st.integers(0, 40 * 366))
def test_policy_year_contains_the_day(effective: date, days: int) -> None:
    on = effective + days * D
    year = policy_year(effective, on)
    assert year.start <= on <= year.end
    assert year.index >= 1 and (year.index == 1) == (year.start == effective)
    assert year.index == 1 or policy_year(effective, year.start - D).index == year.index - 1


def test_paid_in_year_buckets_payments_by_their_incident_year() -> None:
    leap = date(2024, 2, 29)
    rows = [
        ("general-hospital", 100_00, date(2025, 2, 28)),  # year 1
        ("general-hospital", 200_00, date(2025, 3, 1)),  # year 2
        ("critical-illness-hospital", 300_00, date(2026, 2, 28)),  # year 2
        ("general-hospital", None, date(2025, 6, 1)),  # not yet assessed
    ]
    paid = paid_in_year(rows, leap, date(2025, 12, 1))
    assert paid.this_year == {"general-hospital": 200_00, "critical-illness-hospital": 300_00}
    assert paid.whole_policy == {"general-hospital": 300_00, "critical-illness-hospital": 300_00}
    assert paid_in_year(rows, leap, date(2024, 3, 1)).this_year == {"general-hospital": 100_00}
