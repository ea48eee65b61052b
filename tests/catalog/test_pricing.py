"""Premium calculation against an independent reference model of the rules.

The reference model below restates the pricing contract from scratch: 周岁 ages counted
by birthdays on the effective date, premium rows looked up by band, and the order in
which a quote is refused.  Hypothesis drives both with random insureds and dates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from covernet.catalog.pricing import (
    Insured,
    QuoteRejected,
    add_months,
    end_date,
    is_on_sale,
    price,
    price_from,
)
from covernet.catalog.spec import Frequency, Gender, Plan, Product, SaleStatus
from covernet.core.cn_identity import age_on
from covernet.core.regions import PROVINCES

from .helpers import make_product, product, shipped

PRODUCTS = sorted(shipped().products, key=lambda p: p.code)
MEDICAL = product("medical-million")
CI = product("ci-lifetime")
ACCIDENT = product("accident-monthly")
SHIPPING = product("return-shipping")
STOPPING = product("account-security")
TRAVEL = product("travel-medical")
SHANGHAI = "310000"

# The brief's medical table: (first age, last age, yuan a year).
MEDICAL_BANDS = [
    (0, 4, 60),
    (5, 10, 60),
    (11, 17, 60),
    (18, 30, 60),
    (31, 40, 98),
    (41, 50, 168),
    (51, 60, 298),
    (61, 65, 498),
]


# --- the reference model -------------------------------------------------------------


def nth_birthday(birth: date, n: int) -> date:
    """The day someone born on ``birth`` turns ``n``: 29 February counts from 1 March."""
    if (birth.month, birth.day) == (2, 29):
        leap = n + birth.year
        if not (leap % 4 == 0 and (leap % 100 != 0 or leap % 400 == 0)):
            return date(birth.year + n, 3, 1)
    return date(birth.year + n, birth.month, birth.day)


def ref_age(birth: date, on: date) -> int:
    """Completed years: how many birthdays have passed by ``on`` (inclusive)."""
    n = 0
    while nth_birthday(birth, n + 1) <= on:
        n += 1
    return n


def ref_premium(
    plan: Plan, age: int | None, gender: Gender | None, term: str, payment: str, amount: int | None
) -> int:
    candidates = []
    for row in plan.premiums:
        if row.term not in (None, term) or row.payment not in (None, payment):
            continue
        if row.age is not None and (age is None or not row.age[0] <= age <= row.age[1]):
            continue
        if row.gender is not None and row.gender != gender:
            continue
        candidates.append(row)
    if plan.per_order:
        assert amount is not None
        bounded = sorted(
            (r for r in candidates if r.order_amount_max_fen is not None),
            key=lambda r: r.order_amount_max_fen or 0,
        )
        for row in bounded:
            if amount <= (row.order_amount_max_fen or 0):
                return row.premium_fen
        [open_ended] = [r for r in candidates if r.order_amount_max_fen is None]
        return open_ended.premium_fen
    [row] = candidates
    return row.premium_fen


@dataclass(frozen=True)
class Request:
    product: Product
    plan: str
    term: str | None
    payment: str | None
    birth: date | None
    gender: Gender | None
    region: str
    occupation: int
    quote_date: date
    amount: int | None


def expected(req: Request) -> str | int:
    """The refusal code, or the premium in fen, that the rules give for ``req``."""
    p = req.product
    if p.sale.status is not SaleStatus.on_sale or (
        p.sale.stop_date is not None and req.quote_date >= p.sale.stop_date
    ):
        return "product_not_on_sale"
    plan = next((x for x in p.plans if x.code == req.plan), None)
    if plan is None:
        return "unknown_plan"
    chosen: dict[str, str] = {}
    for what, given_code, options in (
        ("term", req.term, [t.code for t in p.terms_options]),
        ("payment", req.payment, [x.code for x in p.payment_options]),
    ):
        if given_code is None and len(options) > 1:
            return f"{what}_required"
        if given_code is not None and given_code not in options:
            return f"unknown_{what}"
        chosen[what] = given_code if given_code is not None else options[0]
    term, payment = chosen["term"], chosen["payment"]
    if not any(r.term in (None, term) and r.payment in (None, payment) for r in plan.premiums):
        return "term_payment_not_offered"
    if req.region not in PROVINCES:
        return "invalid_region"
    if p.sale.regions != "all" and req.region not in p.sale.regions:
        return "region_not_covered"
    if req.occupation not in p.eligibility.occupation_classes:
        return "occupation_not_covered"
    effective = req.quote_date + timedelta(days=p.effective_after_days)
    age: int | None = None
    if req.birth is None:
        if not plan.per_order:
            return "birth_date_required"
    else:
        if req.birth > effective:
            return "invalid_birth_date"
        if req.gender is None and not plan.per_order:
            return "gender_required"
        age = ref_age(req.birth, effective)
        elig = p.eligibility
        too_young = age < elig.min_age or (
            age == 0 and (effective - req.birth).days < elig.min_age_days
        )
        if too_young or age > elig.max_age:
            return "age_out_of_range"
    if req.amount is not None and req.amount < 0:
        return "invalid_order_amount"
    if plan.per_order and req.amount is None:
        return "order_amount_required"
    return ref_premium(plan, age, req.gender, term, payment, req.amount)


def run(req: Request) -> str | int:
    try:
        quoted = price(
            req.product,
            plan_code=req.plan,
            insured=Insured(req.birth, req.gender, req.region, req.occupation),
            quote_date=req.quote_date,
            term_code=req.term,
            payment_code=req.payment,
            order_amount_fen=req.amount,
        )
    except QuoteRejected as rejected:
        return rejected.code
    return quoted.premium_fen


def quote(
    item: Product,
    plan: str,
    birth: date | None,
    on: date,
    *,
    gender: Gender | None = Gender.male,
    term: str | None = None,
    payment: str | None = None,
    region: str = SHANGHAI,
    occupation: int = 1,
    amount: int | None = None,
) -> int:
    return price(
        item,
        plan_code=plan,
        insured=Insured(birth, gender, region, occupation),
        quote_date=on,
        term_code=term,
        payment_code=payment,
        order_amount_fen=amount,
    ).premium_fen


def rejection(item: Product, plan: str, birth: date | None, on: date, **kw: Any) -> str:
    with pytest.raises(QuoteRejected) as caught:
        quote(item, plan, birth, on, **kw)
    assert caught.value.status == 400
    return caught.value.code


# --- strategies ----------------------------------------------------------------------

quote_dates = st.dates(date(2026, 1, 1), date(2028, 12, 31))


def _mostly(draw: st.DrawFn, good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> Any:
    """A good value nine times in ten, so that most requests get far into pricing."""
    return draw(bad) if draw(st.integers(0, 9)) == 7 else draw(good)


@st.composite
def requests(draw: st.DrawFn) -> Request:
    item = draw(st.sampled_from(PRODUCTS))
    quote_date = draw(quote_dates)
    effective = quote_date + timedelta(days=item.effective_after_days)
    elig = item.eligibility
    # Birth dates: anywhere from age 0 to 110, often right at a birthday boundary.
    birth = _mostly(
        draw,
        st.one_of(
            st.builds(
                lambda years, shift: _years_before(effective, years) + timedelta(days=shift),
                st.one_of(
                    st.integers(max(0, elig.min_age - 1), elig.max_age + 1),
                    st.integers(0, 110),
                ),
                st.integers(-2, 2),
            ),
            st.builds(lambda days: effective - timedelta(days=days), st.integers(-1, 40)),
        ),
        st.one_of(st.none(), st.dates(date(1910, 1, 1), date(2029, 1, 1))),
    )
    plans = st.sampled_from([p.code for p in item.plans])
    terms = st.sampled_from([t.code for t in item.terms_options])
    payments = st.sampled_from([x.code for x in item.payment_options])
    amount_edges = [0, 1, 9_999, 10_000, 10_001, 49_999, 50_000, 50_001, 10**8]
    return Request(
        product=item,
        plan=_mostly(draw, plans, st.just("nope")),
        term=_mostly(draw, terms, st.sampled_from([None, "nope"])),
        payment=_mostly(draw, payments, st.sampled_from([None, "nope"])),
        birth=birth,
        gender=_mostly(draw, st.sampled_from(list(Gender)), st.none()),
        region=_mostly(draw, st.sampled_from(list(PROVINCES)), st.sampled_from(["310100", ""])),
        occupation=_mostly(draw, st.integers(1, 4), st.integers(5, 6)),
        quote_date=quote_date,
        amount=_mostly(
            draw,
            st.one_of(st.sampled_from(amount_edges), st.integers(0, 10**6)),
            st.sampled_from([None, -1]),
        ),
    )


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return date(day.year - years, 2, 28)


# --- the exhaustive property ---------------------------------------------------------


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_price_matches_the_reference_model(req: Request) -> None:
    outcome = expected(req)
    event("priced" if isinstance(outcome, int) else outcome)
    assert run(req) == outcome


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([p for p in PRODUCTS if not p.plans[0].per_order]),
    st.dates(date(1920, 1, 1), date(2028, 12, 31)),
    quote_dates,
    st.sampled_from([Gender.male, Gender.female]),
)
def test_age_out_of_range_exactly_when_the_age_is_outside(
    item: Product, birth: date, on: date, gender: Gender
) -> None:
    """With a valid request, only the 周岁 age on the effective date decides."""
    effective = on + timedelta(days=item.effective_after_days)
    assume(is_on_sale(item, on) and birth <= effective)
    elig = item.eligibility
    age = ref_age(birth, effective)
    outside = (
        age < elig.min_age
        or age > elig.max_age
        or (age == 0 and (effective - birth).days < elig.min_age_days)
    )
    plan = item.plans[0]
    term = item.terms_options[0].code
    payment = next(
        x.code
        for x in item.payment_options
        if any(r.term in (None, term) and r.payment in (None, x.code) for r in plan.premiums)
    )
    try:
        priced = price(
            item,
            plan_code=plan.code,
            insured=Insured(birth, gender, SHANGHAI),
            quote_date=on,
            term_code=term,
            payment_code=payment,
        )
    except QuoteRejected as rejected:
        assert outside, rejected.message
        assert rejected.code == "age_out_of_range"
        assert rejected.detail["age"] == age
        assert rejected.detail["field"] == "birth_date"
        return
    assert not outside
    assert priced.age == age
    assert priced.effective_date == effective
    assert priced.premium_fen == ref_premium(plan, age, gender, term, payment, None)


@settings(max_examples=200, deadline=None)
@given(
    st.dates(date(1920, 1, 1), date(2030, 12, 31)), st.dates(date(1920, 1, 1), date(2030, 12, 31))
)
def test_reference_age_agrees_with_age_on(birth: date, on: date) -> None:
    if on >= birth:
        assert age_on(birth, on) == ref_age(birth, on)


# --- ages, birthdays and band edges --------------------------------------------------


def test_medical_table_is_the_briefs() -> None:
    on = date(2026, 7, 14)  # cover starts on 15 July
    for first, last, yuan in MEDICAL_BANDS:
        for age in (first, last):
            birth = date(2026 - age, 7, 15) if age else date(2026, 6, 15)
            assert quote(MEDICAL, "standard", birth, on) == yuan * 100, age


def test_birthday_on_the_effective_date_prices_the_new_age() -> None:
    birth = date(1995, 6, 10)  # turns 31 on 10 June 2026
    # Quote on 9 June: cover starts 10 June, the birthday: priced at 31.
    assert quote(MEDICAL, "standard", birth, date(2026, 6, 9)) == 98_00
    # Quote on 8 June: cover starts 9 June, still 30.
    assert quote(MEDICAL, "standard", birth, date(2026, 6, 8)) == 60_00
    priced = price(
        MEDICAL,
        plan_code="standard",
        insured=Insured(birth, Gender.female, SHANGHAI),
        quote_date=date(2026, 6, 9),
    )
    assert priced.age == 31 and priced.effective_date == date(2026, 6, 10)


def test_leap_day_birthday_counts_from_the_first_of_march() -> None:
    birth = date(1996, 2, 29)  # turns 31 on 1 March 2027
    assert quote(MEDICAL, "standard", birth, date(2027, 2, 27)) == 60_00  # effective 28 Feb
    assert quote(MEDICAL, "standard", birth, date(2027, 2, 28)) == 98_00  # effective 1 Mar


def _edge_cases(item: Product) -> list[tuple[Plan, str, str, int, int, Gender | None]]:
    """(plan, term, payment, band start, band end, gender) for every row with an age band."""
    out = []
    for plan in item.plans:
        for row in plan.premiums:
            assert row.age is not None
            terms = [row.term] if row.term else [t.code for t in item.terms_options]
            payments = [row.payment] if row.payment else [x.code for x in item.payment_options]
            for term in terms:
                for payment in payments:
                    out.append((plan, term, payment, row.age[0], row.age[1], row.gender))
    return out


@pytest.mark.parametrize("item", [MEDICAL, CI, TRAVEL], ids=lambda p: p.code)
def test_every_band_edge(item: Product) -> None:
    """A band's price starts on the birthday of its first age and lasts through the day
    before the birthday after its last age."""
    on = date(2026, 9, 1)
    effective = on + timedelta(days=item.effective_after_days)
    elig = item.eligibility
    for plan, term, payment, first, last, gender in _edge_cases(item):
        sex = gender or Gender.female
        row_price = ref_premium(plan, first, sex, term, payment, None)
        kw: dict[str, Any] = {"gender": sex, "term": term, "payment": payment}
        # Turns `first` on the effective date: first day of the band.
        start = _years_before(effective, first)
        if first == 0:
            start = effective - timedelta(days=elig.min_age_days)
        assert quote(item, plan.code, start, on, **kw) == row_price
        # Turns `last + 1` the day after the effective date: last day of the band.
        end = _years_before(effective + timedelta(days=1), last + 1)
        assert ref_age(end, effective) == last
        assert quote(item, plan.code, end, on, **kw) == row_price
        # One day either side belongs to the neighbouring band, or is refused.
        younger = start + timedelta(days=1)
        older = _years_before(effective, last + 1)
        for birth, neighbour in ((younger, first - 1), (older, last + 1)):
            if elig.min_age <= neighbour <= elig.max_age and neighbour >= 0:
                want = ref_premium(plan, neighbour, sex, term, payment, None)
                assert quote(item, plan.code, birth, on, **kw) == want
            else:
                code = rejection(item, plan.code, birth, on, **kw)
                assert code == "age_out_of_range"


def test_medical_premium_never_falls_with_age() -> None:
    on = date(2026, 9, 1)
    effective = on + timedelta(days=1)
    youngest = effective - timedelta(days=30)
    births = [youngest] + [_years_before(effective, a) for a in range(1, 66)]
    births += [_years_before(effective + timedelta(days=1), a + 1) for a in range(66)]
    births.sort(reverse=True)  # youngest first
    premiums = [quote(MEDICAL, "standard", b, on) for b in births]
    assert premiums == sorted(premiums)
    assert premiums[0] == 60_00 and premiums[-1] == 498_00


@settings(max_examples=150, deadline=None)
@given(st.dates(date(1955, 1, 1), date(2026, 8, 1)), st.dates(date(1955, 1, 1), date(2026, 8, 1)))
def test_medical_premium_is_monotone_in_age(a: date, b: date) -> None:
    on = date(2026, 8, 1)
    older, younger = min(a, b), max(a, b)
    prices = []
    for birth in (older, younger):
        try:
            prices.append(quote(MEDICAL, "standard", birth, on))
        except QuoteRejected as rejected:
            assert rejected.code == "age_out_of_range"
            return
    assert prices[0] >= prices[1]


def test_medical_minimum_age_in_days() -> None:
    on = date(2026, 9, 1)
    effective = on + timedelta(days=1)
    assert quote(MEDICAL, "standard", effective - timedelta(days=30), on) == 60_00
    assert rejection(MEDICAL, "standard", effective - timedelta(days=29), on) == (
        "age_out_of_range"
    )
    assert rejection(MEDICAL, "standard", effective, on) == "age_out_of_range"
    assert rejection(MEDICAL, "standard", effective + timedelta(days=1), on) == (
        "invalid_birth_date"
    )


def test_ci_prices_by_gender_and_payment() -> None:
    birth, on = date(1996, 3, 1), date(2026, 9, 1)
    male = quote(CI, "standard", birth, on, term="whole-life", payment="pay20")
    female = quote(
        CI, "standard", birth, on, gender=Gender.female, term="whole-life", payment="pay20"
    )
    assert male == 8_210_00  # the cash-value table's reference insured
    assert female < male
    assert quote(CI, "standard", birth, on, term="whole-life", payment="pay30") < male
    assert quote(CI, "standard", birth, on, term="to70", payment="pay20") < male
    code = rejection(CI, "standard", birth, on, term="to70", payment="pay30")
    assert code == "term_payment_not_offered"
    assert rejection(CI, "standard", birth, on, term="to70") == "payment_required"


# --- per-order bands -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "premium"),
    [
        (0, 50),
        (1, 50),
        (99_99, 50),
        (100_00, 50),
        (100_01, 120),
        (500_00, 120),
        (500_01, 200),
        (10**9, 200),
    ],
)
def test_order_amount_bands(amount: int, premium: int) -> None:
    assert quote(SHIPPING, "standard", None, date(2026, 11, 22), amount=amount) == premium


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2_000_00))
def test_order_amount_band_edges_go_to_the_lower_band(amount: int) -> None:
    want = 50 if amount <= 100_00 else 120 if amount <= 500_00 else 200
    assert quote(SHIPPING, "standard", None, date(2026, 11, 22), gender=None, amount=amount) == (
        want
    )


def test_per_order_needs_no_birth_date_but_needs_the_amount() -> None:
    on = date(2026, 11, 22)
    priced = price(
        SHIPPING,
        plan_code="standard",
        insured=Insured(None, None, SHANGHAI),
        quote_date=on,
        order_amount_fen=88_00,
    )
    assert priced.age is None and priced.frequency is Frequency.per_order
    assert priced.effective_date == on and priced.end_date == on + timedelta(days=89)
    assert rejection(SHIPPING, "standard", None, on) == "order_amount_required"
    assert rejection(SHIPPING, "standard", None, on, amount=-1) == "invalid_order_amount"


# --- refusals ------------------------------------------------------------------------

ADULT = date(1990, 5, 5)
TODAY = date(2026, 11, 22)


def test_unknown_plan() -> None:
    with pytest.raises(QuoteRejected) as caught:
        quote(ACCIDENT, "gold", ADULT, TODAY)
    assert caught.value.code == "unknown_plan"
    assert caught.value.detail == {"field": "plan_code", "allowed": ["basic", "plus"]}


def test_unknown_and_missing_term() -> None:
    assert rejection(ACCIDENT, "basic", ADULT, TODAY, term="1y") == "unknown_term"
    assert rejection(TRAVEL, "essential", ADULT, TODAY) == "term_required"
    assert quote(TRAVEL, "essential", ADULT, TODAY, term="15d") == 60_00
    assert rejection(CI, "standard", ADULT, TODAY, term="to70", payment="pay99") == (
        "unknown_payment"
    )


def test_regions() -> None:
    local = make_product("accident-monthly", sale={"regions": [SHANGHAI]})
    assert quote(local, "basic", ADULT, TODAY) == 5_00
    assert rejection(local, "basic", ADULT, TODAY, region="110000") == "region_not_covered"
    assert rejection(local, "basic", ADULT, TODAY, region="310100") == "invalid_region"
    assert rejection(ACCIDENT, "basic", ADULT, TODAY, region="999999") == "invalid_region"
    assert rejection(ACCIDENT, "basic", ADULT, TODAY, region="") == "invalid_region"


def test_occupation_not_covered() -> None:
    assert quote(ACCIDENT, "basic", ADULT, TODAY, occupation=4) == 5_00
    with pytest.raises(QuoteRejected) as caught:
        quote(ACCIDENT, "basic", ADULT, TODAY, occupation=5)
    assert caught.value.code == "occupation_not_covered"
    assert caught.value.detail["allowed"] == [1, 2, 3, 4]
    assert quote(MEDICAL, "standard", ADULT, TODAY, occupation=6) == 98_00


def test_not_on_sale_from_the_stop_date() -> None:
    stop = STOPPING.sale.stop_date
    assert stop == date(2027, 3, 31)
    assert quote(STOPPING, "basic", ADULT, stop - timedelta(days=1)) == 2_00
    assert rejection(STOPPING, "basic", ADULT, stop) == "product_not_on_sale"
    assert rejection(STOPPING, "basic", ADULT, stop + timedelta(days=400)) == (
        "product_not_on_sale"
    )
    assert is_on_sale(STOPPING, stop - timedelta(days=1)) and not is_on_sale(STOPPING, stop)
    for status in ("suspended", "withdrawn"):
        halted = make_product("accident-monthly", sale={"status": status})
        assert rejection(halted, "basic", ADULT, TODAY) == "product_not_on_sale"


def test_birth_date_and_gender_required() -> None:
    assert rejection(ACCIDENT, "basic", None, TODAY) == "birth_date_required"
    assert rejection(ACCIDENT, "basic", ADULT, TODAY, gender=None) == "gender_required"
    assert rejection(CI, "standard", None, TODAY, term="to70", payment="pay20") == (
        "birth_date_required"
    )


def test_accident_ages() -> None:
    effective = TODAY + timedelta(days=1)
    assert quote(ACCIDENT, "plus", _years_before(effective, 18), TODAY) == 16_00
    young = _years_before(effective, 18) + timedelta(days=1)
    assert rejection(ACCIDENT, "plus", young, TODAY) == "age_out_of_range"
    oldest = _years_before(effective + timedelta(days=1), 61)
    assert quote(ACCIDENT, "plus", oldest, TODAY) == 16_00
    assert rejection(ACCIDENT, "plus", oldest - timedelta(days=1), TODAY) == "age_out_of_range"


# --- dates ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("effective", "last_day"),
    [
        (date(2026, 1, 31), date(2026, 2, 28)),
        (date(2028, 1, 31), date(2028, 2, 29)),
        (date(2026, 1, 29), date(2026, 2, 28)),
        (date(2026, 1, 28), date(2026, 2, 27)),
        (date(2026, 1, 15), date(2026, 2, 14)),
        (date(2026, 12, 1), date(2026, 12, 31)),
        (date(2026, 12, 31), date(2027, 1, 30)),
        (date(2026, 3, 31), date(2026, 4, 30)),
    ],
)
def test_one_month_end_dates(effective: date, last_day: date) -> None:
    priced = price(
        ACCIDENT,
        plan_code="basic",
        insured=Insured(ADULT, Gender.male, SHANGHAI),
        quote_date=effective - timedelta(days=1),
    )
    assert priced.effective_date == effective
    assert priced.end_date == last_day
    assert priced.frequency is Frequency.monthly
    assert priced.waiting_period_ends is None


def test_one_year_and_day_terms() -> None:
    priced = price(
        MEDICAL,
        plan_code="standard",
        insured=Insured(ADULT, Gender.male, SHANGHAI),
        quote_date=date(2026, 2, 28),
    )
    assert priced.effective_date == date(2026, 3, 1)
    assert priced.end_date == date(2027, 2, 28)
    assert priced.waiting_period_ends == date(2026, 3, 31)
    trip = price(
        product("flight-delay"),
        plan_code="standard",
        insured=Insured(ADULT, Gender.male, SHANGHAI),
        quote_date=date(2026, 12, 31),
    )
    assert (trip.effective_date, trip.end_date) == (date(2026, 12, 31), date(2027, 1, 1))
    week = price(
        TRAVEL,
        plan_code="plus",
        insured=Insured(ADULT, Gender.male, SHANGHAI),
        quote_date=date(2026, 12, 30),
        term_code="7d",
    )
    assert week.end_date == date(2027, 1, 6)
    assert week.premium_fen == 68_00


def test_to_age_and_whole_life_end_dates() -> None:
    for birth in (date(1996, 2, 29), date(1996, 3, 1), date(1996, 2, 28), date(2000, 12, 31)):
        priced = price(
            CI,
            plan_code="standard",
            insured=Insured(birth, Gender.female, SHANGHAI),
            quote_date=date(2026, 9, 1),
            term_code="to70",
            payment_code="pay20",
        )
        assert priced.end_date is not None
        assert age_on(birth, priced.end_date) == 69
        assert age_on(birth, priced.end_date + timedelta(days=1)) == 70
    assert price(
        CI,
        plan_code="standard",
        insured=Insured(date(1996, 2, 29), Gender.female, SHANGHAI),
        quote_date=date(2026, 9, 1),
        term_code="to70",
        payment_code="pay20",
    ).end_date == date(2066, 2, 28)
    whole = price(
        CI,
        plan_code="standard",
        insured=Insured(ADULT, Gender.male, SHANGHAI),
        quote_date=TODAY,
        term_code="whole-life",
        payment_code="single",
    )
    assert whole.end_date is None
    assert whole.waiting_period_ends == TODAY + timedelta(days=1 + 180)


@settings(max_examples=200, deadline=None)
@given(st.dates(date(2000, 1, 1), date(2040, 12, 31)), st.integers(1, 36))
def test_month_terms_end_the_day_before_the_same_day_n_months_on(start: date, months: int) -> None:
    last = add_months(start, months) - timedelta(days=1)
    month_index = start.year * 12 + start.month - 1 + months
    target_year, target_month = divmod(month_index, 12)
    after = last + timedelta(days=1)
    assert (after.year, after.month) == (target_year, target_month + 1)
    assert after.day == start.day or (
        after.day < start.day and (after + timedelta(days=1)).day == 1
    )


def test_end_date_helper_for_days() -> None:
    term = TRAVEL.term("30d")
    assert term is not None
    assert end_date(term, date(2026, 1, 1), None) == date(2026, 1, 30)


# --- price_from ----------------------------------------------------------------------


def test_price_from() -> None:
    assert price_from(ACCIDENT) == (5_00, Frequency.monthly)
    assert price_from(MEDICAL) == (60_00, Frequency.annual)
    assert price_from(SHIPPING) == (50, Frequency.per_order)
    assert price_from(STOPPING) == (2_00, Frequency.monthly)
    assert price_from(product("annuity-participating")) == (10_000_00, Frequency.annual)
