"""Premium calculation: a pure function of a product declaration and the insured.

No database, no clock: the caller passes the quote date.  Ages are 周岁 on the
effective date (quote date + the product's ``effective_after_days``); a person whose
birthday falls on the effective date is priced at the new age.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta

from covernet.catalog.spec import Frequency, Gender, Plan, Product, SaleStatus, Term, row_matches
from covernet.core.cn_identity import age_on
from covernet.core.errors import NotFound, Unprocessable, ValidationFailed
from covernet.core.regions import is_province


class QuoteRejected(ValidationFailed):
    """The insured or the request does not fit the product (400, stable code)."""


def _reject(code: str, message: str, field: str | None = None, **extra: object) -> QuoteRejected:
    detail: dict[str, object] = {"field": field} if field else {}
    detail.update(extra)
    return QuoteRejected(message, code=code, detail=detail or None)


@dataclass(frozen=True, slots=True)
class Insured:
    birth_date: date | None
    gender: Gender | None
    region: str
    occupation_class: int = 1


@dataclass(frozen=True, slots=True)
class Price:
    product_code: str
    plan_code: str
    term_code: str
    payment_code: str
    frequency: Frequency
    premium_fen: int
    sum_insured_fen: int
    age: int | None
    effective_date: date
    end_date: date | None
    waiting_period_ends: date | None


def is_on_sale(product: Product, on: date) -> bool:
    if product.sale.status is not SaleStatus.on_sale:
        return False
    return product.sale.stop_date is None or on < product.sale.stop_date


def add_months(start: date, months: int) -> date:
    month_index = start.month - 1 + months
    year = start.year + month_index // 12
    month = month_index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return date(year, month, day)


def end_date(term: Term, effective: date, birth_date: date | None) -> date | None:
    """Last day of cover (inclusive); ``None`` for whole-life cover."""
    if term.days is not None:
        return effective + timedelta(days=term.days - 1)
    months = term.months
    if term.years is not None:
        months = 12 * term.years
    if months is not None:
        # Up to the day before the same date next period; when the target month is too
        # short for that date (31 Jan + 1 month), cover runs to that month's last day.
        target = add_months(effective, months)
        return target if target.day != effective.day else target - timedelta(days=1)
    if term.to_age is not None and birth_date is not None:
        return birthday(birth_date, term.to_age) - timedelta(days=1)
    return None


def birthday(birth_date: date, age: int) -> date:
    """The day the insured turns ``age`` (周岁), as :func:`age_on` counts it.

    Someone born on 29 February turns a year older on 1 March in common years.
    """
    try:
        return birth_date.replace(year=birth_date.year + age)
    except ValueError:
        return date(birth_date.year + age, 3, 1)


def _choose(options: list[str], given: str | None, what: str) -> str:
    if given is None:
        if len(options) == 1:
            return options[0]
        raise _reject(f"{what}_required", f"choose a {what}: one of {', '.join(options)}", what)
    if given not in options:
        raise _reject(
            f"unknown_{what}", f"this product has no {what} '{given}'", what, allowed=options
        )
    return given


def _plan(product: Product, plan_code: str) -> Plan:
    plan = product.plan(plan_code)
    if plan is None:
        raise _reject(
            "unknown_plan",
            f"product {product.code} has no plan '{plan_code}'",
            "plan_code",
            allowed=[p.code for p in product.plans],
        )
    return plan


def price(
    product: Product,
    *,
    plan_code: str,
    insured: Insured,
    quote_date: date,
    term_code: str | None = None,
    payment_code: str | None = None,
    order_amount_fen: int | None = None,
) -> Price:
    """Price one plan of ``product`` for ``insured``, or raise a :class:`QuoteRejected`."""
    if not is_on_sale(product, quote_date):
        raise QuoteRejected(
            f"product {product.code} is not on sale",
            code="product_not_on_sale",
            detail={"field": "product_code"},
        )
    plan = _plan(product, plan_code)
    term = _choose([t.code for t in product.terms_options], term_code, "term")
    payment = _choose([p.code for p in product.payment_options], payment_code, "payment")
    if not product.offers(term, payment, plan):
        raise _reject(
            "term_payment_not_offered",
            f"plan {plan.code} is not sold with term {term} and payment {payment}",
            "payment",
        )
    if not is_province(insured.region):
        raise _reject("invalid_region", f"'{insured.region}' is not a province code", "region")
    regions = product.sale.regions
    if regions != "all" and insured.region not in regions:
        raise _reject(
            "region_not_covered", f"product {product.code} is not sold in this region", "region"
        )
    if insured.occupation_class not in product.eligibility.occupation_classes:
        raise _reject(
            "occupation_not_covered",
            f"occupation class {insured.occupation_class} is not covered",
            "occupation_class",
            allowed=product.eligibility.occupation_classes,
        )
    effective = quote_date + timedelta(days=product.effective_after_days)
    age = _eligible_age(product, plan, insured, effective)
    if order_amount_fen is not None and order_amount_fen < 0:
        raise _reject(
            "invalid_order_amount", "the order amount cannot be negative", "order_amount_fen"
        )
    if plan.per_order and order_amount_fen is None:
        raise _reject(
            "order_amount_required",
            "a per-order product needs the order amount",
            "order_amount_fen",
        )
    row = _premium_row(plan, age, insured.gender, term, payment, order_amount_fen)
    if row is None:
        raise Unprocessable(
            f"plan {plan.code} has no premium for this insured", code="no_premium_rate"
        )
    term_spec = product.term(term)
    assert term_spec is not None
    payment_spec = product.payment(payment)
    assert payment_spec is not None
    waiting = (
        effective + timedelta(days=product.waiting_period_days)
        if product.waiting_period_days
        else None
    )
    return Price(
        product_code=product.code,
        plan_code=plan.code,
        term_code=term,
        payment_code=payment,
        frequency=payment_spec.frequency,
        premium_fen=row,
        sum_insured_fen=plan.sum_insured_fen,
        age=age,
        effective_date=effective,
        end_date=end_date(term_spec, effective, insured.birth_date),
        waiting_period_ends=waiting,
    )


def _eligible_age(product: Product, plan: Plan, insured: Insured, effective: date) -> int | None:
    elig = product.eligibility
    if insured.birth_date is None:
        if plan.per_order:
            return None
        raise _reject(
            "birth_date_required", "give the insured's ID number or birth date", "birth_date"
        )
    if insured.birth_date > effective:
        raise _reject(
            "invalid_birth_date", "the birth date is after the start of cover", "birth_date"
        )
    if insured.gender is None and not plan.per_order:
        raise _reject("gender_required", "give the insured's ID number or gender", "gender")
    age = age_on(insured.birth_date, effective)
    days_old = (effective - insured.birth_date).days
    if age < elig.min_age or age > elig.max_age or (age == 0 and days_old < elig.min_age_days):
        low = (
            f"{elig.min_age_days} days"
            if elig.min_age == 0 and elig.min_age_days
            else (f"{elig.min_age}")
        )
        raise _reject(
            "age_out_of_range",
            f"the insured is {age} on {effective.isoformat()}; this product covers ages "
            f"{low} to {elig.max_age}",
            "birth_date",
            age=age,
            min_age=elig.min_age,
            max_age=elig.max_age,
        )
    return age


def _premium_row(
    plan: Plan,
    age: int | None,
    gender: Gender | None,
    term: str,
    payment: str,
    order_amount_fen: int | None,
) -> int | None:
    hits = [
        r
        for r in plan.premiums
        if row_matches(
            r, age=age, gender=gender, term=term, payment=payment, order_amount_fen=order_amount_fen
        )
    ]
    if not hits:
        return None
    # Per-order bands: the narrowest band that holds the order amount wins.
    hits.sort(key=lambda r: (r.order_amount_max_fen is None, r.order_amount_max_fen or 0))
    return hits[0].premium_fen


def price_from(product: Product) -> tuple[int, Frequency]:
    """The cheapest premium in the product's tables, for "from ¥x/month" labels."""
    payments = {p.code: p.frequency for p in product.payment_options}
    best: tuple[int, Frequency] | None = None
    for plan in product.plans:
        for row in plan.premiums:
            freq = payments[row.payment] if row.payment else product.payment_options[0].frequency
            if best is None or row.premium_fen < best[0]:
                best = (row.premium_fen, freq)
    assert best is not None  # a plan has at least one row
    return best


__all__ = ["Insured", "NotFound", "Price", "QuoteRejected", "is_on_sale", "price", "price_from"]
